// GPT-2 byte-to-unicode mapping used by byte-level BPE vocabularies (GGUF
// tokenizer.ggml.model = "gpt2", spec §7.1): every byte is shown as one
// printable code point so that tokens are valid strings without spaces or
// control characters. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ')
// stand for themselves; the other 68 bytes, in increasing order, become
// U+0100, U+0101, ... (so ' ' is 'Ġ' U+0120 and '\n' is 'Ċ' U+010A).
#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace ossgate::text {

// The code point that stands for `byte`.
char32_t ByteToCodePoint(unsigned char byte);

// GPT-2 form of raw bytes (each byte becomes one code point, UTF-8 encoded).
std::string BytesToByteLevel(absl::string_view bytes);

// Raw bytes of a GPT-2 form string; nullopt if it holds a code point outside
// the mapping or is not valid UTF-8.
std::optional<std::string> ByteLevelToBytes(absl::string_view text);

}  // namespace ossgate::text
