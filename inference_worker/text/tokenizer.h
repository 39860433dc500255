// Tokenizers built from GGUF tokenizer metadata, behind one interface:
//
// - tokenizer.ggml.model "gpt2": byte-level BPE (tokens in GPT-2
//   byte-to-unicode form, merges in rank order, token types), with the
//   pre-tokenizer tokenizer.ggml.pre names: "gpt-4o" (o200k, gpt-oss; exactly
//   the ids of tiktoken's o200k_harmony, tests/text/o200k_corpus_test.cc) or
//   "qwen2" (Qwen2/2.5: NFC normalization, then the Qwen2 regex; exactly the
//   ids of the Hugging Face tokenizer, tests/text/family_corpus_test.cc).
// - tokenizer.ggml.model "llama": SentencePiece BPE (sentencepiece_tokenizer.h;
//   Phi-3's vocabulary): "▁" for spaces, merging by score, <0xXX> byte fallback.
//
// docs/tokenizer.md describes the algorithms, the invalid-UTF-8 rule and the
// vocabulary file.
//
// Merge order: a pair (A, B) merges with the priority of the *first* merge
// rule whose result is A+B, and among equal priorities the leftmost pair
// merges first. For o200k (whose merges are every split of every token,
// sorted by the token's rank) that is exactly tiktoken's rank-based merging;
// for Qwen2's list (one rule per token) it is plain merge-rank order.
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

// GGUF tokenizer.ggml.model / tokenizer.ggml.pre values implemented here.
inline constexpr char kByteLevelBpeModel[] = "gpt2";
inline constexpr char kSentencePieceModel[] = "llama";
inline constexpr char kO200kPreTokenizer[] = "gpt-4o";
inline constexpr char kQwen2PreTokenizer[] = "qwen2";
inline constexpr char kDefaultPreTokenizer[] = "default";  // what llama.cpp's converter writes for SentencePiece

// gguf TokenType values.
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// A vocabulary as GGUF tokenizer metadata holds it.
//
// model "gpt2": special tokens (kControl, kUserDefined) and kUnused tokens
// are stored as their literal UTF-8 text, not in GPT-2 form; kNormal and
// kByte tokens are the BPE vocabulary.
// model "llama": pieces as SentencePiece writes them ("▁" for a space); kByte
// tokens are "<0x00>".."<0xFF>"; scores order the merges (higher first).
// In both, kUnknown and kUnused tokens never come out of Encode.
//
// The defaults of model and pre are gpt-oss's, so a spec made of tokens,
// merges and types alone (the tiny and placeholder vocabularies) stays o200k.
struct VocabSpec {
  std::vector<std::string> tokens;   // index = id
  std::vector<std::string> merges;   // "gpt2": "A B" pairs, rank = index; "llama": empty
  std::vector<int32_t> token_types;  // same length as tokens (TokenType values)
  std::string model = kByteLevelBpeModel;  // tokenizer.ggml.model
  std::string pre = kO200kPreTokenizer;    // tokenizer.ggml.pre
  std::vector<float> scores;               // "llama": one per token; "gpt2": empty
  // tokenizer.ggml.{bos,eos,unknown,padding}_token_id; -1 = not written.
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t padding_id = -1;
  bool add_bos = false;          // tokenizer.ggml.add_bos_token
  bool add_space_prefix = true;  // "llama": tokenizer.ggml.add_space_prefix (the "▁" before each text segment)
  // Special tokens that swallow the whitespace after them when Encode splits
  // them out (Hugging Face AddedToken rstrip; Phi-3's chat tokens). GGUF has
  // no key for it: FromGguf derives it as llama.cpp does (Phi3RstripIds).
  std::vector<int32_t> rstrip_ids;
};

// A piece of a rendered chat prompt: a special token (by its text) or text.
struct PromptPiece {
  std::string text;
  bool special = false;
};

