// Byte-level BPE logic on small vocabularies: merge order against a naive
// reference, special tokens, invalid input, long inputs, validation of the
// vocabulary, GGUF metadata and the vocabulary file format.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/text/byte_level.h"
#include "inference_worker/text/pretokenizer.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/utf8.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::text {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int32_t kNormal = static_cast<int32_t>(TokenType::kNormal);
constexpr int32_t kControl = static_cast<int32_t>(TokenType::kControl);
constexpr int32_t kUserDefined = static_cast<int32_t>(TokenType::kUserDefined);

std::unique_ptr<Tokenizer> MustCreate(VocabSpec spec) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(std::move(spec));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

// The 256 byte tokens (id = byte) and nothing else.
VocabSpec ByteVocab() {
  VocabSpec spec;
  for (int b = 0; b < 256; ++b) {
    spec.tokens.push_back(BytesToByteLevel(std::string(1, static_cast<char>(b))));
    spec.token_types.push_back(kNormal);
  }
  return spec;
}

void AddToken(VocabSpec* spec, const std::string& raw, int32_t type = kNormal) {
  spec->tokens.push_back(type == kNormal ? BytesToByteLevel(raw) : raw);
  spec->token_types.push_back(type);
}

void AddMerge(VocabSpec* spec, const std::string& a, const std::string& b) {
  spec->merges.push_back(absl::StrCat(BytesToByteLevel(a), " ", BytesToByteLevel(b)));
}

// Naive BPE straight from the definition: repeatedly merge the adjacent pair
// whose rule has the lowest priority (the first rule producing the same
// result), the leftmost one among equals, until no pair has a rule; a piece
// that is itself a token is taken whole.
class ReferenceBpe {
 public:
  explicit ReferenceBpe(const VocabSpec& spec) {
    for (size_t i = 0; i < spec.tokens.size(); ++i) {
      if (spec.token_types[i] == kNormal) id_of_[*ByteLevelToBytes(spec.tokens[i])] = static_cast<int32_t>(i);
    }
    std::map<std::string, int> first_rule_for_result;
    for (size_t r = 0; r < spec.merges.size(); ++r) {
      const size_t sp = spec.merges[r].find(' ');
      const std::string a = *ByteLevelToBytes(spec.merges[r].substr(0, sp));
      const std::string b = *ByteLevelToBytes(spec.merges[r].substr(sp + 1));
      first_rule_for_result.emplace(a + b, static_cast<int>(r));
      priority_.emplace(std::make_pair(a, b), first_rule_for_result[a + b]);
    }
  }

  std::vector<int32_t> Piece(absl::string_view piece) const {
    if (auto it = id_of_.find(std::string(piece)); it != id_of_.end()) return {it->second};
    std::vector<std::string> parts;
    for (char c : piece) parts.emplace_back(1, c);
    while (true) {
      int best = -1, best_priority = 0;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        auto it = priority_.find({parts[i], parts[i + 1]});
        if (it != priority_.end() && (best < 0 || it->second < best_priority)) {
          best = static_cast<int>(i);
          best_priority = it->second;
        }
      }
      if (best < 0) break;
      parts[best] += parts[best + 1];
      parts.erase(parts.begin() + best + 1);
    }
    std::vector<int32_t> ids;
    for (const std::string& p : parts) ids.push_back(id_of_.at(p));
    return ids;
  }

  std::vector<int32_t> Text(absl::string_view text) const {
    auto pre = PreTokenizer::Create();
    std::vector<int32_t> ids;
    (*pre)->Split(text, [&](absl::string_view piece) {
      std::vector<int32_t> p = Piece(piece);
      ids.insert(ids.end(), p.begin(), p.end());
    });
    return ids;
  }

 private:
  std::map<std::string, int32_t> id_of_;  // raw bytes -> id
  std::map<std::pair<std::string, std::string>, int> priority_;
};

