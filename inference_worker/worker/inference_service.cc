#include "inference_worker/worker/inference_service.h"

#include "absl/strings/str_cat.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/worker/client_identity.h"
#include "inference_worker/worker/worker_log.h"

namespace ossgate::worker {

namespace pb = ::ossgate::inference::v1;

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

namespace {


absl::Status Invalid(const std::string& field, const std::string& problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// The message count and size limits are checked by BuildGenerationRequest
// (BuildRequest checks the raw size with the tools first).

// The conversation's function tools, through the renderer the HTTP API uses
// too. Every tool is checked even when tool_choice NONE leaves them out.
absl::Status AddTools(const pb::Conversation& c, text::Conversation* conv) {
  if (c.tool_choice() != pb::TOOL_CHOICE_UNSPECIFIED && c.tool_choice() != pb::TOOL_CHOICE_AUTO &&
      c.tool_choice() != pb::TOOL_CHOICE_NONE) {
    return Invalid("conversation.tool_choice", "must be AUTO or NONE");
  }
  std::vector<ToolSpec> specs;
  specs.reserve(c.tools_size());
  for (const pb::ToolDefinition& t : c.tools()) specs.push_back({t.name(), t.description(), t.parameters_json()});
  absl::StatusOr<std::vector<text::ToolDefinition>> tools = BuildTools(specs, "conversation.tools", "");
  if (!tools.ok()) return tools.status();
  if (c.tool_choice() != pb::TOOL_CHOICE_NONE) conv->tools = *std::move(tools);
  return absl::OkStatus();
}

absl::StatusOr<text::Conversation> ToConversation(const pb::Conversation& c) {
  text::Conversation conv;
  switch (c.reasoning_effort()) {
    case pb::REASONING_EFFORT_LOW: conv.reasoning = text::ReasoningEffort::kLow; break;
    case pb::REASONING_EFFORT_HIGH: conv.reasoning = text::ReasoningEffort::kHigh; break;
    default: conv.reasoning = text::ReasoningEffort::kMedium; break;
  }
  conv.developer_instructions = c.developer_instructions();
  conv.current_date = c.current_date();
  if (absl::Status s = AddTools(c, &conv); !s.ok()) return s;
  for (int i = 0; i < c.messages_size(); ++i) {
    const pb::ChatMessage& m = c.messages(i);
    text::Message msg;
    switch (m.role()) {
      case pb::ROLE_USER: msg.role = text::Role::kUser; break;
      case pb::ROLE_ASSISTANT: msg.role = text::Role::kAssistant; break;
      case pb::ROLE_TOOL: msg.role = text::Role::kTool; break;
      default:
        return Invalid(absl::StrCat("conversation.messages[", i, "].role"), "must be USER, ASSISTANT or TOOL");
    }
    msg.content = m.content();
    msg.channel = m.channel();
    if (msg.role == text::Role::kAssistant && msg.channel.empty()) msg.channel = "final";
    msg.recipient = m.recipient();
    msg.content_type = m.content_type();
    msg.author = m.author();
    conv.messages.push_back(std::move(msg));
  }
  return conv;
}

}  // namespace

pb::GenerateResponse InferenceServiceImpl::ToResponse(const serving::OutputChunk& chunk, const std::string& request_id,
                                                     uint64_t seed) {
  pb::GenerateResponse response;
  response.set_request_id(request_id);
  for (int32_t t : chunk.tokens) response.add_token_ids(t);
  response.set_text(chunk.text);
  response.set_channel(chunk.channel);
  response.set_recipient(chunk.recipient);
  response.set_content_type(chunk.content_type);
  for (const auto& lp : chunk.logprobs) {
    pb::TokenLogprob* out = response.add_logprobs();
    out->set_token_id(lp.token);
    out->set_logprob(lp.logprob);
    for (const auto& [id, v] : lp.top) {
      pb::TopLogprob* t = out->add_top();
      t->set_token_id(id);
      t->set_logprob(v);
    }
  }
  if (chunk.final) {
    pb::Final* f = response.mutable_final();
    switch (chunk.finish) {
      case model::FinishReason::kStop: f->set_finish_reason(pb::FINISH_REASON_STOP); break;
      case model::FinishReason::kLength: f->set_finish_reason(pb::FINISH_REASON_LENGTH); break;
      case model::FinishReason::kCancelled: f->set_finish_reason(pb::FINISH_REASON_CANCELLED); break;
      case model::FinishReason::kToolCall: f->set_finish_reason(pb::FINISH_REASON_TOOL_CALLS); break;
      default: f->set_finish_reason(pb::FINISH_REASON_ERROR); break;
    }
    f->set_error(chunk.error);
    f->set_seed(seed);
    pb::Usage* u = f->mutable_usage();
    u->set_prompt_tokens(chunk.usage.prompt_tokens);
    u->set_generated_tokens(chunk.usage.generated_tokens);
    u->set_time_to_first_token_seconds(chunk.usage.time_to_first_token);
    u->set_total_seconds(chunk.usage.total);
    u->set_queue_seconds(chunk.usage.queued);
  }
  return response;
}

absl::StatusOr<serving::GenerationRequest> InferenceServiceImpl::BuildRequest(const pb::GenerateRequest& req,
                                                                              const LoadedModelView& m) {
  GenerateSpec spec;
  spec.request_id = req.request_id();
  switch (req.prompt_case()) {
    case pb::GenerateRequest::kText:
      spec.prompt = GenerateSpec::Prompt::kText;
      spec.text = req.text();
      spec.allow_special_tokens = req.allow_special_tokens();
      break;
    case pb::GenerateRequest::kTokenIds:
      spec.prompt = GenerateSpec::Prompt::kTokenIds;
      spec.token_ids.assign(req.token_ids().ids().begin(), req.token_ids().ids().end());
      break;
    case pb::GenerateRequest::kConversation: {
      // Before the tools' JSON Schemas are parsed: the raw size, tools included
      // (BuildGenerationRequest checks the rendered parts again).
      size_t bytes = 0;
      for (const auto& msg : req.conversation().messages()) bytes += msg.content().size();
      bytes += req.conversation().developer_instructions().size();
      for (const auto& tool : req.conversation().tools()) {
        bytes += tool.name().size() + tool.description().size() + tool.parameters_json().size();
      }
      if (bytes > kMaxPromptBytes) {
        return Invalid("conversation", absl::StrCat("the conversation is ", bytes, " bytes; the limit is ", kMaxPromptBytes));
      }
      auto conv = ToConversation(req.conversation());
      if (!conv.ok()) return conv.status();
      spec.prompt = GenerateSpec::Prompt::kConversation;
      spec.conversation = *std::move(conv);
      // Harmony-only fields the Conversation cannot show (the builder checks
      // its messages, instructions and date itself).
      if (req.conversation().reasoning_effort() != pb::REASONING_EFFORT_UNSPECIFIED) {
        spec.harmony_only_fields.push_back("conversation.reasoning_effort");
      }
      if (req.conversation().tools_size() > 0) spec.harmony_only_fields.push_back("conversation.tools");
      if (req.conversation().tool_choice() != pb::TOOL_CHOICE_UNSPECIFIED) {
        spec.harmony_only_fields.push_back("conversation.tool_choice");
      }
      break;
    }
    default:
      break;  // kNone: refused by BuildGenerationRequest
  }
  const pb::SamplingParams& s = req.sampling();
  if (s.has_temperature()) spec.temperature = s.temperature();
  if (s.has_top_p()) spec.top_p = s.top_p();
  if (s.has_top_k()) spec.top_k = s.top_k();
  if (s.has_min_p()) spec.min_p = s.min_p();
  if (s.has_repetition_penalty()) spec.repetition_penalty = s.repetition_penalty();
  if (s.has_presence_penalty()) spec.presence_penalty = s.presence_penalty();
  if (s.has_frequency_penalty()) spec.frequency_penalty = s.frequency_penalty();
  if (s.has_seed()) spec.seed = s.seed();
  if (req.has_max_tokens()) spec.max_tokens = req.max_tokens();
  spec.stop.assign(req.stop().begin(), req.stop().end());
  spec.stop_token_ids.assign(req.stop_token_ids().begin(), req.stop_token_ids().end());
  spec.ignore_eos = req.ignore_eos();
  if (req.has_logprobs()) spec.logprobs = req.logprobs();
  return BuildGenerationRequest(spec, m);
}

void InferenceServiceImpl::SetModel(const LoadedModelView* model) { model_.store(model); }

InferenceServiceImpl::InferenceServiceImpl(ClientAuthPolicy policy, ServiceObserver* observer,
                                           std::function<void(const std::string&)> log)
    : policy_(std::move(policy)), observer_(observer), log_(std::move(log)) {}

namespace {

// The request as the method's message type. gRPC's own deserialisation
// would answer UNIMPLEMENTED with no message; the API promises
// INVALID_ARGUMENT naming the problem.
template <class Message>
absl::Status ParseRequest(const grpc::ByteBuffer& buffer, Message* msg) {
  grpc::ByteBuffer copy(buffer);  // Deserialize consumes its input; this shares the slices
  const size_t bytes = copy.Length();
  if (!grpc::SerializationTraits<Message>::Deserialize(&copy, msg).ok()) {
    return Invalid("request",
                   absl::StrCat("the ", bytes, " bytes received do not parse as ", Message::descriptor()->full_name(),
                                " (protobuf wire format); check the client's generated code"));
  }
  return absl::OkStatus();
}

template <class Message>
absl::Status SerializeResponse(const Message& msg, grpc::ByteBuffer* out) {
  bool own_buffer = false;
  if (!grpc::SerializationTraits<Message>::Serialize(msg, out, &own_buffer).ok()) {
    return absl::InternalError(absl::StrCat("cannot serialize the ", Message::descriptor()->full_name()));
  }
  return absl::OkStatus();
}

absl::Status NotLoaded() { return absl::UnavailableError("the model is not loaded yet"); }

// One Generate call. The reactor owns itself through self_ until gRPC calls
// OnDone; the engine's notify callback holds only a weak reference, so it
// can never touch a deleted reactor, and a reaction run inline from a
// Start* call cannot deadlock against it.
class GenerateReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  static GenerateReactor* Create(grpc::CallbackServerContext* ctx) {
    auto* r = new GenerateReactor(ctx);
    r->self_.reset(r);
    return r;
  }

