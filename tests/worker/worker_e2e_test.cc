// End to end: the real provenance_service and inference_worker binaries on
// loopback with mutual TLS (certificates made by tools/certs/make_dev_pki.sh),
// a tiny random gpt-oss model with the tiny byte-level vocabulary registered
// with provctl. The worker's streams are checked token for token against the
// engine run in-process (GenerateOne on a CpuBackend over the same file);
// capacity, cancellation, refusals, validation, model info, the Python
// client and graceful shutdown are checked through the public API only.
//
// Waiting is done on health checks, stream reads and process exits, never on
// sleeps. A stream that must stay in flight while the test acts runs on a
// worker with a 131072-token context and asks for 130000 tokens: it cannot
// finish on its own during the test (see LongRequest).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "httplib.h"
#include "gtest/gtest.h"
#include "inference_worker/client/health_check.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/http/api_keys.h"
#include "inference_worker/model/cpu_backend.h"
#include "inference_worker/model/generation.h"
#include "inference_worker/model/model_file.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/tool_schema.h"
#include "inference_worker/text/vocab_file.h"
#include "ossgate/inference/v1/inference.grpc.pb.h"
#include "ossgate/provenance/v1/provenance.grpc.pb.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/ed25519.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/sha256.h"
#include "tests/worker/worker_harness.h"
#include "nlohmann/json.hpp"
#include "tools/make_model/model_flags.h"
#include "tools/make_model/random_model.h"

namespace ossgate::worker {
namespace {

namespace pb = ::ossgate::inference::v1;
namespace pv = ::ossgate::provenance::v1;
using worker_test::ClientTls;
using worker_test::ProvenanceProcess;
using worker_test::TempDir;
using worker_test::WorkerProcess;
using worker_test::WorkerSpec;

constexpr char kService[] = "ossgate.inference.v1.InferenceService";
constexpr char kSource[] = "ossgate://worker-tests";
constexpr char kModelUri[] = "ossgate://worker-tests/tiny.gguf";
constexpr int kContext = 1024;  // the main worker's --max_context
// Generous for a loaded 2-core machine (every stream here takes well under a
// second), short enough that a regression fails instead of hanging ctest.
constexpr absl::Duration kStreamDeadline = absl::Seconds(60);
constexpr absl::Duration kFollowUpDeadline = absl::Seconds(30);

worker_test::Binaries Bins() {
  return {PROVENANCE_SERVICE_BIN, PROVCTL_BIN, INFERENCE_WORKER_BIN};
}

// ---- The engine in-process, over the same file -----------------------------

class Reference {
 public:
  static absl::StatusOr<std::unique_ptr<Reference>> Load(const std::string& path) {
    std::unique_ptr<Reference> r(new Reference());
    auto bytes = model::ReadModelFile(path);
    if (!bytes.ok()) return bytes.status();
    r->bytes_ = *std::move(bytes);
    auto file = gguf::GgufFile::Parse(r->bytes_.bytes());
    if (!file.ok()) return file.status();
    r->file_ = std::make_unique<gguf::GgufFile>(*std::move(file));
    auto tok = text::Tokenizer::FromGguf(*r->file_);
    if (!tok.ok()) return tok.status();
    r->tokenizer_ = *std::move(tok);
    model::CpuBackendOptions o;
    o.n_threads = 1;  // the worker runs with 2: results must not depend on it
    o.kv.max_sequences = 1;
    o.max_context = kContext;
    auto backend = model::CpuBackend::Create(*r->file_, o);
    if (!backend.ok()) return backend.status();
    r->backend_ = *std::move(backend);
    return r;
  }

  // One sequence alone, prefilled in one step: the direct engine output.
  model::GenerationResult Generate(const std::vector<int32_t>& prompt, const model::GenerationParams& params) {
    std::lock_guard<std::mutex> lock(mu_);
    auto r = model::GenerateOne(*backend_, *tokenizer_, /*seq=*/1, prompt, params, nullptr);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : model::GenerationResult{};
  }

  const text::Tokenizer& tokenizer() const { return *tokenizer_; }
  const gguf::GgufFile& file() const { return *file_; }
  const model::ModelBytes& bytes() const { return bytes_; }
  int vocab_size() const { return backend_->config().vocab_size; }
  int32_t Special(const char* name) const {
    auto id = tokenizer_->SpecialTokenId(name);
    EXPECT_TRUE(id.has_value()) << name;
    return id.value_or(-1);
  }

 private:
  Reference() = default;
  model::ModelBytes bytes_;
  std::unique_ptr<gguf::GgufFile> file_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  std::unique_ptr<model::CpuBackend> backend_;
  std::mutex mu_;
};

// ---- Requests, described once and turned into both sides -------------------

struct Spec {
  std::string request_id;
  std::string text;                // a text prompt, or
  std::vector<int32_t> token_ids;  // a token prompt
  int max_tokens = 16;
  std::optional<float> temperature, top_p, min_p, repetition_penalty, presence_penalty, frequency_penalty;
  std::optional<uint32_t> top_k;
  std::optional<uint64_t> seed;
  std::vector<int32_t> stop_ids;
  std::vector<std::string> stop_strings;
  bool ignore_eos = false;
  std::optional<uint32_t> logprobs;
};

pb::GenerateRequest ToProto(const Spec& s) {
  pb::GenerateRequest r;
  r.set_request_id(s.request_id);
  if (!s.token_ids.empty()) {
    for (int32_t id : s.token_ids) r.mutable_token_ids()->add_ids(id);
  } else {
    r.set_text(s.text);
  }
  r.set_max_tokens(s.max_tokens);
  pb::SamplingParams* p = r.mutable_sampling();
  if (s.temperature) p->set_temperature(*s.temperature);
  if (s.top_p) p->set_top_p(*s.top_p);
  if (s.top_k) p->set_top_k(*s.top_k);
  if (s.min_p) p->set_min_p(*s.min_p);
  if (s.repetition_penalty) p->set_repetition_penalty(*s.repetition_penalty);
  if (s.presence_penalty) p->set_presence_penalty(*s.presence_penalty);
  if (s.frequency_penalty) p->set_frequency_penalty(*s.frequency_penalty);
  if (s.seed) p->set_seed(*s.seed);
  for (int32_t id : s.stop_ids) r.add_stop_token_ids(id);
  for (const std::string& stop : s.stop_strings) r.add_stop(stop);
  r.set_ignore_eos(s.ignore_eos);
  if (s.logprobs) r.set_logprobs(*s.logprobs);
  return r;
}

// The engine parameters the proto documents for `s` (defaults written out
// here from the proto comments, not taken from the worker's code).
model::GenerationParams ToParams(const Spec& s, const Reference& ref) {
  model::GenerationParams p;
  p.max_tokens = s.max_tokens;
  p.sampling.temperature = s.temperature.value_or(1.0f);
  p.sampling.top_p = s.top_p.value_or(1.0f);
  p.sampling.top_k = static_cast<int32_t>(s.top_k.value_or(0));
  p.sampling.min_p = s.min_p.value_or(0.0f);
  p.sampling.repetition_penalty = s.repetition_penalty.value_or(1.0f);
  p.sampling.presence_penalty = s.presence_penalty.value_or(0.0f);
  p.sampling.frequency_penalty = s.frequency_penalty.value_or(0.0f);
  p.sampling.seed = s.seed.value_or(0);
  p.stop_token_ids = s.stop_ids;
  p.stop_strings = s.stop_strings;
  if (!s.ignore_eos) {
    for (const char* name : {"<|return|>", "<|call|>", "<|endoftext|>"}) p.stop_token_ids.push_back(ref.Special(name));
  }
  return p;
}

std::vector<int32_t> PromptOf(const Spec& s, const Reference& ref) {
  return s.token_ids.empty() ? ref.tokenizer().Encode(s.text, false) : s.token_ids;
}

pb::FinishReason ToProtoReason(model::FinishReason r) {
  switch (r) {
    case model::FinishReason::kStop: return pb::FINISH_REASON_STOP;
    case model::FinishReason::kLength: return pb::FINISH_REASON_LENGTH;
    case model::FinishReason::kCancelled: return pb::FINISH_REASON_CANCELLED;
    case model::FinishReason::kError: return pb::FINISH_REASON_ERROR;
    case model::FinishReason::kToolCall: return pb::FINISH_REASON_TOOL_CALLS;
    default: return pb::FINISH_REASON_UNSPECIFIED;
  }
}

// ---- Reading streams -------------------------------------------------------

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> tokens;
  std::string text;
  std::set<std::string> request_ids;  // as echoed by the messages
  std::set<std::string> channels;
  // "channel|recipient|content_type" of every message with text, in order.
  std::vector<std::string> headers;
  int messages = 0;
  int finals = 0;
  int logprob_entries = 0;
  pb::Final final;
  absl::Time first_message, last_message;
};

void Consume(const pb::GenerateResponse& m, StreamResult* out) {
  if (out->messages == 0) out->first_message = absl::Now();
  out->last_message = absl::Now();
  ++out->messages;
  out->tokens.insert(out->tokens.end(), m.token_ids().begin(), m.token_ids().end());
  out->text += m.text();
  out->request_ids.insert(m.request_id());
  if (!m.text().empty()) out->channels.insert(m.channel());
  if (!m.text().empty()) out->headers.push_back(absl::StrCat(m.channel(), "|", m.recipient(), "|", m.content_type()));
  out->logprob_entries += m.logprobs_size();
  if (m.has_final()) {
    ++out->finals;
    out->final = m.final();
  }
}

// A Generate call the test drives message by message.
class Call {
 public:
  Call(pb::InferenceService::Stub* stub, const pb::GenerateRequest& request, absl::Duration deadline) {
    ctx_.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    reader_ = stub->Generate(&ctx_, request);
  }
  // Reads one message; false at the end of the stream.
  bool ReadOne() {
    pb::GenerateResponse m;
    if (!reader_->Read(&m)) return false;
    Consume(m, &result_);
    return true;
  }
  // An unfinished call (a failed assertion returned early) is cancelled.
  ~Call() {
    if (!finished_) {
      ctx_.TryCancel();
      Finish();
    }
  }
  StreamResult Finish() {
    while (ReadOne()) {
    }
    result_.status = reader_->Finish();
    finished_ = true;
    return result_;
  }
  void Cancel() { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<pb::GenerateResponse>> reader_;
  StreamResult result_;
  bool finished_ = false;
};

StreamResult RunStream(pb::InferenceService::Stub* stub, const pb::GenerateRequest& request,
                       absl::Duration deadline = kStreamDeadline) {
  Call call(stub, request, deadline);
  return call.Finish();
}

// Compares a streamed generation with the direct engine output.
void ExpectSameAsDirect(const StreamResult& got, const model::GenerationResult& want, int prompt_tokens,
                        const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_TRUE(got.status.ok()) << got.status.error_code() << " " << got.status.error_message();
  EXPECT_EQ(got.finals, 1);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(got.final.finish_reason(), ToProtoReason(want.finish));
  EXPECT_EQ(got.final.usage().generated_tokens(), want.tokens.size());
  EXPECT_EQ(got.final.usage().prompt_tokens(), static_cast<uint32_t>(prompt_tokens));
}

// A stream that cannot finish on its own while a test acts on it: 130000
// tokens on a worker whose context is 131072 (LongContextFlags). On this
// machine the tiny model makes about 8000 tokens in the first 10 s and slows
// down as the context grows, so it would take many minutes; the tests act
// within milliseconds of its first token. (Backpressure does not bound it:
// gRPC's flow-control windows absorb megabytes from a client that does not
// read.) Log-probabilities make its messages large, as a slow client's are.
constexpr int kLongContext = 131072;
constexpr int kLongTokens = 130000;
std::vector<std::string> LongContextFlags(int max_sequences, int max_waiting) {
  return {absl::StrCat("--max_sequences=", max_sequences), absl::StrCat("--max_waiting=", max_waiting),
          absl::StrCat("--max_context=", kLongContext), "--threads=2", "--drain_timeout_s=120"};
}

pb::GenerateRequest LongRequest(const std::string& id, int max_tokens = kLongTokens) {
  Spec s;
  s.request_id = id;
  s.text = "A story that never ends:";
  s.max_tokens = max_tokens;
  s.temperature = 1.0f;
  s.seed = 99;
  s.ignore_eos = true;
  s.logprobs = 20;
  return ToProto(s);
}

// ---- The fixture: one provenance service and one worker for the suite ------

class WorkerE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const absl::Time t0 = absl::Now();
    dir_ = new TempDir("worker_e2e");
    model_path_ = *dir_ / "tiny.gguf";
    tools::RandomModelSpec spec;
    if (auto s = tools::ApplyPreset("tiny", &spec.config); !s.ok()) return Fail(s);
    spec.seed = 20251126;
    spec.threads = 2;
    spec.name = "worker-e2e-tiny";
    if (auto s = tools::WriteRandomModel(spec, text::MakeTinyVocab(), model_path_); !s.ok()) return Fail(s);

    auto prov = ProvenanceProcess::Start(
        Bins(), dir_->path(), {"worker:worker-1", "client:test-client", "client:other-client", "auditor:auditor-1"});
    if (!prov.ok()) return Fail(prov.status());
    prov_ = prov->release();
    if (auto s = prov_->TrustFile(kSource, "tiny.gguf", model_path_); !s.ok()) return Fail(s);

    auto worker = StartWorker({"--max_sequences=16", absl::StrCat("--max_context=", kContext), "--threads=2"},
                              "main-worker.log");
    if (!worker.ok()) return Fail(worker.status());
    worker_ = worker->release();
    stub_ = pb::InferenceService::NewStub(worker_->channel()).release();

    auto ref = Reference::Load(model_path_);
    if (!ref.ok()) return Fail(ref.status());
    ref_ = ref->release();
    std::fprintf(stderr, "suite set-up took %s\n", absl::FormatDuration(absl::Now() - t0).c_str());
  }

