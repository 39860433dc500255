// Who calls the InferenceService: the client certificate gRPC verified
// against --tls_client_ca, read into an identity and checked against the
// roles the worker serves.
//
// Identities are SPIFFE-style URI SANs, as the provenance service uses them
// (tools/certs/make_dev_pki.sh issues them):
//   spiffe://ossgate/role/<role>/<id>   role [a-z]+, id 1..128 of [A-Za-z0-9._-]
// A certificate with none, several, or a malformed one has no identity; a
// CA-signed certificate alone is not enough (the CA also signs workers,
// admins and auditors of the provenance service).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "openssl/x509.h"

namespace ossgate::worker {

// What the peer presented, for decisions and for attributing refusals.
struct PeerCertificate {
  bool present = false;
  std::vector<std::string> uri_sans;  // every URI SAN, verbatim (untrusted)
  std::string sha256;                 // SHA-256 of the DER certificate, 64 lowercase hex digits
  std::string parse_error;            // set when the PEM could not be read
};

// The verified leaf certificate of the call's peer (none on plaintext or
// without client authentication).
PeerCertificate PeerCertificateOf(const grpc::AuthContext* auth);

// The same from a PEM certificate (what gRPC's auth context holds).
PeerCertificate PeerCertificateFromPem(absl::string_view pem);

// The same from a certificate OpenSSL verified (the HTTP face's TLS
// connection); null = none presented.
PeerCertificate PeerCertificateFromX509(const X509* cert);

struct ClientIdentity {
  std::string uri;  // spiffe://ossgate/role/<role>/<id>: owns the caller's requests
  std::string role;
  std::string id;
};

// UNAUTHENTICATED when the certificate is missing or carries no single
// well-formed spiffe://ossgate/ identity; PERMISSION_DENIED when its role is
// not in `roles`. Messages name the problem and quote untrusted text.
absl::StatusOr<ClientIdentity> IdentityOf(const PeerCertificate& cert, const std::vector<std::string>& roles);

// "san=[...] sha256=<fingerprint>" (SANs quoted), or "no client certificate":
// how a log line attributes a call, also when it has no usable identity.
std::string DescribePeer(const PeerCertificate& cert);

}  // namespace ossgate::worker
