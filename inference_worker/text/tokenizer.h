// Byte-level BPE tokenizer for the o200k_harmony vocabulary (gpt-oss), built
// from GGUF tokenizer metadata: tokens in GPT-2 byte-to-unicode form, merges
// in rank order, token types. Pre-tokenization uses the o200k regex (spec §7.2)
// through PCRE2 with JIT. Must produce exactly the ids of the real tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ossgate::gguf {
class GgufFile;
}

namespace ossgate::text {

// gguf TokenType values.
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct VocabSpec {
  std::vector<std::string> tokens;   // GPT-2 byte-to-unicode encoded pieces; index = id
  std::vector<std::string> merges;   // "A B" pairs, rank = index
  std::vector<int32_t> token_types;  // same length as tokens (TokenType values)
};

// Immutable after creation; all methods are const and thread-safe.
class Tokenizer {
 public:
  // Validates the vocabulary (every merge names two known tokens whose
  // concatenation is a token; every byte 0..255 has a single-byte token;
  // control and user-defined tokens are the special tokens).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(VocabSpec spec);
  // Reads tokenizer.ggml.{model,pre,tokens,merges,token_type} from a GGUF.
  // Rejects models other than "gpt2" byte-level BPE with a clear message.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const gguf::GgufFile& file);

  virtual ~Tokenizer() = default;

  // Encodes text. With allow_special, occurrences of special token strings
  // (e.g. "<|start|>") are split out first and become their ids; without it,
  // they are ordinary text (use this for untrusted user content).
  virtual std::vector<int32_t> Encode(absl::string_view text, bool allow_special) const = 0;

  // Raw bytes of the tokens concatenated (special tokens as their text). The
  // result may end in an incomplete UTF-8 sequence; see StreamDecoder.
  virtual std::string Decode(std::span<const int32_t> ids) const = 0;
  // Raw bytes of one token; empty for an out-of-range id.
  virtual std::string TokenBytes(int32_t id) const = 0;

  // Id of a special token given its text, e.g. "<|return|>".
  virtual std::optional<int32_t> SpecialTokenId(absl::string_view text) const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
};

// Turns a stream of token ids into valid UTF-8 text pieces: bytes of an
// incomplete multi-byte sequence are held back until they complete; bytes
// that can never form valid UTF-8 come out as U+FFFD. Not thread-safe.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  // Returns the text that became complete with this token (maybe empty).
  std::string Push(int32_t id);
  // Returns whatever is held back, invalid bytes replaced by U+FFFD.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;
};

}  // namespace ossgate::text
