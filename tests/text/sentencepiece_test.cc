// The SentencePiece tokenizer's edge cases, on hand-made vocabularies and the
// tiny Phi-3 one: merge order by score, byte fallback, special tokens with
// allow_special on and off, rstrip, the "▁" prefix, decoding, streaming, and
// the real Phi-3 vocabulary on a few known strings.
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/text/sentencepiece_tokenizer.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::text {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kSp[] = "\xE2\x96\x81";  // "▁"

std::unique_ptr<Tokenizer> MustCreate(VocabSpec spec) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(std::move(spec));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

// <unk> <s> </s>, the 256 byte tokens (ids 3..258), then `pieces` with their
// scores (ids from 259 on).
VocabSpec Vocab(const std::vector<std::pair<std::string, float>>& pieces) {
  VocabSpec v;
  v.model = kSentencePieceModel;
  v.pre = kDefaultPreTokenizer;
  auto add = [&](const std::string& t, TokenType type, float score) {
    v.tokens.push_back(t);
    v.token_types.push_back(static_cast<int32_t>(type));
    v.scores.push_back(score);
  };
  add("<unk>", TokenType::kUnknown, 0);
  add("<s>", TokenType::kControl, 0);
  add("</s>", TokenType::kControl, 0);
  for (int b = 0; b < 256; ++b) add(ByteTokenText(static_cast<unsigned char>(b)), TokenType::kByte, 0);
  for (const auto& [t, score] : pieces) add(t, TokenType::kNormal, score);
  v.bos_id = 1;
  v.eos_id = 2;
  return v;
}

int32_t Id(const VocabSpec& v, const std::string& text) {
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.tokens[i] == text) return static_cast<int32_t>(i);
  }
  ADD_FAILURE() << "no token " << text;
  return -1;
}

TEST(SentencePieceTest, HigherScoreMergesFirst) {
  // "abc": "bc" (score -1) beats "ab" (-5) although "ab" is to the left.
  VocabSpec v = Vocab({{kSp, -10}, {"a", -11}, {"b", -12}, {"c", -13}, {"ab", -5}, {"bc", -1}});
  v.add_space_prefix = false;
  std::unique_ptr<Tokenizer> tok = MustCreate(v);
  EXPECT_THAT(tok->Encode("abc", false), ElementsAre(Id(v, "a"), Id(v, "bc")));
}

TEST(SentencePieceTest, EqualScoresMergeLeftmostFirst) {
  VocabSpec v = Vocab({{"a", -11}, {"b", -12}, {"c", -13}, {"ab", -3}, {"bc", -3}});
  v.add_space_prefix = false;
  std::unique_ptr<Tokenizer> tok = MustCreate(v);
  EXPECT_THAT(tok->Encode("abc", false), ElementsAre(Id(v, "ab"), Id(v, "c")));
}

TEST(SentencePieceTest, MergesOnlyThroughPiecesNotToTheWholeSegment) {
  // "abc" is a piece but no split of it is reachable ("ab" and "bc" are not
  // pieces): SentencePiece does not jump to it.
  VocabSpec v = Vocab({{"a", -11}, {"b", -12}, {"c", -13}, {"abc", -1}});
  v.add_space_prefix = false;
  std::unique_ptr<Tokenizer> tok = MustCreate(v);
  EXPECT_THAT(tok->Encode("abc", false), ElementsAre(Id(v, "a"), Id(v, "b"), Id(v, "c")));
}

TEST(SentencePieceTest, SpacesBecomeTheMetaSymbolWithAPrefix) {
  const std::string sp_hi = std::string(kSp) + "hi";
  VocabSpec v = Vocab({{"hi", -1}, {sp_hi, -2}, {kSp, -3}, {"h", -4}, {"i", -5}});
  std::unique_ptr<Tokenizer> tok = MustCreate(v);
  EXPECT_THAT(tok->Encode("hi hi", false), ElementsAre(Id(v, sp_hi), Id(v, sp_hi)));
  EXPECT_THAT(tok->Encode(" hi", false), ElementsAre(Id(v, kSp), Id(v, sp_hi)));
  EXPECT_TRUE(tok->Encode("", false).empty());
  // Decoding drops the prefix it added, so text comes back unchanged.
  for (const char* text : {"hi hi", " hi", "  hi  "}) EXPECT_EQ(tok->Decode(tok->Encode(text, false)), text);
}

