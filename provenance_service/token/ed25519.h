// Ed25519 keys (RFC 8032, PureEdDSA) through OpenSSL 3.
//
// Ownership: key objects own their OpenSSL handle and are movable, not
// copyable (use std::shared_ptr to share). Thread-safety: const methods may be
// called concurrently from any number of threads (each call uses its own
// EVP_MD_CTX).
#ifndef OSSGATE_PROVENANCE_SERVICE_TOKEN_ED25519_H_
#define OSSGATE_PROVENANCE_SERVICE_TOKEN_ED25519_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace ossgate::token {

inline constexpr size_t kEd25519PublicKeySize = 32;
inline constexpr size_t kEd25519SeedSize = 32;
inline constexpr size_t kEd25519SignatureSize = 64;

namespace internal {
struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const;
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
}  // namespace internal

class Ed25519PublicKey {
 public:
  // From the raw 32-byte encoding.
  static absl::StatusOr<Ed25519PublicKey> FromRaw(std::string_view raw);
  // From an SPKI "-----BEGIN PUBLIC KEY-----" PEM block (Ed25519 only).
  static absl::StatusOr<Ed25519PublicKey> FromPem(std::string_view pem);
  static absl::StatusOr<Ed25519PublicKey> LoadPemFile(const std::string& path);

  Ed25519PublicKey(Ed25519PublicKey&&) = default;
  Ed25519PublicKey& operator=(Ed25519PublicKey&&) = default;

  // Raw 32 bytes.
  const std::string& raw() const { return raw_; }
  std::string ToPem() const;
  // True iff `signature` is a valid Ed25519 signature of `message`.
  bool Verify(std::string_view message, std::string_view signature) const;

 private:
  Ed25519PublicKey(internal::PkeyPtr key, std::string raw) : key_(std::move(key)), raw_(std::move(raw)) {}
  internal::PkeyPtr key_;
  std::string raw_;
};

class Ed25519PrivateKey {
 public:
  static absl::StatusOr<Ed25519PrivateKey> Generate();
  // From the 32-byte RFC 8032 seed.
  static absl::StatusOr<Ed25519PrivateKey> FromSeed(std::string_view seed);
  // From a PKCS#8 "-----BEGIN PRIVATE KEY-----" PEM block (Ed25519 only).
  static absl::StatusOr<Ed25519PrivateKey> FromPem(std::string_view pem);
  // Reads a PEM file; refuses files readable by group or others.
  static absl::StatusOr<Ed25519PrivateKey> LoadPemFile(const std::string& path);

  Ed25519PrivateKey(Ed25519PrivateKey&&) = default;
  Ed25519PrivateKey& operator=(Ed25519PrivateKey&&) = default;

  const Ed25519PublicKey& public_key() const { return public_key_; }
  // PKCS#8 PEM (unencrypted: protect the file, e.g. a Kubernetes Secret).
  std::string ToPem() const;
  // 32-byte seed; needed for PASERK export in tests only.
  std::string Seed() const;
  // 64-byte signature. Aborts only on OpenSSL internal failure.
  std::string Sign(std::string_view message) const;

 private:
  Ed25519PrivateKey(internal::PkeyPtr key, Ed25519PublicKey pub)
      : key_(std::move(key)), public_key_(std::move(pub)) {}
  static absl::StatusOr<Ed25519PrivateKey> FromPkey(internal::PkeyPtr key);
  internal::PkeyPtr key_;
  Ed25519PublicKey public_key_;
};

// Writes `contents` to `path` atomically (temp file + rename) with `mode`.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents, int mode);
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes = 1 << 20);

}  // namespace ossgate::token

#endif  // OSSGATE_PROVENANCE_SERVICE_TOKEN_ED25519_H_