  void Start(std::shared_ptr<serving::RequestStream> stream, uint64_t seed) {
    stream_ = std::move(stream);
    seed_ = seed;
    std::weak_ptr<GenerateReactor> weak = self_;
    stream_->SetNotify([weak] {
      if (auto r = weak.lock()) r->OnOutput();
    });
    OnOutput();
  }

  void Fail(const grpc::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
    }
    FinishOnce(status);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {  // the client is gone
      stream_->Cancel();
      FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
    }
    MaybeWrite();
  }

  void OnCancel() override {
    if (stream_) stream_->Cancel();
  }

  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> lock(ctx_mu_);
      ctx_ = nullptr;  // gRPC frees it after this returns
    }
    if (stream_) stream_->Cancel();  // no-op if finished; frees capacity otherwise
    // Drop the self-reference; the object goes away once a notify callback
    // that may be running has returned.
    std::shared_ptr<GenerateReactor> last = std::move(self_);
  }

 private:
  explicit GenerateReactor(grpc::CallbackServerContext* ctx) : ctx_(ctx) {}

  // New output, or the engine ended a stalled stream: its client has not
  // taken a message for the stall timeout, so the final one would never be
  // delivered either; cancelling the call frees the transport stream too.
  void OnOutput() {
    if (stream_->stalled()) {
      // TryCancel may run reactions (even OnDone) inline on this thread,
      // hence the recursive mutex.
      std::lock_guard<std::recursive_mutex> lock(ctx_mu_);
      if (ctx_ != nullptr) ctx_->TryCancel();
      return;
    }
    MaybeWrite();
  }

  // Writes the next chunk if none is in flight.
  void MaybeWrite() {
    std::optional<serving::OutputChunk> chunk;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writing_ || finished_) return;
      chunk = stream_->Pop();
      if (!chunk) return;
      writing_ = true;
      if (chunk->final) finished_ = true;
    }
    const pb::GenerateResponse response = InferenceServiceImpl::ToResponse(*chunk, stream_->request_id(), seed_);
    buffer_.Clear();
    if (absl::Status s = SerializeResponse(response, &buffer_); !s.ok()) {
      stream_->Cancel();
      FinishOnce(ToGrpc(s));
      return;
    }
    if (chunk->final) {
      finish_called_.store(true);
      StartWriteAndFinish(&buffer_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&buffer_);
    }
  }

  void FinishOnce(const grpc::Status& s) {
    if (!finish_called_.exchange(true)) Finish(s);
  }

  std::shared_ptr<GenerateReactor> self_;
  std::shared_ptr<serving::RequestStream> stream_;
  uint64_t seed_ = 0;
  std::mutex mu_;
  bool writing_ = false;   // guarded by mu_
  bool finished_ = false;  // guarded by mu_
  std::atomic<bool> finish_called_{false};
  grpc::ByteBuffer buffer_;  // the message being written (one at a time)
  std::recursive_mutex ctx_mu_;
  grpc::CallbackServerContext* ctx_;  // guarded by ctx_mu_; null once OnDone ran
};

}  // namespace