  static void TearDownTestSuite() {
    delete stub_;
    delete worker_;
    delete ref_;
    delete prov_;
    delete dir_;
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  static void Fail(const absl::Status& s) { setup_error_ = s.ToString(); }

  static ClientTls ClientIdentity() { return prov_->Identity("client-test-client"); }
  static ClientTls OtherClientIdentity() { return prov_->Identity("client-other-client"); }

  // VerifyModel records of the audit log for a model file (any verdict).
  static int CountVerifyRecords(const std::string& sha256) {
    auto auditor =
        pv::AuditService::NewStub(worker_test::MakeTlsChannel(prov_->port(), prov_->Identity("auditor-auditor-1")));
    pv::QueryRecordsRequest q;
    q.set_model_sha256(sha256);
    q.set_kind(pv::RECORD_KIND_VERIFY_MODEL);
    q.set_page_size(1000);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    auto reader = auditor->QueryRecords(&ctx, q);
    pv::QueryRecordsResponse page;
    int n = 0;
    while (reader->Read(&page)) n += page.entries_size();
    const grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return s.ok() ? n : -1;
  }

  // A worker that must stop on its configuration: exit 2 before it listens
  // or asks the provenance service anything, its log naming `problem`.
  static void ExpectConfigurationError(const std::vector<std::string>& flags, const std::string& log_name,
                                       const std::string& problem) {
    const int before = CountVerifyRecords(ref_->bytes().sha256());
    WorkerSpec spec;
    spec.model_path = model_path_;
    spec.source_uri = kModelUri;
    spec.flags = flags;
    auto w = WorkerProcess::Spawn(Bins(), *prov_, spec, *dir_ / log_name, ClientIdentity());
    ASSERT_TRUE(w.ok()) << w.status();
    auto code = (*w)->process().Wait(absl::Seconds(60));
    ASSERT_TRUE(code.ok()) << code.status() << "\n" << (*w)->Log();
    const std::string log = (*w)->Log();
    EXPECT_EQ(*code, 2) << log;
    EXPECT_TRUE(absl::StrContains(log, "configuration error")) << log;
    EXPECT_TRUE(absl::StrContains(log, problem)) << "expected '" << problem << "' in:\n" << log;
    EXPECT_FALSE(absl::StrContains(log, "listening on")) << log;
    EXPECT_FALSE(absl::StrContains(log, "phase=")) << log;
    EXPECT_EQ(CountVerifyRecords(ref_->bytes().sha256()), before) << "the worker asked for an approval";
  }

  // A worker serving the suite's model with `flags`, SERVING before it returns.
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> StartWorker(const std::vector<std::string>& flags,
                                                                    const std::string& log_name) {
    WorkerSpec spec;
    spec.model_path = model_path_;
    spec.source_uri = kModelUri;
    spec.flags = flags;
    auto w = WorkerProcess::Spawn(Bins(), *prov_, spec, *dir_ / log_name, ClientIdentity());
    if (!w.ok()) return w.status();
    if (auto s = (*w)->WaitServing(absl::Seconds(120)); !s.ok()) return s;
    return w;
  }

  // A worker that must be refused: exits `code` (3: the provenance gate; 4:
  // the backend could not load the verified file) without ever reporting
  // SERVING.
  static void ExpectRefused(const WorkerSpec& spec, const std::string& log_name, const std::string& reason,
                            int expected_code = 3) {
    auto w = WorkerProcess::Spawn(Bins(), *prov_, spec, *dir_ / log_name, ClientIdentity());
    ASSERT_TRUE(w.ok()) << w.status();
    bool saw_serving = true;
    auto code = (*w)->WatchUntilExit(absl::Seconds(120), &saw_serving);
    ASSERT_TRUE(code.ok()) << code.status();
    const std::string log = (*w)->Log();
    EXPECT_EQ(*code, expected_code) << log;
    EXPECT_FALSE(saw_serving) << log;
    EXPECT_TRUE(absl::StrContains(log, "MODEL NOT LOADED")) << log;
    EXPECT_TRUE(absl::StrContains(log, reason)) << "expected '" << reason << "' in:\n" << log;
    EXPECT_FALSE(absl::StrContains(log, "ready:")) << log;
  }

  static model::GenerationResult Direct(const Spec& s) {
    return ref_->Generate(PromptOf(s, *ref_), ToParams(s, *ref_));
  }

  static TempDir* dir_;
  static std::string model_path_;
  static ProvenanceProcess* prov_;
  static WorkerProcess* worker_;
  static pb::InferenceService::Stub* stub_;
  static Reference* ref_;
  static std::string setup_error_;
};

TempDir* WorkerE2eTest::dir_ = nullptr;
std::string WorkerE2eTest::model_path_;
ProvenanceProcess* WorkerE2eTest::prov_ = nullptr;
WorkerProcess* WorkerE2eTest::worker_ = nullptr;
pb::InferenceService::Stub* WorkerE2eTest::stub_ = nullptr;
Reference* WorkerE2eTest::ref_ = nullptr;
std::string WorkerE2eTest::setup_error_;

// ---- Generation equals the engine ------------------------------------------

TEST_F(WorkerE2eTest, GreedyStreamEqualsDirectEngineOutput) {
  Spec s;
  s.request_id = "greedy-1";
  s.text = "The lighthouse keeper looked at the sea and said";
  s.max_tokens = 48;
  s.temperature = 0.0f;
  const StreamResult got = RunStream(stub_, ToProto(s));
  const model::GenerationResult want = Direct(s);
  ExpectSameAsDirect(got, want, static_cast<int>(PromptOf(s, *ref_).size()), "greedy");
  EXPECT_FALSE(want.tokens.empty());
  EXPECT_EQ(got.request_ids, std::set<std::string>{"greedy-1"});
  // One message per token (plus possibly an empty final one).
  EXPECT_GE(got.messages, static_cast<int>(got.tokens.size()));
}

TEST_F(WorkerE2eTest, SeededSamplingStreamEqualsDirectEngineOutput) {
  Spec s;
  s.request_id = "sampled-1";
  s.text = "Once upon a time, in a small town by the harbour,";
  s.max_tokens = 64;
  s.temperature = 0.9f;
  s.top_k = 40;
  s.top_p = 0.95f;
  s.min_p = 0.01f;
  s.repetition_penalty = 1.1f;
  s.presence_penalty = 0.2f;
  s.frequency_penalty = 0.1f;
  s.seed = 1234;
  const StreamResult got = RunStream(stub_, ToProto(s));
  const model::GenerationResult want = Direct(s);
  ExpectSameAsDirect(got, want, static_cast<int>(PromptOf(s, *ref_).size()), "seed 1234");
  EXPECT_EQ(got.final.seed(), 1234u);

  // The same seed again gives the same tokens; another seed gives others.
  const StreamResult again = RunStream(stub_, ToProto(s));
  EXPECT_EQ(again.tokens, got.tokens);
  s.seed = 4321;
  const StreamResult other = RunStream(stub_, ToProto(s));
  ExpectSameAsDirect(other, Direct(s), static_cast<int>(PromptOf(s, *ref_).size()), "seed 4321");
  EXPECT_NE(other.tokens, got.tokens);
}

TEST_F(WorkerE2eTest, UnseededRequestReportsTheSeedItUsed) {
  Spec s;
  s.text = "Pick a random word:";
  s.max_tokens = 24;
  s.temperature = 1.0f;
  s.ignore_eos = true;
  const StreamResult got = RunStream(stub_, ToProto(s));
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  // Replaying with the reported seed reproduces the stream.
  s.seed = got.final.seed();
  EXPECT_EQ(Direct(s).tokens, got.tokens);
  // A worker-assigned request id was echoed: 128 random bits, so ids of
  // others cannot be guessed (they were "req-1", "req-2", ...).
  ASSERT_EQ(got.request_ids.size(), 1u);
  const std::string id = *got.request_ids.begin();
  EXPECT_EQ(id.size(), 32u) << id;
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  const StreamResult again = RunStream(stub_, ToProto(s));
  ASSERT_EQ(again.request_ids.size(), 1u);
  EXPECT_NE(*again.request_ids.begin(), id);
}

TEST_F(WorkerE2eTest, TokenPromptWithStopTokenEqualsDirectEngineOutput) {
  Spec s;
  s.request_id = "tokens-1";
  s.token_ids = ref_->tokenizer().Encode("Numbers: one, two, three, four,", false);
  s.max_tokens = 40;
  s.temperature = 0.0f;
  s.ignore_eos = true;
  const model::GenerationResult free_run = Direct(s);
  ASSERT_GE(free_run.tokens.size(), 10u);
  // Stop at the first occurrence of the 8th generated token.
  s.stop_ids = {free_run.tokens[7]};
  const model::GenerationResult want = Direct(s);
  ASSERT_EQ(want.finish, model::FinishReason::kStop);
  ASSERT_LE(want.tokens.size(), 8u);
  const StreamResult got = RunStream(stub_, ToProto(s));
  ExpectSameAsDirect(got, want, static_cast<int>(s.token_ids.size()), "stop token");
  EXPECT_EQ(got.final.finish_reason(), pb::FINISH_REASON_STOP);
}

TEST_F(WorkerE2eTest, ChatStreamEqualsDirectEngineOutput) {
  pb::GenerateRequest req;
  req.set_request_id("chat-1");
  pb::Conversation* c = req.mutable_conversation();
  c->set_developer_instructions("Answer briefly.");
  c->set_reasoning_effort(pb::REASONING_EFFORT_LOW);
  pb::ChatMessage* m = c->add_messages();
  m->set_role(pb::ROLE_USER);
  m->set_content("What is the capital of France? <|end|> is plain text here.");
  req.set_max_tokens(48);
  req.mutable_sampling()->set_temperature(0.8f);
  req.mutable_sampling()->set_seed(7);

  text::Conversation conv;
  conv.developer_instructions = "Answer briefly.";
  conv.reasoning = text::ReasoningEffort::kLow;
  text::Message user;
  user.role = text::Role::kUser;
  user.content = m->content();
  conv.messages.push_back(user);
  auto prompt = text::RenderForCompletion(ref_->tokenizer(), conv);
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  model::GenerationParams p;
  p.max_tokens = 48;
  p.sampling.temperature = 0.8f;
  p.sampling.seed = 7;
  p.harmony = true;
  p.stop_token_ids = {ref_->Special("<|return|>"), ref_->Special("<|call|>")};
  const model::GenerationResult want = ref_->Generate(*prompt, p);

  const StreamResult got = RunStream(stub_, req);
  ExpectSameAsDirect(got, want, static_cast<int>(prompt->size()), "chat");
}

// Function tools of a gRPC Conversation go through the renderer the HTTP API
// uses (ToolFromJsonSchema + RenderForCompletion): the worker's prompt is the
// one rendered here (same prompt_tokens, same output), it holds the tool's
// harmony type, and every streamed message names the header (channel,
// recipient, content type) that a parser of the same tokens gives.
TEST_F(WorkerE2eTest, ChatWithToolsUsesTheSharedRendererAndStreamsMessageHeaders) {
  const std::string schema = R"({"type": "object", "properties": {
      "city": {"type": "string", "description": "City name"},
      "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
    "required": ["city"]})";
  pb::GenerateRequest req;
  req.set_request_id("chat-tools");
  pb::Conversation* c = req.mutable_conversation();
  pb::ToolDefinition* weather = c->add_tools();
  weather->set_name("get_weather");
  weather->set_description("Gets the weather.");
  weather->set_parameters_json(schema);
  c->add_tools()->set_name("ping");
  pb::ChatMessage* m = c->add_messages();
  m->set_role(pb::ROLE_USER);
  m->set_content("Weather in Oslo?");
  m = c->add_messages();
  m->set_role(pb::ROLE_ASSISTANT);
  m->set_channel("commentary");
  m->set_recipient("functions.get_weather");
  m->set_content_type("json");
  m->set_content(R"({"city":"Oslo"})");
  m = c->add_messages();
  m->set_role(pb::ROLE_TOOL);
  m->set_author("functions.get_weather");
  m->set_content(R"({"temp": -3})");
  req.set_max_tokens(40);
  req.mutable_sampling()->set_temperature(0.8f);
  req.mutable_sampling()->set_seed(11);

  text::Conversation conv;
  auto get_weather = text::ToolFromJsonSchema("get_weather", "Gets the weather.", schema);
  auto ping = text::ToolFromJsonSchema("ping", "", "");
  ASSERT_TRUE(get_weather.ok() && ping.ok());
  conv.tools = {*get_weather, *ping};
  text::Message user, call, reply;
  user.role = text::Role::kUser;
  user.content = "Weather in Oslo?";
  call.role = text::Role::kAssistant;
  call.channel = "commentary";
  call.recipient = "functions.get_weather";
  call.content_type = "json";
  call.content = R"({"city":"Oslo"})";
  reply.role = text::Role::kTool;
  reply.author = "functions.get_weather";
  reply.content = R"({"temp": -3})";
  conv.messages = {user, call, reply};
  auto prompt = text::RenderForCompletion(ref_->tokenizer(), conv);
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  const std::string prompt_text = ref_->tokenizer().Decode(*prompt);
  EXPECT_TRUE(absl::StrContains(prompt_text,
                                "// Gets the weather.\ntype get_weather = (_: {\n// City name\ncity: string,\n"
                                "unit?: \"celsius\" | \"fahrenheit\", // default: celsius\n}) => any;\n\n"
                                "type ping = () => any;"))
      << prompt_text;
  EXPECT_TRUE(absl::StrContains(prompt_text, "to=functions.get_weather <|constrain|>json<|message|>"
                                             "{\"city\":\"Oslo\"}<|call|><|start|>functions.get_weather to=assistant"))
      << prompt_text;
  model::GenerationParams p;
  p.max_tokens = 40;
  p.sampling.temperature = 0.8f;
  p.sampling.seed = 11;
  p.harmony = true;
  p.stop_token_ids = {ref_->Special("<|return|>"), ref_->Special("<|call|>")};
  const model::GenerationResult want = ref_->Generate(*prompt, p);

  const StreamResult got = RunStream(stub_, req);
  ExpectSameAsDirect(got, want, static_cast<int>(prompt->size()), "chat with tools");
  text::HarmonyParser parser(ref_->tokenizer());
  std::vector<std::string> headers;
  for (int32_t t : want.tokens) {
    const text::HarmonyParser::Delta d = parser.Push(t, nullptr);
    if (!d.text.empty()) headers.push_back(absl::StrCat(d.channel, "|", d.recipient, "|", d.content_type));
  }
  EXPECT_EQ(got.headers, headers);

  // tool_choice NONE: the tools are checked but not rendered.
  c->set_tool_choice(pb::TOOL_CHOICE_NONE);
  req.set_request_id("chat-tools-none");
  req.set_max_tokens(1);
  conv.tools.clear();
  auto without = text::RenderForCompletion(ref_->tokenizer(), conv);
  ASSERT_TRUE(without.ok()) << without.status();
  ASSERT_LT(without->size(), prompt->size());
  const StreamResult none = RunStream(stub_, req);
  ASSERT_TRUE(none.status.ok()) << none.status.error_message();
  EXPECT_EQ(none.final.usage().prompt_tokens(), without->size());
}

