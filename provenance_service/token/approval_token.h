// Approval tokens: the typed claims the provenance service signs when it
// approves a model file, and the verifier the inference worker runs before it
// loads the file. Format: PASETO v4.public (paseto.h) with
//
//   payload (JSON, all values strings; integers as decimal strings so that
//   JavaScript and other JSON readers keep full precision):
//     typ            "ossgate.model-approval.v1"   (token-type domain separation)
//     iss            issuer name (e.g. "ossgate-provenance")
//     aud            worker id the token was issued to
//     sub            "sha256:<model hex digest>"
//     jti            token id, 32 hex digits (random)
//     kid            signing key id (see TokenKeyId)
//     iat, nbf, exp  RFC 3339 UTC times, second precision ("...Z")
//     model_sha256   64 lowercase hex digits (whole-file SHA-256)
//     model_size     file size in bytes
//     source_uri     source URI the worker declared
//     model_name     model name the worker declared
//     model_family   model family (GGUF general.architecture) the approval is
//                    for, e.g. "gpt-oss", "qwen2", "phi3"
//     policy_version registry policy version of the decision
//     log_index      audit log index of the decision record
//     log_origin     audit log origin (checkpoint first line)
//   footer:             {"kid":"<key id>"}  (selects among pinned keys)
//   implicit assertion: the worker id (bytes of aud), so a token replayed to
//                       or by another worker fails signature verification.
//
// Thread-safety: ApprovalTokenSigner and ApprovalTokenVerifier are immutable
// after construction/AddKey and safe to use from many threads at once; call
// AddKey before sharing the verifier.
#ifndef OSSGATE_PROVENANCE_SERVICE_TOKEN_APPROVAL_TOKEN_H_
#define OSSGATE_PROVENANCE_SERVICE_TOKEN_APPROVAL_TOKEN_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "provenance_service/token/ed25519.h"

namespace ossgate::token {

inline constexpr std::string_view kApprovalTokenType = "ossgate.model-approval.v1";

// What an approval that names no model family is for. Tokens and registry
// entries written before families existed approved gpt-oss models only (the
// only architecture the worker served then), so that is what they mean.
inline constexpr std::string_view kLegacyModelFamily = "gpt-oss";

// A model family as GGUF spells general.architecture: 1..64 characters of
// [a-z0-9._-], the first a letter or digit ("gpt-oss", "qwen2", "phi3").
bool IsModelFamily(std::string_view family);

struct ApprovalClaims {
  std::string issuer;        // iss
  std::string worker_id;     // aud; also the implicit assertion
  std::string token_id;      // jti
  std::string key_id;        // kid (set by the signer)
  std::string model_sha256;  // 64 lowercase hex
  uint64_t model_size = 0;   // bytes
  std::string source_uri;
  std::string model_name;
  // The family the file was approved as (IsModelFamily). Required to sign.
  std::string model_family;
  // Set by the verifier for a token without a model_family claim (issued by
  // a service older than families): model_family is then kLegacyModelFamily.
  bool model_family_implied = false;
  uint64_t policy_version = 0;
  uint64_t log_index = 0;
  std::string log_origin;
  absl::Time issued_at;   // iat
  absl::Time not_before;  // nbf
  absl::Time expires_at;  // exp
};

// Key id of a token key: the first 16 hex digits of SHA-256(raw public key).
std::string TokenKeyId(const Ed25519PublicKey& key);

// RFC 3339 UTC with second precision, e.g. "2025-11-26T05:45:00Z".
std::string FormatTokenTime(absl::Time t);
// Accepts RFC 3339 with "Z" or a numeric offset and optional fraction.
absl::StatusOr<absl::Time> ParseTokenTime(std::string_view s);

// Serialises claims to the canonical payload JSON (keys in the order above;
// model_family is left out when empty, as tokens before families had it).
std::string EncodeApprovalClaims(const ApprovalClaims& claims);

class ApprovalTokenSigner {
 public:
  // `key` must be non-null; shared so that the service can hold it elsewhere.
  explicit ApprovalTokenSigner(std::shared_ptr<const Ed25519PrivateKey> key);

  const std::string& key_id() const { return key_id_; }
  const Ed25519PublicKey& public_key() const { return key_->public_key(); }

  // Signs `claims` with claims.key_id replaced by this signer's key id.
  // INVALID_ARGUMENT if a required claim (model_family included) is empty or
  // malformed, or times are inconsistent.
  absl::StatusOr<std::string> Sign(ApprovalClaims claims) const;

 private:
  const std::shared_ptr<const Ed25519PrivateKey> key_;
  const std::string key_id_;
};

// What the verifying worker knows independently of the token.
struct ApprovalExpectations {
  // Required: the worker's own id (audience and implicit assertion).
  std::string worker_id;
  // Required if non-empty: expected issuer.
  std::string issuer;
  // Checked when non-empty / non-zero: the digest and size the worker
  // computed from the file descriptor it is about to load.
  std::string model_sha256;
  uint64_t model_size = 0;
};

class ApprovalTokenVerifier {
 public:
  struct Options {
    // Allowed clock skew in either direction for iat/nbf/exp.
    absl::Duration leeway = absl::Seconds(30);
    // Tokens whose exp - iat exceeds this are rejected.
    absl::Duration max_lifetime = absl::Minutes(15);
  };

  ApprovalTokenVerifier() : ApprovalTokenVerifier(Options()) {}
  explicit ApprovalTokenVerifier(Options options) : options_(options) {}

  // Pins a verification key; its id is TokenKeyId(key). Not thread-safe with
  // respect to concurrent Verify calls.
  void AddKey(Ed25519PublicKey key);
  size_t key_count() const { return keys_.size(); }

  // Verifies signature (key chosen by footer kid among pinned keys only),
  // token type, kid, audience and implicit assertion, issuer, time window and
  // the expectations. A token without a model_family claim reads as
  // kLegacyModelFamily (model_family_implied); a model_family claim that is
  // present but not a family is INVALID_ARGUMENT. The family is not compared
  // with anything here: the worker knows the file's architecture only after
  // it parsed the approved bytes (model_gate.h, CheckApprovedFamily).
  // Errors: INVALID_ARGUMENT (malformed), UNAUTHENTICATED
  // (unknown key, bad signature, wrong audience/issuer/model),
  // DEADLINE_EXCEEDED (expired), FAILED_PRECONDITION (not yet valid).
  absl::StatusOr<ApprovalClaims> Verify(std::string_view token,
                                        const ApprovalExpectations& expect,
                                        absl::Time now) const;

 private:
  const Options options_;
  std::map<std::string, Ed25519PublicKey, std::less<>> keys_;
};

}  // namespace ossgate::token

#endif  // OSSGATE_PROVENANCE_SERVICE_TOKEN_APPROVAL_TOKEN_H_
