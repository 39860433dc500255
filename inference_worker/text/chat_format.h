// The chat formats of the model families the worker serves, behind one small
// interface, chosen by the GGUF's general.architecture:
//
//   "gpt-oss"  harmony (harmony.h, unchanged): channels, reasoning effort,
//              function tools; the output is parsed by HarmonyParser.
//   "qwen2"    ChatML as Qwen2.5-Instruct's chat template renders it:
//                <|im_start|>system\n{system}<|im_end|>\n
//                <|im_start|>user\n{content}<|im_end|>\n
//                <|im_start|>assistant\n{content}<|im_end|>\n ...
//                <|im_start|>assistant\n
//              {system} is the conversation's developer_instructions, or when
//              there are none the template's default "You are Qwen, created by
//              Alibaba Cloud. You are a helpful assistant."
//   "phi3"     Phi-3-mini-4k-instruct's chat template:
//                <|system|>\n{system}<|end|>\n     (only when there are instructions)
//                <|user|>\n{content}<|end|>\n
//                <|assistant|>\n{content}<|end|>\n ...
//                <|assistant|>\n
//              No BOS (the template writes none; add_bos_token is false).
//
// ChatML and Phi-3 carry plain text turns only: what only harmony expresses
// (channels, recipients, content types, tool messages and tool definitions,
// the current date; the faces add reasoning effort and the like through
// their own field lists) is refused by CheckSupported. Their replies are
// plain text that ends at the family's end-of-turn tokens (StopTokens).
//
// Special tokens are placed by id and every text is encoded as ordinary text
// (Tokenizer::EncodePieces), so user content such as "<|im_end|>" stays text.
// The ids equal those of the Hugging Face tokenizer applied to the template's
// text (Phi-3's rstrip tokens drop the "\n" after them, as there).
//
// The formats are stateless singletons; all methods are thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::text {

// Qwen2.5's default system message (its chat template).
inline constexpr char kQwenDefaultSystem[] = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

class ChatFormat {
 public:
  virtual ~ChatFormat() = default;

  // "harmony", "chatml" or "phi3".
  virtual absl::string_view name() const = 0;
  // The family in words for messages, e.g. "ChatML (Qwen2.5)".
  virtual absl::string_view family() const = 0;
  // Whether replies are harmony (HarmonyParser: channels, tool calls).
  virtual bool harmony() const = 0;

  // OK when the format can express everything in `conv`; otherwise
  // InvalidArgument "<prefix><member>: ..." naming the first member it cannot
  // (e.g. "conversation.messages[2].channel") and saying that the loaded
  // model family does not support it.
  virtual absl::Status CheckSupported(const Conversation& conv, absl::string_view prefix) const = 0;

  // The prompt tokens, ending with the assistant's generation prompt. Errors:
  // InvalidArgument naming a bad member; FailedPrecondition when the
  // tokenizer lacks a special token of the format.
  virtual absl::StatusOr<std::vector<int32_t>> Render(const Tokenizer& tokenizer, const Conversation& conv) const = 0;
  // The same prompt as text (special tokens as their text), for logs and tests.
  virtual absl::StatusOr<std::string> RenderText(const Conversation& conv) const = 0;

  // The special tokens (by text) that end the assistant's turn: a chat
  // request's default stop tokens.
  virtual std::vector<std::string> StopTokens() const = 0;
};

// The format of a GGUF general.architecture; InvalidArgument naming the
// architecture and the supported ones otherwise. The result is a static
// object (never null on success).
absl::StatusOr<const ChatFormat*> ChatFormatForArchitecture(absl::string_view architecture);

// The harmony format (gpt-oss).
const ChatFormat& HarmonyChatFormat();

}  // namespace ossgate::text