// ---- Concurrency -----------------------------------------------------------

TEST_F(WorkerE2eTest, SixteenConcurrentStreamsAllCompleteCorrectly) {
  const std::vector<std::string> prompts = {"The quick brown fox", "In the beginning there was",
                                            "Dear diary, today I", "Recipe: take two eggs and"};
  std::vector<Spec> specs(16);
  for (int i = 0; i < 16; ++i) {
    Spec& s = specs[i];
    s.request_id = absl::StrCat("concurrent-", i);
    s.text = absl::StrCat(prompts[i % 4], " (", i, ")");
    s.max_tokens = 6 + 7 * i;  // 6 .. 111
    switch (i % 4) {
      case 0: s.temperature = 0.0f; break;
      case 1: s.temperature = 0.7f; break;
      case 2: break;  // default 1.0
      case 3: s.temperature = 1.3f; break;
    }
    if (i % 3 == 0) s.top_k = 20;
    if (i % 5 == 1) s.top_p = 0.9f;
    if (i % 7 == 2) s.min_p = 0.05f;
    if (i % 6 == 5) s.repetition_penalty = 1.3f;
    s.seed = 1000 + i;
    s.ignore_eos = i % 2 == 0;
  }
  // A third of them stop on a token they will produce (found by running them
  // unconstrained first), so both finish reasons are exercised.
  int expected_stops = 0;
  for (int i = 1; i < 16; i += 3) {
    Spec& s = specs[i];
    const model::GenerationResult free_run = Direct(s);
    if (free_run.tokens.size() < 4) continue;
    s.stop_ids.push_back(free_run.tokens[free_run.tokens.size() / 2]);
    ++expected_stops;
  }
  ASSERT_GE(expected_stops, 3);
  std::vector<model::GenerationResult> want;
  for (const Spec& s : specs) want.push_back(Direct(s));

  std::vector<StreamResult> got(16);
  std::latch start(16);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      got[i] = RunStream(stub_, ToProto(specs[i]));
    });
  }
  for (auto& t : threads) t.join();

  int stops = 0, lengths = 0;
  for (int i = 0; i < 16; ++i) {
    ExpectSameAsDirect(got[i], want[i], static_cast<int>(PromptOf(specs[i], *ref_).size()), specs[i].request_id);
    EXPECT_EQ(got[i].request_ids, std::set<std::string>{specs[i].request_id});
    if (got[i].final.finish_reason() == pb::FINISH_REASON_STOP) ++stops;
    if (got[i].final.finish_reason() == pb::FINISH_REASON_LENGTH) {
      ++lengths;
      EXPECT_EQ(got[i].tokens.size(), static_cast<size_t>(specs[i].max_tokens)) << specs[i].request_id;
    }
  }
  EXPECT_GE(stops, expected_stops);
  EXPECT_GE(lengths, 8);  // every ignore_eos stream without a stop id
}

TEST_F(WorkerE2eTest, GreedyOutputIsTheSameAloneAndAmongFifteenOthers) {
  // The target has a prompt longer than the step token budget (256), so
  // among 15 decoding streams it is prefilled in chunks; alone it is too,
  // and the in-process reference prefills it in one step.
  std::vector<int32_t> long_prompt;
  const std::vector<int32_t> sentence =
      ref_->tokenizer().Encode("The keeper climbed the stairs, lit the lamp, and watched the ships. ", false);
  while (long_prompt.size() < 400) long_prompt.insert(long_prompt.end(), sentence.begin(), sentence.end());
  long_prompt.resize(400);
  Spec target;
  target.request_id = "target";
  target.token_ids = long_prompt;
  target.max_tokens = 40;
  target.temperature = 0.0f;
  target.ignore_eos = true;
  const model::GenerationResult want = Direct(target);

  const StreamResult alone = RunStream(stub_, ToProto(target));
  ExpectSameAsDirect(alone, want, 400, "alone");

  // Fifteen others, read continuously, long enough to outlive the target.
  constexpr int kOthers = 15;
  std::latch all_started(kOthers);
  std::atomic<int> others_finished{0};
  std::vector<std::unique_ptr<Call>> others;
  for (int i = 0; i < kOthers; ++i) {
    Spec s;
    s.request_id = absl::StrCat("other-", i);
    s.text = absl::StrCat("Background stream number ", i, " talks about");
    s.max_tokens = 900;
    s.temperature = 0.5f + 0.1f * (i % 5);
    s.seed = 500 + i;
    s.ignore_eos = true;
    others.push_back(std::make_unique<Call>(stub_, ToProto(s), kStreamDeadline));
  }
  std::vector<StreamResult> other_results(kOthers);
  std::vector<std::thread> readers;
  for (int i = 0; i < kOthers; ++i) {
    readers.emplace_back([&, i] {
      others[i]->ReadOne();
      all_started.count_down();
      other_results[i] = others[i]->Finish();
      others_finished.fetch_add(1);
    });
  }
  all_started.wait();  // all 15 are admitted and decoding
  const StreamResult among = RunStream(stub_, ToProto(target));
  const int finished_meanwhile = others_finished.load();
  for (auto& c : others) c->Cancel();
  for (auto& t : readers) t.join();

  ExpectSameAsDirect(among, want, 400, "among 15 others");
  EXPECT_EQ(among.tokens, alone.tokens);
  EXPECT_EQ(finished_meanwhile, 0) << "the background streams ended before the target: it did not run in a batch";
}

// ---- Cancellation, abort, capacity -----------------------------------------

