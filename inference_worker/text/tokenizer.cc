#include "inference_worker/text/tokenizer.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/text/byte_level.h"
#include "inference_worker/text/normalize.h"
#include "inference_worker/text/pretokenizer.h"
#include "inference_worker/text/sentencepiece_tokenizer.h"
#include "inference_worker/text/utf8.h"

namespace ossgate::text {
namespace {

bool IsBpeType(int32_t t) { return t == static_cast<int32_t>(TokenType::kNormal) || t == static_cast<int32_t>(TokenType::kByte); }
bool IsSpecialType(int32_t t) {
  return t == static_cast<int32_t>(TokenType::kControl) || t == static_cast<int32_t>(TokenType::kUserDefined);
}

// Short printable form of a token for error messages.
std::string Quote(absl::string_view s) {
  if (s.size() > 40) return absl::StrFormat("\"%s...\"", absl::CEscape(s.substr(0, 40)));
  return absl::StrFormat("\"%s\"", absl::CEscape(s));
}

// One merge rule as the encoder uses it.
struct PairMerge {
  int32_t priority;  // index of the first merge rule producing `result`
  int32_t result;
};

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Reusable buffers for BPE over one piece: a doubly linked list of symbols
// (indexed by the byte offset where each symbol starts, which never changes
// when a symbol absorbs its right neighbour) and a min-heap of candidate pairs.
struct BpeScratch {
  struct Candidate {
    int32_t priority;
    int32_t pos;  // start of the left symbol
    int32_t left, right, result;
  };
  std::vector<int32_t> id, prev, next;
  std::vector<Candidate> heap;
};

class BpeTokenizer final : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Build(VocabSpec spec);

  std::vector<int32_t> Encode(absl::string_view text, bool allow_special) const override;
  std::string Decode(std::span<const int32_t> ids) const override;
  std::string TokenBytes(int32_t id) const override { return std::string(Bytes(id)); }
  std::optional<int32_t> SpecialTokenId(absl::string_view text) const override;
  bool IsSpecial(int32_t id) const override { return InRange(id) && IsSpecialType(types_[id]); }
  int32_t vocab_size() const override { return static_cast<int32_t>(types_.size()); }
  TokenType token_type(int32_t id) const override {
    return InRange(id) ? static_cast<TokenType>(types_[id]) : TokenType::kUnused;
  }

