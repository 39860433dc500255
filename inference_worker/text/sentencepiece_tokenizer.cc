#include "inference_worker/text/sentencepiece_tokenizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "inference_worker/text/utf8.h"

namespace ossgate::text {
namespace {

constexpr char kSpaceSymbol[] = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

bool IsSpecialType(int32_t t) {
  return t == static_cast<int32_t>(TokenType::kControl) || t == static_cast<int32_t>(TokenType::kUserDefined);
}

std::string Quote(absl::string_view s) {
  if (s.size() > 40) return absl::StrFormat("\"%s...\"", absl::CEscape(s.substr(0, 40)));
  return absl::StrFormat("\"%s\"", absl::CEscape(s));
}

// Length of the UTF-8 character starting with `lead` (valid input).
size_t CharLength(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

// Unicode White_Space (the set Rust's char::is_whitespace uses, which is what
// Hugging Face's rstrip strips); `*len` is the character's byte length.
bool WhiteSpaceAt(absl::string_view s, size_t i, size_t* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  *len = CharLength(c);
  if (i + *len > s.size()) return false;
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  char32_t cp = 0;
  if (*len == 2) {
    cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
  } else if (*len == 3) {
    cp = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
  } else {
    return false;
  }
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::optional<int> ParseByteToken(absl::string_view t) {
  if (t.size() != 6 || !absl::StartsWith(t, "<0x") || t[5] != '>') return std::nullopt;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    v *= 16;
    if (c >= '0' && c <= '9') {
      v += c - '0';
    } else if (c >= 'A' && c <= 'F') {
      v += c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      v += c - 'a' + 10;
    } else {
      return std::nullopt;
    }
  }
  return v;
}

// One merge candidate: the pair starting at `pos` whose parts had these
// lengths when it was pushed (stale once either symbol changed).
struct Candidate {
  float score;
  int32_t pos;
  int32_t left_len, right_len;
  int32_t result;
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Build(VocabSpec spec);

  std::vector<int32_t> Encode(absl::string_view text, bool allow_special) const override;
  absl::StatusOr<std::vector<int32_t>> EncodePieces(std::span<const PromptPiece> pieces) const override;
  std::string Decode(std::span<const int32_t> ids) const override;
  std::string TokenBytes(int32_t id) const override { return std::string(Bytes(id)); }
  bool adds_space_prefix() const override { return add_space_prefix_; }
  std::optional<int32_t> SpecialTokenId(absl::string_view text) const override {
    auto it = special_ids_.find(text);
    if (it == special_ids_.end()) return std::nullopt;
    return it->second;
  }
  bool IsSpecial(int32_t id) const override { return InRange(id) && IsSpecialType(types_[id]); }
  int32_t vocab_size() const override { return static_cast<int32_t>(types_.size()); }
  TokenType token_type(int32_t id) const override {
    return InRange(id) ? static_cast<TokenType>(types_[id]) : TokenType::kUnused;
  }
  std::optional<int32_t> bos_id() const override {
    return bos_id_ >= 0 ? std::optional<int32_t>(bos_id_) : std::nullopt;
  }
  bool add_bos() const override { return add_bos_ && bos_id_ >= 0; }

 private:
  bool InRange(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < types_.size(); }
  // Decoded bytes of a token ("▁" as space, <0xXX> as the byte).
  absl::string_view Bytes(int32_t id) const {
    if (!InRange(id)) return {};
    return absl::string_view(arena_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  // The special token starting at text[i], or -1.
  int32_t SpecialAt(absl::string_view text, size_t i) const;
  // Number of bytes of whitespace at the start of `text`.
  static size_t LeadingWhiteSpace(absl::string_view text);
  // Steps 1-3 of the header for one valid UTF-8 segment.
  void EncodeSegment(absl::string_view segment, std::vector<int32_t>* out) const;
  void EncodeSymbols(absl::string_view s, std::vector<int32_t>* out) const;

  std::string arena_;              // decoded bytes of all tokens, back to back
  std::vector<uint32_t> offsets_;  // token i is arena_[offsets_[i], offsets_[i+1])
  std::vector<int32_t> types_;
  std::vector<float> scores_;
  std::string pieces_;  // kNormal pieces as written ("▁" form), back to back; normal_ids_ views into it
  absl::flat_hash_map<absl::string_view, int32_t> normal_ids_;
  std::array<int32_t, 256> byte_ids_{};
  absl::flat_hash_map<std::string, int32_t> special_ids_;
  std::array<std::vector<int32_t>, 256> specials_by_first_byte_;  // longest first
  std::vector<bool> rstrip_;
  int32_t bos_id_ = -1;
  bool add_bos_ = false;
  bool add_space_prefix_ = true;
};

absl::StatusOr<std::unique_ptr<Tokenizer>> SentencePieceTokenizer::Build(VocabSpec spec) {
  const size_t n = spec.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("vocabulary has no tokens");
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary has ", n, " tokens; at most 2^31-1 are supported"));
  }
  if (spec.token_types.size() != n || spec.scores.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary has ", n, " tokens, ", spec.token_types.size(),
                                                   " token types and ", spec.scores.size(),
                                                   " scores; a SentencePiece vocabulary needs one of each per token"));
  }
  if (!spec.merges.empty()) {
    return absl::InvalidArgumentError(
        "a SentencePiece vocabulary has no merge list (scores order the merges); was tokenizer.ggml.model \"gpt2\" "
        "meant?");
  }
  auto check_id = [&](int32_t id, const char* what) -> absl::Status {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return absl::InvalidArgumentError(absl::StrCat(what, " token id ", id, " is outside the vocabulary of ", n));
    }
    return absl::OkStatus();
  };
  for (auto [id, what] : {std::pair{spec.bos_id, "BOS"}, std::pair{spec.eos_id, "EOS"},
                          std::pair{spec.unk_id, "unknown"}, std::pair{spec.padding_id, "padding"}}) {
    if (absl::Status s = check_id(id, what); !s.ok()) return s;
  }