TEST_F(WorkerE2eTest, CancelledStreamFreesItsSlot) {
  auto w = StartWorker(LongContextFlags(/*max_sequences=*/1, /*max_waiting=*/4), "one-slot.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto stub = pb::InferenceService::NewStub((*w)->channel());

  // The only slot is taken by a stream that cannot finish on its own.
  Call hog(stub.get(), LongRequest("hog"), kStreamDeadline);
  ASSERT_TRUE(hog.ReadOne());

  // A follow-up waits for the slot: it can only run if cancelling frees it.
  Spec s;
  s.request_id = "follow-up";
  s.text = "After the cancellation,";
  s.max_tokens = 12;
  s.temperature = 0.0f;
  s.ignore_eos = true;
  StreamResult follow;
  std::thread t([&] { follow = RunStream(stub.get(), ToProto(s), kFollowUpDeadline); });

  hog.Cancel();
  const StreamResult hog_result = hog.Finish();
  t.join();
  EXPECT_EQ(hog_result.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_LT(hog_result.tokens.size(), static_cast<size_t>(kLongTokens));
  ExpectSameAsDirect(follow, Direct(s), static_cast<int>(PromptOf(s, *ref_).size()), "follow-up");

  // The slot is free again afterwards too.
  s.request_id = "second";
  ExpectSameAsDirect(RunStream(stub.get(), ToProto(s)), Direct(s), static_cast<int>(PromptOf(s, *ref_).size()),
                     "second");
}

TEST_F(WorkerE2eTest, FullWaitQueueIsResourceExhausted) {
  auto w = StartWorker(LongContextFlags(/*max_sequences=*/1, /*max_waiting=*/1), "queue.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  Call hog(stub.get(), LongRequest("hog"), kStreamDeadline);
  ASSERT_TRUE(hog.ReadOne());

  // Four more at once: one fits the wait queue, three are refused.
  constexpr int kExtra = 4;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<StreamResult> results;
  std::vector<std::thread> threads;
  Spec s;
  s.text = "Queued request";
  s.max_tokens = 10;
  s.temperature = 0.0f;
  s.ignore_eos = true;
  for (int i = 0; i < kExtra; ++i) {
    threads.emplace_back([&, i] {
      Spec mine = s;
      mine.request_id = absl::StrCat("extra-", i);
      StreamResult r = RunStream(stub.get(), ToProto(mine), kFollowUpDeadline);
      std::lock_guard<std::mutex> lock(mu);
      results.push_back(std::move(r));
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return results.size() >= kExtra - 1; }));
    for (const StreamResult& r : results) {
      EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << r.status.error_message();
      EXPECT_TRUE(absl::StrContains(r.status.error_message(), "capacity")) << r.status.error_message();
      EXPECT_EQ(r.messages, 0);
    }
  }
  hog.Cancel();
  hog.Finish();
  for (auto& t : threads) t.join();
  // The queued one ran once the slot was free.
  ASSERT_EQ(results.size(), static_cast<size_t>(kExtra));
  const StreamResult& admitted = results.back();
  ExpectSameAsDirect(admitted, Direct(s), static_cast<int>(PromptOf(s, *ref_).size()), "queued");
  EXPECT_GT(admitted.final.usage().queue_seconds(), 0.0);
}

TEST_F(WorkerE2eTest, AbortByRequestIdEndsTheStreamWithCancelled) {
  auto w = StartWorker(LongContextFlags(/*max_sequences=*/1, /*max_waiting=*/4), "abort.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  Call call(stub.get(), LongRequest("abort-me"), kStreamDeadline);
  ASSERT_TRUE(call.ReadOne());
  pb::AbortRequest abort;
  abort.set_request_id("abort-me");
  pb::AbortResponse resp;
  {
    grpc::ClientContext ctx;
    const grpc::Status s = stub->Abort(&ctx, abort, &resp);
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  }
  const StreamResult r = call.Finish();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.finals, 1);
  EXPECT_EQ(r.final.finish_reason(), pb::FINISH_REASON_CANCELLED);
  EXPECT_LT(r.tokens.size(), static_cast<size_t>(kLongTokens));
  EXPECT_EQ(r.final.usage().generated_tokens(), r.tokens.size());
  EXPECT_EQ(r.logprob_entries, static_cast<int>(r.tokens.size()));
  // It is gone: a second abort, or one for an unknown id, is NOT_FOUND.
  for (const char* id : {"abort-me", "never-existed"}) {
    grpc::ClientContext ctx;
    abort.set_request_id(id);
    EXPECT_EQ(stub->Abort(&ctx, abort, &resp).error_code(), grpc::StatusCode::NOT_FOUND) << id;
  }
}

TEST_F(WorkerE2eTest, AbortOfAQueuedRequestEndsItWithCancelled) {
  auto w = StartWorker(LongContextFlags(/*max_sequences=*/1, /*max_waiting=*/4), "abort-queued.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  Call hog(stub.get(), LongRequest("hog"), kStreamDeadline);
  ASSERT_TRUE(hog.ReadOne());
  // Queued behind the hog, which holds the only slot.
  Spec s;
  s.request_id = "queued";
  s.text = "waiting";
  s.max_tokens = 8;
  StreamResult queued;
  std::thread t([&] { queued = RunStream(stub.get(), ToProto(s), kFollowUpDeadline); });
  // NOT_FOUND until the call has reached the engine (it cannot finish).
  grpc::Status abort_status;
  const absl::Time end = absl::Now() + absl::Seconds(60);
  do {
    pb::AbortRequest abort;
    abort.set_request_id("queued");
    pb::AbortResponse resp;
    grpc::ClientContext ctx;
    abort_status = stub->Abort(&ctx, abort, &resp);
    if (abort_status.error_code() == grpc::StatusCode::NOT_FOUND) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll interval
    }
  } while (abort_status.error_code() == grpc::StatusCode::NOT_FOUND && absl::Now() < end);
  t.join();
  EXPECT_TRUE(abort_status.ok()) << abort_status.error_message();
  ASSERT_TRUE(queued.status.ok()) << queued.status.error_message();
  EXPECT_EQ(queued.final.finish_reason(), pb::FINISH_REASON_CANCELLED);
  EXPECT_TRUE(queued.tokens.empty());
  EXPECT_EQ(queued.final.usage().generated_tokens(), 0u);
  hog.Cancel();
  hog.Finish();
}

TEST_F(WorkerE2eTest, DuplicateRunningRequestIdIsAlreadyExists) {
  auto w = StartWorker(LongContextFlags(/*max_sequences=*/2, /*max_waiting=*/4), "duplicate.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  Call call(stub.get(), LongRequest("dup"), kStreamDeadline);
  ASSERT_TRUE(call.ReadOne());
  Spec s;
  s.request_id = "dup";
  s.text = "same id";
  const StreamResult second = RunStream(stub.get(), ToProto(s));
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << second.status.error_message();
  call.Cancel();
  call.Finish();
}

// ---- Refusals --------------------------------------------------------------

TEST_F(WorkerE2eTest, UntrustedSourceIsRefused) {
  WorkerSpec spec;
  spec.model_path = model_path_;
  spec.source_uri = "upload://x";
  ExpectRefused(spec, "untrusted.log", "REASON_UNTRUSTED_SOURCE");
}

TEST_F(WorkerE2eTest, TamperedModelIsRefused) {
  // Registered, then one byte flipped (in the tensor data, so it still parses).
  const std::string tampered = *dir_ / "tampered.gguf";
  auto bytes = worker_test::ReadFile(model_path_);
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(worker_test::WriteFile(tampered, *bytes).ok());
  ASSERT_TRUE(prov_->TrustFile(kSource, "tampered.gguf", tampered).ok());
  std::string flipped = *bytes;
  flipped[flipped.size() - 100] ^= 0x01;
  ASSERT_TRUE(worker_test::WriteFile(tampered, flipped).ok());

  WorkerSpec spec;
  spec.model_path = tampered;
  spec.source_uri = "ossgate://worker-tests/tampered.gguf";
  ExpectRefused(spec, "tampered.log", "REASON_HASH_MISMATCH");
}

// Registers `path` (a file of this suite's source) by hash and size as a
// file of `family`, whatever its header says.
void TrustAs(const ProvenanceProcess& prov, const std::string& name, const std::string& path, const std::string& family) {
  uint64_t size = 0;
  auto digest = token::Sha256File(path, &size);
  ASSERT_TRUE(digest.ok()) << digest.status();
  auto added = prov.Provctl({"trust", "add-file", std::string("--source=") + kSource, "--path=" + name,
                             "--sha256=" + token::HexEncode(*digest), absl::StrCat("--size=", size),
                             "--family=" + family});
  ASSERT_TRUE(added.ok()) << added.status();
  ASSERT_TRUE(absl::StrContains(*added, "model family " + family)) << *added;
}

// A refusal for the family must come before anything is bound to the bytes.
void ExpectNothingLoaded(const std::string& log) {
  EXPECT_TRUE(absl::StrContains(log, "phase=parsing")) << log;
  EXPECT_FALSE(absl::StrContains(log, "phase=uploading")) << log;
  EXPECT_FALSE(absl::StrContains(log, "tokenizer")) << log;
  EXPECT_FALSE(absl::StrContains(log, "kv_cache:")) << log;
}

TEST_F(WorkerE2eTest, QwenFileApprovedAsGptOssIsRefusedBeforeLoading) {
  // A GGUF whose general.architecture is qwen2, approved as a gpt-oss file.
  const std::string path = *dir_ / "qwen2-as-gpt-oss.gguf";
  gguf::GgufWriter w;
  w.SetString("general.architecture", "qwen2");
  w.SetString("general.name", "not-gpt-oss");
  ASSERT_TRUE(w.AddTensor("token_embd.weight", gguf::GgmlType::kF32, {8, 4}).ok());
  ASSERT_TRUE(w.Begin(path).ok());
  ASSERT_TRUE(w.WriteTensorData(std::vector<uint8_t>(8 * 4 * sizeof(float), 0)).ok());
  ASSERT_TRUE(w.Finish().ok());
  TrustAs(*prov_, "qwen2-as-gpt-oss.gguf", path, "gpt-oss");
  WorkerSpec spec;
  spec.model_path = path;
  spec.source_uri = "ossgate://worker-tests/qwen2-as-gpt-oss.gguf";
  ExpectRefused(spec, "family-qwen2-as-gpt-oss.log",
                "is for model family \"gpt-oss\" but the file's general.architecture is \"qwen2\"");
  ExpectNothingLoaded(worker_test::ReadFile(*dir_ / "family-qwen2-as-gpt-oss.log").value_or(""));
}

TEST_F(WorkerE2eTest, GptOssFileApprovedAsQwen2IsRefusedBeforeLoading) {
  // The suite's gpt-oss model, registered at another path as a qwen2 file
  // (provctl would refuse that with --file: its header says gpt-oss).
  TrustAs(*prov_, "gpt-oss-as-qwen2.gguf", model_path_, "qwen2");
  WorkerSpec spec;
  spec.model_path = model_path_;
  spec.source_uri = "ossgate://worker-tests/gpt-oss-as-qwen2.gguf";
  ExpectRefused(spec, "family-gpt-oss-as-qwen2.log",
                "is for model family \"qwen2\" but the file's general.architecture is \"gpt-oss\"");
  ExpectNothingLoaded(worker_test::ReadFile(*dir_ / "family-gpt-oss-as-qwen2.log").value_or(""));
  // Registered from its header (provctl --file), the same bytes load: the
  // suite's worker, whose approval names gpt-oss.
  EXPECT_TRUE(absl::StrContains(worker_->Log(), "phase=verified")) << worker_->Log();
  EXPECT_TRUE(absl::StrContains(worker_->Log(), " family=gpt-oss ")) << worker_->Log();
  EXPECT_TRUE(absl::StrContains(worker_->Log(), "ready: model \"worker-e2e-tiny\" architecture=gpt-oss") ||
              absl::StrContains(worker_->Log(), "ready: model worker-e2e-tiny architecture=gpt-oss"))
      << worker_->Log();
}

TEST_F(WorkerE2eTest, WorkerIdDifferentFromItsCertificateIsRefused) {
  WorkerSpec spec;
  spec.model_path = model_path_;
  spec.source_uri = kModelUri;
  spec.worker_id = "worker-2";  // the certificate says worker-1
  ExpectRefused(spec, "wrong-id.log", "does not match the certificate identity");
}

TEST_F(WorkerE2eTest, WorkerWaitingForAnApprovableModelIsUnavailableUntilStopped) {
  WorkerSpec spec;
  spec.model_path = model_path_;
  spec.source_uri = "upload://x";
  spec.flags = {"--wait_for_model"};
  auto w = WorkerProcess::Spawn(Bins(), *prov_, spec, *dir_ / "waiting.log", ClientIdentity());
  ASSERT_TRUE(w.ok()) << w.status();
  // Wait for the first rejection (the log says so), polling the log.
  const absl::Time end = absl::Now() + absl::Seconds(60);
  while (!absl::StrContains((*w)->Log(), "waiting for an approvable model")) {
    ASSERT_LT(absl::Now(), end) << (*w)->Log();
    ASSERT_FALSE((*w)->process().Poll().has_value()) << (*w)->Log();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // poll interval
  }
  auto h = client::CheckHealth((*w)->channel(), kService);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(*h, client::HealthStatus::kNotServing);
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  Spec s;
  s.text = "anyone there?";
  EXPECT_EQ(RunStream(stub.get(), ToProto(s)).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  pb::ModelInfo info;
  grpc::ClientContext ctx;
  EXPECT_EQ(stub->GetModelInfo(&ctx, pb::GetModelInfoRequest(), &info).error_code(), grpc::StatusCode::UNAVAILABLE);
  // SIGTERM while waiting is a clean stop.
  ASSERT_TRUE((*w)->process().Signal(SIGTERM).ok());
  auto code = (*w)->process().Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*w)->Log();
  EXPECT_FALSE(absl::StrContains((*w)->Log(), "ready:")) << (*w)->Log();
}

// ---- Validation ------------------------------------------------------------

// A conversation of one user message and one tool.
void ChatWithTool(pb::GenerateRequest& r, const std::string& name, const std::string& parameters_json) {
  pb::ChatMessage* m = r.mutable_conversation()->add_messages();
  m->set_role(pb::ROLE_USER);
  m->set_content("hi");
  pb::ToolDefinition* t = r.mutable_conversation()->add_tools();
  t->set_name(name);
  t->set_parameters_json(parameters_json);
}

TEST_F(WorkerE2eTest, BadRequestsAreInvalidArgumentNamingTheField) {
  // A good stream runs throughout; it must be unaffected.
  Spec good;
  good.request_id = "good-during-bad";
  good.text = "Meanwhile, a valid request";
  good.max_tokens = 64;
  good.temperature = 0.0f;
  good.ignore_eos = true;
  Call running(stub_, ToProto(good), kStreamDeadline);
  ASSERT_TRUE(running.ReadOne());

  auto base = [] {
    pb::GenerateRequest r;
    r.set_text("hello");
    r.set_max_tokens(4);
    return r;
  };
  struct Case {
    const char* name;
    std::function<void(pb::GenerateRequest&)> mutate;
    const char* field;
  };
  const int vocab = ref_->vocab_size();
  const std::vector<Case> cases = {
      {"empty text", [](pb::GenerateRequest& r) { r.set_text(""); }, "text"},
      {"no prompt", [](pb::GenerateRequest& r) { r.clear_text(); }, "prompt"},
      {"empty token prompt", [](pb::GenerateRequest& r) { r.mutable_token_ids(); }, "token_ids.ids"},
      {"token id outside the vocabulary",
       [vocab](pb::GenerateRequest& r) {
         r.mutable_token_ids()->add_ids(1);
         r.mutable_token_ids()->add_ids(vocab);
       },
       "token_ids.ids[1]"},
      {"unknown stop token id", [vocab](pb::GenerateRequest& r) { r.add_stop_token_ids(vocab + 5); },
       "stop_token_ids[0]"},
      {"negative stop token id", [](pb::GenerateRequest& r) { r.add_stop_token_ids(-1); }, "stop_token_ids[0]"},
      {"too many stop token ids",
       [](pb::GenerateRequest& r) {
         for (int i = 0; i < 17; ++i) r.add_stop_token_ids(65);
       },
       "stop_token_ids"},
      {"max_tokens over the context", [](pb::GenerateRequest& r) { r.set_max_tokens(kContext); }, "max_tokens"},
      {"max_tokens zero", [](pb::GenerateRequest& r) { r.set_max_tokens(0); }, "max_tokens"},
      {"temperature below 0", [](pb::GenerateRequest& r) { r.mutable_sampling()->set_temperature(-0.5f); },
       "sampling.temperature"},
      {"temperature NaN", [](pb::GenerateRequest& r) { r.mutable_sampling()->set_temperature(std::nanf("")); },
       "sampling.temperature"},
      {"top_p zero", [](pb::GenerateRequest& r) { r.mutable_sampling()->set_top_p(0.0f); }, "sampling.top_p"},
      {"min_p above 1", [](pb::GenerateRequest& r) { r.mutable_sampling()->set_min_p(1.5f); }, "sampling.min_p"},
      {"oversized text prompt", [](pb::GenerateRequest& r) { r.set_text(std::string((1 << 20) + 1, 'a')); }, "text"},
      {"prompt longer than the context",
       [](pb::GenerateRequest& r) {
         for (int i = 0; i < kContext; ++i) r.mutable_token_ids()->add_ids(65);
       },
       "token_ids"},
      {"conversation longer than the context",
       [](pb::GenerateRequest& r) {
         pb::ChatMessage* m = r.mutable_conversation()->add_messages();
         m->set_role(pb::ROLE_USER);
         std::string words;
         for (int i = 0; i < kContext; ++i) absl::StrAppend(&words, "w", i, " ");
         m->set_content(words);
       },
       "conversation"},
      {"unknown role",
       [](pb::GenerateRequest& r) {
         pb::ChatMessage* m = r.mutable_conversation()->add_messages();
         m->set_role(pb::ROLE_USER);
         m->set_content("hi");
         m = r.mutable_conversation()->add_messages();
         m->set_role(static_cast<pb::Role>(42));
         m->set_content("who am I?");
       },
       "conversation.messages[1].role"},
      {"unspecified role", [](pb::GenerateRequest& r) { r.mutable_conversation()->add_messages()->set_content("hi"); },
       "conversation.messages[0].role"},
      {"empty conversation", [](pb::GenerateRequest& r) { r.mutable_conversation(); }, "conversation.messages"},
      {"tool without a name", [](pb::GenerateRequest& r) { ChatWithTool(r, "", ""); }, "conversation.tools[0].name"},
      {"tool name with a dot", [](pb::GenerateRequest& r) { ChatWithTool(r, "a.b", ""); },
       "conversation.tools[0].name"},
      {"tool schema with an unknown type",
       [](pb::GenerateRequest& r) {
         ChatWithTool(r, "f", R"({"type": "object", "properties": {"city": {"type": "strng"}}})");
       },
       "conversation.tools[0].parameters.properties.city.type"},
      {"tool schema that is not JSON", [](pb::GenerateRequest& r) { ChatWithTool(r, "f", "{\"type\":"); },
       "conversation.tools[0].parameters"},
      {"tool schema nested too deep",
       [](pb::GenerateRequest& r) {
         ChatWithTool(r, "f", R"({"examples": )" + std::string(100, '[') + std::string(100, ']') + "}");
       },
       "conversation.tools[0].parameters"},
      {"tool schema too large",
       [](pb::GenerateRequest& r) {
         ChatWithTool(r, "f", R"({"description": ")" + std::string(text::kMaxToolSchemaBytes, 'x') + R"("})");
       },
       "conversation.tools[0].parameters"},
      {"duplicate tool names",
       [](pb::GenerateRequest& r) {
         ChatWithTool(r, "f", "");
         r.mutable_conversation()->add_tools()->set_name("f");
       },
       "conversation.tools[1].name"},
      {"too many tools",
       [](pb::GenerateRequest& r) {
         ChatWithTool(r, "f0", "");
         for (int i = 1; i <= 128; ++i) r.mutable_conversation()->add_tools()->set_name(absl::StrCat("f", i));
       },
       "conversation.tools"},
      {"unknown tool_choice",
       [](pb::GenerateRequest& r) {
         ChatWithTool(r, "f", "");
         r.mutable_conversation()->set_tool_choice(static_cast<pb::ToolChoice>(7));
       },
       "conversation.tool_choice"},
      {"bad request id", [](pb::GenerateRequest& r) { r.set_request_id("no spaces allowed"); }, "request_id"},
      {"too many logprobs", [](pb::GenerateRequest& r) { r.set_logprobs(21); }, "logprobs"},
      {"empty stop string", [](pb::GenerateRequest& r) { r.add_stop(""); }, "stop[0]"},
  };
  for (const Case& c : cases) {
    pb::GenerateRequest r = base();
    c.mutate(r);
    const StreamResult got = RunStream(stub_, r);
    EXPECT_EQ(got.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.name << ": " << got.status.error_message();
    EXPECT_TRUE(absl::StartsWith(got.status.error_message(), absl::StrCat(c.field, ":")))
        << c.name << ": message '" << got.status.error_message() << "' should start with '" << c.field << ":'";
    EXPECT_EQ(got.messages, 0) << c.name;
  }

  // The good stream was not disturbed, and new requests are still served.
  ExpectSameAsDirect(running.Finish(), Direct(good), static_cast<int>(PromptOf(good, *ref_).size()), "running");
  good.request_id = "good-after-bad";
  good.max_tokens = 8;
  ExpectSameAsDirect(RunStream(stub_, ToProto(good)), Direct(good), static_cast<int>(PromptOf(good, *ref_).size()),
                     "after");
}

TEST_F(WorkerE2eTest, RequestLargerThanTheKvPoolIsInvalidArgumentNamingMaxTokens) {
  // 4 blocks of 16 tokens: fits the context (1024) but never the KV pool.
  auto w = StartWorker({"--max_sequences=2", "--kv_blocks=4", absl::StrCat("--max_context=", kContext), "--threads=1"},
                       "small-pool.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  Spec s;
  s.text = "hello";
  s.max_tokens = 100;
  const StreamResult got = RunStream(stub.get(), ToProto(s));
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << got.status.error_message();
  EXPECT_TRUE(absl::StartsWith(got.status.error_message(), "max_tokens:")) << got.status.error_message();
  // One that fits runs.
  s.max_tokens = 16;
  s.temperature = 0.0f;
  s.ignore_eos = true;
  ExpectSameAsDirect(RunStream(stub.get(), ToProto(s)), Direct(s), static_cast<int>(PromptOf(s, *ref_).size()),
                     "fits");
}

// ---- Metrics -----------------------------------------------------------------

TEST_F(WorkerE2eTest, MetricsCountRequestsTokensAndLatencies) {
  auto port = worker_test::PickFreePort();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::vector<std::string> flags = {"--max_sequences=2", absl::StrCat("--max_context=", kContext), "--threads=2",
                                         absl::StrCat("--metrics_listen=127.0.0.1:", *port)};
  auto w = StartWorker(flags, "metrics-worker.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  Spec s;
  s.text = "Counting tokens";
  s.max_tokens = 12;
  s.temperature = 0.0f;
  s.ignore_eos = true;
  Call call(stub.get(), ToProto(s), absl::Seconds(60));
  const StreamResult r = call.Finish();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.tokens.size(), 12u);
  // Refused calls are requests too, counted by reason (the gRPC code).
  Spec bad = s;
  bad.temperature = -1.0f;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(RunStream(stub.get(), ToProto(bad)).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    auto intruder =
        pb::InferenceService::NewStub(worker_test::MakeTlsChannel((*w)->port(), prov_->Identity("worker-worker-1")));
    EXPECT_EQ(RunStream(intruder.get(), ToProto(s)).status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }

  // The engine observes the finish before the last message is written, so a
  // scrape right after the stream ends sees it.
  const std::string text = worker_test::HttpGetMetrics(*port);
  ASSERT_FALSE(text.empty()) << "no /metrics answer on port " << *port;
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_tokens_total{kind=\"generated\"}"), 12.0) << text;
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_requests_total{finish_reason=\"length\"}"), 1.0) << text;
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_requests_total{finish_reason=\"refused\",reason=\"invalid_argument\"}"),
            2.0)
      << text;
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_requests_total{finish_reason=\"refused\",reason=\"permission_denied\"}"),
            1.0)
      << text;
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_time_to_first_token_seconds_count"), 1.0) << text;
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_inter_token_latency_seconds_count"), 11.0) << text;
  const auto prompt = worker_test::MetricValue(text, "ossgate_worker_tokens_total{kind=\"prompt\"}");
  ASSERT_TRUE(prompt.has_value()) << text;
  EXPECT_GT(*prompt, 0.0);
  // Engine steps: the prompt in one prefill step, then one decode step per
  // generated token fed back (11 of the 12).
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_step_tokens_total{kind=\"prefill\"}"), *prompt) << text;
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_step_tokens_total{kind=\"decode\"}"), 11.0) << text;
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_step_seconds_count{kind=\"prefill\"}"), 1.0) << text;
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_step_seconds_count{kind=\"decode\"}"), 11.0) << text;
  EXPECT_EQ(worker_test::MetricValue(text, "ossgate_worker_step_seconds_count{kind=\"mixed\"}"), 0.0) << text;
  // Host time between back-to-back steps: after the prefill step for every
  // decode step, unless a paused stream made the engine wait in between.
  const auto host_steps = worker_test::MetricValue(text, "ossgate_worker_step_host_seconds_count");
  ASSERT_TRUE(host_steps.has_value()) << text;
  EXPECT_GE(*host_steps, 1.0);
  EXPECT_LE(*host_steps, 11.0);
  const auto decode_s = worker_test::MetricValue(text, "ossgate_worker_step_seconds_sum{kind=\"decode\"}");
  ASSERT_TRUE(decode_s.has_value()) << text;
  EXPECT_GT(*decode_s, 0.0);
  const auto load = worker_test::MetricValue(text, "ossgate_worker_model_load_seconds");
  ASSERT_TRUE(load.has_value()) << text;
  EXPECT_GT(*load, 0.0);
  const auto kv_total = worker_test::MetricValue(text, "ossgate_worker_kv_blocks{kind=\"total\"}");
  ASSERT_TRUE(kv_total.has_value()) << text;
  EXPECT_GT(*kv_total, 0.0);
}