 private:
  bool InRange(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < types_.size(); }
  absl::string_view Bytes(int32_t id) const {
    if (!InRange(id)) return {};
    return absl::string_view(arena_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  // Encodes valid UTF-8 text that holds no special tokens to split out.
  void EncodeOrdinary(absl::string_view text, BpeScratch* scratch, std::vector<int32_t>* out) const;
  void EncodePiece(absl::string_view piece, BpeScratch* scratch, std::vector<int32_t>* out) const;
  const PairMerge* FindMerge(int32_t left, int32_t right) const {
    auto it = merges_.find(PairKey(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }

  std::string arena_;              // raw bytes of all tokens, back to back
  std::vector<uint32_t> offsets_;  // token i is arena_[offsets_[i], offsets_[i+1])
  std::vector<int32_t> types_;     // TokenType per id
  absl::flat_hash_map<absl::string_view, int32_t> bpe_ids_;  // raw bytes -> id, BPE tokens only
  std::array<int32_t, 256> byte_ids_{};
  absl::flat_hash_map<uint64_t, PairMerge> merges_;            // (left, right) -> merge
  absl::flat_hash_map<std::string, int32_t> special_ids_;      // text -> id
  std::array<std::vector<int32_t>, 256> specials_by_first_byte_;  // longest first
  std::unique_ptr<PreTokenizer> pretokenizer_;
  bool nfc_ = false;  // Qwen2: NFC before pre-tokenization (tokenizer.json's normalizer)
  // o200k: a piece that is a token is emitted whole, as tiktoken (and HF's
  // ignore_merges) do. Qwen2's tokenizer.json merges every piece.
  bool whole_piece_shortcut_ = true;
};

absl::StatusOr<std::unique_ptr<Tokenizer>> BpeTokenizer::Build(VocabSpec spec) {
  const char* pattern = nullptr;
  if (spec.pre == kO200kPreTokenizer) {
    pattern = kO200kPattern;
  } else if (spec.pre == kQwen2PreTokenizer) {
    pattern = kQwen2Pattern;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("pre-tokenizer \"", spec.pre, "\" is not implemented for byte-level BPE; ossgate implements \"",
                     kO200kPreTokenizer, "\" (o200k, gpt-oss) and \"", kQwen2PreTokenizer,
                     "\" (Qwen2), and another split would give wrong token ids"));
  }
  const size_t n = spec.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("vocabulary has no tokens");
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary has ", n, " tokens; at most 2^31-1 are supported"));
  }
  if (spec.token_types.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary has ", n, " tokens but ", spec.token_types.size(),
                                                   " token types; the two arrays must have the same length"));
  }
  if (spec.merges.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError("vocabulary has more than 2^31-1 merges");
  }
  auto tok = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  tok->nfc_ = spec.pre == kQwen2PreTokenizer;
  tok->whole_piece_shortcut_ = spec.pre == kO200kPreTokenizer;
  tok->types_ = std::move(spec.token_types);
  tok->offsets_.reserve(n + 1);
  tok->offsets_.push_back(0);
  for (size_t i = 0; i < n; ++i) {
    const int32_t type = tok->types_[i];
    const std::string& text = spec.tokens[i];
    if (type < static_cast<int32_t>(TokenType::kNormal) || type > static_cast<int32_t>(TokenType::kByte)) {
      return absl::InvalidArgumentError(
          absl::StrCat("token ", i, " ", Quote(text), " has token type ", type, "; valid types are 1..6 (gguf TokenType)"));
    }
    if (IsBpeType(type)) {
      std::optional<std::string> bytes = ByteLevelToBytes(text);
      if (!bytes.has_value() || bytes->empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "token ", i, " ", Quote(text),
            " is not in GPT-2 byte-to-unicode form (each byte must be written as its mapped code point, e.g. "
            "space as U+0120); was the vocabulary exported from a byte-level BPE tokenizer?"));
      }
      tok->arena_ += *bytes;
    } else {
      if (IsSpecialType(type) && (text.empty() || !IsValidUtf8(text))) {
        return absl::InvalidArgumentError(
            absl::StrCat("special token ", i, " ", Quote(text), " is empty or not valid UTF-8"));
      }
      tok->arena_ += text;
    }
    if (tok->arena_.size() > std::numeric_limits<uint32_t>::max()) {
      return absl::InvalidArgumentError("vocabulary text exceeds 4 GiB");
    }
    tok->offsets_.push_back(static_cast<uint32_t>(tok->arena_.size()));
  }
  spec.tokens.clear();
  spec.tokens.shrink_to_fit();

  // Index BPE tokens by raw bytes and special tokens by text. The arena no
  // longer grows, so views into it stay valid.
  tok->byte_ids_.fill(-1);
  tok->bpe_ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = static_cast<int32_t>(i);
    const absl::string_view bytes = tok->Bytes(id);
    if (IsBpeType(tok->types_[i])) {
      auto [it, inserted] = tok->bpe_ids_.emplace(bytes, id);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat("tokens ", it->second, " and ", i, " both stand for the bytes ",
                                                       Quote(bytes), "; BPE tokens must be unique"));
      }
      if (bytes.size() == 1) tok->byte_ids_[static_cast<unsigned char>(bytes[0])] = id;
    } else if (IsSpecialType(tok->types_[i])) {
      auto [it, inserted] = tok->special_ids_.emplace(std::string(bytes), id);
      if (!inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat("special tokens ", it->second, " and ", i, " have the same text ", Quote(bytes)));
      }
      tok->specials_by_first_byte_[static_cast<unsigned char>(bytes[0])].push_back(id);
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (tok->byte_ids_[b] < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "no token stands for the single byte 0x%02X; a byte-level vocabulary needs all 256 byte tokens", b));
    }
  }
  for (auto& ids : tok->specials_by_first_byte_) {
    std::stable_sort(ids.begin(), ids.end(),
                     [&](int32_t a, int32_t b) { return tok->Bytes(a).size() > tok->Bytes(b).size(); });
  }

  // Merge rules. A pair's priority is the index of the first rule with the
  // same result, so that two different splits of one token compete by
  // position only (tiktoken: leftmost of equal rank first).
  std::vector<int32_t> first_rule(n, -1);
  tok->merges_.reserve(spec.merges.size());
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const std::string& rule = spec.merges[r];
    const size_t space = rule.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == rule.size() ||
        rule.find(' ', space + 1) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("merge ", r, " ", Quote(rule), " is not of the form \"A B\" (two tokens, one space)"));
    }
    std::optional<std::string> a = ByteLevelToBytes(absl::string_view(rule).substr(0, space));
    std::optional<std::string> b = ByteLevelToBytes(absl::string_view(rule).substr(space + 1));
    if (!a.has_value() || !b.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("merge ", r, " ", Quote(rule), " is not in GPT-2 byte-to-unicode form"));
    }
    auto ia = tok->bpe_ids_.find(*a), ib = tok->bpe_ids_.find(*b);
    auto ic = tok->bpe_ids_.find(*a + *b);
    if (ia == tok->bpe_ids_.end() || ib == tok->bpe_ids_.end() || ic == tok->bpe_ids_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("merge ", r, " ", Quote(rule), ": ",
                       ia == tok->bpe_ids_.end()   ? "its left part is not a token"
                       : ib == tok->bpe_ids_.end() ? "its right part is not a token"
                                                   : "the concatenation of its parts is not a token"));
    }
    int32_t& first = first_rule[ic->second];
    if (first < 0) first = static_cast<int32_t>(r);
    // A repeated rule keeps its first (lowest) priority.
    tok->merges_.try_emplace(PairKey(ia->second, ib->second), PairMerge{first, ic->second});
  }

  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre = PreTokenizer::Create(pattern);
  if (!pre.ok()) return pre.status();
  tok->pretokenizer_ = *std::move(pre);
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