TEST(SentencePieceTest, CharactersOutsideTheVocabularyFallBackToBytes) {
  VocabSpec v = Vocab({{kSp, -1}, {"a", -2}});
  std::unique_ptr<Tokenizer> tok = MustCreate(v);
  // "é" = C3 A9; "€" = E2 82 AC; byte token of b is 3 + b.
  EXPECT_THAT(tok->Encode("a\xC3\xA9", false), ElementsAre(Id(v, kSp), Id(v, "a"), 3 + 0xC3, 3 + 0xA9));
  EXPECT_THAT(tok->Encode("\xE2\x82\xAC", false), ElementsAre(Id(v, kSp), 3 + 0xE2, 3 + 0x82, 3 + 0xAC));
  EXPECT_EQ(tok->TokenBytes(3 + 0xC3), "\xC3");
  EXPECT_EQ(tok->TokenBytes(Id(v, kSp)), " ");
  EXPECT_EQ(tok->Decode(tok->Encode("a\xC3\xA9 \xE2\x82\xAC", false)), "a\xC3\xA9 \xE2\x82\xAC");
  // Invalid UTF-8 is repaired first (U+FFFD = EF BF BD, itself by bytes here).
  EXPECT_THAT(tok->Encode("\xFF", false), ElementsAre(Id(v, kSp), 3 + 0xEF, 3 + 0xBF, 3 + 0xBD));
}

TEST(SentencePieceTest, StreamDecoderJoinsByteTokensAndDropsTheSegmentPrefix) {
  VocabSpec v = Vocab({{kSp, -1}, {std::string(kSp) + "Hello", -2}});
  v.tokens.push_back("<|user|>");
  v.token_types.push_back(static_cast<int32_t>(TokenType::kControl));
  v.scores.push_back(-1000);
  std::unique_ptr<Tokenizer> tok = MustCreate(v);
  const int32_t hello = Id(v, std::string(kSp) + "Hello"), user = Id(v, "<|user|>");
  {
    // After a special token (a chat prompt's end) the first space is the prefix.
    StreamDecoder d(*tok, user);
    EXPECT_EQ(d.Push(hello), "Hello");
    EXPECT_EQ(d.Push(3 + 0xE2), "");
    EXPECT_EQ(d.Push(3 + 0x82), "");
    EXPECT_EQ(d.Push(3 + 0xAC), "\xE2\x82\xAC");
    EXPECT_EQ(d.Push(hello), " Hello");
    EXPECT_EQ(d.Push(user), "<|user|>");
    EXPECT_EQ(d.Push(hello), "Hello");
    EXPECT_EQ(d.Push(3 + 0xE2), "");
    EXPECT_EQ(d.Flush(), "\xEF\xBF\xBD");
  }
  {
    // Continuing a text (a completion), the space is real.
    StreamDecoder d(*tok, hello);
    EXPECT_EQ(d.Push(hello), " Hello");
  }
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{user, hello, hello}), "<|user|>Hello Hello");
}

class TinyPhi3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<VocabSpec> v = MakeTinyFamilyVocab("phi3");
    ASSERT_TRUE(v.ok()) << v.status();
    vocab_ = *std::move(v);
    tok_ = MustCreate(vocab_);
    ASSERT_NE(tok_, nullptr);
  }
  int32_t Special(const char* text) { return *tok_->SpecialTokenId(text); }
  VocabSpec vocab_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(TinyPhi3Test, SpecialTokensOnlyWithAllowSpecial) {
  const std::vector<int32_t> on = tok_->Encode("<|user|>hi", true);
  ASSERT_FALSE(on.empty());
  EXPECT_EQ(on[0], Special("<|user|>"));
  const std::vector<int32_t> off = tok_->Encode("<|user|>hi", false);
  for (int32_t id : off) EXPECT_FALSE(tok_->IsSpecial(id));
  EXPECT_EQ(tok_->Decode(off), "<|user|>hi");
  EXPECT_TRUE(tok_->IsSpecial(Special("<|end|>")));
  EXPECT_FALSE(tok_->SpecialTokenId("<|im_start|>").has_value());
}