// ---- Unary rpcs ------------------------------------------------------------

TEST_F(WorkerE2eTest, TokenizeDetokenizeRoundTrip) {
  const std::string text = "Hello, wörld! 🚀 Ünïcödé and <|start|> as plain text.";
  pb::TokenizeRequest treq;
  treq.set_text(text);
  pb::TokenizeResponse tresp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Tokenize(&ctx, treq, &tresp).ok());
  }
  const std::vector<int32_t> ids(tresp.token_ids().begin(), tresp.token_ids().end());
  EXPECT_EQ(ids, ref_->tokenizer().Encode(text, false));
  const int32_t start = ref_->Special("<|start|>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), start), 0);

  pb::DetokenizeRequest dreq;
  for (int32_t id : ids) dreq.add_token_ids(id);
  pb::DetokenizeResponse dresp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Detokenize(&ctx, dreq, &dresp).ok());
  }
  EXPECT_EQ(dresp.text(), text);

  // With special tokens allowed, "<|start|>" is the control token.
  treq.set_allow_special_tokens(true);
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Tokenize(&ctx, treq, &tresp).ok());
  }
  EXPECT_EQ(std::count(tresp.token_ids().begin(), tresp.token_ids().end(), start), 1);

  // An unknown id is INVALID_ARGUMENT naming its position.
  dreq.add_token_ids(ref_->vocab_size());
  grpc::ClientContext ctx;
  const grpc::Status s = stub_->Detokenize(&ctx, dreq, &dresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), absl::StrCat("token_ids[", ids.size(), "]:"))) << s.error_message();
}

// Runs a client command line with PYTHONPATH set to the generated stubs;
// returns its stdout (the streamed text), stderr goes to `err_file`.
std::string RunClient(const std::vector<std::string>& argv, const std::string& out_file) {
  std::string cmd = absl::StrCat("PYTHONPATH='", OSSGATE_PYTHON_STUBS_DIR, "'");
  for (const std::string& a : argv) absl::StrAppend(&cmd, " '", a, "'");
  absl::StrAppend(&cmd, " >'", out_file, "' 2>'", out_file, ".err'");
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd << "\n" << worker_test::ReadFile(out_file + ".err").value_or("");
  return worker_test::ReadFile(out_file).value_or("");
}

// qwen2 and phi3 files load through the same provenance gate onto the CPU
// backend (this machine has no GPU); GetModelInfo and the ready
// line name the family, and a greedy completion equals the engine's on the
// same file.
TEST_F(WorkerE2eTest, ServesQwen2AndPhi3FilesNamingTheFamily) {
  for (const std::string family : {"qwen2", "phi3"}) {
    SCOPED_TRACE(family);
    const std::string file = family + ".gguf", path = *dir_ / file;
    tools::RandomModelSpec spec;
    ASSERT_TRUE(tools::ApplyPreset(family + "-tiny", &spec.config).ok());
    spec.seed = 20251207;
    spec.threads = 2;
    spec.name = "worker-e2e-" + family;
    ASSERT_TRUE(tools::WriteRandomModel(spec, text::MakeTinyVocab(), path).ok());
    ASSERT_TRUE(prov_->TrustFile(kSource, file, path).ok());
    WorkerSpec ws;
    ws.model_path = path;
    ws.source_uri = absl::StrCat(kSource, "/", file);
    ws.flags = {"--max_sequences=2", absl::StrCat("--max_context=", kContext), "--threads=2"};
    auto w = WorkerProcess::Spawn(Bins(), *prov_, ws, *dir_ / (family + "-worker.log"), ClientIdentity());
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->WaitServing(absl::Seconds(120)).ok()) << (*w)->Log();
    auto stub = pb::InferenceService::NewStub((*w)->channel());

    pb::ModelInfo info;
    {
      grpc::ClientContext ctx;
      ASSERT_TRUE(stub->GetModelInfo(&ctx, pb::GetModelInfoRequest(), &info).ok());
    }
    EXPECT_EQ(info.architecture(), family);
    EXPECT_EQ(info.name(), spec.name);
    EXPECT_EQ(info.n_experts(), 0u);
    EXPECT_EQ(info.d_ff(), 128u);
    EXPECT_EQ(info.backend(), "cpu");
    EXPECT_TRUE(absl::StrContains((*w)->Log(), "architecture=" + family)) << (*w)->Log();

    auto ref = Reference::Load(path);
    ASSERT_TRUE(ref.ok()) << ref.status();
    Spec s;
    s.request_id = "greedy-" + family;
    s.text = "The lighthouse keeper looked at the sea and said";
    s.max_tokens = 24;
    s.temperature = 0.0f;
    const StreamResult got = RunStream(stub.get(), ToProto(s));
    const model::GenerationResult want = (*ref)->Generate(PromptOf(s, **ref), ToParams(s, **ref));
    ExpectSameAsDirect(got, want, static_cast<int>(PromptOf(s, **ref).size()), family);
    EXPECT_FALSE(want.tokens.empty());
  }
}

// ---- The dense families with their real vocabularies -----------------------

// The chat template of `family` written out as text (Qwen2.5-Instruct's
// ChatML and Phi-3-mini-4k-instruct's template), for a system message and
// one user message, ending with the generation prompt; and the family's
// end-of-turn token. Written here from the model cards, not taken from
// chat_format.cc.
struct FamilyChat {
  std::string prompt_text;
  std::string end_of_turn;
};
FamilyChat FamilyChatOf(const std::string& family, const std::string& system, const std::string& user) {
  if (family == "qwen2") {
    return {absl::StrCat("<|im_start|>system\n", system, "<|im_end|>\n<|im_start|>user\n", user,
                         "<|im_end|>\n<|im_start|>assistant\n"),
            "<|im_end|>"};
  }
  return {absl::StrCat("<|system|>\n", system, "<|end|>\n<|user|>\n", user, "<|end|>\n<|assistant|>\n"), "<|end|>"};
}

// Exchanges two rows of a row-major 2-D tensor in a GGUF file in place (any
// row-wise type: whole quantization blocks move).
absl::Status SwapTensorRows(const std::string& path, const gguf::GgufFile& file, const std::string& tensor,
                            int64_t a, int64_t b) {
  const gguf::TensorInfo* t = file.FindTensor(tensor);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat("no tensor ", tensor, " in ", path));
  const uint64_t row = t->nbytes / static_cast<uint64_t>(t->ne[1]);
  const uint64_t base = file.data_offset() + t->offset;
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  std::string ra(row, '\0'), rb(row, '\0');
  f.seekg(static_cast<std::streamoff>(base + a * row)).read(ra.data(), static_cast<std::streamsize>(row));
  f.seekg(static_cast<std::streamoff>(base + b * row)).read(rb.data(), static_cast<std::streamsize>(row));
  f.seekp(static_cast<std::streamoff>(base + a * row)).write(rb.data(), static_cast<std::streamsize>(row));
  f.seekp(static_cast<std::streamoff>(base + b * row)).write(ra.data(), static_cast<std::streamsize>(row));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot rewrite rows of ", tensor, " in ", path));
  return absl::OkStatus();
}

// One server-sent-events chat stream of the HTTP face, put together.
struct HttpChatStream {
  int status = -1;
  std::string body, content, finish_reason;
  int prompt_tokens = -1, completion_tokens = -1;
  bool done = false;
};
HttpChatStream ParseChatStream(int status, const std::string& body) {
  HttpChatStream out;
  out.status = status;
  out.body = body;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (!absl::ConsumePrefix(&line, "data: ")) continue;
    if (line == "[DONE]") {
      out.done = true;
      continue;
    }
    const nlohmann::json chunk = nlohmann::json::parse(line, nullptr, false);
    if (chunk.is_discarded()) continue;
    if (chunk.contains("choices")) {
      for (const auto& c : chunk["choices"]) {
        if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string()) {
          out.content += c["delta"]["content"].get<std::string>();
        }
        if (c.contains("finish_reason") && c["finish_reason"].is_string()) out.finish_reason = c["finish_reason"];
      }
    }
    if (chunk.contains("usage") && chunk["usage"].is_object()) {
      out.prompt_tokens = chunk["usage"].value("prompt_tokens", -1);
      out.completion_tokens = chunk["usage"].value("completion_tokens", -1);
    }
  }
  return out;
}

