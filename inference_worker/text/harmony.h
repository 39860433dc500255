// Harmony chat format of gpt-oss (spec §7.4): rendering a conversation into
// prompt tokens, and parsing generated tokens back into channel-tagged
// messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::text {

enum class Role { kSystem, kDeveloper, kUser, kAssistant, kTool };
enum class ReasoningEffort { kLow, kMedium, kHigh };

struct ToolDefinition {
  std::string name;         // e.g. "get_weather"
  std::string description;  // one line
  std::string parameters_typescript;  // TypeScript-like argument type, e.g. "{ location: string }"; empty = no args
};

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
absl::StatusOr<std::vector<int32_t>> RenderForCompletion(const Tokenizer& tokenizer, const Conversation& conv);

// One parsed message of the model's output.
struct ParsedMessage {
  Role role = Role::kAssistant;
  std::string channel;
  std::string recipient;
  std::string content_type;
  std::string content;
};

// Incremental parser of generated tokens (starting right after the prompt's
// "<|start|>assistant"). Not thread-safe.
class HarmonyParser {
 public:
  explicit HarmonyParser(const Tokenizer& tokenizer);

  struct Delta {
    std::string channel;  // channel of the message the text belongs to
    std::string text;     // content text that became complete (valid UTF-8)
  };
  // Feeds one token. Returns content text produced by it (header tokens give
  // none). Sets *stop when the token is <|return|> or <|call|>.
  Delta Push(int32_t token, bool* stop);
  // Messages completed so far (and the one in progress, if any, after Finish()).
  const std::vector<ParsedMessage>& messages() const { return messages_; }
  void Finish();
  // Channel of the message currently being generated.
  const std::string& current_channel() const { return current_.channel; }

 private:
  enum class State { kHeader, kContent, kBetween };
  const Tokenizer& tokenizer_;
  State state_ = State::kHeader;
  std::string header_text_;
  ParsedMessage current_;
  std::vector<ParsedMessage> messages_;
  StreamDecoder decoder_;
  std::optional<int32_t> start_, end_, message_, channel_, return_, call_, constrain_;
};

}  // namespace ossgate::text
