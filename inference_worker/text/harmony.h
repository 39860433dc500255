// Harmony chat format of gpt-oss (spec §7.4): rendering a conversation into
// prompt tokens, and parsing generated tokens back into channel-tagged
// messages. docs/tokenizer.md shows rendered examples.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::text {

enum class Role { kSystem, kDeveloper, kUser, kAssistant, kTool };
enum class ReasoningEffort { kLow, kMedium, kHigh };

// A function tool of the "functions" namespace. Build one from a JSON Schema
// with ToolFromJsonSchema (tool_schema.h), which writes parameters_typescript.
struct ToolDefinition {
  std::string name;         // e.g. "get_weather"; see IsValidToolName
  std::string description;  // each line becomes a "// " comment above the type; empty = none
  std::string parameters_typescript;  // TypeScript-like argument type, e.g. "{ location: string }"; empty = no args
};

// Whether `name` may name a function tool: 1..kMaxToolNameBytes characters
// of [A-Za-z0-9_-], the OpenAI API's rule for function names. Such a name is
// safe in the "type NAME = ..." line and in the header " to=functions.NAME".
inline constexpr size_t kMaxToolNameBytes = 64;
bool IsValidToolName(std::string_view name);

// One turn of the conversation. Rendered headers (spec §7.4):
//   user       <|start|>user<|message|>{content}<|end|>
//   assistant  <|start|>assistant<|channel|>{channel}[ to={recipient}][ <|constrain|>{content_type}]<|message|>{content}
//              then <|call|> when recipient is set (a tool call), else <|end|>
//   tool       <|start|>{author} to={recipient or "assistant"}<|channel|>{channel or "commentary"}<|message|>{content}<|end|>
// An empty channel renders no <|channel|> part (assistant) or "commentary"
// (tool). Roles kSystem and kDeveloper are not allowed here: the system and
// developer messages come from the Conversation fields.
struct Message {
  Role role = Role::kUser;
  std::string content;
  std::string channel;       // "analysis", "commentary", "final" or empty
  std::string recipient;     // e.g. "functions.get_weather" for tool calls; empty = none
  std::string content_type;  // e.g. "json" (rendered as " <|constrain|>json"); empty = none
  std::string author;        // tool messages: the tool's name, e.g. "functions.get_weather"
};

struct Conversation {
  // System message fields (always rendered first).
  std::string model_identity = "You are ChatGPT, a large language model trained by OpenAI.";
  std::string knowledge_cutoff = "2024-06";
  std::string current_date;  // YYYY-MM-DD; empty = line omitted
  ReasoningEffort reasoning = ReasoningEffort::kMedium;
  // Developer message ("# Instructions"); empty instructions and no tools = no developer message.
  std::string developer_instructions;
  std::vector<ToolDefinition> tools;
  std::vector<Message> messages;  // user, assistant and tool turns in order
};

// Renders the conversation followed by "<|start|>assistant" (the generation
// prompt). Message content is encoded as ordinary text, so special-token
// strings typed by a user cannot inject control tokens.
//
// The system message is always rendered: identity, "Knowledge cutoff: ..."
// and "Current date: ..." lines (each omitted when empty), "Reasoning: ...",
// and "# Valid channels: analysis, commentary, final. Channel must be
// included for every message." plus, when tools exist, "\nCalls to these
// tools must go to the commentary channel: 'functions'.", sections joined by
// blank lines. The developer message ("# Instructions\n\n{instructions}" and
// the "# Tools" section with the functions namespace) is rendered when there
// are instructions or tools. Assistant messages on the "analysis" channel
// are dropped when a later assistant message is on the "final" channel (the
// turn they reasoned for is over); the chain of thought of the turn still in
// progress, across tool calls, is kept.
//
// Errors: InvalidArgument naming the bad field (messages[i].role,
// messages[i].author, tools[i].name); FailedPrecondition if the tokenizer
// lacks a harmony special token.
absl::StatusOr<std::vector<int32_t>> RenderForCompletion(const Tokenizer& tokenizer, const Conversation& conv);

