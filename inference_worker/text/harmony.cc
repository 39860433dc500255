#include "inference_worker/text/harmony.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "inference_worker/text/utf8.h"

namespace ossgate::text {
namespace {

constexpr char kStart[] = "<|start|>";
constexpr char kEnd[] = "<|end|>";
constexpr char kMessage[] = "<|message|>";
constexpr char kChannel[] = "<|channel|>";
constexpr char kConstrain[] = "<|constrain|>";
constexpr char kReturn[] = "<|return|>";
constexpr char kCall[] = "<|call|>";
constexpr char kFunctionsPrefix[] = "functions.";

// A rendered prompt as a sequence of special tokens and ordinary text, so
// that the token and text renderings cannot drift apart.
struct Segment {
  bool special;
  std::string text;
};

class PromptBuilder {
 public:
  void Special(const char* token) { segments_.push_back({true, token}); }
  void Text(std::string text) {
    if (!text.empty()) segments_.push_back({false, std::move(text)});
  }
  const std::vector<Segment>& segments() const { return segments_; }

 private:
  std::vector<Segment> segments_;
};

const char* EffortName(ReasoningEffort effort) {
  switch (effort) {
    case ReasoningEffort::kLow:
      return "low";
    case ReasoningEffort::kMedium:
      return "medium";
    case ReasoningEffort::kHigh:
      return "high";
  }
  return "medium";
}

std::string SystemContent(const Conversation& conv) {
  std::vector<std::string> head;
  if (!conv.model_identity.empty()) head.push_back(conv.model_identity);
  if (!conv.knowledge_cutoff.empty()) head.push_back(absl::StrCat("Knowledge cutoff: ", conv.knowledge_cutoff));
  if (!conv.current_date.empty()) head.push_back(absl::StrCat("Current date: ", conv.current_date));
  std::vector<std::string> sections;
  if (!head.empty()) sections.push_back(absl::StrJoin(head, "\n"));
  sections.push_back(absl::StrCat("Reasoning: ", EffortName(conv.reasoning)));
  std::string channels = "# Valid channels: analysis, commentary, final. Channel must be included for every message.";
  if (!conv.tools.empty()) channels += "\nCalls to these tools must go to the commentary channel: 'functions'.";
  sections.push_back(std::move(channels));
  return absl::StrJoin(sections, "\n\n");
}

// The lines of a tool description as harmony's renderer splits it (Rust's
// str::lines): at "\n", a "\r" before it dropped, no line after a final
// "\n"; empty lines in between are kept (they become "// " lines).
std::vector<absl::string_view> DescriptionLines(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (absl::string_view& line : lines) absl::ConsumeSuffix(&line, "\r");
  return lines;
}

// The functions namespace in the TypeScript-like form of HARM docs/format.md:
// a comment line per description line, then the type; a blank line after each.
std::string ToolsSection(const std::vector<ToolDefinition>& tools) {
  std::string ns = "## functions\n\nnamespace functions {\n\n";
  for (const ToolDefinition& tool : tools) {
    for (absl::string_view line : DescriptionLines(tool.description)) absl::StrAppend(&ns, "// ", line, "\n");
    if (tool.parameters_typescript.empty()) {
      absl::StrAppend(&ns, "type ", tool.name, " = () => any;\n\n");
    } else {
      absl::StrAppend(&ns, "type ", tool.name, " = (_: ", tool.parameters_typescript, ") => any;\n\n");
    }
  }
  ns += "} // namespace functions";
  return absl::StrCat("# Tools\n\n", ns);
}

absl::StatusOr<std::vector<Segment>> BuildPrompt(const Conversation& conv) {
  for (size_t i = 0; i < conv.tools.size(); ++i) {
    if (!IsValidToolName(conv.tools[i].name)) {
      return absl::InvalidArgumentError(absl::StrCat("tools[", i, "].name \"", conv.tools[i].name, "\" must be 1..",
                                                     kMaxToolNameBytes, " characters of [A-Za-z0-9_-]"));
    }
  }
  PromptBuilder b;
  b.Special(kStart);
  b.Text("system");
  b.Special(kMessage);
  b.Text(SystemContent(conv));
  b.Special(kEnd);

  if (!conv.developer_instructions.empty() || !conv.tools.empty()) {
    std::vector<std::string> sections;
    if (!conv.developer_instructions.empty()) {
      sections.push_back("# Instructions");
      sections.push_back(conv.developer_instructions);
    }
    if (!conv.tools.empty()) sections.push_back(ToolsSection(conv.tools));
    b.Special(kStart);
    b.Text("developer");
    b.Special(kMessage);
    b.Text(absl::StrJoin(sections, "\n\n"));
    b.Special(kEnd);
  }

  // An analysis message is dropped once a later assistant message is final.
  std::vector<bool> final_follows(conv.messages.size(), false);
  bool seen_final = false;
  for (size_t i = conv.messages.size(); i-- > 0;) {
    final_follows[i] = seen_final;
    const Message& m = conv.messages[i];
    if (m.role == Role::kAssistant && m.channel == "final") seen_final = true;
  }

  for (size_t i = 0; i < conv.messages.size(); ++i) {
    const Message& m = conv.messages[i];
    switch (m.role) {
      case Role::kSystem:
      case Role::kDeveloper:
        return absl::InvalidArgumentError(
            absl::StrCat("messages[", i, "].role: system and developer content goes in the Conversation fields "
                                         "(model_identity, developer_instructions, tools), not in messages"));
      case Role::kUser:
        b.Special(kStart);
        b.Text("user");
        if (!m.recipient.empty()) b.Text(absl::StrCat(" to=", m.recipient));
        if (!m.channel.empty()) {
          b.Special(kChannel);
          b.Text(m.channel);
        }
        break;
      case Role::kAssistant:
        if (m.channel == "analysis" && final_follows[i]) continue;
        b.Special(kStart);
        b.Text("assistant");
        if (!m.channel.empty()) {
          b.Special(kChannel);
          b.Text(m.channel);
        }
        if (!m.recipient.empty()) b.Text(absl::StrCat(" to=", m.recipient));
        break;
      case Role::kTool:
        if (m.author.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "messages[", i, "].author: a tool message needs the tool's name, e.g. \"functions.get_weather\""));
        }
        b.Special(kStart);
        b.Text(m.author);
        b.Text(absl::StrCat(" to=", m.recipient.empty() ? "assistant" : m.recipient));
        b.Special(kChannel);
        b.Text(m.channel.empty() ? "commentary" : m.channel);
        break;
    }
    if (!m.content_type.empty()) {
      b.Text(" ");
      b.Special(kConstrain);
      b.Text(m.content_type);
    }
    b.Special(kMessage);
    b.Text(m.content);
    b.Special(m.role == Role::kAssistant && !m.recipient.empty() ? kCall : kEnd);
  }
  b.Special(kStart);
  b.Text("assistant");
  return b.segments();
}

}  // namespace