void BpeTokenizer::EncodePiece(absl::string_view piece, BpeScratch* s, std::vector<int32_t>* out) const {
  // Symbol positions are int32. A single piece over 1 GiB (no sane request
  // has one) is cut into 1 GiB slices rather than overflowing.
  constexpr size_t kMaxPiece = size_t{1} << 30;
  while (piece.size() > kMaxPiece) {
    EncodePiece(piece.substr(0, kMaxPiece), s, out);
    piece.remove_prefix(kMaxPiece);
  }
  if (piece.empty()) return;
  if (auto it = whole_piece_shortcut_ ? bpe_ids_.find(piece) : bpe_ids_.end(); it != bpe_ids_.end()) {
    out->push_back(it->second);  // whole piece is a token (tiktoken's shortcut)
    return;
  }
  const int32_t n = static_cast<int32_t>(piece.size());
  s->id.resize(n);
  s->prev.resize(n);
  s->next.resize(n);
  s->heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    s->id[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
    s->prev[i] = i - 1;
    s->next[i] = i + 1 < n ? i + 1 : -1;
  }
  // Min-heap on (priority, pos).
  auto later = [](const BpeScratch::Candidate& x, const BpeScratch::Candidate& y) {
    return x.priority != y.priority ? x.priority > y.priority : x.pos > y.pos;
  };
  auto consider = [&](int32_t pos) {
    const int32_t right = s->next[pos];
    if (right < 0) return;
    if (const PairMerge* m = FindMerge(s->id[pos], s->id[right])) {
      s->heap.push_back({m->priority, pos, s->id[pos], s->id[right], m->result});
      std::push_heap(s->heap.begin(), s->heap.end(), later);
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!s->heap.empty()) {
    std::pop_heap(s->heap.begin(), s->heap.end(), later);
    const BpeScratch::Candidate c = s->heap.back();
    s->heap.pop_back();
    // Stale unless both symbols are still exactly the ones the candidate saw.
    // (A symbol's start never moves and ids only grow into longer tokens, so
    // equal ids at the same start mean the same pair.)
    const int32_t right = s->next[c.pos];
    if (s->id[c.pos] != c.left || right < 0 || s->id[right] != c.right) continue;
    s->id[c.pos] = c.result;
    s->next[c.pos] = s->next[right];
    if (s->next[right] >= 0) s->prev[s->next[right]] = c.pos;
    s->id[right] = -1;  // absorbed: no candidate can match it again
    if (s->prev[c.pos] >= 0) consider(s->prev[c.pos]);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = s->next[i]) out->push_back(s->id[i]);
}

void BpeTokenizer::EncodeOrdinary(absl::string_view text, BpeScratch* scratch, std::vector<int32_t>* out) const {
  // Hugging Face normalizes each text segment between special tokens on its
  // own (special tokens are matched on the raw text), as here.
  std::string normalized;
  if (nfc_ && !IsNfc(text)) {
    normalized = ToNfc(text);
    text = normalized;
  }
  pretokenizer_->Split(text, [&](absl::string_view piece) { EncodePiece(piece, scratch, out); });
}

std::vector<int32_t> BpeTokenizer::Encode(absl::string_view text, bool allow_special) const {
  std::string repaired;
  if (!IsValidUtf8(text)) {
    repaired = SanitizeUtf8(text);
    text = repaired;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 1);
  BpeScratch scratch;
  if (!allow_special) {
    EncodeOrdinary(text, &scratch, &out);
    return out;
  }
  size_t plain_start = 0, i = 0;
  while (i < text.size()) {
    int32_t found = -1;
    for (int32_t id : specials_by_first_byte_[static_cast<unsigned char>(text[i])]) {
      if (absl::StartsWith(text.substr(i), Bytes(id))) {
        found = id;
        break;
      }
    }
    if (found < 0) {
      ++i;
      continue;
    }
    EncodeOrdinary(text.substr(plain_start, i - plain_start), &scratch, &out);
    out.push_back(found);
    i += Bytes(found).size();
    plain_start = i;
  }
  EncodeOrdinary(text.substr(plain_start), &scratch, &out);
  return out;
}

std::string BpeTokenizer::Decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) {
    const absl::string_view b = Bytes(id);
    out.append(b.data(), b.size());
  }
  return out;
}

