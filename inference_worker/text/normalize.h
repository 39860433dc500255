// Unicode normalization form C (NFC), which Qwen2's tokenizer.json applies to
// text before pre-tokenization. Internal to ossgate_text; ICU does the work.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace ossgate::text {

// Whether `s` (valid UTF-8) is already in NFC. ASCII text always is.
bool IsNfc(absl::string_view s);

// `s` (valid UTF-8) in NFC. Thread-safe.
std::string ToNfc(absl::string_view s);

}  // namespace ossgate::text