bool IsValidToolName(std::string_view name) {
  if (name.empty() || name.size() > kMaxToolNameBytes) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

absl::StatusOr<std::vector<int32_t>> RenderForCompletion(const Tokenizer& tokenizer, const Conversation& conv) {
  absl::StatusOr<std::vector<Segment>> segments = BuildPrompt(conv);
  if (!segments.ok()) return segments.status();
  std::vector<int32_t> ids;
  for (const Segment& s : *segments) {
    if (s.special) {
      std::optional<int32_t> id = tokenizer.SpecialTokenId(s.text);
      if (!id.has_value()) {
        return absl::FailedPreconditionError(absl::StrCat("the tokenizer has no special token ", s.text,
                                                          "; the harmony format needs the o200k_harmony specials"));
      }
      ids.push_back(*id);
    } else {
      std::vector<int32_t> part = tokenizer.Encode(s.text, /*allow_special=*/false);
      ids.insert(ids.end(), part.begin(), part.end());
    }
  }
  return ids;
}

absl::StatusOr<std::string> RenderForCompletionText(const Conversation& conv) {
  absl::StatusOr<std::vector<Segment>> segments = BuildPrompt(conv);
  if (!segments.ok()) return segments.status();
  std::string text;
  for (const Segment& s : *segments) text += s.text;
  return text;
}

HarmonyParser::HarmonyParser(const Tokenizer& tokenizer)
    : tokenizer_(tokenizer),
      decoder_(tokenizer),
      start_(tokenizer.SpecialTokenId(kStart)),
      end_(tokenizer.SpecialTokenId(kEnd)),
      message_(tokenizer.SpecialTokenId(kMessage)),
      channel_(tokenizer.SpecialTokenId(kChannel)),
      return_(tokenizer.SpecialTokenId(kReturn)),
      call_(tokenizer.SpecialTokenId(kCall)),
      constrain_(tokenizer.SpecialTokenId(kConstrain)) {}

void HarmonyParser::BeginHeader(bool role_known) {
  state_ = State::kHeader;
  role_known_ = role_known;
  header_text_.clear();
  current_ = ParsedMessage();
}

// Header grammar (spec §7.4): [role] [" to=" recipient] [<|channel|> channel
// [" to=" recipient]] [" <|constrain|>" type]. Words are split on spaces;
// a stray word after the channel without <|constrain|> is taken as the type.
void HarmonyParser::ParseHeader() {
  std::string text = SanitizeUtf8(header_text_);
  if (size_t c = text.find(kConstrain); c != std::string::npos) {
    current_.content_type = std::string(absl::StripAsciiWhitespace(absl::string_view(text).substr(c + sizeof(kConstrain) - 1)));
    text.resize(c);
  }
  absl::string_view before = text, after;
  const size_t ch = text.find(kChannel);
  if (ch != std::string::npos) {
    before = absl::string_view(text).substr(0, ch);
    after = absl::string_view(text).substr(ch + sizeof(kChannel) - 1);
  }
  std::vector<absl::string_view> role_words = absl::StrSplit(before, ' ', absl::SkipEmpty());
  size_t w = 0;
  if (!role_known_ && w < role_words.size()) {
    const absl::string_view role = role_words[w++];
    if (role == "assistant") current_.role = Role::kAssistant;
    else if (role == "user") current_.role = Role::kUser;
    else if (role == "system") current_.role = Role::kSystem;
    else if (role == "developer") current_.role = Role::kDeveloper;
    else current_.role = Role::kTool, current_.author = std::string(role);
  }
  for (; w < role_words.size(); ++w) {
    if (absl::ConsumePrefix(&role_words[w], "to=")) current_.recipient = std::string(role_words[w]);
  }
  bool have_channel = false;
  for (absl::string_view word : absl::StrSplit(after, ' ', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&word, "to=")) {
      current_.recipient = std::string(word);
    } else if (!have_channel) {
      current_.channel = std::string(word);
      have_channel = true;
    } else if (current_.content_type.empty()) {
      current_.content_type = std::string(word);
    }
  }
}

