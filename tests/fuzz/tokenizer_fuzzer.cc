// Fuzz target: the tokenizer's Encode and Decode (and the streaming decoder)
// on arbitrary bytes, with the real o200k_harmony vocabulary and the tiny
// test vocabulary. The first byte selects:
//   bit 0  allow_special for Encode
//   bit 1  o200k (else tiny)
//   bit 2  the rest is a list of token ids (little-endian int32, any value)
//          instead of text
// Properties: text round-trips (Decode(Encode(t)) is t with invalid UTF-8
// repaired), Encode only emits ids of the vocabulary that may come out of it
// (no special tokens unless allowed, never unused or unknown ones), and the
// streaming decoder emits valid UTF-8 that adds up to the repaired Decode.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/utf8.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_tokenizers.h"

namespace {

using namespace ossgate;

void CheckText(const text::Tokenizer& tok, absl::string_view input, bool allow_special) {
  const std::vector<int32_t> ids = tok.Encode(input, allow_special);
  for (int32_t id : ids) {
    FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
    const text::TokenType type = tok.token_type(id);
    FUZZ_CHECK(type != text::TokenType::kUnused && type != text::TokenType::kUnknown);
    if (!allow_special) FUZZ_CHECK(!tok.IsSpecial(id));
  }
  FUZZ_CHECK(ids.empty() == input.empty());
  FUZZ_CHECK(tok.Decode(ids) == text::SanitizeUtf8(input));
}

void CheckIds(const text::Tokenizer& tok, const std::vector<int32_t>& ids) {
  const std::string decoded = tok.Decode(ids);
  std::string concatenated;
  for (int32_t id : ids) concatenated += tok.TokenBytes(id);
  FUZZ_CHECK(decoded == concatenated);
  text::StreamDecoder stream(tok);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = stream.Push(id);
    FUZZ_CHECK(text::IsValidUtf8(piece));
    streamed += piece;
  }
  const std::string rest = stream.Flush();
  FUZZ_CHECK(text::IsValidUtf8(rest));
  streamed += rest;
  FUZZ_CHECK(streamed == text::SanitizeUtf8(decoded));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fuzz::TinyTokenizer();
  (void)fuzz::O200kTokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const text::Tokenizer& tok = (mode & 2) ? fuzz::O200kTokenizer() : fuzz::TinyTokenizer();
  const absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode & 4) {
    std::vector<int32_t> ids(rest.size() / 4);
    if (!ids.empty()) std::memcpy(ids.data(), rest.data(), ids.size() * 4);
    CheckIds(tok, ids);
  } else {
    CheckText(tok, rest, (mode & 1) != 0);
  }
  return 0;
}