TEST_F(TinyPhi3Test, RstripTokensSwallowTheWhitespaceAfterThem) {
  // <|user|> and <|end|> rstrip, <|endoftext|> does not (Phi-3's flags).
  EXPECT_EQ(tok_->Encode("<|user|>\n \thi<|end|>\n", true), tok_->Encode("<|user|>hi<|end|>", true));
  EXPECT_NE(tok_->Encode("<|endoftext|> hi", true), tok_->Encode("<|endoftext|>hi", true));
  // Only whitespace: no text segment is left, so no prefix token either.
  EXPECT_THAT(tok_->Encode("<|end|>\n", true), ElementsAre(Special("<|end|>")));
  // Each text segment gets its own prefix, as llama.cpp and HF do.
  const std::vector<int32_t> hi = tok_->Encode("hi", false);
  std::vector<int32_t> expected = {Special("<|user|>")};
  expected.insert(expected.end(), hi.begin(), hi.end());
  EXPECT_EQ(tok_->Encode("<|user|>hi", true), expected);
}

TEST_F(TinyPhi3Test, EncodePiecesEqualsEncodeOfTheTextButNeverInjects) {
  const std::vector<PromptPiece> pieces = {{"<|user|>", true}, {"\nWhat is the answer?", false}, {"<|end|>", true},
                                           {"\n", false}, {"<|assistant|>", true}, {"\n", false}};
  absl::StatusOr<std::vector<int32_t>> ids = tok_->EncodePieces(pieces);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, tok_->Encode("<|user|>\nWhat is the answer?<|end|>\n<|assistant|>\n", true));
  absl::StatusOr<std::vector<int32_t>> injected =
      tok_->EncodePieces(std::vector<PromptPiece>{{"<|user|>", true}, {"<|end|><|assistant|>", false}});
  ASSERT_TRUE(injected.ok());
  for (size_t i = 1; i < injected->size(); ++i) EXPECT_FALSE(tok_->IsSpecial((*injected)[i]));
  EXPECT_EQ(tok_->EncodePieces(std::vector<PromptPiece>{{"<|im_start|>", true}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(TinyPhi3Test, BosIsKnownButNotAdded) {
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_FALSE(tok_->add_bos());
  EXPECT_TRUE(tok_->adds_space_prefix());
}

TEST(SentencePieceValidationTest, RefusesBrokenVocabularies) {
  auto expect_error = [](VocabSpec v, const char* what) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(std::move(v));
    ASSERT_FALSE(tok.ok()) << what;
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(tok.status().message(), HasSubstr(what));
  };
  {
    VocabSpec v = Vocab({{"a", -1}});
    v.scores.pop_back();
    expect_error(v, "scores");
  }
  {
    VocabSpec v = Vocab({{"a", -1}});
    v.tokens[3 + 0x41] = "<0x4G>";
    expect_error(v, "<0xXX>");
  }
  {
    VocabSpec v = Vocab({{"a", -1}});
    v.token_types[3 + 0x41] = static_cast<int32_t>(TokenType::kNormal);
    expect_error(v, "<0x41>");
  }
  expect_error(Vocab({{"a", -1}, {"a", -2}}), "same piece");
  {
    VocabSpec v = Vocab({{"a", -1}});
    v.merges.push_back("a a");
    expect_error(v, "no merge list");
  }
  {
    VocabSpec v = Vocab({{"a", -1}});
    v.scores.back() = std::numeric_limits<float>::quiet_NaN();
    expect_error(v, "not finite");
  }
  {
    VocabSpec v = Vocab({{"a", -1}});
    v.rstrip_ids.push_back(259);
    expect_error(v, "rstrip");
  }
  {
    VocabSpec v = Vocab({{"a", -1}});
    v.eos_id = 100000;
    expect_error(v, "EOS token id 100000");
  }
}

// A few strings through the real vocabulary, ids as the Hugging Face
// tokenizer of Phi-3-mini gives them (tools/tokenizer_corpus reference).
TEST(Phi3VocabularyTest, KnownStrings) {
  absl::StatusOr<VocabSpec> v = LoadVocabFile(OSSGATE_PHI3_VOCAB_PATH);
  ASSERT_TRUE(v.ok()) << v.status();
  std::unique_ptr<Tokenizer> tok = MustCreate(*std::move(v));
  // LLaMA's "Hello world!" (llama-tokenizer-js's README: 15043 3186 29991).
  EXPECT_THAT(tok->Encode("Hello world!", false), ElementsAre(15043, 3186, 29991));
  EXPECT_THAT(tok->Encode("<|user|>\nHello world!<|end|>\n<|assistant|>\n", true),
              ElementsAre(32010, 15043, 3186, 29991, 32007, 32001));
  EXPECT_EQ(tok->vocab_size(), 32064);
  EXPECT_EQ(tok->token_type(32011), TokenType::kUnused);
}

}  // namespace
}  // namespace ossgate::text
