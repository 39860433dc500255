// Regex pre-tokenizers of the byte-level BPE vocabularies: split text into
// the pieces that BPE then merges within. o200k (gpt-oss, spec §7.2) and
// Qwen2 (GGUF tokenizer.ggml.pre "qwen2"). Internal to ossgate_text.
#pragma once

#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ossgate::text {

// The o200k pattern as PCRE2 source. It is the pattern of spec §7.2 with one
// deliberate change: `\s` / `\S` are spelled out as the Unicode White_Space
// set, which is what `\s` means in the Rust regex engine of tiktoken. PCRE2's
// own `\s` under UCP also matches U+180E (MONGOLIAN VOWEL SEPARATOR, no longer
// White_Space since Unicode 6.3) and JavaScript's matches U+FEFF and not
// U+0085; each of those would split some texts differently from tiktoken.
extern const char kO200kPattern[];

// The Qwen2 pattern (Qwen2/2.5/3 tokenizer.json, Split pre-tokenizer; the
// same as llama.cpp's pre-tokenizer "qwen2"):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// with `\s` spelled out as Unicode White_Space as in kO200kPattern: Hugging
// Face tokenizers runs it through Oniguruma, whose `\s` on UTF-8 is that set.
// Unlike o200k, digits are single pieces and a letter run takes no marks.
extern const char kQwen2Pattern[];

// Compiled pattern (PCRE2, UTF + UCP, JIT when the platform has it).
// Immutable after Create; Split is thread-safe.
class PreTokenizer {
 public:
  // The o200k pre-tokenizer.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> Create();
  // Any pattern (PCRE2 syntax) whose alternatives together match every
  // character, as the patterns above do. InternalError naming the offset
  // when PCRE2 rejects it.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> Create(const char* pattern);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Calls `piece` for each piece of `text`, in order; the pieces concatenate
  // to `text` exactly. `text` must be valid UTF-8 (see SanitizeUtf8): the
  // matcher skips its own UTF check for speed. Each piece is cut from `text`
  // alone, so a piece never reaches across the ends of `text`.
  void Split(absl::string_view text, absl::FunctionRef<void(absl::string_view)> piece) const;

  bool jit() const { return jit_; }

 private:
  PreTokenizer() = default;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace ossgate::text
