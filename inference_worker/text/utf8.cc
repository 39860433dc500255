#include "inference_worker/text/utf8.h"

namespace ossgate::text {

Utf8Scan ScanUtf8(const unsigned char* p, size_t size) {
  const unsigned char lead = p[0];
  if (lead < 0x80) return {Utf8Scan::kValid, 1};
  // Well-formed sequences (Unicode Table 3-7): the lead byte fixes the number
  // of continuation bytes and the allowed range of the first one.
  int continuation;
  unsigned char first_lo = 0x80, first_hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuation = 1;
  } else if (lead == 0xE0) {
    continuation = 2, first_lo = 0xA0;  // no overlongs
  } else if (lead == 0xED) {
    continuation = 2, first_hi = 0x9F;  // no surrogates
  } else if (lead >= 0xE1 && lead <= 0xEF) {
    continuation = 2;
  } else if (lead == 0xF0) {
    continuation = 3, first_lo = 0x90;  // no overlongs
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    continuation = 3;
  } else if (lead == 0xF4) {
    continuation = 3, first_hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {Utf8Scan::kInvalid, 1};  // 80..C1, F5..FF never start a sequence
  }
  for (int k = 1; k <= continuation; ++k) {
    if (static_cast<size_t>(k) >= size) return {Utf8Scan::kTruncated, k};
    const unsigned char lo = k == 1 ? first_lo : 0x80;
    const unsigned char hi = k == 1 ? first_hi : 0xBF;
    if (p[k] < lo || p[k] > hi) return {Utf8Scan::kInvalid, k};
  }
  return {Utf8Scan::kValid, continuation + 1};
}

bool IsValidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const Utf8Scan scan = ScanUtf8(p + i, s.size() - i);
    if (scan.kind != Utf8Scan::kValid) return false;
    i += scan.length;
  }
  return true;
}

std::string SanitizeUtf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    const Utf8Scan scan = ScanUtf8(p + i, s.size() - i);
    if (scan.kind == Utf8Scan::kValid) {
      out.append(s.data() + i, scan.length);
    } else {
      out.append(kReplacementChar);
    }
    i += scan.length;
  }
  return out;
}

}  // namespace ossgate::text
