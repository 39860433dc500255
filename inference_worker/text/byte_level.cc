#include "inference_worker/text/byte_level.h"

#include <array>

namespace ossgate::text {
namespace {

// Code points 0..323 are the whole image of the mapping.
constexpr int kImageSize = 324;

struct Tables {
  std::array<char32_t, 256> to_code_point{};
  std::array<int16_t, kImageSize> to_byte{};  // -1 = not an image point
};

bool StandsForItself(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

const Tables& GetTables() {
  static const Tables tables = [] {
    Tables t;
    t.to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = StandsForItself(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(next++);
      t.to_code_point[b] = cp;
      t.to_byte[cp] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return tables;
}

void AppendUtf8(char32_t cp, std::string* out) {
  // Only code points below 0x800 occur here.
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

char32_t ByteToCodePoint(unsigned char byte) { return GetTables().to_code_point[byte]; }

std::string BytesToByteLevel(absl::string_view bytes) {
  const Tables& t = GetTables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) AppendUtf8(t.to_code_point[b], &out);
  return out;
}

std::optional<std::string> ByteLevelToBytes(absl::string_view text) {
  const Tables& t = GetTables();
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    char32_t cp;
    if (p[i] < 0x80) {
      cp = p[i];
      i += 1;
    } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < text.size() && (p[i + 1] & 0xC0) == 0x80) {
      cp = (static_cast<char32_t>(p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
      if (cp < 0x80) return std::nullopt;  // overlong
      i += 2;
    } else {
      return std::nullopt;  // image points all encode in one or two bytes
    }
    if (cp >= static_cast<char32_t>(kImageSize) || t.to_byte[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(t.to_byte[cp]));
  }
  return out;
}

}  // namespace ossgate::text
