#include "inference_worker/text/vocab_file.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "inference_worker/text/byte_level.h"
#include "inference_worker/text/pretokenizer.h"

namespace ossgate::text {
namespace {

constexpr absl::string_view kMagic = "ossgate-bpe-vocab 1";  // gpt-oss vocabulary, no header keys
constexpr absl::string_view kMagic2 = "ossgate-vocab 2";

bool IsBpeType(int32_t t) { return t == static_cast<int32_t>(TokenType::kNormal) || t == static_cast<int32_t>(TokenType::kByte); }

// Splits contents into lines on '\n'; tracks the 1-based line number.
class LineReader {
 public:
  explicit LineReader(absl::string_view s) : s_(s) {}
  bool Next(absl::string_view* line) {
    if (pos_ >= s_.size()) return false;
    size_t end = s_.find('\n', pos_);
    if (end == absl::string_view::npos) end = s_.size();
    *line = s_.substr(pos_, end - pos_);
    pos_ = end + 1;
    ++number_;
    return true;
  }
  int number() const { return number_; }

 private:
  absl::string_view s_;
  size_t pos_ = 0;
  int number_ = 0;
};

// Byte offset of the `count`-th code point of UTF-8 `s`, or npos if `s` has
// fewer code points.
size_t CodePointOffset(absl::string_view s, int64_t count) {
  size_t i = 0;
  for (int64_t k = 0; k < count; ++k) {
    if (i >= s.size()) return absl::string_view::npos;
    const auto lead = static_cast<unsigned char>(s[i]);
    i += lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
  }
  return i <= s.size() ? i : absl::string_view::npos;
}

int64_t CodePointCount(absl::string_view s) {
  int64_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// "<keyword> <count>" header line.
bool ParseCountLine(absl::string_view line, absl::string_view keyword, int64_t* count) {
  if (!absl::ConsumePrefix(&line, keyword) || !absl::ConsumePrefix(&line, " ")) return false;
  return absl::SimpleAtoi(line, count) && *count >= 0 && *count <= (int64_t{1} << 31) - 1;
}

}  // namespace

absl::StatusOr<VocabSpec> ParseVocab(absl::string_view contents) {
  LineReader reader(contents);
  absl::string_view line;
  auto error = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary file line ", reader.number(), ": ", what));
  };
  if (!reader.Next(&line) || (line != kMagic && line != kMagic2)) {
    return error(absl::StrCat("expected the header \"", kMagic2, "\" (or \"", kMagic,
                              "\"); is this an ossgate vocabulary file (decompressed)?"));
  }
  const bool v2 = line == kMagic2;
  VocabSpec spec;
  if (!reader.Next(&line)) return error("expected \"tokens <count>\"");
  // Version 2: "<key> <value>" lines up to "tokens".
  while (v2 && !absl::StartsWith(line, "tokens ")) {
    const size_t space = line.find(' ');
    const absl::string_view key = line.substr(0, space);
    const absl::string_view value = space == absl::string_view::npos ? absl::string_view() : line.substr(space + 1);
    int32_t number = 0;
    if (key == "model") {
      spec.model = std::string(value);
    } else if (key == "pre") {
      spec.pre = std::string(value);
    } else if (key == "bos" || key == "eos" || key == "unk" || key == "padding") {
      if (!absl::SimpleAtoi(value, &number) || number < 0) return error(absl::StrCat("expected \"", key, " <id>\""));
      (key == "bos" ? spec.bos_id : key == "eos" ? spec.eos_id : key == "unk" ? spec.unk_id : spec.padding_id) = number;
    } else if (key == "add_bos" || key == "add_space_prefix") {
      if (value != "0" && value != "1") return error(absl::StrCat("expected \"", key, " 0\" or \"", key, " 1\""));
      (key == "add_bos" ? spec.add_bos : spec.add_space_prefix) = value == "1";
    } else if (key == "rstrip") {
      for (absl::string_view id : absl::StrSplit(value, ' ', absl::SkipEmpty())) {
        if (!absl::SimpleAtoi(id, &number) || number < 0) return error("expected \"rstrip <id> <id> ...\"");
        spec.rstrip_ids.push_back(number);
      }
    } else {
      return error(absl::StrCat("unknown key \"", key,
                                "\" (model, pre, bos, eos, unk, padding, add_bos, add_space_prefix, rstrip, tokens)"));
    }
    if (!reader.Next(&line)) return error("expected \"tokens <count>\"");
  }
  const bool scored = spec.model == kSentencePieceModel;
  int64_t n_tokens = 0, n_merges = 0;
  if (!ParseCountLine(line, "tokens", &n_tokens)) return error("expected \"tokens <count>\"");
  spec.tokens.reserve(n_tokens);
  spec.token_types.reserve(n_tokens);
  if (scored) spec.scores.reserve(n_tokens);
  for (int64_t i = 0; i < n_tokens; ++i) {
    if (!reader.Next(&line)) return error(absl::StrCat("file ends after ", i, " of ", n_tokens, " tokens"));
    size_t space = line.find(' ');
    int32_t type = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtoi(line.substr(0, space), &type) || space + 1 == line.size()) {
      return error(scored ? "expected \"<type> <score> <token text>\"" : "expected \"<type> <token text>\"");
    }
    spec.token_types.push_back(type);
    if (scored) {
      line.remove_prefix(space + 1);
      space = line.find(' ');
      float score = 0;
      if (space == absl::string_view::npos || !absl::SimpleAtof(line.substr(0, space), &score) ||
          space + 1 == line.size()) {
        return error("expected \"<type> <score> <token text>\"");
      }
      spec.scores.push_back(score);
    }
    spec.tokens.emplace_back(line.substr(space + 1));
  }
  if (!reader.Next(&line) || !ParseCountLine(line, "merges", &n_merges)) return error("expected \"merges <count>\"");
  spec.merges.reserve(n_merges);
  int64_t result = 0;
  for (int64_t i = 0; i < n_merges; ++i) {
    if (!reader.Next(&line)) return error(absl::StrCat("file ends after ", i, " of ", n_merges, " merges"));
    const size_t space = line.find(' ');
    int64_t delta = 0, split = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtoi(line.substr(0, space), &delta) ||
        !absl::SimpleAtoi(line.substr(space + 1), &split)) {
      return error("expected \"<delta> <split>\"");
    }
    result += delta;
    if (result < 0 || result >= n_tokens || !IsBpeType(spec.token_types[result])) {
      return error(absl::StrCat("merge result id ", result, " is not a BPE token"));
    }
    const std::string& text = spec.tokens[result];
    const size_t cut = split > 0 ? CodePointOffset(text, split) : absl::string_view::npos;
    if (cut == absl::string_view::npos || cut == 0 || cut >= text.size()) {
      return error(absl::StrCat("split ", split, " does not fall inside token ", result));
    }
    spec.merges.push_back(absl::StrCat(absl::string_view(text).substr(0, cut), " ", absl::string_view(text).substr(cut)));
  }
  if (!reader.Next(&line) || line != "end") return error("expected \"end\" (truncated file?)");
  if (reader.Next(&line)) return error("unexpected content after \"end\"");
  // Version 1 is the gpt-oss vocabulary, whose GGUF names the harmony tokens.
  if (!v2) SetHarmonySpecialIds(&spec);
  return spec;
}