  auto tok = std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer());
  tok->types_ = std::move(spec.token_types);
  tok->scores_ = std::move(spec.scores);
  tok->bos_id_ = spec.bos_id;
  tok->add_bos_ = spec.add_bos;
  tok->add_space_prefix_ = spec.add_space_prefix;
  tok->byte_ids_.fill(-1);
  tok->offsets_.reserve(n + 1);
  tok->offsets_.push_back(0);
  std::vector<uint32_t> piece_offsets(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    const int32_t type = tok->types_[i];
    const std::string& text = spec.tokens[i];
    if (type < static_cast<int32_t>(TokenType::kNormal) || type > static_cast<int32_t>(TokenType::kByte)) {
      return absl::InvalidArgumentError(
          absl::StrCat("token ", i, " ", Quote(text), " has token type ", type, "; valid types are 1..6 (gguf TokenType)"));
    }
    if (!std::isfinite(tok->scores_[i])) {
      return absl::InvalidArgumentError(absl::StrCat("token ", i, " ", Quote(text), " has a score that is not finite"));
    }
    if (text.empty() || !IsValidUtf8(text)) {
      return absl::InvalidArgumentError(absl::StrCat("token ", i, " ", Quote(text), " is empty or not valid UTF-8"));
    }
    if (type == static_cast<int32_t>(TokenType::kByte)) {
      std::optional<int> b = ParseByteToken(text);
      if (!b) {
        return absl::InvalidArgumentError(absl::StrCat("byte token ", i, " ", Quote(text),
                                                       " is not of the form <0xXX> (SentencePiece byte fallback)"));
      }
      if (tok->byte_ids_[*b] >= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokens ", tok->byte_ids_[*b], " and ", i, " both stand for the byte ", Quote(text)));
      }
      tok->byte_ids_[*b] = static_cast<int32_t>(i);
      tok->arena_.push_back(static_cast<char>(*b));
    } else if (type == static_cast<int32_t>(TokenType::kNormal)) {
      tok->arena_ += absl::StrReplaceAll(text, {{kSpaceSymbol, " "}});
      tok->pieces_ += text;
    } else {
      tok->arena_ += text;
    }
    if (tok->arena_.size() > std::numeric_limits<uint32_t>::max() ||
        tok->pieces_.size() > std::numeric_limits<uint32_t>::max()) {
      return absl::InvalidArgumentError("vocabulary text exceeds 4 GiB");
    }
    tok->offsets_.push_back(static_cast<uint32_t>(tok->arena_.size()));
    piece_offsets[i + 1] = static_cast<uint32_t>(tok->pieces_.size());
  }
  for (int b = 0; b < 256; ++b) {
    if (tok->byte_ids_[b] < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "no byte token <0x%02X>; SentencePiece byte fallback needs all 256 tokens <0x00>..<0xFF> (type 6)", b));
    }
  }
  // Indexes into the arenas, which no longer grow.
  tok->normal_ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = static_cast<int32_t>(i);
    if (tok->types_[i] == static_cast<int32_t>(TokenType::kNormal)) {
      const absl::string_view piece =
          absl::string_view(tok->pieces_).substr(piece_offsets[i], piece_offsets[i + 1] - piece_offsets[i]);
      auto [it, inserted] = tok->normal_ids_.emplace(piece, id);
      if (!inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokens ", it->second, " and ", i, " are the same piece ", Quote(piece), "; pieces must be unique"));
      }
    } else if (IsSpecialType(tok->types_[i])) {
      const absl::string_view text = tok->Bytes(id);
      auto [it, inserted] = tok->special_ids_.emplace(std::string(text), id);
      if (!inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat("special tokens ", it->second, " and ", i, " have the same text ", Quote(text)));
      }
      tok->specials_by_first_byte_[static_cast<unsigned char>(text[0])].push_back(id);
    }
  }
  for (auto& ids : tok->specials_by_first_byte_) {
    std::stable_sort(ids.begin(), ids.end(),
                     [&](int32_t a, int32_t b) { return tok->Bytes(a).size() > tok->Bytes(b).size(); });
  }
  tok->rstrip_.assign(n, false);
  for (int32_t id : spec.rstrip_ids) {
    if (!tok->IsSpecial(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("rstrip token id ", id, " is not a special (control or user-defined) token"));
    }
    tok->rstrip_[id] = true;
  }
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