std::string HarmonyParser::CloseMessage() {
  std::string flushed;
  if (state_ == State::kHeader) ParseHeader();  // header without content
  else flushed = decoder_.Flush();
  current_.content += flushed;
  messages_.push_back(std::move(current_));
  current_ = ParsedMessage();
  header_text_.clear();
  state_ = State::kBetween;
  return flushed;
}

HarmonyParser::Delta HarmonyParser::Push(int32_t token, bool* stop) {
  const bool is_stop = token == return_ || token == call_;
  if (stop != nullptr) *stop = is_stop;
  stopped_for_tool_call_ = false;
  Delta delta;
  const bool ends_message = is_stop || token == end_;
  const size_t closed_before = messages_.size();
  switch (state_) {
    case State::kBetween:
      if (token == start_) {
        BeginHeader(/*role_known=*/false);
      } else if (!ends_message) {
        // Header text without <|start|>: lenient, treat it as a new header
        // (<|channel|> alone implies the assistant is still speaking).
        BeginHeader(/*role_known=*/token == channel_);
        header_text_ += tokenizer_.TokenBytes(token);
      }
      break;
    case State::kHeader:
      if (token == message_) {
        ParseHeader();
        state_ = State::kContent;
      } else if (token == start_) {
        BeginHeader(/*role_known=*/false);  // abandoned header: start over
      } else if (ends_message) {
        CloseMessage();
        delta.channel = messages_.back().channel;
        delta.recipient = messages_.back().recipient;
        delta.content_type = messages_.back().content_type;
      } else {
        header_text_ += tokenizer_.TokenBytes(token);
      }
      break;
    case State::kContent:
      delta.channel = current_.channel;
      delta.recipient = current_.recipient;
      delta.content_type = current_.content_type;
      if (ends_message) {
        delta.text = CloseMessage();
      } else if (token == start_) {
        delta.text = CloseMessage();  // missing <|end|>: the message ends here
        BeginHeader(/*role_known=*/false);
      } else {
        delta.text = decoder_.Push(token);
        current_.content += delta.text;
      }
      break;
  }
  if (token == call_ && messages_.size() > closed_before) {
    stopped_for_tool_call_ = absl::StartsWith(messages_.back().recipient, kFunctionsPrefix);
  }
  return delta;
}

void HarmonyParser::Finish() {
  if (state_ == State::kContent || (state_ == State::kHeader && !header_text_.empty())) CloseMessage();
  state_ = State::kBetween;
}

AssistantReply SplitReply(const std::vector<ParsedMessage>& messages) {
  AssistantReply reply;
  std::vector<absl::string_view> reasoning, content;
  for (const ParsedMessage& m : messages) {
    if (m.role != Role::kAssistant) continue;
    absl::string_view recipient = m.recipient;
    if (absl::ConsumePrefix(&recipient, kFunctionsPrefix) && !recipient.empty()) {
      reply.tool_calls.push_back({std::string(recipient), m.content});
    } else if (!m.recipient.empty()) {
      continue;  // a built-in tool we do not offer, or a malformed "functions." recipient
    } else if (m.channel == "analysis") {
      reasoning.push_back(m.content);
    } else if (m.channel == "final" || m.channel == "commentary" || m.channel.empty()) {
      content.push_back(m.content);
    }
  }
  reply.reasoning = absl::StrJoin(reasoning, "\n");
  reply.content = absl::StrJoin(content, "\n");
  return reply;
}

}  // namespace ossgate::text
