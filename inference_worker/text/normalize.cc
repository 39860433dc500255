#include "inference_worker/text/normalize.h"

#include <cstdio>
#include <cstdlib>

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>

namespace ossgate::text {
namespace {

// ICU's NFC instance is built from data linked into libicuuc; failing to get
// it means a broken installation, not bad input.
const icu::Normalizer2& Nfc() {
  static const icu::Normalizer2* nfc = [] {
    UErrorCode error = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(error);
    if (U_FAILURE(error) || n == nullptr) {
      std::fprintf(stderr, "ossgate_text: ICU has no NFC normalizer (%s); reinstall libicu\n", u_errorName(error));
      std::abort();
    }
    return n;
  }();
  return *nfc;
}

bool IsAscii(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// ICU takes int32 lengths. Longer text (no request can hold it: prompts are
// limited to 1 MiB) is passed through unnormalized.
constexpr size_t kMaxIcuBytes = 0x7fffffff;

}  // namespace

bool IsNfc(absl::string_view s) {
  if (IsAscii(s)) return true;
  if (s.size() > kMaxIcuBytes) return true;  // see kMaxIcuBytes
  UErrorCode error = U_ZERO_ERROR;
  const bool normalized = Nfc().isNormalizedUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())), error);
  return U_SUCCESS(error) && normalized;
}

std::string ToNfc(absl::string_view s) {
  if (IsNfc(s)) return std::string(s);
  std::string out;
  out.reserve(s.size());
  icu::StringByteSink<std::string> sink(&out);
  UErrorCode error = U_ZERO_ERROR;
  Nfc().normalizeUTF8(0, icu::StringPiece(s.data(), static_cast<int32_t>(s.size())), sink, nullptr, error);
  // Only invalid UTF-8 or a piece over 2 GiB make ICU fail; callers pass
  // sanitized pieces, and the text goes through unnormalized rather than lost.
  if (U_FAILURE(error)) return std::string(s);
  return out;
}

}  // namespace ossgate::text
