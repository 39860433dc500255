// The real gpt-oss vocabulary: size, special ids (spec §7.3) and the test
// vectors of spec §7.2, which come from the HARM docs and llama.cpp dumps.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/utf8.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::text {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

class O200kTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<VocabSpec> spec = LoadVocabFile(OSSGATE_O200K_VOCAB_PATH);
    ASSERT_TRUE(spec.ok()) << spec.status();
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*std::move(spec));
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = tok->release();
    std::printf("o200k vocabulary loaded in %.2f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  static const Tokenizer& tok() { return *tokenizer_; }
  static Tokenizer* tokenizer_;
};
Tokenizer* O200kTest::tokenizer_ = nullptr;

TEST_F(O200kTest, SpecVectorsEncode) {
  EXPECT_THAT(tok().Encode("2 + 2 = 4.", false), ElementsAre(17, 659, 220, 17, 314, 220, 19, 13));
  EXPECT_THAT(tok().Encode("What is the capital of Sweden?", false), ElementsAre(4827, 382, 290, 9029, 328, 42009, 30));
  EXPECT_THAT(tok().Encode("user", false), ElementsAre(1428));
  EXPECT_THAT(tok().Encode("assistant", false), ElementsAre(173781));
  EXPECT_THAT(tok().Encode("analysis", false), ElementsAre(35644));
  EXPECT_THAT(tok().Encode("final", false), ElementsAre(17196));
  EXPECT_THAT(tok().Encode("User asks: \"What is 2 + 2?\" Simple arithmetic. Provide answer.", false),
              ElementsAre(1844, 31064, 25, 392, 4827, 382, 220, 17, 659, 220, 17, 16842, 12295, 81645, 13, 51441, 6052, 13));
}

TEST_F(O200kTest, SpecialTokenIds) {
  const std::vector<std::pair<std::string, int32_t>> expected = {
      {"<|startoftext|>", 199998}, {"<|endoftext|>", 199999}, {"<|reserved_200000|>", 200000},
      {"<|reserved_200001|>", 200001}, {"<|return|>", 200002}, {"<|constrain|>", 200003},
      {"<|reserved_200004|>", 200004}, {"<|channel|>", 200005}, {"<|start|>", 200006},
      {"<|end|>", 200007}, {"<|message|>", 200008}, {"<|reserved_200009|>", 200009},
      {"<|reserved_200010|>", 200010}, {"<|reserved_200011|>", 200011}, {"<|call|>", 200012},
      {"<|endofprompt|>", 200018}};
  for (const auto& [text, id] : expected) {
    EXPECT_EQ(tok().SpecialTokenId(text), id) << text;
    EXPECT_TRUE(tok().IsSpecial(id)) << text;
    EXPECT_EQ(tok().TokenBytes(id), text);
    EXPECT_THAT(tok().Encode(text, true), ElementsAre(id)) << text;
    EXPECT_GT(tok().Encode(text, false).size(), 1u) << text << " must not be special without allow_special";
  }
  EXPECT_FALSE(tok().IsSpecial(17));
  EXPECT_FALSE(tok().SpecialTokenId("<|nonexistent|>").has_value());
}

TEST_F(O200kTest, VocabularyLayoutMatchesGguf) {
  EXPECT_EQ(tok().vocab_size(), 201088);
  EXPECT_EQ(tok().token_type(0), TokenType::kNormal);
  EXPECT_EQ(tok().token_type(199997), TokenType::kNormal);
  for (int32_t id = 199998; id <= 200018; ++id) EXPECT_EQ(tok().token_type(id), TokenType::kControl) << id;
  EXPECT_EQ(tok().token_type(200019), TokenType::kUnused);
  EXPECT_EQ(tok().token_type(201087), TokenType::kUnused);
  EXPECT_EQ(tok().token_type(201088), TokenType::kUnused);  // out of range
  EXPECT_EQ(tok().TokenBytes(200019), "[PAD200019]");
  EXPECT_EQ(tok().TokenBytes(220), " ");
  EXPECT_EQ(tok().TokenBytes(201088), "");
  // Padding strings are neither special nor reachable from text.
  EXPECT_FALSE(tok().IsSpecial(200019));
  EXPECT_THAT(tok().Encode("[PAD200019]", true), ::testing::Not(::testing::Contains(200019)));
}

// o200k tokens often end inside a UTF-8 character ("🦀" and the Fraktur
// letters below are split across tokens): the stream decoder must hold bytes.
TEST_F(O200kTest, StreamDecoderOnSplitCharacters) {
  const std::string text = "日本語 🦀 naïve 𝔘𝔫𝔦𝔠𝔬𝔡𝔢";
  const std::vector<int32_t> ids = tok().Encode(text, false);
  // Expected ids from tiktoken (o200k_base).
  EXPECT_THAT(ids, ElementsAreArray({9048, 40909, 9552, 99, 222, 153475, 737, 220, 43120, 242, 246, 43120, 242, 104,
                                     43120, 242, 99, 43120, 242, 254, 43120, 242, 105, 43120, 242, 94, 43120, 242, 95}));
  StreamDecoder d(tok());
  std::string out;
  int empty_pieces = 0;
  for (int32_t id : ids) {
    const std::string piece = d.Push(id);
    EXPECT_TRUE(IsValidUtf8(piece));
    empty_pieces += piece.empty();
    out += piece;
  }
  out += d.Flush();
  EXPECT_EQ(out, text);
  EXPECT_GT(empty_pieces, 10);  // bytes really were held back
}

TEST_F(O200kTest, LongWhitespaceRunsFinish) {
  struct Case {
    std::string unit;
    size_t bytes;
  };
  for (const Case& c : std::vector<Case>{{" ", 1u << 20}, {"\n", 1u << 17}, {" \n", 1u << 17}, {"\t", 1u << 17}}) {
    const std::string& unit = c.unit;
    std::string text;
    while (text.size() < c.bytes) text += unit;
    text += "x";
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = tok().Encode(text, false);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(tok().Decode(ids), text);
    // Whitespace merges into multi-byte tokens.
    EXPECT_LT(ids.size(), text.size() / 3) << "unit \"" << absl::CEscape(unit) << "\"";
    std::printf("%zu bytes of \"%s\": %zu ids in %.3f s\n", text.size(), absl::CEscape(unit).c_str(), ids.size(), seconds);
  }
}

}  // namespace
}  // namespace ossgate::text
