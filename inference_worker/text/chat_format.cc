#include "inference_worker/text/chat_format.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace ossgate::text {
namespace {

class HarmonyFormat final : public ChatFormat {
 public:
  absl::string_view name() const override { return "harmony"; }
  absl::string_view family() const override { return "harmony (gpt-oss)"; }
  bool harmony() const override { return true; }
  absl::Status CheckSupported(const Conversation&, absl::string_view) const override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<int32_t>> Render(const Tokenizer& tokenizer, const Conversation& conv) const override {
    return RenderForCompletion(tokenizer, conv);
  }
  absl::StatusOr<std::string> RenderText(const Conversation& conv) const override {
    return RenderForCompletionText(conv);
  }
  std::vector<std::string> StopTokens() const override { return {"<|return|>", "<|call|>"}; }
};

// ChatML and Phi-3: plain text turns between special tokens.
class PlainTurnFormat final : public ChatFormat {
 public:
  enum class Kind { kChatMl, kPhi3 };
  explicit PlainTurnFormat(Kind kind) : kind_(kind) {}

  absl::string_view name() const override { return kind_ == Kind::kChatMl ? "chatml" : "phi3"; }
  absl::string_view family() const override { return kind_ == Kind::kChatMl ? "ChatML (Qwen2.5)" : "Phi-3"; }
  bool harmony() const override { return false; }

  absl::Status CheckSupported(const Conversation& conv, absl::string_view prefix) const override {
    auto refuse = [&](const std::string& member, absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, member, ": ", what, " is not supported by the loaded model family ",
                                                     family(), "; it is part of gpt-oss's harmony format"));
    };
    if (!conv.tools.empty()) return refuse("tools", "function calling");
    if (!conv.current_date.empty()) return refuse("current_date", "the current date of the system message");
    for (size_t i = 0; i < conv.messages.size(); ++i) {
      const Message& m = conv.messages[i];
      const std::string at = absl::StrCat("messages[", i, "]");
      if (m.role == Role::kTool) return refuse(at + ".role", "a tool message");
      if (m.role != Role::kUser && m.role != Role::kAssistant) {
        return absl::InvalidArgumentError(
            absl::StrCat(prefix, at, ".role: only user and assistant messages may follow the system instructions"));
      }
      if (!m.channel.empty() && m.channel != "final") return refuse(at + ".channel", "a message channel");
      if (!m.recipient.empty()) return refuse(at + ".recipient", "a tool call (message recipient)");
      if (!m.content_type.empty()) return refuse(at + ".content_type", "a content type");
      if (!m.author.empty()) return refuse(at + ".author", "a tool author");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<int32_t>> Render(const Tokenizer& tokenizer, const Conversation& conv) const override {
    absl::StatusOr<std::vector<PromptPiece>> pieces = Pieces(conv);
    if (!pieces.ok()) return pieces.status();
    return tokenizer.EncodePieces(*pieces);
  }

  absl::StatusOr<std::string> RenderText(const Conversation& conv) const override {
    absl::StatusOr<std::vector<PromptPiece>> pieces = Pieces(conv);
    if (!pieces.ok()) return pieces.status();
    std::string out;
    for (const PromptPiece& p : *pieces) out += p.text;
    return out;
  }

  std::vector<std::string> StopTokens() const override {
    if (kind_ == Kind::kChatMl) return {"<|im_end|>", "<|endoftext|>"};
    return {"<|end|>", "<|endoftext|>"};
  }

 private:
  // One turn: ChatML "<|im_start|>{role}\n{content}<|im_end|>\n", Phi-3
  // "<|{role}|>\n{content}<|end|>\n".
  void Turn(absl::string_view role, absl::string_view content, std::vector<PromptPiece>* out) const {
    if (kind_ == Kind::kChatMl) {
      out->push_back({"<|im_start|>", true});
      out->push_back({absl::StrCat(role, "\n", content), false});
      out->push_back({"<|im_end|>", true});
    } else {
      out->push_back({absl::StrCat("<|", role, "|>"), true});
      out->push_back({absl::StrCat("\n", content), false});
      out->push_back({"<|end|>", true});
    }
    out->push_back({"\n", false});
  }

  absl::StatusOr<std::vector<PromptPiece>> Pieces(const Conversation& conv) const {
    if (absl::Status s = CheckSupported(conv, ""); !s.ok()) return s;
    std::vector<PromptPiece> out;
    if (kind_ == Kind::kChatMl) {
      Turn("system", conv.developer_instructions.empty() ? kQwenDefaultSystem : conv.developer_instructions, &out);
    } else if (!conv.developer_instructions.empty()) {
      Turn("system", conv.developer_instructions, &out);
    }
    for (const Message& m : conv.messages) Turn(m.role == Role::kUser ? "user" : "assistant", m.content, &out);
    // The generation prompt.
    if (kind_ == Kind::kChatMl) {
      out.push_back({"<|im_start|>", true});
      out.push_back({"assistant\n", false});
    } else {
      out.push_back({"<|assistant|>", true});
      out.push_back({"\n", false});
    }
    return out;
  }

  const Kind kind_;
};

}  // namespace

const ChatFormat& HarmonyChatFormat() {
  static const HarmonyFormat* const kHarmony = new HarmonyFormat();
  return *kHarmony;
}

absl::StatusOr<const ChatFormat*> ChatFormatForArchitecture(absl::string_view architecture) {
  static const PlainTurnFormat* const kChatMl = new PlainTurnFormat(PlainTurnFormat::Kind::kChatMl);
  static const PlainTurnFormat* const kPhi3 = new PlainTurnFormat(PlainTurnFormat::Kind::kPhi3);
  if (architecture == "gpt-oss") return &HarmonyChatFormat();
  if (architecture == "qwen2") return kChatMl;
  if (architecture == "phi3") return kPhi3;
  return absl::InvalidArgumentError(absl::StrCat("general.architecture \"", architecture,
                                                 "\" has no chat format; the worker serves gpt-oss (harmony), qwen2 "
                                                 "(ChatML) and phi3 (Phi-3)"));
}

}  // namespace ossgate::text