std::optional<int32_t> BpeTokenizer::SpecialTokenId(absl::string_view text) const {
  auto it = special_ids_.find(text);
  if (it == special_ids_.end()) return std::nullopt;
  return it->second;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(VocabSpec spec) {
  if (spec.model == kByteLevelBpeModel) return BpeTokenizer::Build(std::move(spec));
  if (spec.model == kSentencePieceModel) return CreateSentencePieceTokenizer(std::move(spec));
  return absl::InvalidArgumentError(absl::StrCat("tokenizer model \"", spec.model, "\" is not implemented; ossgate implements \"",
                                                 kByteLevelBpeModel, "\" (byte-level BPE: gpt-oss, Qwen2) and \"",
                                                 kSentencePieceModel, "\" (SentencePiece BPE: Phi-3)"));
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::EncodePieces(std::span<const PromptPiece> pieces) const {
  std::vector<int32_t> out;
  std::string text;
  auto flush = [&] {
    if (text.empty()) return;
    std::vector<int32_t> ids = Encode(text, /*allow_special=*/false);
    out.insert(out.end(), ids.begin(), ids.end());
    text.clear();
  };
  for (const PromptPiece& p : pieces) {
    if (!p.special) {
      text += p.text;
      continue;
    }
    std::optional<int32_t> id = SpecialTokenId(p.text);
    if (!id) {
      return absl::FailedPreconditionError(
          absl::StrCat("the vocabulary has no special token ", p.text, " that the chat format needs"));
    }
    flush();
    out.push_back(*id);
  }
  flush();
  return out;
}

std::vector<int32_t> Phi3RstripIds(const VocabSpec& spec) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < spec.tokens.size() && i < spec.token_types.size(); ++i) {
    const std::string& t = spec.tokens[i];
    if (IsSpecialType(spec.token_types[i]) && t != "<unk>" && t != "<s>" && t != "<|endoftext|>") {
      ids.push_back(static_cast<int32_t>(i));
    }
  }
  return ids;
}

