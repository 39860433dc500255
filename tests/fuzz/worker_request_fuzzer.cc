// Fuzz target: the inference worker's Generate request validation on
// arbitrary protobuf bytes. The worker's gRPC handler parses the bytes as a
// GenerateRequest and hands it to InferenceServiceImpl::BuildRequest (the
// engine-independent validation and prompt construction: text encoding,
// harmony rendering of a conversation, sampling and length limits, stops);
// this target does the same without a server or an engine. Tokenize and
// Detokenize validate inside their handlers and are not reachable here; the
// tokenizer itself is fuzzed by tokenizer_fuzzer.
//
// The first byte selects the model the request is checked against (bit 0:
// the o200k vocabulary, else the tiny one; bit 1: a 64-token context, else
// 8,192); the rest is the request.
// Properties: a refusal is INVALID_ARGUMENT whose message starts with the
// offending field; an accepted request fits the context, uses only ids of
// the vocabulary and carries sampling parameters in their documented ranges.
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/worker/inference_service.h"
#include "ossgate/inference/v1/inference.pb.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_tokenizers.h"

namespace {

using namespace ossgate;

// The field is a path that starts with a request field ("conversation",
// "sampling", ...); inside a tool's JSON Schema it continues with the
// client's own property names ("conversation.tools[0].parameters.properties.
// Zity.type", regressions/worker_request/crash-8c47...), which the renderer
// allows to hold any character that does not break the type syntax, so only
// whitespace, control characters, quotes and colons are excluded after the
// first character.
bool StartsWithFieldName(const std::string& message) {
  const size_t colon = message.find(": ");
  if (colon == std::string::npos || colon == 0) return false;
  if (!(message[0] >= 'a' && message[0] <= 'z')) return false;
  for (size_t i = 0; i < colon; ++i) {
    const auto c = static_cast<unsigned char>(message[i]);
    if (c <= ' ' || c == 0x7f || c == '"' || c == ':') return false;
  }
  return true;
}

worker::LoadedModelView MakeView(const text::Tokenizer& tok, int context_length, model::ModelConfig* config) {
  config->vocab_size = tok.vocab_size();
  worker::LoadedModelView view;
  view.tokenizer = &tok;
  view.config = config;
  view.context_length = context_length;
  return view;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fuzz::TinyTokenizer();
  (void)fuzz::O200kTokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  inference::v1::GenerateRequest req;
  if (!req.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;  // refused before the handler
  const text::Tokenizer& tok = (data[0] & 1) ? fuzz::O200kTokenizer() : fuzz::TinyTokenizer();
  const int context = (data[0] & 2) ? 64 : 8192;
  model::ModelConfig config;
  const worker::LoadedModelView view = MakeView(tok, context, &config);

  const auto built = worker::InferenceServiceImpl::BuildRequest(req, view);
  if (!built.ok()) {
    FUZZ_CHECK(built.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(StartsWithFieldName(std::string(built.status().message())));
    return 0;
  }
  const serving::GenerationRequest& g = *built;
  FUZZ_CHECK(g.request_id == req.request_id());
  FUZZ_CHECK(!g.prompt.empty() && static_cast<int>(g.prompt.size()) < context);
  for (int32_t id : g.prompt) FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
  FUZZ_CHECK(g.params.max_tokens >= 1 && static_cast<int>(g.prompt.size()) + g.params.max_tokens <= context);
  for (int32_t id : g.params.stop_token_ids) FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
  for (const std::string& s : g.params.stop_strings) FUZZ_CHECK(!s.empty() && s.size() <= 256);
  FUZZ_CHECK(g.logprobs <= 20);
  const model::SamplingParams& sp = g.params.sampling;
  FUZZ_CHECK(std::isfinite(sp.temperature) && sp.temperature >= 0);
  FUZZ_CHECK(sp.top_p > 0 && sp.top_p <= 1);
  FUZZ_CHECK(sp.top_k >= 0 && sp.top_k <= tok.vocab_size());
  FUZZ_CHECK(sp.min_p >= 0 && sp.min_p <= 1);
  FUZZ_CHECK(sp.repetition_penalty > 0 && sp.repetition_penalty <= 10);
  FUZZ_CHECK(sp.presence_penalty >= -2 && sp.presence_penalty <= 2);
  FUZZ_CHECK(sp.frequency_penalty >= -2 && sp.frequency_penalty <= 2);
  if (req.has_sampling() && req.sampling().has_seed()) FUZZ_CHECK(sp.seed == req.sampling().seed());
  FUZZ_CHECK(g.params.harmony == (req.prompt_case() == inference::v1::GenerateRequest::kConversation));
  return 0;
}