// Every string over {a, b} of length 2..5 is a token, and every split of it is
// a merge rule, in shuffled order: many rules share a result and their order
// disagrees with position, which is where a heap-based merger can go wrong.
VocabSpec AdversarialVocab(uint32_t seed) {
  VocabSpec spec = ByteVocab();
  std::vector<std::string> words = {"a", "b"};
  for (int len = 2; len <= 5; ++len) {
    std::vector<std::string> next;
    for (const std::string& w : words) {
      if (static_cast<int>(w.size()) == len - 1) next.push_back(w + "a"), next.push_back(w + "b");
    }
    for (const std::string& w : next) AddToken(&spec, w);
    words.insert(words.end(), next.begin(), next.end());
  }
  std::vector<std::pair<std::string, std::string>> rules;
  for (const std::string& w : words) {
    for (size_t k = 1; k < w.size(); ++k) rules.emplace_back(w.substr(0, k), w.substr(k));
  }
  std::mt19937 rng(seed);
  std::shuffle(rules.begin(), rules.end(), rng);
  for (const auto& [a, b] : rules) AddMerge(&spec, a, b);
  return spec;
}

TEST(BpeTest, MatchesNaiveReferenceOnAdversarialVocabularies) {
  std::mt19937 rng(7);
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    VocabSpec spec = AdversarialVocab(seed);
    const ReferenceBpe reference(spec);
    std::unique_ptr<Tokenizer> tok = MustCreate(spec);
    ASSERT_NE(tok, nullptr);
    for (int trial = 0; trial < 60; ++trial) {
      std::string text(std::uniform_int_distribution<int>(1, 40)(rng), 'a');
      for (char& c : text) c = "ab"[rng() % 2];
      ASSERT_EQ(tok->Encode(text, false), reference.Piece(text)) << "vocab seed " << seed << ", text " << text;
    }
  }
}

TEST(BpeTest, MatchesNaiveReferenceOnTinyVocab) {
  const VocabSpec spec = MakeTinyVocab();
  const ReferenceBpe reference(spec);
  std::unique_ptr<Tokenizer> tok = MustCreate(spec);
  ASSERT_NE(tok, nullptr);
  // Random slices and shuffled words of the training text, plus whole text.
  const std::string corpus(TinyVocabTrainingText());
  std::mt19937 rng(11);
  std::vector<std::string> texts = {corpus};
  for (int i = 0; i < 200; ++i) {
    const size_t start = rng() % corpus.size();
    texts.push_back(corpus.substr(start, rng() % 200));
  }
  for (const std::string& t : texts) ASSERT_EQ(tok->Encode(t, false), reference.Text(t)) << t;
}

TEST(BpeTest, EqualPriorityMergesLeftmostFirst) {
  // "aaa" can be "aa"+"a" or "a"+"aa"; with one rule "a a", the leftmost pair
  // merges first, so "aaa" -> ["aa", "a"].
  VocabSpec spec = ByteVocab();
  AddToken(&spec, "aa");  // 256
  AddMerge(&spec, "a", "a");
  std::unique_ptr<Tokenizer> tok = MustCreate(spec);
  EXPECT_THAT(tok->Encode("aaa", false), ElementsAre(256, 'a'));
  EXPECT_THAT(tok->Encode("aaaa", false), ElementsAre(256, 256));
}

TEST(BpeTest, LowerRankWinsOverPosition) {
  // Rules: "b c" (rank 0) before "a b" (rank 1): "abc" -> "a" + "bc".
  VocabSpec spec = ByteVocab();
  AddToken(&spec, "bc");  // 256
  AddToken(&spec, "ab");  // 257
  AddMerge(&spec, "b", "c");
  AddMerge(&spec, "a", "b");
  std::unique_ptr<Tokenizer> tok = MustCreate(spec);
  EXPECT_THAT(tok->Encode("abc", false), ElementsAre('a', 256));
  EXPECT_THAT(tok->Encode("abd", false), ElementsAre(257, 'd'));
}

TEST(BpeTest, WholePieceTokenIsUsedEvenWithoutMergePath) {
  // tiktoken looks a whole piece up before merging: "xyz" is a token but no
  // rule builds it.
  VocabSpec spec = ByteVocab();
  AddToken(&spec, "xyz");  // 256
  std::unique_ptr<Tokenizer> tok = MustCreate(spec);
  EXPECT_THAT(tok->Encode("xyz", false), ElementsAre(256));
  EXPECT_THAT(tok->Encode("xyzw", false), ElementsAre('x', 'y', 'z', 'w'));
}