namespace {

absl::Status GgufError(absl::string_view key, const absl::Status& s, absl::string_view hint = "") {
  return absl::InvalidArgumentError(absl::StrCat("GGUF ", key, ": ", s.message(), hint));
}

// Optional tokenizer.ggml.*_token_id: -1 when absent.
absl::StatusOr<int32_t> OptionalId(const gguf::GgufFile& file, absl::string_view key, size_t n_tokens) {
  if (file.FindKey(key) == nullptr) return -1;
  absl::StatusOr<uint64_t> v = file.GetUint(key);
  if (!v.ok()) return GgufError(key, v.status());
  if (*v >= n_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF ", key, " = ", *v, " is not a token id (the vocabulary has ", n_tokens, " tokens)"));
  }
  return static_cast<int32_t>(*v);
}

absl::StatusOr<bool> OptionalBool(const gguf::GgufFile& file, absl::string_view key, bool fallback) {
  const gguf::MetadataValue* v = file.FindKey(key);
  if (v == nullptr) return fallback;
  if (v->type != gguf::ValueType::kBool) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF ", key, " is of type ", gguf::ValueTypeName(v->type),
                                                   "; expected bool"));
  }
  return v->integer != 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const gguf::GgufFile& file) {
  absl::StatusOr<std::string> model = file.GetString("tokenizer.ggml.model");
  if (!model.ok()) {
    return GgufError("tokenizer.ggml.model", model.status(), "; the file must carry its tokenizer");
  }
  if (*model != kByteLevelBpeModel && *model != kSentencePieceModel) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF tokenizer.ggml.model is \"", *model, "\"; ossgate implements \"", kByteLevelBpeModel,
        "\" (byte-level BPE, as gpt-oss and Qwen2 use) and \"", kSentencePieceModel,
        "\" (SentencePiece BPE, as Phi-3 uses)"));
  }
  VocabSpec spec;
  spec.model = *model;
  spec.pre = *model == kByteLevelBpeModel ? kO200kPreTokenizer : kDefaultPreTokenizer;
  if (file.FindKey("tokenizer.ggml.pre") != nullptr) {
    absl::StatusOr<std::string> pre = file.GetString("tokenizer.ggml.pre");
    if (!pre.ok()) return GgufError("tokenizer.ggml.pre", pre.status());
    spec.pre = *pre;
  }
  if (*model == kByteLevelBpeModel && spec.pre != kO200kPreTokenizer && spec.pre != kQwen2PreTokenizer) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF tokenizer.ggml.pre is \"", spec.pre, "\"; ossgate implements the pre-tokenizers \"", kO200kPreTokenizer,
        "\" (o200k, gpt-oss) and \"", kQwen2PreTokenizer,
        "\" (Qwen2) of byte-level BPE, and other splits would give wrong token ids"));
  }
  if (*model == kSentencePieceModel && spec.pre != kDefaultPreTokenizer) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF tokenizer.ggml.pre is \"", spec.pre,
                                                   "\"; ossgate implements SentencePiece only with the pre-tokenizer \"",
                                                   kDefaultPreTokenizer, "\" (none, as Phi-3 uses)"));
  }
  absl::StatusOr<const std::vector<std::string>*> tokens = file.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens.ok()) return GgufError("tokenizer.ggml.tokens", tokens.status());
  absl::StatusOr<const std::vector<int64_t>*> types = file.GetIntArray("tokenizer.ggml.token_type");
  if (!types.ok()) {
    return GgufError("tokenizer.ggml.token_type", types.status(), "; without token types the special tokens are unknown");
  }
  spec.tokens = **tokens;
  spec.token_types.reserve((*types)->size());
  for (size_t i = 0; i < (*types)->size(); ++i) {
    const int64_t t = (**types)[i];
    if (t < std::numeric_limits<int32_t>::min() || t > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF tokenizer.ggml.token_type[", i, "] = ", t, " is out of range"));
    }
    spec.token_types.push_back(static_cast<int32_t>(t));
  }
  if (*model == kByteLevelBpeModel) {
    absl::StatusOr<const std::vector<std::string>*> merges = file.GetStringArray("tokenizer.ggml.merges");
    if (!merges.ok()) return GgufError("tokenizer.ggml.merges", merges.status());
    spec.merges = **merges;
    return Create(std::move(spec));
  }

  // SentencePiece.
  const gguf::MetadataValue* scores = file.FindKey("tokenizer.ggml.scores");
  if (scores == nullptr) {
    return absl::InvalidArgumentError(
        "GGUF tokenizer.ggml.scores is missing; a SentencePiece vocabulary needs its scores to order the merges");
  }
  if (scores->type != gguf::ValueType::kArray ||
      (scores->array_type != gguf::ValueType::kFloat32 && scores->array_type != gguf::ValueType::kFloat64)) {
    return absl::InvalidArgumentError("GGUF tokenizer.ggml.scores must be an array of float32");
  }
  spec.scores.reserve(scores->real_array.size());
  for (double d : scores->real_array) spec.scores.push_back(static_cast<float>(d));
  const size_t n = spec.tokens.size();
  for (auto [key, field] : {std::pair{"tokenizer.ggml.bos_token_id", &spec.bos_id},
                            std::pair{"tokenizer.ggml.eos_token_id", &spec.eos_id},
                            std::pair{"tokenizer.ggml.unknown_token_id", &spec.unk_id},
                            std::pair{"tokenizer.ggml.padding_token_id", &spec.padding_id}}) {
    absl::StatusOr<int32_t> id = OptionalId(file, key, n);
    if (!id.ok()) return id.status();
    *field = *id;
  }
  // llama.cpp's defaults for SentencePiece: BOS added, "▁" prefix added.
  absl::StatusOr<bool> add_bos = OptionalBool(file, "tokenizer.ggml.add_bos_token", true);
  if (!add_bos.ok()) return add_bos.status();
  absl::StatusOr<bool> add_space_prefix = OptionalBool(file, "tokenizer.ggml.add_space_prefix", true);
  if (!add_space_prefix.ok()) return add_space_prefix.status();
  spec.add_bos = *add_bos;
  spec.add_space_prefix = *add_space_prefix;
  // The rstrip flags of Phi-3's tokenizer.json are not in the GGUF; llama.cpp
  // restores them by model name, we by architecture.
  absl::StatusOr<std::string> arch = file.GetString("general.architecture");
  if (arch.ok() && *arch == "phi3") spec.rstrip_ids = Phi3RstripIds(spec);
  return Create(std::move(spec));
}

std::string StreamDecoder::Push(int32_t id) {
  std::string bytes = tokenizer_.TokenBytes(id);
  if (tokenizer_.IsSpecial(id)) {
    segment_start_ = true;
  } else {
    if (segment_start_ && tokenizer_.adds_space_prefix() && tokenizer_.token_type(id) == TokenType::kNormal &&
        !bytes.empty() && bytes[0] == ' ') {
      bytes.erase(0, 1);  // the dummy prefix Encode put before the segment
    }
    segment_start_ = false;
  }
  pending_ += bytes;
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(pending_.data());
  size_t i = 0;
  while (i < pending_.size()) {
    const Utf8Scan scan = ScanUtf8(p + i, pending_.size() - i);
    if (scan.kind == Utf8Scan::kTruncated) break;  // may still complete
    if (scan.kind == Utf8Scan::kValid) {
      out.append(pending_, i, scan.length);
    } else {
      out.append(kReplacementChar);
    }
    i += scan.length;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace ossgate::text
