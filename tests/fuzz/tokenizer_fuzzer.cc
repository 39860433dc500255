// Fuzz target: the tokenizer's Encode and Decode (and the streaming decoder)
// on arbitrary bytes, with the real o200k_harmony, Qwen2.5 and Phi-3
// vocabularies and the tiny test vocabulary. The first byte selects:
//   bit 0     allow_special for Encode
//   bit 1     o200k (else tiny), when bits 3-4 are 0 or 3
//   bit 2     the rest is a list of token ids (little-endian int32, any
//             value) instead of text
//   bits 3-4  1: Qwen2.5 (byte-level BPE with NFC), 2: Phi-3 (SentencePiece)
// Properties: Encode only emits ids of the vocabulary that may come out of it
// (no special tokens unless allowed, never unused or unknown ones); for tiny
// and o200k text round-trips (Decode(Encode(t)) is t with invalid UTF-8
// repaired: Qwen2's NFC and Phi-3's space prefix and rstrip tokens change
// text by design); the streaming decoder emits valid UTF-8 that adds up to
// the repaired Decode.
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

void CheckText(const text::Tokenizer& tok, absl::string_view input, bool allow_special, bool round_trip) {
  const std::vector<int32_t> ids = tok.Encode(input, allow_special);
  for (int32_t id : ids) {
    FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
    const text::TokenType type = tok.token_type(id);
    FUZZ_CHECK(type != text::TokenType::kUnused && type != text::TokenType::kUnknown);
    if (!allow_special) FUZZ_CHECK(!tok.IsSpecial(id));
  }
  if (!round_trip) return;
  FUZZ_CHECK(ids.empty() == input.empty());
  FUZZ_CHECK(tok.Decode(ids) == text::SanitizeUtf8(input));
}

void CheckIds(const text::Tokenizer& tok, const std::vector<int32_t>& ids) {
  const std::string decoded = tok.Decode(ids);
  // The tokens' bytes concatenated; SentencePiece drops the dummy-prefix
  // space of a text segment's first ordinary token (at the start and after
  // each special token).
  std::string concatenated;
  bool segment_start = true;
  for (int32_t id : ids) {
    std::string bytes = tok.TokenBytes(id);
    if (tok.IsSpecial(id)) {
      segment_start = true;
    } else {
      if (segment_start && tok.adds_space_prefix() && tok.token_type(id) == text::TokenType::kNormal &&
          !bytes.empty() && bytes[0] == ' ') {
        bytes.erase(0, 1);
      }
      segment_start = false;
    }
    concatenated += bytes;
  }
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
  (void)fuzz::Qwen2Tokenizer();
  (void)fuzz::Phi3Tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const int family = (mode >> 3) & 3;
  const text::Tokenizer& tok = family == 1   ? fuzz::Qwen2Tokenizer()
                               : family == 2 ? fuzz::Phi3Tokenizer()
                               : (mode & 2)  ? fuzz::O200kTokenizer()
                                             : fuzz::TinyTokenizer();
  const absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode & 4) {
    std::vector<int32_t> ids(rest.size() / 4);
    if (!ids.empty()) std::memcpy(ids.data(), rest.data(), ids.size() * 4);
    CheckIds(tok, ids);
  } else {
    CheckText(tok, rest, (mode & 1) != 0, /*round_trip=*/family == 0 || family == 3);
  }
  return 0;
}