TEST(TinyVocabTest, ShapeAndDeterminism) {
  const VocabSpec a = MakeTinyVocab(), b = MakeTinyVocab();
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.merges.size(), static_cast<size_t>(kTinyVocabMerges));
  EXPECT_EQ(a.tokens.size(), a.token_types.size());
  EXPECT_EQ(std::count(a.token_types.begin(), a.token_types.end(), kControl), 9);
  std::unique_ptr<Tokenizer> tok = MustCreate(a);
  ASSERT_NE(tok, nullptr);
  for (const char* s : {"<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>", "<|start|>",
                        "<|end|>", "<|message|>", "<|call|>"}) {
    std::optional<int32_t> id = tok->SpecialTokenId(s);
    ASSERT_TRUE(id.has_value()) << s;
    EXPECT_TRUE(tok->IsSpecial(*id));
    EXPECT_GE(*id, 256 + kTinyVocabMerges / 2);
  }
  // The merges are useful: the training text needs far fewer tokens than bytes.
  const std::string text(TinyVocabTrainingText());
  EXPECT_LT(tok->Encode(text, false).size(), text.size() / 2);
  EXPECT_EQ(tok->TokenBytes(' '), " ");  // id = byte value
}

class TinyTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = MustCreate(MakeTinyVocab());
    ASSERT_NE(tok_, nullptr);
  }
  int32_t Special(const char* text) { return *tok_->SpecialTokenId(text); }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(TinyTokenizerTest, SpecialTokensOnlyWhenAllowed) {
  const std::string text = "<|start|>user<|message|>hi<|end|><|start|>assistant";
  std::vector<int32_t> with = tok_->Encode(text, true);
  ASSERT_GE(with.size(), 6u);
  EXPECT_EQ(with.front(), Special("<|start|>"));
  EXPECT_EQ(std::count(with.begin(), with.end(), Special("<|start|>")), 2);
  EXPECT_EQ(std::count(with.begin(), with.end(), Special("<|end|>")), 1);
  EXPECT_EQ(tok_->Decode(with), text);
  std::vector<int32_t> without = tok_->Encode(text, false);
  for (int32_t id : without) EXPECT_FALSE(tok_->IsSpecial(id)) << id;
  EXPECT_EQ(tok_->Decode(without), text);
  // Around a special token the text is encoded as if the special were absent.
  std::vector<int32_t> expected = tok_->Encode("hello ", false);
  expected.push_back(Special("<|end|>"));
  const std::vector<int32_t> after = tok_->Encode(" world", false);
  expected.insert(expected.end(), after.begin(), after.end());
  EXPECT_EQ(tok_->Encode("hello <|end|> world", true), expected);
  // Near misses stay text.
  for (const char* s : {"<|end|", "<|END|>", "< |end|>", "<|end |>", "<<|end"}) {
    for (int32_t id : tok_->Encode(s, true)) EXPECT_FALSE(tok_->IsSpecial(id)) << s;
  }
}

TEST(SpecialTokenTest, LongestMatchAndUserDefined) {
  VocabSpec spec = MakeTinyVocab();
  AddToken(&spec, "<|x", kUserDefined);
  AddToken(&spec, "<|x|>", kUserDefined);
  const int32_t short_id = static_cast<int32_t>(spec.tokens.size()) - 2, long_id = short_id + 1;
  std::unique_ptr<Tokenizer> tok = MustCreate(spec);
  EXPECT_TRUE(tok->IsSpecial(short_id));
  EXPECT_THAT(tok->Encode("<|x|>", true), ElementsAre(long_id));
  std::vector<int32_t> ids = tok->Encode("<|x|", true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), short_id);
}

TEST_F(TinyTokenizerTest, InvalidUtf8BecomesReplacementCharacter) {
  for (const std::string& bad : {std::string("\xFF"), std::string("a\xC3"), std::string("\xED\xA0\x80z"),
                                 std::string("x\xF0\x9F\x98 y"), std::string("\x80\x80")}) {
    const std::string repaired = SanitizeUtf8(bad);
    EXPECT_EQ(tok_->Encode(bad, false), tok_->Encode(repaired, false));
    EXPECT_EQ(tok_->Decode(tok_->Encode(bad, true)), repaired);
  }
}

TEST_F(TinyTokenizerTest, RoundTripsArbitraryText) {
  std::mt19937 rng(3);
  for (int i = 0; i < 300; ++i) {
    std::string bytes(rng() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() % 256);
    if (i % 2 == 0) bytes = SanitizeUtf8(bytes) + " The analysis of it's 12345 \r\n\t";
    EXPECT_EQ(tok_->Decode(tok_->Encode(bytes, false)), SanitizeUtf8(bytes));
  }
  EXPECT_TRUE(tok_->Encode("", true).empty());
}

