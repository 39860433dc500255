// PASETO v4.public (Ed25519) tokens, implemented from the PASETO
// specification (paseto-standard/paseto-spec, docs/01-Protocol-Versions/
// Version4.md) on top of OpenSSL 3:
//
//   token = "v4.public." base64url(m || sig) [ "." base64url(f) ]
//   sig   = Ed25519-Sign(sk, PAE("v4.public.", m, f, i))
//
// m is the payload (JSON claims), f an optional footer (authenticated, sent
// in clear), i an optional implicit assertion (authenticated, never sent).
// There is no algorithm negotiation: the header is fixed and the verifier
// uses exactly the key it is given.
//
// All functions are pure and thread-safe.
#ifndef OSSGATE_PROVENANCE_SERVICE_TOKEN_PASETO_H_
#define OSSGATE_PROVENANCE_SERVICE_TOKEN_PASETO_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "provenance_service/token/ed25519.h"

namespace ossgate::token::paseto {

inline constexpr std::string_view kV4PublicHeader = "v4.public.";
// Tokens longer than this are rejected before any decoding.
inline constexpr size_t kMaxTokenLength = 16 * 1024;

// Pre-Authentication Encoding: LE64(n) || for each piece LE64(len) || piece,
// with the top bit of every LE64 cleared.
std::string Pae(const std::vector<std::string_view>& pieces);

std::string SignV4Public(const Ed25519PrivateKey& key, std::string_view payload,
                         std::string_view footer, std::string_view implicit_assertion);

struct VerifiedToken {
  std::string payload;
  std::string footer;
};

// Verifies `token` against exactly `key`. Fails with INVALID_ARGUMENT for a
// malformed token and UNAUTHENTICATED for a bad signature.
absl::StatusOr<VerifiedToken> VerifyV4Public(const Ed25519PublicKey& key, std::string_view token,
                                             std::string_view implicit_assertion);

// The footer, decoded but NOT authenticated: only for choosing among pinned
// keys before calling VerifyV4Public.
absl::StatusOr<std::string> UntrustedFooter(std::string_view token);

}  // namespace ossgate::token::paseto

#endif  // OSSGATE_PROVENANCE_SERVICE_TOKEN_PASETO_H_
