// Caller identities and roles.
//
// A caller is identified by exactly one URI SAN in its client certificate:
//   spiffe://ossgate/role/<role>/<id>
// <role> is worker, admin or auditor; <id> uses [A-Za-z0-9._-] (1..128).
// Roles travel in the SAN URI rather than in an OU so that the identity is a
// single, structured, standard (SPIFFE-style) string that can be logged
// verbatim, and so that one certificate cannot carry two roles.
//
// Thread-safety: pure functions.
#ifndef OSSGATE_PROVENANCE_SERVICE_SERVER_IDENTITY_H_
#define OSSGATE_PROVENANCE_SERVICE_SERVER_IDENTITY_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ossgate::provenance {

enum class Role { kWorker, kAdmin, kAuditor };

std::string_view RoleName(Role r);

struct CallerIdentity {
  Role role = Role::kWorker;
  std::string id;
  // The SPIFFE URI, as recorded in the audit log.
  std::string uri;
};

inline constexpr std::string_view kSpiffePrefix = "spiffe://ossgate/role/";

// UNAUTHENTICATED unless `uri` is a well-formed ossgate SPIFFE identity.
absl::StatusOr<CallerIdentity> ParseSpiffeIdentity(std::string_view uri);

// What a client certificate (PEM, as gRPC exposes it in the auth context)
// says about its holder, whether or not it carries a usable identity.
struct CertificateIdentity {
  // UNAUTHENTICATED if the certificate has no or several spiffe://ossgate/
  // URI SANs, or a malformed one.
  absl::StatusOr<CallerIdentity> identity;
  // Lowercase hex SHA-256 of the DER certificate: the fingerprint
  // `openssl x509 -noout -fingerprint -sha256` prints (without colons).
  // Empty if the PEM does not parse.
  std::string sha256_fingerprint;
  // Subject alternative names in OpenSSL's notation: "URI:...", "DNS:...",
  // "email:...", "IP:...", in certificate order; other kinds as "other:<n>".
  std::vector<std::string> subject_alt_names;
};
CertificateIdentity IdentifyCertificatePem(std::string_view pem);

// How a caller whose certificate carries no usable identity is recorded in
// the audit log, so that the attempt can be attributed:
//   unidentified (certificate sha256:<fingerprint>; SAN URI:...,DNS:...)
// The fingerprint comes first, so that truncation to the record's field
// limit never loses it.
std::string UnidentifiedCaller(const CertificateIdentity& certificate);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_SERVER_IDENTITY_H_
