// The fixed token key, audience and clock of the PASETO fuzz target and of
// the seed generator that writes its corpus (fuzz_seeds.cc): seeds signed
// with this key verify inside the target.
#pragma once

#include <cstdlib>
#include <string>

#include "absl/time/time.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/ed25519.h"

namespace ossgate::fuzz {

inline constexpr char kFuzzWorkerId[] = "worker-1";
inline constexpr char kFuzzIssuer[] = "ossgate-provenance";

inline const token::Ed25519PrivateKey& FuzzTokenKey() {
  static const token::Ed25519PrivateKey* key = [] {
    auto k = token::Ed25519PrivateKey::FromSeed("ossgate fuzz token key, not used");
    if (!k.ok()) std::abort();
    return new token::Ed25519PrivateKey(*std::move(k));
  }();
  return *key;
}

inline const std::string& FuzzTokenKeyId() {
  static const std::string* id = new std::string(token::TokenKeyId(FuzzTokenKey().public_key()));
  return *id;
}

// The verifier's "now"; seed tokens are issued a minute before.
inline absl::Time FuzzNow() { return absl::FromUnixSeconds(1767225600); }  // 2026-01-01T00:00:00Z

}  // namespace ossgate::fuzz
