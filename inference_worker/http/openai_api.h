// The OpenAI-compatible HTTP API's JSON: request bodies of
// /v1/chat/completions and /v1/completions turned into the worker's
// GenerateSpec (validation shared with gRPC in worker/request_builder.h),
// engine output turned into response bodies and server-sent-event chunks,
// and errors in OpenAI's shape. No I/O here: the server (http_server.h)
// moves bytes, this file decides what they say. docs/http.md documents the
// parameters.
//
// gpt-oss semantics, as vLLM serves gpt-oss: text of the harmony "analysis"
// channel is `reasoning_content` (message and delta), never `content`;
// "final" and "commentary" text is `content`.
//
// For the other model families (Qwen2.5's ChatML, Phi-3) the same
// Conversation is rendered in their chat format by the request builder:
// system/developer messages become the system message, user and assistant
// messages their turns, and the reply is plain content; the harmony-only
// parameters (tools, reasoning_effort, an assistant's reasoning_content or
// tool_calls, tool messages) are listed in GenerateSpec::harmony_only_fields
// and refused there with a 400 naming the parameter.
//
// Chat messages become a harmony text::Conversation: leading system and
// developer messages become the developer message's instructions (joined by
// a blank line, in order; the gpt-oss chat template and openai-harmony's
// DeveloperContent.with_instructions do the same; vLLM instead renders them
// as extra raw harmony messages, which this renderer does not have); the
// harmony system message (model identity, knowledge cutoff, reasoning
// effort) is always the worker's. user messages are user turns; assistant
// messages are final-channel turns, preceded by an analysis turn when they
// carry `reasoning_content` (or vLLM's `reasoning`).
//
// Function tools (the OpenAI `tools` parameter) go through the renderer the
// gRPC face uses (worker::BuildTools -> text::ToolFromJsonSchema), from an
// order-keeping parse of the body (harmony renders properties in the
// client's order); tool_choice "auto" (default) or "none" (tools checked,
// not rendered, as in vLLM); "required" and named functions are refused
// (the worker cannot force a call). Assistant `tool_calls` become
// commentary messages to functions.NAME with content type json (text beside
// them the commentary preamble), `tool` messages the tool's reply authored
// functions.NAME (the name found through tool_call_id). In the output, text
// of a message to functions.NAME is the arguments of a tool call
// (message.tool_calls / delta.tool_calls, id "call_" + 24 hex digits), and a
// reply that ended with <|call|> has finish_reason "tool_calls".
//
// Thread-safety: pure functions; a ResponseBuilder belongs to one request.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "inference_worker/serving/engine.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/worker/request_builder.h"
#include "nlohmann/json.hpp"

namespace ossgate::http {

// {"error": {"message", "type", "param", "code"}} with its HTTP status.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
};

nlohmann::json ErrorJson(const ApiError& e);

// 400 invalid_request_error naming `param`.
ApiError BadParam(const std::string& param, const std::string& message);

// A status of the request builder or the engine as an API error:
// InvalidArgument -> 400 with `param` taken from the "<field>: " prefix,
// ResourceExhausted -> 429, Unavailable -> 503, Unauthenticated -> 401,
// PermissionDenied -> 403, NotFound -> 404, AlreadyExists -> 409, the rest
// -> 500.
ApiError ErrorFromStatus(const absl::Status& s);

// JSON text for the wire. Invalid UTF-8 (which a token's bytes can be) is
// replaced by U+FFFD instead of throwing.
std::string Dump(const nlohmann::json& j);

enum class Endpoint { kChatCompletions, kCompletions };

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kChatCompletions;
  worker::GenerateSpec spec;
  worker::FieldNames names;  // how BuildGenerationRequest names this request's fields
  std::string model;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // return log-probabilities (chat: logprobs; completions: logprobs present)
  int top_logprobs = 0;
  std::string user;  // untrusted, for logs only
};

// Parses a request body of `endpoint`. Unknown fields are ignored and null
// counts as absent, as in the OpenAI API; wrong types, out-of-range values
// and unsupported features give a 400 naming the parameter.
std::variant<OpenAiRequest, ApiError> ParseRequest(Endpoint endpoint, const std::string& body);

// Turns the engine's output chunks of one request into response JSON.
class ResponseBuilder {
 public:
  // `id` is the response id ("chatcmpl-..." or "cmpl-..."); `created` Unix
  // seconds; `model` the served model id. `tokenizer` must outlive this.
  ResponseBuilder(const OpenAiRequest& request, std::string id, int64_t created, std::string model,
                  const text::Tokenizer& tokenizer);

  // Streaming: the `data:` payloads to send before any output (chat: the
  // assistant role delta).
  std::vector<nlohmann::json> Begin();
  // Streaming: the payloads for one engine chunk (none for chunks without
  // text, e.g. harmony headers); after the final chunk, the finish chunk and,
  // with include_usage, the usage chunk. An error or cancellation ends the
  // stream with {"error": ...}. "[DONE]" is the server's.
  std::vector<nlohmann::json> Stream(const serving::OutputChunk& chunk);

  // Non-streaming: adds a chunk; Response() then gives the body, or the
  // error when generation failed or was cancelled.
  void Add(const serving::OutputChunk& chunk);
  std::variant<nlohmann::json, ApiError> Response() const;

 private:
  bool chat() const { return request_.endpoint == Endpoint::kChatCompletions; }
  // Where a chunk's text goes: reasoning_content (analysis channel), the
  // arguments of a tool call (a message to functions.NAME), nowhere (a
  // message to a built-in tool the worker does not offer) or content.
  enum class Route { kContent, kReasoning, kToolCall, kDropped };
  Route RouteOf(const serving::OutputChunk& chunk) const;
  static bool IsReasoning(const std::string& channel) { return channel == "analysis"; }
  // Adds a tool-call chunk's text to the call in progress, or starts a new
  // call (true) when the recipient changed or another message came between.
  bool AddToolText(const serving::OutputChunk& chunk);
  nlohmann::json ToolCallsJson() const;
  static std::string NewCallId();  // "call_" + 24 random hex digits
  nlohmann::json ChunkEnvelope() const;
  nlohmann::json LogprobsJson(const serving::OutputChunk& chunk, size_t text_offset) const;
  nlohmann::json UsageJson() const;
  static std::string FinishReason(model::FinishReason r);
  static ApiError FailureOf(const serving::OutputChunk& chunk);

  const OpenAiRequest request_;
  const std::string id_;
  const int64_t created_;
  const std::string model_;
  const text::Tokenizer& tokenizer_;

  // Accumulated (non-streaming) and bookkeeping for both modes.
  std::string content_, reasoning_;
  nlohmann::json logprobs_ = nullptr;
  size_t text_offset_ = 0;
  bool final_seen_ = false;
  serving::OutputChunk final_;
  struct Call {
    std::string id, name, arguments;
    bool closed = false;  // a message to another recipient came after it
  };
  std::vector<Call> calls_;
};

}  // namespace ossgate::http