int32_t SentencePieceTokenizer::SpecialAt(absl::string_view text, size_t i) const {
  for (int32_t id : specials_by_first_byte_[static_cast<unsigned char>(text[i])]) {
    if (absl::StartsWith(text.substr(i), Bytes(id))) return id;
  }
  return -1;
}

size_t SentencePieceTokenizer::LeadingWhiteSpace(absl::string_view text) {
  size_t i = 0, len = 0;
  while (i < text.size() && WhiteSpaceAt(text, i, &len)) i += len;
  return i;
}

void SentencePieceTokenizer::EncodeSegment(absl::string_view segment, std::vector<int32_t>* out) const {
  if (segment.empty()) return;
  std::string s;
  s.reserve(segment.size() + segment.size() / 4 + 3);
  if (add_space_prefix_) s += kSpaceSymbol;
  for (char c : segment) {
    if (c == ' ') {
      s += kSpaceSymbol;
    } else {
      s.push_back(c);
    }
  }
  // Symbol positions are int32. A segment over 1 GiB (no sane request has
  // one) is cut at a character boundary into slices rather than overflowing.
  constexpr size_t kMaxSlice = size_t{1} << 30;
  absl::string_view rest = s;
  while (rest.size() > kMaxSlice) {
    size_t cut = kMaxSlice;
    while ((static_cast<unsigned char>(rest[cut]) & 0xC0) == 0x80) --cut;
    EncodeSymbols(rest.substr(0, cut), out);
    rest.remove_prefix(cut);
  }
  EncodeSymbols(rest, out);
}