absl::StatusOr<VocabSpec> LoadVocabFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open vocabulary file ", path,
                                            "; the build writes it from assets/tokenizer/*.vocab.xz (targets "
                                            "ossgate_o200k_vocab, ossgate_qwen2_vocab, ossgate_phi3_vocab)"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<VocabSpec> spec = ParseVocab(buffer.str());
  if (!spec.ok()) return absl::Status(spec.status().code(), absl::StrCat(path, ": ", spec.status().message()));
  return spec;
}

absl::StatusOr<std::string> SerializeVocab(const VocabSpec& spec) {
  if (spec.token_types.size() != spec.tokens.size()) {
    return absl::InvalidArgumentError("token_types and tokens differ in length");
  }
  const bool scored = spec.model == kSentencePieceModel;
  if (scored && spec.scores.size() != spec.tokens.size()) {
    return absl::InvalidArgumentError("a SentencePiece vocabulary needs one score per token");
  }
  for (absl::string_view v : {absl::string_view(spec.model), absl::string_view(spec.pre)}) {
    if (v.empty() || v.find_first_of(" \r\n") != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("model and pre must be single words, got \"", v, "\""));
    }
  }
  absl::flat_hash_map<absl::string_view, int64_t> bpe_index;
  std::string out = absl::StrCat(kMagic2, "\nmodel ", spec.model, "\npre ", spec.pre, "\n");
  for (auto [key, id] : {std::pair{"bos", spec.bos_id}, std::pair{"eos", spec.eos_id}, std::pair{"unk", spec.unk_id},
                         std::pair{"padding", spec.padding_id}}) {
    if (id >= 0) absl::StrAppend(&out, key, " ", id, "\n");
  }
  absl::StrAppend(&out, "add_bos ", spec.add_bos ? 1 : 0, "\n");
  if (scored) absl::StrAppend(&out, "add_space_prefix ", spec.add_space_prefix ? 1 : 0, "\n");
  if (!spec.rstrip_ids.empty()) absl::StrAppend(&out, "rstrip ", absl::StrJoin(spec.rstrip_ids, " "), "\n");
  absl::StrAppend(&out, "tokens ", spec.tokens.size(), "\n");
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    const std::string& t = spec.tokens[i];
    if (t.empty() || t.find('\n') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("token ", i, " is empty or holds a newline"));
    }
    if (IsBpeType(spec.token_types[i])) bpe_index.emplace(t, static_cast<int64_t>(i));
    if (scored) {
      // %.9g round-trips every float.
      absl::StrAppend(&out, spec.token_types[i], " ", absl::StrFormat("%.9g", spec.scores[i]), " ", t, "\n");
    } else {
      absl::StrAppend(&out, spec.token_types[i], " ", t, "\n");
    }
  }
  absl::StrAppend(&out, "merges ", spec.merges.size(), "\n");
  int64_t prev = 0;
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const std::string& m = spec.merges[r];
    const size_t space = m.find(' ');
    if (space == std::string::npos) return absl::InvalidArgumentError(absl::StrCat("merge ", r, " has no space"));
    std::string joined = m.substr(0, space) + m.substr(space + 1);
    auto it = bpe_index.find(joined);
    if (it == bpe_index.end()) {
      return absl::InvalidArgumentError(absl::StrCat("merge ", r, " \"", m, "\": its parts do not form a BPE token"));
    }
    absl::StrAppend(&out, it->second - prev, " ", CodePointCount(absl::string_view(m).substr(0, space)), "\n");
    prev = it->second;
  }
  out += "end\n";
  return out;
}

