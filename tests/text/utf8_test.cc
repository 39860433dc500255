// UTF-8 repair (maximal subpart rule) and the GPT-2 byte-level mapping.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "inference_worker/text/byte_level.h"
#include "inference_worker/text/utf8.h"

namespace ossgate::text {
namespace {

std::string Hex(absl::string_view hex) { return absl::HexStringToBytes(hex); }
constexpr char kFffd[] = "\xEF\xBF\xBD";

TEST(Utf8Test, ValidTextIsUnchanged) {
  const std::vector<std::string> texts = {"", "plain ascii", "caf\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC",
                                         "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF", "\xEF\xBB\xBF" "bom",
                                         std::string("nul\0byte", 8)};
  for (const std::string& s : texts) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    EXPECT_EQ(SanitizeUtf8(s), s);
  }
}

// The example of Unicode 15 §3.9 (Table 3-8): one U+FFFD per maximal subpart.
TEST(Utf8Test, UnicodeStandardExample) {
  const std::string in = Hex("61F18080E180C262806380BF64");
  const std::string expected = std::string("a") + kFffd + kFffd + kFffd + "b" + kFffd + "c" + kFffd + kFffd + "d";
  EXPECT_FALSE(IsValidUtf8(in));
  EXPECT_EQ(SanitizeUtf8(in), expected);
}

TEST(Utf8Test, IllFormedSequences) {
  struct Case {
    const char* hex;
    int replacements;  // expected number of U+FFFD, and nothing else
  };
  for (const Case& c : std::vector<Case>{{"80", 1},
                                         {"C0AF", 2},            // overlong '/': C0 never starts a sequence
                                         {"E08080", 3},          // overlong: E0 needs A0..BF next
                                         {"EDA080", 3},          // surrogate U+D800
                                         {"F4908080", 4},        // above U+10FFFF
                                         {"F5", 1},
                                         {"FF", 1},
                                         {"E282", 1},            // truncated at end of input
                                         {"F09F98", 1},          // truncated 4-byte sequence
                                         {"F8888080 80", 5}}) {
    std::string in = Hex(absl::StrReplaceAll(c.hex, {{" ", ""}}));
    std::string expected;
    for (int i = 0; i < c.replacements; ++i) expected += kFffd;
    EXPECT_EQ(SanitizeUtf8(in), expected) << c.hex;
    EXPECT_FALSE(IsValidUtf8(in)) << c.hex;
  }
}

TEST(Utf8Test, ScanReportsTruncatedPrefixes) {
  const std::string s = Hex("F09F98");
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  Utf8Scan scan = ScanUtf8(p, s.size());
  EXPECT_EQ(scan.kind, Utf8Scan::kTruncated);
  EXPECT_EQ(scan.length, 3);
  scan = ScanUtf8(p, 4 - 1);
  EXPECT_EQ(scan.kind, Utf8Scan::kTruncated);
  const std::string bad = Hex("F09F41");
  scan = ScanUtf8(reinterpret_cast<const unsigned char*>(bad.data()), bad.size());
  EXPECT_EQ(scan.kind, Utf8Scan::kInvalid);
  EXPECT_EQ(scan.length, 2);
}

// 4000 random byte strings and what the WHATWG TextDecoder (V8) makes of
// them, recorded by tools/tokenizer_corpus/generate_corpus.mjs.
TEST(Utf8Test, AgreesWithTextDecoder) {
  std::ifstream in(OSSGATE_UTF8_REPAIR_PATH);
  ASSERT_TRUE(in) << OSSGATE_UTF8_REPAIR_PATH;
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    ASSERT_EQ(f.size(), 2u) << line;
    const std::string input = f[0] == "-" ? "" : Hex(f[0]);
    const std::string expected = f[1] == "-" ? "" : Hex(f[1]);
    ASSERT_EQ(SanitizeUtf8(input), expected) << "input " << f[0];
    EXPECT_EQ(IsValidUtf8(input), input == expected) << "input " << f[0];
    ++cases;
  }
  EXPECT_EQ(cases, 4000);
}

TEST(ByteLevelTest, KnownMappings) {
  EXPECT_EQ(BytesToByteLevel(" "), "\xC4\xA0");   // Ġ
  EXPECT_EQ(BytesToByteLevel("\n"), "\xC4\x8A");  // Ċ
  EXPECT_EQ(BytesToByteLevel("\t"), "\xC4\x89");  // ĉ
  EXPECT_EQ(BytesToByteLevel("A!~"), "A!~");
  EXPECT_EQ(BytesToByteLevel("\xA1"), "\xC2\xA1");  // ¡ stands for itself
  EXPECT_EQ(ByteToCodePoint(0x00), U'\u0100');
  EXPECT_EQ(ByteToCodePoint(0x7F), U'\u0121');
  EXPECT_EQ(ByteToCodePoint(0xAD), U'\u0143');  // soft hyphen, the last remapped byte
}

TEST(ByteLevelTest, RoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string mapped = BytesToByteLevel(all);
  EXPECT_TRUE(IsValidUtf8(mapped));
  EXPECT_EQ(mapped.find(' '), std::string::npos);
  EXPECT_EQ(ByteLevelToBytes(mapped), all);
}

TEST(ByteLevelTest, RejectsCodePointsOutsideTheMapping) {
  EXPECT_FALSE(ByteLevelToBytes(" ").has_value());          // a real space is not in the image
  EXPECT_FALSE(ByteLevelToBytes("\xC5\x84").has_value());   // U+0144, one past the last
  EXPECT_FALSE(ByteLevelToBytes("\xE6\x97\xA5").has_value());
  EXPECT_FALSE(ByteLevelToBytes("\xC1\xA1").has_value());   // overlong 'a'
  EXPECT_FALSE(ByteLevelToBytes("\xC4").has_value());       // truncated
}

}  // namespace
}  // namespace ossgate::text