// The text RenderForCompletion encodes, with special tokens written as their
// text: Encode(RenderForCompletionText(c), /*allow_special=*/true) gives the
// same ids whenever no message content itself contains special-token text.
// For logs, tests and debugging.
absl::StatusOr<std::string> RenderForCompletionText(const Conversation& conv);

// One parsed message of the model's output.
struct ParsedMessage {
  Role role = Role::kAssistant;
  std::string channel;
  std::string recipient;     // "functions.get_weather" from " to=functions.get_weather"
  std::string content_type;  // "json" from " <|constrain|>json"
  std::string content;       // valid UTF-8
  std::string author;        // the header's role text when it is not a known role (kTool)
};

// Incremental parser of generated tokens (starting right after the prompt's
// "<|start|>assistant", so the first message's role is assistant and its
// header starts with <|channel|>). Not thread-safe. Lenient: malformed
// sequences never fail; a message missing <|end|> before the next <|start|>
// is closed there, and header text where a message was expected to start
// begins a new header.
class HarmonyParser {
 public:
  // `tokenizer` must outlive the parser. Special tokens are looked up by text.
  explicit HarmonyParser(const Tokenizer& tokenizer);

  struct Delta {
    // Header of the message the text belongs to.
    std::string channel;
    std::string recipient;     // e.g. "functions.get_weather" for a tool call
    std::string content_type;  // e.g. "json"
    std::string text;          // content text that became complete (valid UTF-8)
  };
  // Feeds one token. Returns content text produced by it (header tokens give
  // none; bytes of a split UTF-8 character are held until it completes). Sets
  // *stop (if not null) to true when the token is <|return|> or <|call|> and
  // to false otherwise; <|end|> only ends a message.
  Delta Push(int32_t token, bool* stop);
  // Messages completed so far (and the one in progress, if any, after Finish()).
  const std::vector<ParsedMessage>& messages() const { return messages_; }
  // Closes the message in progress (generation ended without a stop token):
  // held-back bytes of an incomplete character become U+FFFD in its content.
  void Finish();
  // Channel of the message currently being generated (empty while its header
  // is incomplete and between messages).
  const std::string& current_channel() const { return current_.channel; }
  // Whether the last token pushed was <|call|> ending a message addressed to
  // a function tool ("functions.NAME"): the model stopped to wait for the
  // tool's reply (OpenAI's finish_reason "tool_calls").
  bool stopped_for_tool_call() const { return stopped_for_tool_call_; }

 private:
  enum class State { kHeader, kContent, kBetween };
  void BeginHeader(bool role_known);
  void ParseHeader();
  // Ends the current message; returns text flushed from the decoder.
  std::string CloseMessage();

  const Tokenizer& tokenizer_;
  State state_ = State::kHeader;
  bool role_known_ = true;  // header carries no role text (first message)
  std::string header_text_;  // header bytes, special tokens as their text
  ParsedMessage current_;
  std::vector<ParsedMessage> messages_;
  StreamDecoder decoder_;
  std::optional<int32_t> start_, end_, message_, channel_, return_, call_, constrain_;
  bool stopped_for_tool_call_ = false;
};

// One call of a function tool, as the model wrote it.
struct ToolCall {
  std::string name;       // the recipient without "functions.", e.g. "get_weather"
  std::string arguments;  // the message content as written (JSON text when the model followed the schema)
};

// A generated reply split the way OpenAI-style APIs return it.
struct AssistantReply {
  std::string reasoning;  // "analysis" messages, joined by "\n"
  std::string content;    // "final" messages and preambles, joined by "\n"
  std::vector<ToolCall> tool_calls;  // in the order the model made them
};

// Splits parsed messages (HarmonyParser::messages(), after Finish() when the
// reply may be unterminated):
//   recipient "functions.NAME" (any channel)     -> a ToolCall
//   channel "analysis"                           -> reasoning
//   channel "final" (or none)                    -> content
//   channel "commentary" without a recipient     -> content: harmony calls
//       these preambles, text the model means the user to see while it
//       works with tools; vLLM's gpt-oss parsers return them as content too
//   any other recipient (a built-in tool such as "browser.search" or
//       "python" that this server does not offer) -> dropped
// Messages of other roles than the assistant are ignored.
AssistantReply SplitReply(const std::vector<ParsedMessage>& messages);

}  // namespace ossgate::text
