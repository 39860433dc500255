// UTF-8 validation and repair shared by the tokenizer, the stream decoder and
// the harmony parser.
//
// Repair rule ("maximal subpart", Unicode 15 §3.9, U+FFFD substitution; the
// same rule as Python's bytes.decode("utf-8", errors="replace") and the WHATWG
// TextDecoder): at each position either a well-formed sequence starts, or the
// longest prefix of a well-formed sequence found there (at least one byte) is
// replaced by one U+FFFD. Surrogates (ED A0..BF ..) and overlongs are not
// well-formed, so they are replaced too.
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace ossgate::text {

inline constexpr char kReplacementChar[] = "\xEF\xBF\xBD";  // U+FFFD

// What starts at the front of a byte range.
struct Utf8Scan {
  enum Kind {
    kValid,      // a well-formed sequence of `length` bytes
    kInvalid,    // `length` bytes form a maximal ill-formed subpart
    kTruncated,  // all remaining `length` bytes are a proper prefix of a sequence
  };
  Kind kind;
  int length;
};
// `size` must be > 0.
Utf8Scan ScanUtf8(const unsigned char* p, size_t size);

bool IsValidUtf8(absl::string_view s);

// Returns `s` with every maximal ill-formed subpart (including a truncated
// sequence at the end) replaced by U+FFFD. Valid input comes back unchanged.
std::string SanitizeUtf8(absl::string_view s);

}  // namespace ossgate::text