void SetHarmonySpecialIds(VocabSpec* spec) {
  auto find = [&](absl::string_view text) -> int32_t {
    for (size_t i = 0; i < spec->tokens.size(); ++i) {
      if (spec->tokens[i] == text) return static_cast<int32_t>(i);
    }
    return -1;
  };
  spec->bos_id = find("<|startoftext|>");
  spec->eos_id = find("<|return|>");
  spec->padding_id = find("<|endoftext|>");
  spec->add_bos = false;
}

absl::string_view TinyVocabTrainingText() {
  // Plain English written for this purpose, with the words a chat about the
  // harmony format uses, so that tiny models see multi-byte tokens.
  return "The assistant reads the question of the user and thinks about it before it answers. "
         "In the analysis channel the model writes down what it knows, what it needs and what it will do next. "
         "In the final channel it gives the answer that the user will see. When the answer needs a tool, the "
         "assistant writes a call on the commentary channel to the functions namespace, and the tool returns "
         "its result in a message of its own.\n\n"
         "Tokenizers turn text into numbers. A byte-level tokenizer starts from the two hundred and fifty six "
         "bytes and then merges the pairs that occur most often into new tokens, one pair at a time, until the "
         "vocabulary is as large as the model wants it to be. The same merges, applied in the same order, turn "
         "any new text into tokens again. Words that are common become single tokens; rare words are spelled "
         "out with smaller pieces, and nothing is ever lost, because every byte has a token of its own.\n\n"
         "It's a quiet morning in the harbour town. The boats come back with the tide, the fishermen carry "
         "their nets along the stone wall, and the children run to the bakery where the bread is still warm. "
         "They'll go to school later; they've got time. The teacher says she'd rather start at nine, and "
         "we're happy with that. I'm sure you'd agree that there is nothing better than the smell of the sea "
         "and fresh bread in the morning.\n\n"
         "The report was written in the spring. It describes the number of visitors, the weather of each month "
         "and the work that was done on the roads and the bridges. Most of the money went to the repair of the "
         "old bridge over the river; the rest paid for new lights in the main street and for the garden behind "
         "the library. The council thanks everyone who helped, and asks the readers to send their questions "
         "and ideas for the next year.\n\n"
         "    def answer(question):\n"
         "        if question is None:\n"
         "            return \"Please ask a question.\"\n"
         "        return think(question)\n\n"
         "Numbers such as 2024, 15 and 3.14 appear in text too, and so do dates like 2025-06-28, times like "
         "10:30, prices like $12.50 and lists: first, second, third. Reasoning can be low, medium or high. "
         "The system message tells the model who it is, what it knows and what the current date is; the "
         "developer message holds the instructions; the user message holds the question.\n\n"
         "On the other side of the river there is a small farm. The farmer and his daughter grow apples, pears "
         "and potatoes, and in the summer they sell them at the market in the town. Every morning they wake up "
         "before the sun, feed the animals and walk through the orchard to see how the trees are doing. When the "
         "weather is good they work in the fields until the evening; when it rains they repair the fences and "
         "the roof of the barn. The daughter wants to study engineering at the university in the city, and her "
         "father is proud of her, although he wonders who will help him with the harvest.\n\n"
         "Questions and answers: What is the capital of France? The capital of France is Paris. How many days "
         "are there in a week? There are seven days in a week. Which planet is the largest? The largest planet "
         "is Jupiter. Where does the sun rise? The sun rises in the east and sets in the west. Why is the sky "
         "blue? Because the air scatters the blue light of the sun more than the other colours.\n";
}