// Pieces of a megabyte must not take quadratic time (the ctest timeout and
// the sanitizer run would catch it) and must round-trip.
TEST_F(TinyTokenizerTest, LongPiecesFinish) {
  struct Case {
    std::string unit;
    size_t bytes;
  };
  for (const Case& c : std::vector<Case>{{" ", 1u << 20}, {"e", 1u << 20}, {"\n", 1u << 18}, {"th", 1u << 18},
                                         {" \t", 1u << 18}, {"7", 1u << 18}, {"!?", 1u << 18}}) {
    const std::string& unit = c.unit;
    std::string text;
    while (text.size() < c.bytes) text += unit;
    std::vector<int32_t> ids = tok_->Encode(text, false);
    EXPECT_EQ(tok_->Decode(ids), text) << "unit \"" << unit << "\"";
    EXPECT_LT(ids.size(), text.size() + 1);
  }
}

TEST(VocabValidationTest, RejectsBrokenVocabularies) {
  auto expect_error = [](VocabSpec spec, absl::string_view what) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(std::move(spec));
    ASSERT_FALSE(tok.ok()) << "expected an error mentioning " << what;
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(tok.status().message(), HasSubstr(what));
  };
  expect_error(VocabSpec{}, "no tokens");
  {
    VocabSpec s = ByteVocab();
    s.token_types.pop_back();
    expect_error(s, "same length");
  }
  {
    VocabSpec s = ByteVocab();
    s.tokens['A'] = "AA";  // now no token for the byte 'A', and "AA" is new
    expect_error(s, "0x41");
  }
  {
    VocabSpec s = ByteVocab();
    AddToken(&s, "x");  // a second token for the byte 'x'
    expect_error(s, "unique");
  }
  {
    VocabSpec s = ByteVocab();
    s.tokens.push_back("a b");  // a real space is not GPT-2 form
    s.token_types.push_back(kNormal);
    expect_error(s, "byte-to-unicode");
  }
  {
    VocabSpec s = ByteVocab();
    s.token_types[5] = 9;
    expect_error(s, "token type 9");
  }
  {
    VocabSpec s = ByteVocab();
    AddToken(&s, "", kControl);
    expect_error(s, "special token 256");
  }
  {
    VocabSpec s = ByteVocab();
    AddToken(&s, "<|a|>", kControl);
    AddToken(&s, "<|a|>", kControl);
    expect_error(s, "same text");
  }
  {
    VocabSpec s = ByteVocab();
    s.merges.push_back("ab");
    expect_error(s, "not of the form");
  }
  {
    VocabSpec s = ByteVocab();
    s.merges.push_back("a  b");
    expect_error(s, "not of the form");
  }
  {
    VocabSpec s = ByteVocab();
    AddMerge(&s, "a", "b");  // "ab" is not a token
    expect_error(s, "concatenation");
  }
  {
    VocabSpec s = ByteVocab();
    AddToken(&s, "abc");
    AddMerge(&s, "ab", "c");  // "ab" is not a token
    expect_error(s, "left part");
  }
}

// GGUF metadata round trip through the project's writer and reader.
class GgufTokenizerTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<Tokenizer>> WriteAndLoad(const std::string& model, const std::string& pre,
                                                          bool with_types) {
    const VocabSpec spec = MakeTinyVocab();
    gguf::GgufWriter w;
    w.SetString("general.architecture", "gpt-oss");
    if (!model.empty()) w.SetString("tokenizer.ggml.model", model);
    if (!pre.empty()) w.SetString("tokenizer.ggml.pre", pre);
    w.SetStringArray("tokenizer.ggml.tokens", spec.tokens);
    w.SetStringArray("tokenizer.ggml.merges", spec.merges);
    if (with_types) w.SetInt32Array("tokenizer.ggml.token_type", spec.token_types);
    const std::string path = ::testing::TempDir() + "/tokenizer_test.gguf";
    absl::Status st = w.Begin(path);
    if (st.ok()) st = w.Finish();
    if (!st.ok()) return st;
    std::ifstream in(path, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    absl::StatusOr<gguf::GgufFile> file =
        gguf::GgufFile::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()));
    if (!file.ok()) return file.status();
    return Tokenizer::FromGguf(*file);
  }
  std::string bytes_;
};

