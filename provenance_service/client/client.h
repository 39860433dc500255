// Client-side connection setup for the provenance service (provctl, the
// benchmark, tests; the inference worker can use it too).
//
// Thread-safety: channels are thread-safe; ConfigureContext is pure.
#ifndef OSSGATE_PROVENANCE_SERVICE_CLIENT_CLIENT_H_
#define OSSGATE_PROVENANCE_SERVICE_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ossgate::provenance {

struct ClientOptions {
  std::string server = "127.0.0.1:7443";
  // mTLS: CA that signed the server certificate, and this caller's
  // certificate and key (the certificate's SPIFFE URI SAN is the identity).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // Overrides the TLS host name checked against the server certificate.
  std::string server_name_override;
  // Development: plaintext to a loopback server started with
  // --insecure_dev_loopback, identity sent as metadata.
  bool insecure_dev_loopback = false;
  std::string dev_identity;  // e.g. spiffe://ossgate/role/admin/me
  absl::Duration timeout = absl::Seconds(10);
};

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateProvenanceChannel(const ClientOptions& options);

// Sets the deadline and, in development mode, the identity metadata.
void ConfigureContext(const ClientOptions& options, grpc::ClientContext* context);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CLIENT_CLIENT_H_