VocabSpec MakeTinyVocab() {
  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre = PreTokenizer::Create();
  if (!pre.ok()) {
    // Same pattern as every tokenizer uses: failing here is a broken build.
    std::fprintf(stderr, "MakeTinyVocab: %s\n", std::string(pre.status().message()).c_str());
    std::abort();
  }
  std::map<std::string, int64_t> word_counts;
  (*pre)->Split(TinyVocabTrainingText(), [&](absl::string_view piece) { ++word_counts[std::string(piece)]; });

  std::vector<std::string> token_bytes;  // raw bytes per id
  for (int b = 0; b < 256; ++b) token_bytes.emplace_back(1, static_cast<char>(b));
  std::map<std::string, int32_t> id_of_bytes;
  for (int b = 0; b < 256; ++b) id_of_bytes[token_bytes[b]] = b;

  struct Word {
    std::vector<int32_t> symbols;
    int64_t count;
  };
  std::vector<Word> words;
  for (const auto& [text, count] : word_counts) {
    Word w{{}, count};
    for (unsigned char c : text) w.symbols.push_back(c);
    words.push_back(std::move(w));
  }

  VocabSpec spec;
  for (int m = 0; m < kTinyVocabMerges; ++m) {
    std::map<std::pair<int32_t, int32_t>, int64_t> pair_counts;
    for (const Word& w : words) {
      for (size_t i = 0; i + 1 < w.symbols.size(); ++i) pair_counts[{w.symbols[i], w.symbols[i + 1]}] += w.count;
    }
    // Most frequent pair; std::map order makes the smallest pair win ties.
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_count = 1;  // a pair seen once teaches nothing
    for (const auto& [pair, count] : pair_counts) {
      if (count > best_count) best = pair, best_count = count;
    }
    if (best.first < 0) break;
    const std::string joined = token_bytes[best.first] + token_bytes[best.second];
    auto [it, inserted] = id_of_bytes.emplace(joined, static_cast<int32_t>(token_bytes.size()));
    if (inserted) token_bytes.push_back(joined);
    const int32_t merged = it->second;
    spec.merges.push_back(
        absl::StrCat(BytesToByteLevel(token_bytes[best.first]), " ", BytesToByteLevel(token_bytes[best.second])));
    for (Word& w : words) {
      std::vector<int32_t> out;
      out.reserve(w.symbols.size());
      for (size_t i = 0; i < w.symbols.size(); ++i) {
        if (i + 1 < w.symbols.size() && w.symbols[i] == best.first && w.symbols[i + 1] == best.second) {
          out.push_back(merged);
          ++i;
        } else {
          out.push_back(w.symbols[i]);
        }
      }
      w.symbols = std::move(out);
    }
  }
  for (const std::string& bytes : token_bytes) {
    spec.tokens.push_back(BytesToByteLevel(bytes));
    spec.token_types.push_back(static_cast<int32_t>(TokenType::kNormal));
  }
  for (const char* special : {"<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>",
                              "<|start|>", "<|end|>", "<|message|>", "<|call|>"}) {
    spec.tokens.emplace_back(special);
    spec.token_types.push_back(static_cast<int32_t>(TokenType::kControl));
  }
  SetHarmonySpecialIds(&spec);
  return spec;
}