TEST_F(GgufTokenizerTest, LoadsWhatCreateLoads) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> from_gguf = WriteAndLoad("gpt2", "gpt-4o", true);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status();
  std::unique_ptr<Tokenizer> direct = MustCreate(MakeTinyVocab());
  const std::string text = "<|start|>user<|message|>The answer isn't 42.<|end|>";
  EXPECT_EQ((*from_gguf)->Encode(text, true), direct->Encode(text, true));
  EXPECT_EQ((*from_gguf)->vocab_size(), direct->vocab_size());
  EXPECT_EQ((*from_gguf)->SpecialTokenId("<|call|>"), direct->SpecialTokenId("<|call|>"));
}

TEST_F(GgufTokenizerTest, PreTokenizerKeyIsOptional) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = WriteAndLoad("gpt2", "", true);
  EXPECT_TRUE(tok.ok()) << tok.status();
}

TEST_F(GgufTokenizerTest, RejectsOtherModels) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = WriteAndLoad("bert", "gpt-4o", true);
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(tok.status().message(), HasSubstr("\"bert\""));
  EXPECT_THAT(tok.status().message(), HasSubstr("gpt2"));
  EXPECT_THAT(tok.status().message(), HasSubstr("llama"));
}

TEST_F(GgufTokenizerTest, RejectsOtherPreTokenizers) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = WriteAndLoad("gpt2", "llama3", true);
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(tok.status().message(), HasSubstr("\"llama3\""));
  EXPECT_THAT(tok.status().message(), HasSubstr("qwen2"));
}

TEST_F(GgufTokenizerTest, AcceptsQwen2PreTokenizer) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = WriteAndLoad("gpt2", "qwen2", true);
  ASSERT_TRUE(tok.ok()) << tok.status();
  // Qwen2 splits digits one by one where o200k takes up to three.
  std::unique_ptr<Tokenizer> o200k = MustCreate(MakeTinyVocab());
  EXPECT_NE((*tok)->Encode("x 2024", false), o200k->Encode("x 2024", false));
}

TEST_F(GgufTokenizerTest, SentencePieceNeedsScores) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = WriteAndLoad("llama", "default", true);
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(tok.status().message(), HasSubstr("tokenizer.ggml.scores"));
}

TEST_F(GgufTokenizerTest, RequiresModelAndTokenTypes) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = WriteAndLoad("", "gpt-4o", true);
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(tok.status().message(), HasSubstr("tokenizer.ggml.model"));
  tok = WriteAndLoad("gpt2", "gpt-4o", false);
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(tok.status().message(), HasSubstr("token_type"));
}

TEST(Qwen2TokenizerTest, NormalizesToNfcPerTextSegment) {
  absl::StatusOr<VocabSpec> spec = MakeTinyFamilyVocab("qwen2");
  ASSERT_TRUE(spec.ok()) << spec.status();
  std::unique_ptr<Tokenizer> tok = MustCreate(*spec);
  // "e" + U+0301 COMBINING ACUTE is "\u00e9" in NFC; o200k would keep them apart.
  EXPECT_EQ(tok->Encode("caf" "e\xCC\x81", false), tok->Encode("caf\xC3\xA9", false));
  EXPECT_EQ(tok->Decode(tok->Encode("caf" "e\xCC\x81", false)), "caf\xC3\xA9");
  std::unique_ptr<Tokenizer> o200k = MustCreate(MakeTinyVocab());
  EXPECT_NE(o200k->Encode("caf" "e\xCC\x81", false), o200k->Encode("caf\xC3\xA9", false));
  // Specials are matched on the raw text, the text between them normalized.
  const std::vector<int32_t> ids = tok->Encode("<|im_start|>e\xCC\x81<|im_end|>", true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), *tok->SpecialTokenId("<|im_start|>"));
  EXPECT_EQ(ids.back(), *tok->SpecialTokenId("<|im_end|>"));
  EXPECT_EQ(tok->Decode(ids), "<|im_start|>\xC3\xA9<|im_end|>");
}