void SentencePieceTokenizer::EncodeSymbols(absl::string_view s, std::vector<int32_t>* out) const {
  if (s.empty()) return;
  // No shortcut for a segment that is itself a piece: unlike o200k's, the
  // merges need not lead there.
  // Symbols are indexed by the byte offset where they start, which never
  // changes when a symbol absorbs its right neighbour; len < 0 marks one
  // that was absorbed.
  const int32_t n = static_cast<int32_t>(s.size());
  std::vector<int32_t> len(n, -1), next(n, -1), prev(n, -1);
  int32_t last = -1;
  for (int32_t i = 0; i < n;) {
    const int32_t l = static_cast<int32_t>(CharLength(static_cast<unsigned char>(s[i])));
    len[i] = l;
    prev[i] = last;
    if (last >= 0) next[last] = i;
    last = i;
    i += l;
  }
  // Highest score first; the leftmost pair among equal scores.
  auto later = [](const Candidate& x, const Candidate& y) {
    return x.score != y.score ? x.score < y.score : x.pos > y.pos;
  };
  std::vector<Candidate> heap;
  auto consider = [&](int32_t pos) {
    if (pos < 0) return;
    const int32_t right = next[pos];
    if (right < 0) return;
    auto it = normal_ids_.find(s.substr(pos, len[pos] + len[right]));
    if (it == normal_ids_.end()) return;
    heap.push_back({scores_[it->second], pos, len[pos], len[right], it->second});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int32_t i = 0; i >= 0; i = next[i]) consider(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate c = heap.back();
    heap.pop_back();
    const int32_t right = next[c.pos];
    if (len[c.pos] != c.left_len || right < 0 || len[right] != c.right_len) continue;  // stale
    len[c.pos] += len[right];
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    len[right] = -1;
    consider(prev[c.pos]);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) {
    const absl::string_view symbol = s.substr(i, len[i]);
    if (auto it = normal_ids_.find(symbol); it != normal_ids_.end()) {
      out->push_back(it->second);
    } else {
      for (unsigned char b : symbol) out->push_back(byte_ids_[b]);  // byte fallback
    }
  }
}

std::vector<int32_t> SentencePieceTokenizer::Encode(absl::string_view text, bool allow_special) const {
  std::string repaired;
  if (!IsValidUtf8(text)) {
    repaired = SanitizeUtf8(text);
    text = repaired;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  if (!allow_special) {
    EncodeSegment(text, &out);
    return out;
  }
  size_t plain_start = 0, i = 0;
  while (i < text.size()) {
    const int32_t found = SpecialAt(text, i);
    if (found < 0) {
      ++i;
      continue;
    }
    EncodeSegment(text.substr(plain_start, i - plain_start), &out);
    out.push_back(found);
    i += Bytes(found).size();
    if (rstrip_[found]) i += LeadingWhiteSpace(text.substr(i));
    plain_start = i;
  }
  EncodeSegment(text.substr(plain_start), &out);
  return out;
}

absl::StatusOr<std::vector<int32_t>> SentencePieceTokenizer::EncodePieces(std::span<const PromptPiece> pieces) const {
  std::vector<int32_t> out;
  std::string text;
  bool strip = false;  // the text follows an rstrip token
  auto flush = [&] {
    std::string repaired;
    absl::string_view t = text;
    if (!IsValidUtf8(t)) {
      repaired = SanitizeUtf8(t);
      t = repaired;
    }
    if (strip) t.remove_prefix(LeadingWhiteSpace(t));
    EncodeSegment(t, &out);
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
    strip = rstrip_[*id];
  }
  flush();
  return out;
}

std::string SentencePieceTokenizer::Decode(std::span<const int32_t> ids) const {
  std::string out;
  bool segment_start = true;
  for (int32_t id : ids) {
    absl::string_view b = Bytes(id);
    if (IsSpecial(id)) {
      segment_start = true;
    } else {
      if (segment_start && add_space_prefix_ && InRange(id) && types_[id] == static_cast<int32_t>(TokenType::kNormal) &&
          !b.empty() && b[0] == ' ') {
        b.remove_prefix(1);
      }
      segment_start = false;
    }
    out.append(b.data(), b.size());
  }
  return out;
}

}  // namespace

std::string ByteTokenText(unsigned char byte) { return absl::StrFormat("<0x%02X>", byte); }

absl::StatusOr<std::unique_ptr<Tokenizer>> CreateSentencePieceTokenizer(VocabSpec spec) {
  return SentencePieceTokenizer::Build(std::move(spec));
}

}  // namespace ossgate::text