absl::StatusOr<VocabSpec> MakeTinyFamilyVocab(absl::string_view family) {
  const VocabSpec base = MakeTinyVocab();
  const auto control = static_cast<int32_t>(TokenType::kControl);
  if (family == "qwen2") {
    VocabSpec v;
    v.pre = kQwen2PreTokenizer;
    v.merges = base.merges;
    for (size_t i = 0; i < base.tokens.size(); ++i) {
      if (base.token_types[i] == control) continue;
      v.tokens.push_back(base.tokens[i]);
      v.token_types.push_back(base.token_types[i]);
    }
    const auto n = static_cast<int32_t>(v.tokens.size());
    for (const char* special : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
      v.tokens.emplace_back(special);
      v.token_types.push_back(control);
    }
    v.bos_id = v.padding_id = n;
    v.eos_id = n + 2;
    return v;
  }
  if (family != "phi3") {
    return absl::InvalidArgumentError(absl::StrCat("no tiny vocabulary for family \"", family, "\" (qwen2, phi3)"));
  }
  VocabSpec v;
  v.model = kSentencePieceModel;
  v.pre = kDefaultPreTokenizer;
  auto add = [&](std::string text, TokenType type, float score) {
    v.tokens.push_back(std::move(text));
    v.token_types.push_back(static_cast<int32_t>(type));
    v.scores.push_back(score);
  };
  add("<unk>", TokenType::kControl, -1000);
  add("<s>", TokenType::kControl, -1000);
  add("</s>", TokenType::kUserDefined, -1000);
  for (int b = 0; b < 256; ++b) add(absl::StrFormat("<0x%02X>", b), TokenType::kByte, 0);
  // Learned pieces score -(order learned); single characters come last, as
  // SentencePiece's trainer orders them.
  std::vector<std::string> learned;
  for (size_t i = 256; i < base.tokens.size(); ++i) {
    if (base.token_types[i] == control) continue;
    std::optional<std::string> bytes = ByteLevelToBytes(base.tokens[i]);
    if (!bytes) continue;
    std::string piece;
    bool printable = true;
    for (char c : *bytes) {
      if (c == ' ') {
        piece += "\xE2\x96\x81";
      } else if (c > ' ' && c < 0x7F) {
        piece.push_back(c);
      } else {
        printable = false;
      }
    }
    if (printable) learned.push_back(std::move(piece));
  }
  float score = 0;
  for (std::string& piece : learned) add(std::move(piece), TokenType::kNormal, score--);
  add("\xE2\x96\x81", TokenType::kNormal, score--);
  for (char c = '!'; c < 0x7F; ++c) add(std::string(1, c), TokenType::kNormal, score--);
  v.eos_id = v.padding_id = static_cast<int32_t>(v.tokens.size());
  for (const char* special : {"<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"}) {
    add(special, TokenType::kControl, -1000);
  }
  v.bos_id = 1;
  v.unk_id = 0;
  v.add_bos = false;
  v.rstrip_ids = Phi3RstripIds(v);
  return v;
}

}  // namespace ossgate::text