TEST(Qwen2TokenizerTest, SplitsLikeTheQwen2Pattern) {
  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre = PreTokenizer::Create(kQwen2Pattern);
  ASSERT_TRUE(pre.ok()) << pre.status();
  auto split = [&](absl::string_view text) {
    std::vector<std::string> pieces;
    (*pre)->Split(text, [&](absl::string_view p) { pieces.emplace_back(p); });
    return pieces;
  };
  // Digits one by one; contractions on their own; letters without marks' help.
  EXPECT_THAT(split("In 2024 it's"), ElementsAre("In", " ", "2", "0", "2", "4", " it", "'s"));
  EXPECT_THAT(split("x'\xC5\xBF"), ElementsAre("x", "'\xC5\xBF"));  // 's by Unicode case folding (\u017f)
  // U+0085 is White_Space (in JavaScript's \s it is not: " \u0085" would be one piece).
  EXPECT_THAT(split("a \xC2\x85" "b"), ElementsAre("a", " ", "\xC2\x85" "b"));
  EXPECT_THAT(split("a\n\n  b"), ElementsAre("a", "\n\n", " ", " b"));
}

TEST(VocabFileTest, SerializeParseRoundTrip) {
  const VocabSpec spec = MakeTinyVocab();
  absl::StatusOr<std::string> text = SerializeVocab(spec);
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<VocabSpec> back = ParseVocab(*text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->tokens, spec.tokens);
  EXPECT_EQ(back->token_types, spec.token_types);
  EXPECT_EQ(back->merges, spec.merges);

  const std::string path = ::testing::TempDir() + "/tiny.vocab";
  std::ofstream(path, std::ios::binary) << *text;
  absl::StatusOr<VocabSpec> loaded = LoadVocabFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->merges, spec.merges);
}

TEST(VocabFileTest, Version2KeepsModelScoresAndSpecialIds) {
  absl::StatusOr<VocabSpec> spec = MakeTinyFamilyVocab("phi3");
  ASSERT_TRUE(spec.ok()) << spec.status();
  spec->scores[300] = -0.123456789f;  // an arbitrary float must round-trip
  absl::StatusOr<std::string> text = SerializeVocab(*spec);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, ::testing::StartsWith("ossgate-vocab 2\nmodel llama\npre default\n"));
  absl::StatusOr<VocabSpec> back = ParseVocab(*text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->model, "llama");
  EXPECT_EQ(back->tokens, spec->tokens);
  EXPECT_EQ(back->token_types, spec->token_types);
  EXPECT_EQ(back->scores, spec->scores);
  EXPECT_EQ(back->rstrip_ids, spec->rstrip_ids);
  EXPECT_EQ(back->bos_id, spec->bos_id);
  EXPECT_EQ(back->eos_id, spec->eos_id);
  EXPECT_EQ(back->unk_id, spec->unk_id);
  EXPECT_EQ(back->add_bos, spec->add_bos);
  // Defects name their line.
  std::string bad = *text;
  bad.replace(bad.find("add_bos 0"), 9, "add_bos 7");
  EXPECT_THAT(ParseVocab(bad).status().message(), HasSubstr("line 8"));
  bad = *text;
  bad.replace(bad.find("pre default"), 11, "colour red");
  EXPECT_THAT(ParseVocab(bad).status().message(), HasSubstr("unknown key \"colour\""));
}

TEST(VocabFileTest, ReportsDefectsWithLineNumbers) {
  const std::string good = *SerializeVocab(MakeTinyVocab());
  auto expect_error = [](const std::string& text, absl::string_view what) {
    absl::StatusOr<VocabSpec> spec = ParseVocab(text);
    ASSERT_FALSE(spec.ok()) << what;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(spec.status().message(), HasSubstr(what));
  };
  expect_error("not a vocab\n", "line 1");
  expect_error(good.substr(0, good.size() - 4), "expected \"end\"");  // truncated
  expect_error(good + "extra\n", "after \"end\"");
  // A merge that points at a special token, and one whose split is too far.
  const size_t merges_at = good.find("merges ");
  const size_t first_merge = good.find('\n', merges_at) + 1;
  std::string bad = good;
  bad.replace(first_merge, good.find('\n', first_merge) - first_merge, "100000 1");
  expect_error(bad, "not a BPE token");
  bad = good;
  bad.replace(first_merge, good.find('\n', first_merge) - first_merge, "256 9");
  expect_error(bad, "does not fall inside token 256");
  EXPECT_EQ(LoadVocabFile("/nonexistent/o200k.vocab").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ossgate::text
