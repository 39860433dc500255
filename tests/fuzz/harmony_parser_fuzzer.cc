// Fuzz target: the harmony parser on arbitrary token streams, as a model
// (or a buggy backend) may produce them. The first byte selects the
// vocabulary (bit 0: o200k, else tiny); then each token takes one byte below
// 0x40, picking a harmony special token or an out-of-range id, or three bytes
// otherwise, giving an ordinary id (22 bits modulo the vocabulary size).
// Properties: the parser never fails; everything it returns is valid UTF-8;
// the streamed deltas add up to the parsed contents (Finish() may add one
// U+FFFD for a character cut off at the end); the stop flag is set exactly
// for <|return|> and <|call|>, and stopped_for_tool_call() only for a
// <|call|> that closed a message to "functions.*"; SplitReply of the
// messages is valid UTF-8 and holds one tool call per such message.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "inference_worker/text/harmony.h"
#include "inference_worker/text/utf8.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_tokenizers.h"

namespace {

using namespace ossgate;

std::vector<int32_t> Specials(const text::Tokenizer& tok) {
  std::vector<int32_t> ids = {-1, tok.vocab_size(), INT32_MIN};
  for (const char* name : {"<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>",
                           "<|constrain|>", "<|endoftext|>"}) {
    const std::optional<int32_t> id = tok.SpecialTokenId(name);
    FUZZ_CHECK(id.has_value());
    ids.push_back(*id);
    ids.push_back(*id);  // twice the weight of the out-of-range ids
  }
  return ids;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fuzz::TinyTokenizer();
  (void)fuzz::O200kTokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const text::Tokenizer& tok = (data[0] & 1) ? fuzz::O200kTokenizer() : fuzz::TinyTokenizer();
  static const std::vector<int32_t> tiny_specials = Specials(fuzz::TinyTokenizer());
  static const std::vector<int32_t> o200k_specials = Specials(fuzz::O200kTokenizer());
  const std::vector<int32_t>& specials = (data[0] & 1) ? o200k_specials : tiny_specials;
  const int32_t stop_a = *tok.SpecialTokenId("<|return|>"), stop_b = *tok.SpecialTokenId("<|call|>");

  text::HarmonyParser parser(tok);
  std::string streamed;
  for (size_t i = 1; i < size;) {
    int32_t token;
    if (data[i] < 0x40) {
      token = specials[data[i] % specials.size()];
      i += 1;
    } else {
      const uint32_t b1 = i + 1 < size ? data[i + 1] : 0, b2 = i + 2 < size ? data[i + 2] : 0;
      token = static_cast<int32_t>((((data[i] & 0x3fu) << 16) | (b1 << 8) | b2) % static_cast<uint32_t>(tok.vocab_size()));
      i += 3;
    }
    bool stop = false;
    const text::HarmonyParser::Delta delta = parser.Push(token, &stop);
    FUZZ_CHECK(stop == (token == stop_a || token == stop_b));
    FUZZ_CHECK(text::IsValidUtf8(delta.text) && text::IsValidUtf8(delta.channel));
    FUZZ_CHECK(text::IsValidUtf8(delta.recipient) && text::IsValidUtf8(delta.content_type));
    if (parser.stopped_for_tool_call()) {
      FUZZ_CHECK(token == stop_b);
      FUZZ_CHECK(parser.messages().back().recipient.rfind("functions.", 0) == 0);
    }
    FUZZ_CHECK(text::IsValidUtf8(parser.current_channel()));
    streamed += delta.text;
  }
  parser.Finish();
  std::string contents;
  for (const text::ParsedMessage& m : parser.messages()) {
    for (const std::string* s : {&m.channel, &m.recipient, &m.content_type, &m.content, &m.author}) {
      FUZZ_CHECK(text::IsValidUtf8(*s));
    }
    contents += m.content;
  }
  FUZZ_CHECK(contents == streamed || contents == streamed + text::kReplacementChar);
  const text::AssistantReply reply = text::SplitReply(parser.messages());
  FUZZ_CHECK(text::IsValidUtf8(reply.reasoning) && text::IsValidUtf8(reply.content));
  size_t calls = 0;
  for (const text::ParsedMessage& m : parser.messages()) {
    calls += m.role == text::Role::kAssistant && m.recipient.rfind("functions.", 0) == 0 &&
             m.recipient.size() > sizeof("functions.") - 1;
  }
  FUZZ_CHECK(reply.tool_calls.size() == calls);
  return 0;
}
