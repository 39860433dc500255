// Fuzz target: the HTTP API's request path without a server
// (inference_worker/http/openai_api.h): a body of /v1/chat/completions or
// /v1/completions parsed by ParseRequest, then validated and rendered by the
// shared BuildGenerationRequest, as HttpServer::Generate does; and the
// response side fed with engine chunks made from the rest of the input.
//
// The first byte selects the endpoint (bit 0), the vocabulary (bit 1: o200k,
// else tiny) and the context (bit 2: 64 tokens, else 8,192); the rest is the
// body.
// Properties: nothing throws; a refusal is a 400 with a message, naming a
// parameter when it has one, and renders as the OpenAI error shape; an
// accepted chat request is rendered in harmony, an accepted request fits the
// context and carries sampling parameters in range; the response JSON of
// chunks built from the input dumps without throwing, and analysis text never
// reaches `content`.
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "inference_worker/http/openai_api.h"
#include "inference_worker/model/model_config.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_tokenizers.h"

namespace {

using namespace ossgate;
using json = nlohmann::json;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fuzz::TinyTokenizer();
  (void)fuzz::O200kTokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const http::Endpoint endpoint = (data[0] & 1) ? http::Endpoint::kCompletions : http::Endpoint::kChatCompletions;
  const text::Tokenizer& tok = (data[0] & 2) ? fuzz::O200kTokenizer() : fuzz::TinyTokenizer();
  const int context = (data[0] & 4) ? 64 : 8192;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);

  auto parsed = http::ParseRequest(endpoint, body);
  if (auto* e = std::get_if<http::ApiError>(&parsed)) {
    FUZZ_CHECK(e->status == 400);
    FUZZ_CHECK(!e->message.empty());
    const json j = http::ErrorJson(*e);
    FUZZ_CHECK(j["error"].contains("param") && j["error"].contains("code") && j["error"].contains("type"));
    (void)http::Dump(j);
    return 0;
  }
  const http::OpenAiRequest& r = std::get<http::OpenAiRequest>(parsed);
  FUZZ_CHECK(!r.model.empty());
  FUZZ_CHECK((r.spec.prompt == worker::GenerateSpec::Prompt::kConversation) ==
             (endpoint == http::Endpoint::kChatCompletions));

  model::ModelConfig config;
  config.vocab_size = tok.vocab_size();
  worker::LoadedModelView view;
  view.tokenizer = &tok;
  view.config = &config;
  view.context_length = context;
  const auto built = worker::BuildGenerationRequest(r.spec, view, r.names);
  if (!built.ok()) {
    FUZZ_CHECK(built.status().code() == absl::StatusCode::kInvalidArgument);
    const http::ApiError e = http::ErrorFromStatus(built.status());
    FUZZ_CHECK(e.status == 400 && !e.param.empty());
    (void)http::Dump(http::ErrorJson(e));
    return 0;
  }
  const serving::GenerationRequest& g = *built;
  FUZZ_CHECK(g.params.harmony == (endpoint == http::Endpoint::kChatCompletions));
  FUZZ_CHECK(!g.prompt.empty() && static_cast<int>(g.prompt.size()) < context);
  FUZZ_CHECK(g.params.max_tokens >= 1 && static_cast<int>(g.prompt.size()) + g.params.max_tokens <= context);
  const model::SamplingParams& sp = g.params.sampling;
  FUZZ_CHECK(std::isfinite(sp.temperature) && sp.temperature >= 0 && sp.temperature <= 2);
  FUZZ_CHECK(sp.top_p > 0 && sp.top_p <= 1);
  FUZZ_CHECK(sp.presence_penalty >= -2 && sp.presence_penalty <= 2);
  FUZZ_CHECK(sp.frequency_penalty >= -2 && sp.frequency_penalty <= 2);
  FUZZ_CHECK(g.logprobs <= 20);

  // The response side, with the body's bytes as output text: one analysis
  // chunk and one final chunk per byte pair.
  http::ResponseBuilder stream(r, "id", 0, r.model, tok);
  http::ResponseBuilder whole(r, "id", 0, r.model, tok);
  (void)stream.Begin();
  for (size_t i = 0; i + 1 < body.size() && i < 64; i += 2) {
    serving::OutputChunk c;
    c.tokens = {static_cast<int32_t>(static_cast<uint8_t>(body[i])) % tok.vocab_size()};
    c.text = std::string(1, body[i + 1]);
    c.channel = (body[i] & 1) ? "analysis" : "final";
    if (r.logprobs) c.logprobs = {{c.tokens[0], -1.0f, {{c.tokens[0], -1.0f}}}};
    for (const json& j : stream.Stream(c)) (void)http::Dump(j);
    whole.Add(c);
  }
  serving::OutputChunk end;
  end.final = true;
  end.finish = model::FinishReason::kStop;
  for (const json& j : stream.Stream(end)) (void)http::Dump(j);
  whole.Add(end);
  auto out = whole.Response();
  FUZZ_CHECK(std::holds_alternative<json>(out));
  (void)http::Dump(std::get<json>(out));
  return 0;
}
