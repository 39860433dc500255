// Byte-level BPE tokenizer for the o200k_harmony vocabulary (gpt-oss), built
// from GGUF tokenizer metadata: tokens in GPT-2 byte-to-unicode form, merges
// in rank order, token types. Pre-tokenization uses the o200k regex (spec §7.2)
// through PCRE2 with JIT. Produces exactly the ids of tiktoken's o200k_harmony
// (tests/text/o200k_corpus_test.cc checks a 1 MB corpus); docs/tokenizer.md
// describes the algorithm, the invalid-UTF-8 rule and the vocabulary file.
//
// Merge order: a pair (A, B) merges with the priority of the *first* merge
// rule whose result is A+B, and among equal priorities the leftmost pair
// merges first. For o200k (whose merges are every split of every token,
// sorted by the token's rank) that is exactly tiktoken's rank-based merging.
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

// GGUF tokenizer.ggml.model / tokenizer.ggml.pre values this tokenizer implements.
inline constexpr char kByteLevelBpeModel[] = "gpt2";
inline constexpr char kO200kPreTokenizer[] = "gpt-4o";

// gguf TokenType values.
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Special tokens (kControl, kUserDefined) and kUnused tokens are stored as
// their literal UTF-8 text, not in GPT-2 form; kNormal and kByte tokens are
// the BPE vocabulary. kUnknown and kUnused tokens never come out of Encode.
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
  // control and user-defined tokens are the special tokens). Returns
  // InvalidArgument naming the offending token id or merge index.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(VocabSpec spec);
  // Reads tokenizer.ggml.{model,pre,tokens,merges,token_type} from a GGUF.
  // Rejects models other than "gpt2" byte-level BPE, and pre-tokenizers other
  // than "gpt-4o" (o200k) when the key is present, with a clear message.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const gguf::GgufFile& file);

  virtual ~Tokenizer() = default;

  // Encodes text. With allow_special, occurrences of special token strings
  // (e.g. "<|start|>") are split out first and become their ids (leftmost
  // first, the longest one where several start at the same byte); without it,
  // they are ordinary text (use this for untrusted user content). Invalid
  // UTF-8 is first repaired with SanitizeUtf8 (utf8.h): each maximal
  // ill-formed subpart becomes U+FFFD, as a Python or JS caller decoding the
  // bytes with errors="replace" / TextDecoder would get. Time is O(n log n)
  // in the length of the longest piece, so any input finishes.
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
  // Type of a token (kUnused for ids out of range). Samplers use it to keep
  // kUnused padding ids (o200k: 200019..201087) out of the output. The
  // default suits test fakes that have no unused ids.
  virtual TokenType token_type(int32_t id) const { return TokenType::kNormal; }
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
