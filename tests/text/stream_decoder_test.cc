// StreamDecoder: text comes out only as complete, valid UTF-8.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/utf8.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::text {
namespace {

constexpr char kFffd[] = "\xEF\xBF\xBD";

class StreamDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = Tokenizer::Create(MakeTinyVocab());
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = *std::move(tok);
  }
  // The tiny vocabulary's id for a byte is the byte itself.
  static int32_t Byte(unsigned char b) { return b; }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(StreamDecoderTest, HoldsSplitCharacterUntilComplete) {
  StreamDecoder d(*tok_);
  const std::string crab = "\xF0\x9F\xA6\x80";  // U+1F980
  EXPECT_EQ(d.Push(Byte('a')), "a");
  EXPECT_EQ(d.Push(Byte(crab[0])), "");
  EXPECT_EQ(d.Push(Byte(crab[1])), "");
  EXPECT_EQ(d.Push(Byte(crab[2])), "");
  EXPECT_EQ(d.Push(Byte(crab[3])), crab);
  EXPECT_EQ(d.Flush(), "");
}

TEST_F(StreamDecoderTest, InvalidBytesBecomeReplacementAtOnce) {
  StreamDecoder d(*tok_);
  EXPECT_EQ(d.Push(Byte(0xFF)), kFffd);
  EXPECT_EQ(d.Push(Byte(0xE2)), "");
  EXPECT_EQ(d.Push(Byte(0x82)), "");
  // 'x' cannot continue E2 82: the held prefix is one maximal subpart.
  EXPECT_EQ(d.Push(Byte('x')), std::string(kFffd) + "x");
  EXPECT_EQ(d.Push(Byte(0xED)), "");
  EXPECT_EQ(d.Push(Byte(0xA0)), std::string(kFffd) + kFffd);  // surrogate lead, then a stray byte
}

TEST_F(StreamDecoderTest, FlushReplacesIncompleteTail) {
  StreamDecoder d(*tok_);
  EXPECT_EQ(d.Push(Byte(0xE6)), "");
  EXPECT_EQ(d.Push(Byte(0x97)), "");
  EXPECT_EQ(d.Flush(), kFffd);
  EXPECT_EQ(d.Flush(), "");
}

TEST_F(StreamDecoderTest, MultiByteTokensAndSpecials) {
  StreamDecoder d(*tok_);
  std::string out;
  for (int32_t id : tok_->Encode("The analysis is done.", false)) out += d.Push(id);
  out += d.Push(*tok_->SpecialTokenId("<|end|>"));
  EXPECT_EQ(out, "The analysis is done.<|end|>");
}

// Whatever the token boundaries, the pieces are valid UTF-8 and add up to
// the repaired whole.
TEST_F(StreamDecoderTest, PiecesAddUpToRepairedText) {
  std::mt19937 rng(5);
  const std::vector<std::string> atoms = {"a", " ", "\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\x8E\x89", "\xFF", "\x80",
                                          "\xE2\x82", "\xF0\x9F", "\xED\xA0\x80", "the", "\n"};
  for (int trial = 0; trial < 500; ++trial) {
    std::string bytes;
    for (int k = rng() % 20; k > 0; --k) bytes += atoms[rng() % atoms.size()];
    StreamDecoder d(*tok_);
    std::string out;
    // Mix single-byte tokens with the vocabulary's own multi-byte tokens.
    std::vector<int32_t> ids;
    if (trial % 2 == 0) {
      for (unsigned char c : bytes) ids.push_back(Byte(c));
    } else {
      ids = tok_->Encode(SanitizeUtf8(bytes), false);
      bytes = SanitizeUtf8(bytes);
    }
    for (int32_t id : ids) {
      const std::string piece = d.Push(id);
      ASSERT_TRUE(IsValidUtf8(piece));
      out += piece;
    }
    out += d.Flush();
    ASSERT_EQ(out, SanitizeUtf8(bytes)) << "trial " << trial;
  }
}

}  // namespace
}  // namespace ossgate::text
