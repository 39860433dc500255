// Validation of a generation request and its translation into an engine
// request, shared by both faces of the worker (the gRPC InferenceService and
// the OpenAI-compatible HTTP API): the ranges of the sampling parameters, the
// limits on prompts, stops and log-probabilities, rendering a conversation
// in the loaded model family's chat format (text::ChatFormat, chosen by the
// GGUF's general.architecture: harmony for gpt-oss, ChatML for Qwen2.5,
// Phi-3's) and the default stop tokens live here once.
//
// Each face turns its wire format into a GenerateSpec (format-neutral, with
// absent values left unset) and names its own fields in FieldNames, so an
// error says "<field>: <problem>" in the caller's vocabulary
// ("sampling.temperature: ..." over gRPC, "temperature: ..." over HTTP).
//
// Thread-safety: pure functions (the model view is only read).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/backend.h"
#include "inference_worker/serving/engine.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tokenizer.h"
#include "ossgate/inference/v1/inference.pb.h"

namespace ossgate::worker {

// Everything a face needs once the model is loaded. Owned elsewhere; must
// outlive the faces' use of it.
struct LoadedModelView {
  const gguf::GgufFile* file = nullptr;
  const text::Tokenizer* tokenizer = nullptr;
  serving::Engine* engine = nullptr;
  const model::ModelConfig* config = nullptr;
  int context_length = 0;  // serving limit per sequence
  ossgate::inference::v1::ModelInfo info;  // static part of GetModelInfo
};

// Limits (documented in inference.proto and docs/http.md).
inline constexpr size_t kMaxPromptBytes = 1 << 20;
inline constexpr size_t kMaxStopStrings = 16;
inline constexpr size_t kMaxStopBytes = 256;
inline constexpr size_t kMaxStopTokenIds = 16;
inline constexpr int kDefaultMaxTokensCap = 4096;
inline constexpr uint32_t kMaxLogprobs = 20;
inline constexpr size_t kMaxConversationMessages = 1024;
inline constexpr size_t kMaxTools = 128;  // the OpenAI API's limit

struct GenerateSpec {
  enum class Prompt { kNone, kText, kTokenIds, kConversation };

  std::string request_id;  // empty: the engine assigns one
  Prompt prompt = Prompt::kNone;
  std::string text;                // kText
  bool allow_special_tokens = false;
  std::vector<int32_t> token_ids;  // kTokenIds
  text::Conversation conversation;  // kConversation (roles already checked by the face)
  // Fields of the request that only the harmony format (gpt-oss) has, named
  // as the face spells them ("reasoning_effort", "messages[2].tool_calls"),
  // for what the Conversation cannot show (a reasoning effort equal to the
  // default, tools dropped by tool_choice none). A model family with another
  // chat format refuses the first with InvalidArgument.
  std::vector<std::string> harmony_only_fields;

  std::optional<float> temperature, top_p, min_p, repetition_penalty, presence_penalty, frequency_penalty;
  std::optional<uint32_t> top_k;
  std::optional<uint64_t> seed;  // absent: a random seed

  std::optional<uint32_t> max_tokens;  // absent: the rest of the context, capped at kDefaultMaxTokensCap
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  std::optional<uint32_t> logprobs;  // top alternatives, 0..kMaxLogprobs; absent = none
};

// How each face names the fields in its error messages. The defaults are
// the gRPC GenerateRequest's.
struct FieldNames {
  std::string request_id = "request_id";
  std::string text = "text";
  std::string token_ids = "token_ids";          // the prompt as a whole (too long)
  std::string token_id_list = "token_ids.ids";  // empty, or one bad id ("token_ids.ids[3]")
  std::string conversation = "conversation";
  std::string temperature = "sampling.temperature";
  std::string top_p = "sampling.top_p";
  std::string top_k = "sampling.top_k";
  std::string min_p = "sampling.min_p";
  std::string repetition_penalty = "sampling.repetition_penalty";
  std::string presence_penalty = "sampling.presence_penalty";
  std::string frequency_penalty = "sampling.frequency_penalty";
  std::string max_tokens = "max_tokens";
  std::string stop = "stop";
  std::string stop_token_ids = "stop_token_ids";
  std::string logprobs = "logprobs";
};

// Whether `id` is a valid client-chosen request id (at most 128 characters
// from [A-Za-z0-9._:-]; empty is valid and means "assign one").
bool ValidRequestId(const std::string& id);

// One function tool as a face received it: the parameters as JSON Schema
// text in the client's key order (empty = no parameters).
struct ToolSpec {
  std::string name;
  std::string description;
  std::string parameters_json;
};

// The tools of a conversation through the one renderer
// (text::ToolFromJsonSchema), for both faces: at most kMaxTools, names
// unique. Errors are InvalidArgument naming the field as the face spells
// it: "<field>: at most 128 tools", or "<field>[i].<member><renderer's
// field>: ..." (gRPC: field "conversation.tools", member ""; HTTP: "tools",
// "function."), e.g. "tools[2].function.parameters.properties.city.type: ...".
absl::StatusOr<std::vector<text::ToolDefinition>> BuildTools(const std::vector<ToolSpec>& specs,
                                                             const std::string& field, const std::string& member);

// InvalidArgument("<field>: <problem>") for a bad request, naming the field
// as `names` spells it; otherwise the engine request (owner left empty).
// Conversations are rendered in the chat format of model.file's
// general.architecture (harmony when there is no file, as in tests); a
// family other than harmony refuses harmony-only fields, and its end-of-turn
// tokens are the default stop tokens (conversations always stop there; text
// prompts unless ignore_eos). A text prompt starts with BOS when the
// tokenizer says so (add_bos_token).
absl::StatusOr<serving::GenerationRequest> BuildGenerationRequest(const GenerateSpec& spec,
                                                                  const LoadedModelView& model,
                                                                  const FieldNames& names = FieldNames());

}  // namespace ossgate::worker
