// Escaping of untrusted text in the worker's log lines and error messages
// (worker_log.h).
#include "inference_worker/worker/worker_log.h"

#include <string>

#include "gtest/gtest.h"

namespace ossgate::worker {
namespace {

TEST(WorkerLogTest, QuoteEscapesEverythingOutsidePrintableAsciiAndTheQuotingCharacters) {
  EXPECT_EQ(Quote("plain text"), "\"plain text\"");
  EXPECT_EQ(Quote("a\nb\rc\td"), "\"a\\x0ab\\x0dc\\x09d\"");
  EXPECT_EQ(Quote("say \"hi\" \\o/"), "\"say \\x22hi\\x22 \\x5co/\"");
  EXPECT_EQ(Quote(std::string("nul\0x", 5)), "\"nul\\x00x\"");
  EXPECT_EQ(Quote("\x7f\xc3\xa9"), "\"\\x7f\\xc3\\xa9\"");
  EXPECT_EQ(Quote(""), "\"\"");
}

TEST(WorkerLogTest, QuoteCutsLongInputAndSaysHowMuch) {
  EXPECT_EQ(Quote(std::string(10, 'x'), 4), "\"xxxx\"...(6 more bytes)");
}

TEST(WorkerLogTest, LogValueLeavesPlainValuesAndQuotesTheRest) {
  EXPECT_EQ(LogValue("hf://openai/gpt-oss-20b@main/model.gguf"), "hf://openai/gpt-oss-20b@main/model.gguf");
  EXPECT_EQ(LogValue("0123456789abcdef"), "0123456789abcdef");
  EXPECT_EQ(LogValue("two words"), "\"two words\"");
  EXPECT_EQ(LogValue("x phase=verified"), "\"x phase=verified\"");
  EXPECT_EQ(LogValue("a\nb"), "\"a\\x0ab\"");
  EXPECT_EQ(LogValue(""), "\"\"");
  EXPECT_EQ(LogValue(std::string(20, 'a'), 8), "\"aaaaaaaa\"...(12 more bytes)");
}

TEST(WorkerLogTest, EscapeControlKeepsALineOneLine) {
  EXPECT_EQ(EscapeControl("ok: \"quoted\" \\x0a stays"), "ok: \"quoted\" \\x0a stays");
  EXPECT_EQ(EscapeControl("one\ntwo\r\x1b[31m\x7f"), "one\\x0atwo\\x0d\\x1b[31m\\x7f");
  EXPECT_EQ(EscapeControl("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 text is not a control byte
}

}  // namespace
}  // namespace ossgate::worker