// A Qwen2-shaped and a Phi-3-shaped model, each written with the family's
// real vocabulary (the decompressed assets, found at run time like the
// tools find them), registered from its header (provctl trust add-file
// --file: the approval names the family), loaded through the gate, and
// chatted with over gRPC and over the HTTP face.
//
// The model's output head is edited so that greedy decoding emits the
// family's end-of-turn token after a few ordinary tokens: the rows of the
// token the unedited model would emit at step k and of the end-of-turn
// token are exchanged in output.weight (untied, so the prompt's embeddings
// are unchanged and steps before k keep their tokens). The worker must then
// stop there with finish STOP, and its tokens must equal the engine's run
// in-process on the template's prompt tokenized by the real tokenizer: a
// wrong template, a wrong tokenizer or a missing stop token breaks both.
TEST_F(WorkerE2eTest, DenseFamiliesWithRealVocabulariesChatOverGrpcAndHttp) {
  const std::string system = "You are terse.";
  // No special-token text in the messages: the expected prompt is the whole
  // template tokenized with special tokens allowed.
  const std::string user = "Name one colour, please.";
  const std::string api_key = "sk-ossgate-family-e2e-41c7";
  const std::string keys_path = *dir_ / "family_api_keys";
  ASSERT_TRUE(worker_test::WriteFile(keys_path, absl::StrCat("family-e2e ", http::Sha256Hex(api_key), "\n")).ok());
  for (const std::string family : {"qwen2", "phi3"}) {
    SCOPED_TRACE(family);
    auto vocab = tools::LoadVocabByName(family);
    ASSERT_TRUE(vocab.ok()) << vocab.status();
    const std::string plain = *dir_ / (family + "-real-vocab.gguf");
    tools::RandomModelSpec spec;
    ASSERT_TRUE(tools::ApplyPreset(family + "-tiny", &spec.config).ok());
    spec.config.tied_embeddings = false;
    spec.seed = 20251210;
    spec.threads = 2;
    spec.name = "worker-e2e-real-" + family;
    ASSERT_TRUE(tools::WriteRandomModel(spec, *vocab, plain).ok());

    const FamilyChat chat = FamilyChatOf(family, system, user);
    std::vector<int32_t> prompt;
    std::vector<int32_t> family_stops;
    int32_t end_of_turn = -1;
    std::vector<int32_t> plain_tokens;
    {
      auto ref = Reference::Load(plain);
      ASSERT_TRUE(ref.ok()) << ref.status();
      EXPECT_EQ((*ref)->vocab_size(), family == "qwen2" ? 151936 : 32064);
      prompt = (*ref)->tokenizer().Encode(chat.prompt_text, /*allow_special=*/true);
      end_of_turn = (*ref)->Special(chat.end_of_turn.c_str());
      family_stops = {end_of_turn, (*ref)->Special("<|endoftext|>")};
      // One end-of-turn token after each of the system and user turns.
      EXPECT_EQ(std::count(prompt.begin(), prompt.end(), end_of_turn), 2);
      model::GenerationParams p;
      p.max_tokens = 16;
      p.sampling.temperature = 0.0f;
      plain_tokens = (*ref)->Generate(prompt, p).tokens;
    }
    ASSERT_EQ(plain_tokens.size(), 16u);
    // k: the first step (after at least one token) whose token is new.
    size_t k = 0;
    for (size_t j = 1; j < plain_tokens.size() && k == 0; ++j) {
      if (std::find(plain_tokens.begin(), plain_tokens.begin() + j, plain_tokens[j]) == plain_tokens.begin() + j) {
        k = j;
      }
    }
    ASSERT_GT(k, 0u) << "greedy decoding repeats one token; pick another seed";
    for (size_t j = 0; j <= k; ++j) {
      ASSERT_TRUE(std::find(family_stops.begin(), family_stops.end(), plain_tokens[j]) == family_stops.end());
    }
    const std::vector<int32_t> before_stop(plain_tokens.begin(), plain_tokens.begin() + k);

    const std::string file = family + "-stops.gguf", path = *dir_ / file;
    std::filesystem::copy_file(plain, path, std::filesystem::copy_options::overwrite_existing);
    {
      auto ref = Reference::Load(plain);
      ASSERT_TRUE(ref.ok()) << ref.status();
      ASSERT_TRUE(SwapTensorRows(path, (*ref)->file(), "output.weight", plain_tokens[k], end_of_turn).ok());
    }
    auto ref = Reference::Load(path);
    ASSERT_TRUE(ref.ok()) << ref.status();
    model::GenerationParams greedy;
    greedy.max_tokens = 16;
    greedy.sampling.temperature = 0.0f;
    greedy.stop_token_ids = family_stops;
    const model::GenerationResult want = (*ref)->Generate(prompt, greedy);
    ASSERT_EQ(want.finish, model::FinishReason::kStop);
    ASSERT_EQ(std::vector<int32_t>(want.tokens.begin(), want.tokens.begin() + k), before_stop);
    const std::string want_text = (*ref)->tokenizer().Decode(before_stop);

    ASSERT_TRUE(prov_->TrustFile(kSource, file, path).ok());
    auto http_port = worker_test::PickFreePort();
    ASSERT_TRUE(http_port.ok()) << http_port.status();
    WorkerSpec ws;
    ws.model_path = path;
    ws.source_uri = absl::StrCat(kSource, "/", file);
    ws.flags = {"--max_sequences=1", absl::StrCat("--max_context=", kContext), "--threads=2",
                absl::StrCat("--http_listen=127.0.0.1:", *http_port), "--http_api_keys=" + keys_path,
                "--model_name=" + spec.name};
    auto w = WorkerProcess::Spawn(Bins(), *prov_, ws, *dir_ / (family + "-real-vocab-worker.log"), ClientIdentity());
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->WaitServing(absl::Seconds(120)).ok()) << (*w)->Log();
    // The gate: the approval names the family the header does.
    EXPECT_TRUE(absl::StrContains((*w)->Log(), " family=" + family + " ")) << (*w)->Log();
    EXPECT_TRUE(absl::StrContains((*w)->Log(), "architecture=" + family)) << (*w)->Log();
    auto stub = pb::InferenceService::NewStub((*w)->channel());

    // gRPC.
    pb::GenerateRequest req;
    req.set_request_id("real-vocab-" + family);
    pb::Conversation* c = req.mutable_conversation();
    c->set_developer_instructions(system);
    pb::ChatMessage* m = c->add_messages();
    m->set_role(pb::ROLE_USER);
    m->set_content(user);
    req.set_max_tokens(16);
    req.mutable_sampling()->set_temperature(0.0f);
    const StreamResult got = RunStream(stub.get(), req);
    ExpectSameAsDirect(got, want, static_cast<int>(prompt.size()), family + " grpc");
    EXPECT_EQ(got.final.finish_reason(), pb::FINISH_REASON_STOP);
    EXPECT_EQ(got.text, want_text);

    // Harmony's reasoning effort is refused, naming the field.
    c->set_reasoning_effort(pb::REASONING_EFFORT_LOW);
    const StreamResult refused = RunStream(stub.get(), req);
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StartsWith(refused.status.error_message(), "conversation.reasoning_effort"))
        << refused.status.error_message();
    EXPECT_TRUE(absl::StrContains(refused.status.error_message(), "not supported by the loaded model family"))
        << refused.status.error_message();

    // Both command-line clients chat with it: they send gpt-oss's reasoning
    // effort only to a gpt-oss model (or when it is asked for).
    const ClientTls tls = ClientIdentity();
    for (const bool python : {false, true}) {
      std::vector<std::string> argv = {OSSGATE_CLIENT_BIN};
      if (python) argv = {"/usr/bin/python3", std::string(OSSGATE_SOURCE_DIR) + "/tools/client/ossgate_client.py"};
      argv.insert(argv.end(), {absl::StrCat("--server=127.0.0.1:", (*w)->port()), "--ca=" + tls.ca_path,
                               "--cert=" + tls.cert_path, "--key=" + tls.key_path, "--chat=" + user,
                               "--instructions=" + system, "--max_tokens=16"});
      const std::string out = *dir_ / absl::StrCat(family, python ? "-py" : "-cpp", "-client.out");
      EXPECT_EQ(RunClient(argv, out), want_text + "\n") << (python ? "python" : "c++");
      EXPECT_TRUE(absl::StrContains(worker_test::ReadFile(out + ".err").value_or(""), "finish: FINISH_REASON_STOP"))
          << (python ? "python" : "c++");
    }

    // The HTTP face, streaming.
    httplib::SSLClient client("127.0.0.1", *http_port);
    client.set_ca_cert_path((prov_->pki() + "/ca.pem").c_str());
    client.enable_server_certificate_verification(true);
    client.set_connection_timeout(10);
    client.set_read_timeout(60);
    const httplib::Headers auth = {{"Authorization", "Bearer " + api_key}};
    nlohmann::json body = {{"model", spec.name},
                           {"messages", nlohmann::json::array({{{"role", "system"}, {"content", system}},
                                                               {{"role", "user"}, {"content", user}}})},
                           {"max_tokens", 16},
                           {"temperature", 0},
                           {"stream", true},
                           {"stream_options", {{"include_usage", true}}}};
    httplib::Result r = client.Post("/v1/chat/completions", auth, body.dump(), "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    const HttpChatStream http = ParseChatStream(r->status, r->body);
    EXPECT_EQ(http.status, 200) << http.body;
    EXPECT_EQ(http.content, want_text) << http.body;
    EXPECT_EQ(http.finish_reason, "stop") << http.body;
    EXPECT_EQ(http.prompt_tokens, static_cast<int>(prompt.size())) << http.body;
    EXPECT_EQ(http.completion_tokens, static_cast<int>(want.tokens.size())) << http.body;
    EXPECT_TRUE(http.done) << http.body;

    body["reasoning_effort"] = "low";
    httplib::Result e = client.Post("/v1/chat/completions", auth, body.dump(), "application/json");
    ASSERT_TRUE(e) << httplib::to_string(e.error());
    EXPECT_EQ(e->status, 400) << e->body;
    const nlohmann::json err = nlohmann::json::parse(e->body, nullptr, false);
    ASSERT_TRUE(err.contains("error")) << e->body;
    EXPECT_EQ(err["error"]["param"], "reasoning_effort") << e->body;
    EXPECT_TRUE(absl::StrContains(err["error"]["message"].get<std::string>(), "not supported by the loaded model family"))
        << e->body;
  }
}