absl::StatusOr<std::string> InferenceServiceImpl::Authorize(grpc::CallbackServerContext* ctx,
                                                            const char* method) const {
  if (!policy_.require_identity) return std::string();  // anonymous, by explicit configuration
  const PeerCertificate cert = PeerCertificateOf(ctx->auth_context().get());
  absl::StatusOr<ClientIdentity> id = IdentityOf(cert, policy_.roles);
  if (id.ok()) return id->uri;
  // Attributable even without a usable identity: the certificate's SANs and
  // fingerprint identify who holds a CA-signed certificate.
  if (log_) {
    log_(
        absl::StrCat("refused ", method, " from ", ctx->peer(), ": ", id.status().message(), "; ", DescribePeer(cert)));
  }
  return id.status();
}

template <class Request, class Response, class Handle>
grpc::ServerUnaryReactor* InferenceServiceImpl::Unary(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response, const char* method, Handle handle) {
  auto* r = ctx->DefaultReactor();
  const absl::Status s = [&]() -> absl::Status {
    absl::StatusOr<std::string> owner = Authorize(ctx, method);
    if (!owner.ok()) return owner.status();
    Request req;
    if (absl::Status p = ParseRequest(*request, &req); !p.ok()) return p;
    const LoadedModelView* m = model();
    if (!m) return NotLoaded();
    Response resp;
    if (absl::Status h = handle(*owner, *m, req, &resp); !h.ok()) return h;
    return SerializeResponse(resp, response);
  }();
  r->Finish(ToGrpc(s));
  return r;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* InferenceServiceImpl::Generate(grpc::CallbackServerContext* ctx,
                                                                           const grpc::ByteBuffer* request) {
  auto* reactor = GenerateReactor::Create(ctx);
  auto refuse = [&](const absl::Status& s) {
    const grpc::Status g = ToGrpc(s);
    if (observer_) observer_->OnGenerateRefused(g.error_code());
    reactor->Fail(g);
    return reactor;
  };
  absl::StatusOr<std::string> owner = Authorize(ctx, "Generate");
  if (!owner.ok()) return refuse(owner.status());
  pb::GenerateRequest req;
  if (absl::Status p = ParseRequest(*request, &req); !p.ok()) return refuse(p);
  const LoadedModelView* m = model();
  if (!m) return refuse(NotLoaded());
  if (!accepting_.load()) return refuse(absl::UnavailableError("the worker is shutting down"));
  auto built = BuildRequest(req, *m);
  if (!built.ok()) return refuse(built.status());
  built->owner = *std::move(owner);
  const uint64_t seed = built->params.sampling.seed;
  auto stream = m->engine->Submit(*std::move(built));
  if (!stream.ok()) return refuse(stream.status());
  reactor->Start(*std::move(stream), seed);
  return reactor;
}

absl::Status InferenceServiceImpl::DoAbort(const std::string& owner, const LoadedModelView& m,
                                           const pb::AbortRequest& req, pb::AbortResponse*) {
  if (req.request_id().empty() || !ValidRequestId(req.request_id())) {
    return Invalid("request_id", "1..128 characters from [A-Za-z0-9._:-] are required");
  }
  // Only the owner's requests: NOT_FOUND, not PERMISSION_DENIED, for another
  // identity's id, so ids cannot be probed.
  return m.engine->Abort(req.request_id(), owner);
}

absl::Status InferenceServiceImpl::DoTokenize(const LoadedModelView& m, const pb::TokenizeRequest& req,
                                              pb::TokenizeResponse* resp) {
  if (req.text().size() > kMaxPromptBytes) return Invalid("text", absl::StrCat("at most ", kMaxPromptBytes, " bytes"));
  for (int32_t id : m.tokenizer->Encode(req.text(), req.allow_special_tokens())) resp->add_token_ids(id);
  return absl::OkStatus();
}

absl::Status InferenceServiceImpl::DoDetokenize(const LoadedModelView& m, const pb::DetokenizeRequest& req,
                                                pb::DetokenizeResponse* resp) {
  if (req.token_ids_size() > 1000000) return Invalid("token_ids", "at most 1,000,000 ids");
  for (int i = 0; i < req.token_ids_size(); ++i) {
    const int32_t id = req.token_ids(i);
    if (id < 0 || id >= m.config->vocab_size) {
      return Invalid(absl::StrCat("token_ids[", i, "]"), absl::StrCat("unknown token id ", id));
    }
  }
  text::StreamDecoder decoder(*m.tokenizer);
  std::string out;
  for (int32_t id : req.token_ids()) out += decoder.Push(id);
  out += decoder.Flush();
  resp->set_text(out);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Abort(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  return Unary<pb::AbortRequest, pb::AbortResponse>(
      ctx, request, response, "Abort",
      [](const std::string& owner, const LoadedModelView& m, const pb::AbortRequest& req, pb::AbortResponse* resp) {
        return DoAbort(owner, m, req, resp);
      });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Tokenize(grpc::CallbackServerContext* ctx,
                                                         const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return Unary<pb::TokenizeRequest, pb::TokenizeResponse>(
      ctx, request, response, "Tokenize",
      [](const std::string&, const LoadedModelView& m, const pb::TokenizeRequest& req, pb::TokenizeResponse* resp) {
        return DoTokenize(m, req, resp);
      });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Detokenize(grpc::CallbackServerContext* ctx,
                                                           const grpc::ByteBuffer* request,
                                                           grpc::ByteBuffer* response) {
  return Unary<pb::DetokenizeRequest, pb::DetokenizeResponse>(
      ctx, request, response, "Detokenize",
      [](const std::string&, const LoadedModelView& m, const pb::DetokenizeRequest& req, pb::DetokenizeResponse* resp) {
        return DoDetokenize(m, req, resp);
      });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::GetModelInfo(grpc::CallbackServerContext* ctx,
                                                             const grpc::ByteBuffer* request,
                                                             grpc::ByteBuffer* response) {
  return Unary<pb::GetModelInfoRequest, pb::ModelInfo>(
      ctx, request, response, "GetModelInfo",
      [](const std::string&, const LoadedModelView& m, const pb::GetModelInfoRequest&, pb::ModelInfo* resp) {
        *resp = m.info;
        return absl::OkStatus();
      });
}

}  // namespace ossgate::worker