// Immutable after creation; all methods are const and thread-safe.
class Tokenizer {
 public:
  // Validates the vocabulary and builds the tokenizer spec.model names.
  // "gpt2": every merge names two known tokens whose concatenation is a
  // token; every byte 0..255 has a single-byte token; spec.pre is "gpt-4o"
  // or "qwen2". "llama": see sentencepiece_tokenizer.h. In both, control and
  // user-defined tokens are the special tokens. Returns InvalidArgument
  // naming the offending token id or merge index.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(VocabSpec spec);
  // Reads tokenizer.ggml.* from a GGUF: model "gpt2" (tokens, merges,
  // token_type; pre "gpt-4o", the default when absent, or "qwen2") or
  // "llama" (tokens, scores, token_type, the special ids, add_bos_token,
  // add_space_prefix). Rejects other models and pre-tokenizers with a
  // message naming the value and what is implemented.
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

  // Encodes a rendered prompt: special pieces become their ids, text pieces
  // (adjacent ones joined) are encoded as ordinary text, with the same rules
  // at the boundaries as Encode(<all pieces' text>, true) applies (Phi-3: the
  // whitespace after an rstrip token is dropped; SentencePiece: each text
  // segment gets its "▁" prefix). So the ids equal that call's whenever no
  // text piece contains special-token text, and user text can never inject
  // a special token. FailedPrecondition naming a special piece the
  // vocabulary lacks.
  virtual absl::StatusOr<std::vector<int32_t>> EncodePieces(std::span<const PromptPiece> pieces) const;

  // The tokens' text concatenated (special tokens as their text). The result
  // may end in an incomplete UTF-8 sequence; see StreamDecoder. SentencePiece
  // drops the "▁" prefix Encode adds to a text segment, so for both models
  // Decode(Encode(x, s)) == SanitizeUtf8(x) (when no rstrip token swallowed
  // whitespace).
  virtual std::string Decode(std::span<const int32_t> ids) const = 0;
  // Raw bytes of one token (SentencePiece: "▁" as a space, <0xXX> as the
  // byte); empty for an out-of-range id.
  virtual std::string TokenBytes(int32_t id) const = 0;
  // Whether a text segment's first token carries a space that Encode added
  // (SentencePiece's dummy prefix) and text output should drop.
  virtual bool adds_space_prefix() const { return false; }

  // Id of a special token given its text, e.g. "<|return|>".
  virtual std::optional<int32_t> SpecialTokenId(absl::string_view text) const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  // Type of a token (kUnused for ids out of range). Samplers use it to keep
  // kUnused padding ids (o200k: 200019..201087) out of the output. The
  // default suits test fakes that have no unused ids.
  virtual TokenType token_type(int32_t id) const { return TokenType::kNormal; }
  // tokenizer.ggml.bos_token_id and add_bos_token: whether a text prompt
  // starts with the BOS token (o200k: no; Phi-3-mini-4k-instruct: no).
  virtual std::optional<int32_t> bos_id() const { return std::nullopt; }
  virtual bool add_bos() const { return false; }
};

// llama.cpp's rule for Phi-3 (llama-vocab.cpp, by model name), which is the
// rstrip flag of Phi-3's tokenizer.json: every control and user-defined token
// swallows the whitespace after it, except <unk>, <s> and <|endoftext|>.
std::vector<int32_t> Phi3RstripIds(const VocabSpec& spec);

// Turns a stream of token ids into valid UTF-8 text pieces: bytes of an
// incomplete multi-byte sequence are held back until they complete; bytes
// that can never form valid UTF-8 come out as U+FFFD. Not thread-safe.
//
// With a tokenizer that adds_space_prefix(), the space of the first token of
// a text segment (at the start, and after a special token) is the dummy
// prefix and is dropped; `previous` is the token before the first one pushed
// (the prompt's last), so a completion that continues a text keeps its
// leading space.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, std::optional<int32_t> previous = std::nullopt)
      : tokenizer_(tokenizer), segment_start_(!previous.has_value() || tokenizer.IsSpecial(*previous)) {}
  // Returns the text that became complete with this token (maybe empty).
  std::string Push(int32_t id);
  // Returns whatever is held back, invalid bytes replaced by U+FFFD.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;
  bool segment_start_;
};

}  // namespace ossgate::text