TEST_F(WorkerE2eTest, ModelInfoCarriesProvenanceAndQuantization) {
  pb::ModelInfo info;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->GetModelInfo(&ctx, pb::GetModelInfoRequest(), &info).ok());
  }
  EXPECT_EQ(info.architecture(), "gpt-oss");
  EXPECT_EQ(info.name(), "worker-e2e-tiny");
  EXPECT_EQ(info.n_layers(), 2u);
  EXPECT_EQ(info.d_model(), 64u);
  EXPECT_EQ(info.vocab_size(), static_cast<uint32_t>(ref_->vocab_size()));
  EXPECT_EQ(info.context_length(), static_cast<uint32_t>(kContext));
  EXPECT_EQ(info.max_sequences(), 16u);
  EXPECT_EQ(info.backend(), "cpu");

  const pb::Provenance& p = info.provenance();
  EXPECT_EQ(p.source_uri(), kModelUri);
  EXPECT_EQ(p.sha256(), ref_->bytes().sha256());
  EXPECT_EQ(p.size_bytes(), ref_->bytes().size());
  EXPECT_EQ(p.registry_entry(), kSource);
  EXPECT_EQ(p.token_id().size(), 32u);
  auto pub = token::Ed25519PublicKey::LoadPemFile(prov_->token_public_key_path());
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(p.key_id(), token::TokenKeyId(*pub));
  EXPECT_GT(p.verified_at().seconds(), 0);
  EXPECT_GE(p.loaded_at().seconds(), p.verified_at().seconds());

  // The audit log index names the record of this very approval.
  auto auditor = pv::AuditService::NewStub(
      worker_test::MakeTlsChannel(prov_->port(), prov_->Identity("auditor-auditor-1")));
  pv::QueryRecordsRequest q;
  q.set_model_sha256(p.sha256());
  q.set_kind(pv::RECORD_KIND_VERIFY_MODEL);
  q.set_verdict(pv::VERDICT_ACCEPTED);
  q.set_page_size(1000);
  grpc::ClientContext ctx;
  auto reader = auditor->QueryRecords(&ctx, q);
  pv::QueryRecordsResponse page;
  bool found = false;
  while (reader->Read(&page)) {
    for (const pv::AuditEntry& e : page.entries()) {
      if (e.index() != p.audit_log_index()) continue;
      found = true;
      EXPECT_EQ(e.decoded().token_id(), p.token_id());
      EXPECT_EQ(e.decoded().token_key_id(), p.key_id());
      EXPECT_EQ(e.decoded().request().worker_id(), "worker-1");
      EXPECT_EQ(e.decoded().caller(), "spiffe://ossgate/role/worker/worker-1");
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(found) << "no accepted VerifyModel record at index " << p.audit_log_index();

  // Every tensor of the file, with its ggml type and shape.
  ASSERT_EQ(info.tensors_size(), static_cast<int>(ref_->file().tensors().size()));
  std::map<std::string, std::string> types;
  for (const pb::TensorQuantization& t : info.tensors()) types[t.name()] = t.type();
  EXPECT_EQ(types["blk.0.ffn_gate_exps.weight"], "MXFP4");
  EXPECT_EQ(types["blk.1.ffn_down_exps.weight"], "MXFP4");
  EXPECT_EQ(types["blk.0.attn_q.weight"], "Q8_0");
  EXPECT_EQ(types["token_embd.weight"], "Q8_0");
  EXPECT_EQ(types["blk.0.attn_norm.weight"], "F32");
  for (int i = 0; i < info.tensors_size(); ++i) {
    const gguf::TensorInfo& t = ref_->file().tensors()[i];
    ASSERT_EQ(info.tensors(i).name(), t.name);
    ASSERT_EQ(info.tensors(i).shape_size(), t.n_dims) << t.name;
    for (int d = 0; d < t.n_dims; ++d) EXPECT_EQ(info.tensors(i).shape(d), t.ne[d]) << t.name;
  }
}

// ---- Clients ---------------------------------------------------------------

TEST_F(WorkerE2eTest, PythonClientStreamsTheSameTextAsTheCppClient) {
  const ClientTls tls = ClientIdentity();
  const std::vector<std::string> common = {absl::StrCat("--server=127.0.0.1:", worker_->port()),
                                           "--ca=" + tls.ca_path, "--cert=" + tls.cert_path, "--key=" + tls.key_path};
  const std::string prompt = "The harbour at night was";
  const std::vector<std::vector<std::string>> modes = {
      {"--prompt=" + prompt, "--temperature=0.8", "--seed=7", "--max_tokens=40"},
      {"--chat=Tell me about lighthouses.", "--temperature=0.9", "--seed=11", "--max_tokens=40"},
  };
  std::vector<std::string> texts;
  for (size_t i = 0; i < modes.size(); ++i) {
    std::vector<std::string> cpp = {OSSGATE_CLIENT_BIN};
    std::vector<std::string> py = {"/usr/bin/python3",
                                   std::string(OSSGATE_SOURCE_DIR) + "/tools/client/ossgate_client.py"};
    for (auto* argv : {&cpp, &py}) {
      argv->insert(argv->end(), common.begin(), common.end());
      argv->insert(argv->end(), modes[i].begin(), modes[i].end());
    }
    const std::string cpp_out = RunClient(cpp, *dir_ / absl::StrCat("cpp", i, ".out"));
    const std::string py_out = RunClient(py, *dir_ / absl::StrCat("py", i, ".out"));
    EXPECT_EQ(py_out, cpp_out) << modes[i][0];
    // A random model rarely writes a harmony header, so its chat answers are
    // usually empty: the chat case checks the request and output paths only.
    if (i == 0) {
      EXPECT_GT(cpp_out.size(), 1u) << modes[i][0];
    }
    texts.push_back(py_out);
  }

  // Readiness and model info through the Python client as well.
  std::vector<std::string> py = {"/usr/bin/python3",
                                 std::string(OSSGATE_SOURCE_DIR) + "/tools/client/ossgate_client.py"};
  py.insert(py.end(), common.begin(), common.end());
  std::vector<std::string> ready = py, info = py;
  ready.push_back("--wait_ready_s=30");
  info.push_back("--info");
  EXPECT_EQ(RunClient(ready, *dir_ / "py-ready.out"), "");
  const std::string info_text = RunClient(info, *dir_ / "py-info.out");
  EXPECT_TRUE(absl::StrContains(info_text, ref_->bytes().sha256())) << info_text;
  EXPECT_TRUE(absl::StrContains(info_text, "architecture: \"gpt-oss\"")) << info_text;

  // The completion is the engine's text (both clients end it with a newline).
  Spec s;
  s.text = prompt;
  s.temperature = 0.8f;
  s.top_p = 1.0f;
  s.seed = 7;
  s.max_tokens = 40;
  EXPECT_EQ(texts[0], Direct(s).text + "\n");
}

// ---- Shutdown --------------------------------------------------------------

TEST_F(WorkerE2eTest, SigtermStopsServingDrainsAndExitsZero) {
  auto health_port = worker_test::PickFreePort();
  ASSERT_TRUE(health_port.ok());
  std::vector<std::string> flags = LongContextFlags(/*max_sequences=*/2, /*max_waiting=*/4);
  flags.push_back(absl::StrCat("--health_listen=127.0.0.1:", *health_port));
  auto w = StartWorker(flags, "sigterm.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  // The plaintext probe port (for Kubernetes) tells the same as the TLS port.
  auto probe = grpc::CreateChannel(absl::StrCat("127.0.0.1:", *health_port), grpc::InsecureChannelCredentials());
  auto probed = client::CheckHealth(probe, kService, absl::Seconds(10));
  ASSERT_TRUE(probed.ok()) << probed.status();
  EXPECT_EQ(*probed, client::HealthStatus::kServing);

  // In flight at SIGTERM: a normal request, and a hog that keeps the worker
  // draining until the test aborts it.
  Spec s;
  s.request_id = "in-flight";
  s.text = "A request that is running when the worker is told to stop";
  s.max_tokens = 600;
  s.temperature = 0.0f;
  s.ignore_eos = true;
  Call call(stub.get(), ToProto(s), kStreamDeadline);
  Call hog(stub.get(), LongRequest("hog"), kStreamDeadline);
  ASSERT_TRUE(call.ReadOne());
  ASSERT_TRUE(hog.ReadOne());

  ASSERT_TRUE((*w)->process().Signal(SIGTERM).ok());
  // Health turns NOT_SERVING while the process (liveness "") stays up to drain.
  const absl::Time end = absl::Now() + absl::Seconds(60);
  absl::StatusOr<client::HealthStatus> h;
  for (;;) {
    h = client::CheckHealth((*w)->channel(), kService);
    if (h.ok() && *h == client::HealthStatus::kNotServing) break;
    ASSERT_LT(absl::Now(), end) << "still " << (h.ok() ? client::HealthStatusName(*h) : h.status().ToString());
    ASSERT_FALSE((*w)->process().Poll().has_value()) << "exited before draining:\n" << (*w)->Log();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // poll interval
  }
  auto live = client::CheckHealth((*w)->channel(), "");
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(*live, client::HealthStatus::kServing);
  probed = client::CheckHealth(probe, kService);
  ASSERT_TRUE(probed.ok()) << probed.status();
  EXPECT_EQ(*probed, client::HealthStatus::kNotServing);

  // New work is refused while draining.
  Spec late = s;
  late.request_id = "late";
  late.max_tokens = 4;
  const StreamResult refused = RunStream(stub.get(), ToProto(late));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.status.error_message();

  // The in-flight request completes in full: draining, not cancelling.
  const StreamResult done = call.Finish();
  ExpectSameAsDirect(done, Direct(s), static_cast<int>(PromptOf(s, *ref_).size()), "drained");
  EXPECT_EQ(done.final.finish_reason(), pb::FINISH_REASON_LENGTH);
  // The hog is still running too (SIGTERM did not cancel it); ending it lets
  // the drain finish and the process exit 0.
  EXPECT_FALSE((*w)->process().Poll().has_value());
  {
    pb::AbortRequest abort;
    abort.set_request_id("hog");
    pb::AbortResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status a = stub->Abort(&ctx, abort, &resp);
    EXPECT_TRUE(a.ok()) << a.error_code() << " " << a.error_message();
  }
  const StreamResult hog_done = hog.Finish();
  EXPECT_TRUE(hog_done.status.ok()) << hog_done.status.error_message();
  EXPECT_EQ(hog_done.final.finish_reason(), pb::FINISH_REASON_CANCELLED);

  auto code = (*w)->process().Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << (*w)->Log();
  EXPECT_EQ(*code, 0) << (*w)->Log();
  EXPECT_TRUE(absl::StrContains((*w)->Log(), "stopped")) << (*w)->Log();
}

// ---- Hardening: clients that stop reading ---------------------------------

// A channel whose HTTP/2 flow-control window stays small (no BDP probing, a
// 16 KiB lookahead): a stream the test never reads blocks the worker's
// writes after a few dozen messages, as a client that stopped reading does.
std::shared_ptr<grpc::Channel> SmallWindowChannel(int port, const ClientTls& tls) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = worker_test::ReadFile(tls.ca_path).value_or("");
  o.pem_cert_chain = worker_test::ReadFile(tls.cert_path).value_or("");
  o.pem_private_key = worker_test::ReadFile(tls.key_path).value_or("");
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 * 1024);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), grpc::SslCredentials(o), args);
}

