// Byte-string encodings used by tokens, checkpoints and the CLI: hex and
// base64 (RFC 4648 standard alphabet with padding, and URL-safe without
// padding as PASETO requires). Decoders are strict: they reject characters
// outside the alphabet, wrong padding and non-canonical trailing bits, so
// every encoded value has exactly one accepted spelling.
//
// All functions are pure and thread-safe.
#ifndef OSSGATE_PROVENANCE_SERVICE_TOKEN_ENCODING_H_
#define OSSGATE_PROVENANCE_SERVICE_TOKEN_ENCODING_H_

#include <optional>
#include <string>
#include <string_view>

namespace ossgate::token {

// Lowercase hex.
std::string HexEncode(std::string_view bytes);
// Accepts lowercase hex only (the canonical form used everywhere in ossgate).
std::optional<std::string> HexDecode(std::string_view hex);

// RFC 4648 §5, no padding.
std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

// RFC 4648 §4, with padding.
std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace ossgate::token

#endif  // OSSGATE_PROVENANCE_SERVICE_TOKEN_ENCODING_H_