// Polls /metrics until `name` has `value` (the gauges are sampled every
// 500 ms); false after `timeout`.
bool WaitForMetric(int port, const std::string& name, double value, absl::Duration timeout, std::string* last) {
  const absl::Time end = absl::Now() + timeout;
  for (;;) {
    *last = worker_test::HttpGetMetrics(port);
    if (worker_test::MetricValue(*last, name) == value) return true;
    if (absl::Now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval
  }
}

TEST_F(WorkerE2eTest, ClientsThatStopReadingLoseTheirSlotsAfterTheStallTimeout) {
  constexpr double kStallSeconds = 3;
  auto metrics_port = worker_test::PickFreePort();
  ASSERT_TRUE(metrics_port.ok()) << metrics_port.status();
  std::vector<std::string> flags = LongContextFlags(/*max_sequences=*/2, /*max_waiting=*/4);
  flags.push_back(absl::StrCat("--stall_timeout_s=", kStallSeconds));
  flags.push_back(absl::StrCat("--metrics_listen=127.0.0.1:", *metrics_port));
  auto w = StartWorker(flags, "stalled.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  auto stalled_stub = pb::InferenceService::NewStub(SmallWindowChannel((*w)->port(), ClientIdentity()));
  const std::string paused = "ossgate_worker_sequences{state=\"paused\"}";
  const std::string stalled_total = "ossgate_worker_stalled_streams_total";
  std::string metrics;
  Spec s;
  s.text = "A client that reads its stream";
  s.temperature = 0.0f;
  s.ignore_eos = true;

  // Every slot is held by a client that never reads: their sequences pause
  // once gRPC's windows are full. A request behind them runs only because
  // the stalled streams are ended (without the timeout it would wait until
  // its deadline).
  Call stalled0(stalled_stub.get(), LongRequest("stalled-0"), absl::Seconds(120));
  Call stalled1(stalled_stub.get(), LongRequest("stalled-1"), absl::Seconds(120));
  ASSERT_TRUE(WaitForMetric(*metrics_port, paused, 2, absl::Seconds(60), &metrics)) << metrics;
  s.request_id = "behind-the-stalled";
  s.max_tokens = 12;
  const StreamResult behind = RunStream(stub.get(), ToProto(s), kFollowUpDeadline);
  ExpectSameAsDirect(behind, Direct(s), static_cast<int>(PromptOf(s, *ref_).size()), "behind the stalled ones");
  EXPECT_GT(behind.final.usage().queue_seconds(), 0.0);

  // Both stalled streams are ended and counted; their calls are cancelled by
  // the worker (the final message could never reach them).
  ASSERT_TRUE(WaitForMetric(*metrics_port, stalled_total, 2, absl::Seconds(60), &metrics)) << metrics;
  for (Call* c : {&stalled0, &stalled1}) {
    const StreamResult r = c->Finish();
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::CANCELLED) << r.status.error_message();
    EXPECT_EQ(r.finals, 0);
    EXPECT_GT(r.messages, 0);
    EXPECT_LT(r.tokens.size(), static_cast<size_t>(kLongTokens));
  }

  // While a client does not read, the other slot serves at full speed: a
  // reading client's stream is complete and correct well within the stall
  // timeout.
  Call stalled2(stalled_stub.get(), LongRequest("stalled-2"), absl::Seconds(120));
  ASSERT_TRUE(WaitForMetric(*metrics_port, paused, 1, absl::Seconds(60), &metrics)) << metrics;
  s.request_id = "reader";
  s.max_tokens = 64;
  const StreamResult reader = RunStream(stub.get(), ToProto(s), kFollowUpDeadline);
  ExpectSameAsDirect(reader, Direct(s), static_cast<int>(PromptOf(s, *ref_).size()), "reader");
  EXPECT_LT(reader.final.usage().total_seconds(), kStallSeconds);
  ASSERT_TRUE(WaitForMetric(*metrics_port, stalled_total, 3, absl::Seconds(60), &metrics)) << metrics;
  EXPECT_EQ(stalled2.Finish().status.error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(WaitForMetric(*metrics_port, paused, 0, absl::Seconds(60), &metrics)) << metrics;
  EXPECT_EQ(worker_test::MetricValue(metrics, "ossgate_worker_requests_total{finish_reason=\"cancelled\"}"), 3.0) << metrics;
}

// ---- Hardening: identities -------------------------------------------------

TEST_F(WorkerE2eTest, AbortFromAnotherIdentityIsNotFoundAndLeavesTheRequestRunning) {
  auto w = StartWorker(LongContextFlags(/*max_sequences=*/1, /*max_waiting=*/4), "abort-owner.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  auto other = pb::InferenceService::NewStub(worker_test::MakeTlsChannel((*w)->port(), OtherClientIdentity()));
  Call call(stub.get(), LongRequest("mine"), kStreamDeadline);
  ASSERT_TRUE(call.ReadOne());
  auto abort = [](pb::InferenceService::Stub* st, const std::string& id) {
    pb::AbortRequest req;
    req.set_request_id(id);
    pb::AbortResponse resp;
    grpc::ClientContext ctx;
    return st->Abort(&ctx, req, &resp);
  };
  // Another identity: NOT_FOUND, exactly as for an id nobody uses (no
  // PERMISSION_DENIED that would confirm the id exists).
  const grpc::Status foreign = abort(other.get(), "mine");
  const grpc::Status unknown = abort(other.get(), "nobody-uses-this");
  EXPECT_EQ(foreign.error_code(), grpc::StatusCode::NOT_FOUND) << foreign.error_message();
  EXPECT_EQ(foreign.error_message(), unknown.error_message());
  // The other identity may even use the same id: ids are per identity.
  Spec s;
  s.request_id = "mine";
  s.text = "same id, other owner";
  s.max_tokens = 4;
  s.seed = 5;
  s.ignore_eos = true;  // runs to max_tokens: LENGTH
  Call theirs(other.get(), ToProto(s), kStreamDeadline);  // queued: the only slot is taken
  // The request is untouched: it keeps streaming.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(call.ReadOne());
  EXPECT_FALSE((*w)->process().Poll().has_value());
  // Its owner can abort it.
  const grpc::Status own = abort(stub.get(), "mine");
  EXPECT_TRUE(own.ok()) << own.error_message();
  const StreamResult r = call.Finish();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.final.finish_reason(), pb::FINISH_REASON_CANCELLED);
  const StreamResult t = theirs.Finish();
  ASSERT_TRUE(t.status.ok()) << t.status.error_message();
  EXPECT_EQ(t.final.finish_reason(), pb::FINISH_REASON_LENGTH);
  EXPECT_EQ(t.request_ids, std::set<std::string>{"mine"});
}

// The SHA-256 fingerprint of a PEM certificate, by the openssl tool.
std::string OpensslFingerprint(const std::string& cert_path) {
  std::string out;
  auto rc = worker_test::RunToCompletion(
      {"/usr/bin/env", "openssl", "x509", "-in", cert_path, "-noout", "-fingerprint", "-sha256"}, &out);
  EXPECT_TRUE(rc.ok() && *rc == 0) << out;
  // "sha256 Fingerprint=AB:CD:..." -> "abcd..."
  std::string hex;
  for (char c : out.substr(out.find('=') + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(c))) hex += static_cast<char>(std::tolower(c));
  }
  return hex;
}

TEST_F(WorkerE2eTest, CertificateOfAnotherRoleIsRefusedAndTheRefusalNamesIt) {
  // The provenance service's CA also signs workers, admins and auditors; a
  // certificate of that CA alone does not make an inference client.
  const ClientTls intruder_tls = prov_->Identity("worker-worker-1");
  auto intruder = pb::InferenceService::NewStub(worker_test::MakeTlsChannel(worker_->port(), intruder_tls));
  Spec s;
  s.text = "let me in";
  s.max_tokens = 2;
  const StreamResult got = RunStream(intruder.get(), ToProto(s));
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << got.status.error_message();
  EXPECT_TRUE(absl::StrContains(got.status.error_message(), "role 'worker'")) << got.status.error_message();
  EXPECT_EQ(got.messages, 0);
  pb::ModelInfo info;
  grpc::ClientContext ctx;
  EXPECT_EQ(intruder->GetModelInfo(&ctx, pb::GetModelInfoRequest(), &info).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // The refusal is attributable: the certificate's SAN and fingerprint.
  const std::string fingerprint = OpensslFingerprint(intruder_tls.cert_path);
  ASSERT_EQ(fingerprint.size(), 64u);
  const std::string log = worker_->Log();
  EXPECT_TRUE(
      absl::StrContains(log, absl::StrCat("san=[\"spiffe://ossgate/role/worker/worker-1\"] sha256=", fingerprint)))
      << log;
  EXPECT_TRUE(absl::StrContains(log, "refused Generate")) << log;
}

// ---- Hardening: malformed requests ----------------------------------------

// Sends `bytes` as the request of `method` (generic stub); the call's status.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& bytes) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  grpc::CompletionQueue cq;
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  auto call = stub.PrepareUnaryCall(&ctx, method, request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

TEST_F(WorkerE2eTest, RequestThatIsNotProtobufIsInvalidArgumentWithAMessage) {
  // Field 1 with wire type 7, which does not exist.
  const std::string garbage = "\x0f\xff\xff";
  for (const char* method : {"Generate", "Abort", "Tokenize", "Detokenize", "GetModelInfo"}) {
    const grpc::Status s =
        RawCall(worker_->channel(), absl::StrCat("/ossgate.inference.v1.InferenceService/", method), garbage);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method << ": " << s.error_message();
    EXPECT_TRUE(absl::StartsWith(s.error_message(), "request:")) << method << ": " << s.error_message();
    EXPECT_TRUE(absl::StrContains(
        s.error_message(),
        absl::StrCat("ossgate.inference.v1.",
                     method == std::string("GetModelInfo") ? "GetModelInfoRequest" : absl::StrCat(method, "Request"))))
        << method << ": " << s.error_message();
  }
  // A well-formed request still works through the same raw path.
  pb::TokenizeRequest t;
  t.set_text("hi");
  EXPECT_TRUE(
      RawCall(worker_->channel(), "/ossgate.inference.v1.InferenceService/Tokenize", t.SerializeAsString()).ok());
}

// ---- Hardening: configuration ----------------------------------------------

TEST_F(WorkerE2eTest, NonPositiveSizesAreRefusedBeforeAnyNetworkCall) {
  ExpectConfigurationError({"--max_sequences=0"}, "max-sequences-0.log", "--max_sequences must be >= 1");
  ExpectConfigurationError({"--max_context=-5"}, "max-context-neg.log", "--max_context must be >= 1");
  ExpectConfigurationError({"--stall_timeout_s=0"}, "stall-0.log", "--stall_timeout_s");
}

TEST_F(WorkerE2eTest, ParallelLayoutFlagsAreCheckedBeforeAnyNetworkCall) {
  ExpectConfigurationError({"--tensor_parallel=0"}, "tp-0.log", "--tensor_parallel must be in [1, 64]");
  ExpectConfigurationError({"--tensor_parallel=4", "--expert_parallel=3"}, "ep-3.log",
                           "--expert_parallel must divide --tensor_parallel=4");
}

// The tiny model split over 2 ranks (docs/parallel.md) on the CPU backend,
// through the gate and the gRPC API: the same greedy tokens as the whole
// model; a layout the model cannot take (3 ranks for 2 KV heads) refuses
// the load, naming why.
TEST_F(WorkerE2eTest, TensorParallelRanksServeTheSameGreedyTokens) {
  auto w = StartWorker({"--backend=cpu", "--tensor_parallel=2", "--expert_parallel=2", "--max_sequences=2",
                        absl::StrCat("--max_context=", kContext), "--threads=2"},
                       "tensor-parallel.log");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(absl::StrContains((*w)->Log(), "2 ranks, 2 expert groups")) << (*w)->Log();
  auto stub = pb::InferenceService::NewStub((*w)->channel());
  Spec s;
  s.request_id = "tensor-parallel";
  s.text = "The lighthouse keeper looked at the sea and said";
  s.max_tokens = 32;
  s.temperature = 0.0f;
  const StreamResult got = RunStream(stub.get(), ToProto(s));
  ExpectSameAsDirect(got, Direct(s), static_cast<int>(PromptOf(s, *ref_).size()), "2 ranks");

  // Verified, then not loadable in that layout: exit 4 (the backend's
  // error), never SERVING.
  WorkerSpec three;
  three.model_path = model_path_;
  three.source_uri = kModelUri;
  three.flags = {"--backend=cpu", "--tensor_parallel=3", "--expert_parallel=1", "--max_sequences=2",
                 absl::StrCat("--max_context=", kContext), "--threads=1"};
  ExpectRefused(three, "tensor-parallel-3.log",
                "MODEL NOT LOADED: tensor parallelism over 3 ranks: the model's 2 KV heads do not split evenly; use "
                "1, 2 ranks",
                4);
}

TEST_F(WorkerE2eTest, WithoutClientAuthenticationTheWorkerRefusesToStartUnlessToldExplicitly) {
  ExpectConfigurationError({"--tls_client_ca="}, "no-client-ca.log", "client authentication is required");
  // Explicitly allowed: it serves anyone with TLS, and says so.
  auto w = StartWorker({"--tls_client_ca=", "--allow_unauthenticated_clients", "--max_sequences=2",
                        absl::StrCat("--max_context=", kContext), "--threads=1"},
                       "no-client-auth.log");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(absl::StrContains((*w)->Log(), "WARNING: --allow_unauthenticated_clients")) << (*w)->Log();
  const ClientTls anonymous{prov_->pki() + "/ca.pem", "", ""};
  auto stub = pb::InferenceService::NewStub(worker_test::MakeTlsChannel((*w)->port(), anonymous));
  pb::ModelInfo info;
  grpc::ClientContext ctx;
  const grpc::Status st = stub->GetModelInfo(&ctx, pb::GetModelInfoRequest(), &info);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

// ---- Hardening: the provenance connection ----------------------------------

TEST_F(WorkerE2eTest, TlsVerificationFailureTowardsTheProvenanceServiceIsNamedAndNotRetried) {
  // A second PKI: its CA signed neither the service's certificate nor is it
  // known to the service.
  const std::string other = *dir_ / "other-pki";
  std::string out;
  auto rc = worker_test::RunToCompletion(
      {"/bin/bash", std::string(OSSGATE_SOURCE_DIR) + "/tools/certs/make_dev_pki.sh", other, "worker:worker-1"}, &out);
  ASSERT_TRUE(rc.ok() && *rc == 0) << out;
  struct Case {
    const char* name;
    std::vector<std::string> flags;
  };
  const std::vector<Case> cases = {
      {"the worker does not trust the service's certificate", {"--provenance_ca=" + other + "/ca.pem"}},
      {"the service does not trust the worker's certificate",
       {"--provenance_cert=" + other + "/worker-worker-1.pem", "--provenance_key=" + other + "/worker-worker-1.key"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    WorkerSpec spec;
    spec.model_path = model_path_;
    spec.source_uri = kModelUri;
    spec.flags = c.flags;
    spec.flags.push_back("--verify_deadline_s=120");
    const absl::Time start = absl::Now();
    auto w = WorkerProcess::Spawn(Bins(), *prov_, spec, *dir_ / absl::StrCat("tls-", &c - cases.data(), ".log"),
                                  ClientIdentity());
    ASSERT_TRUE(w.ok()) << w.status();
    auto code = (*w)->process().Wait(absl::Seconds(120));
    ASSERT_TRUE(code.ok()) << code.status() << "\n" << (*w)->Log();
    const std::string log = (*w)->Log();
    EXPECT_EQ(*code, 3) << log;
    // Not retried for the deadline: a certificate does not change by waiting.
    EXPECT_LT(absl::Now() - start, absl::Seconds(30)) << log;
    EXPECT_FALSE(absl::StrContains(log, "attempt=2")) << log;
    EXPECT_TRUE(absl::StrContains(log, "TLS with the provenance service")) << log;
    EXPECT_FALSE(absl::StrContains(log, "unreachable")) << log;
  }
}

// ---- Hardening: signals while loading --------------------------------------

TEST_F(WorkerE2eTest, SigtermWhileLoadingEndsTheWorkerPromptlyWithoutAskingForAnApproval) {
  // A model of its own, trusted, so its audit records are this test's alone.
  const std::string path = *dir_ / "signal.gguf";
  tools::RandomModelSpec spec;
  ASSERT_TRUE(tools::ApplyPreset("tiny", &spec.config).ok());
  spec.seed = 77;
  spec.threads = 2;
  spec.name = "worker-e2e-signal";
  ASSERT_TRUE(tools::WriteRandomModel(spec, text::MakeTinyVocab(), path).ok());
  ASSERT_TRUE(prov_->TrustFile(kSource, "signal.gguf", path).ok());
  auto bytes = model::ReadModelFile(path);
  ASSERT_TRUE(bytes.ok()) << bytes.status();

  for (const char* phase : {"hashing", "verifying", "uploading"}) {
    for (int sig : {SIGTERM, SIGINT}) {
      SCOPED_TRACE(absl::StrCat(phase, " signal ", sig));
      WorkerSpec ws;
      ws.model_path = path;
      ws.source_uri = "ossgate://worker-tests/signal.gguf";
      // The test hook holds the load in `phase` for a minute.
      ws.flags = {absl::StrCat("--testonly_pause_at_phase=", phase), "--testonly_pause_s=60", "--threads=1"};
      auto w = WorkerProcess::Spawn(Bins(), *prov_, ws, *dir_ / absl::StrCat("signal-", phase, "-", sig, ".log"),
                                    ClientIdentity());
      ASSERT_TRUE(w.ok()) << w.status();
      const std::string marker = absl::StrCat("at phase=", phase);
      const absl::Time end = absl::Now() + absl::Seconds(60);
      while (!absl::StrContains((*w)->Log(), marker)) {
        ASSERT_LT(absl::Now(), end) << (*w)->Log();
        ASSERT_FALSE((*w)->process().Poll().has_value()) << (*w)->Log();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // poll interval
      }
      const int records_before = CountVerifyRecords(bytes->sha256());
      const absl::Time signalled = absl::Now();
      ASSERT_TRUE((*w)->process().Signal(sig).ok());
      auto code = (*w)->process().Wait(absl::Seconds(90));
      ASSERT_TRUE(code.ok()) << code.status() << "\n" << (*w)->Log();
      const std::string log = (*w)->Log();
      EXPECT_EQ(*code, 0) << log;
      EXPECT_LT(absl::Now() - signalled, absl::Seconds(5)) << log;  // far inside Kubernetes' 30 s
      EXPECT_EQ(CountVerifyRecords(bytes->sha256()), records_before) << "VerifyModel after the signal:\n" << log;
      EXPECT_FALSE(absl::StrContains(log, "ready:")) << log;
      EXPECT_TRUE(absl::StrContains(log, "while loading the model")) << log;
    }
  }
}

TEST_F(WorkerE2eTest, SecondWorkerOnATakenPortFailsToStart) {
  // gRPC would share the port (SO_REUSEPORT) and spread clients over both.
  auto w = worker_test::Process::Spawn(
      {INFERENCE_WORKER_BIN, absl::StrCat("--listen=127.0.0.1:", worker_->port()),
       "--tls_cert=" + prov_->pki() + "/server.pem", "--tls_key=" + prov_->pki() + "/server.key",
       "--tls_client_ca=" + prov_->pki() + "/ca.pem", "--model=" + model_path_,
       "--source_uri=" + std::string(kModelUri), "--worker_id=worker-1", "--provenance=" + prov_->address(),
       "--provenance_ca=" + prov_->pki() + "/ca.pem", "--provenance_cert=" + prov_->pki() + "/worker-worker-1.pem",
       "--provenance_key=" + prov_->pki() + "/worker-worker-1.key", "--pinned_keys=" + prov_->token_public_key_path()},
      *dir_ / "taken-port.log");
  ASSERT_TRUE(w.ok()) << w.status();
  auto code = (*w)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << (*w)->Log();
  EXPECT_EQ(*code, 2) << (*w)->Log();
  EXPECT_TRUE(absl::StrContains((*w)->Log(), "cannot listen on")) << (*w)->Log();
  // The first worker is unaffected.
  auto h = client::CheckHealth(worker_->channel(), kService);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(*h, client::HealthStatus::kServing);
}

}  // namespace
}  // namespace ossgate::worker
