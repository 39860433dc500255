// Server assembly: configuration, key loading, TLS, gRPC server with the
// provenance services, grpc.health.v1 and server reflection.
#ifndef OSSGATE_PROVENANCE_SERVICE_SERVER_SERVER_H_
#define OSSGATE_PROVENANCE_SERVICE_SERVER_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "provenance_service/core/clock.h"

namespace grpc {
class Server;
}

namespace ossgate::provenance {

class Ledger;
class ProvenanceServices;

struct PreviousTokenKey {
  std::string public_key_file;  // SPKI PEM
  absl::Time retired_at;        // when it stopped signing
};

// Validated once by ProvenanceServer::Start and not changed afterwards.
struct ServerConfig {
  // host:port; port 0 picks a free port (see ProvenanceServer::port).
  std::string listen_address = "127.0.0.1:7443";
  // Server certificate chain and key (PEM), and the CA that signs client
  // certificates. Required unless insecure_dev_loopback.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string client_ca_file;
  // Plaintext with identities from metadata; only on 127.0.0.1 / [::1].
  bool insecure_dev_loopback = false;

  std::string db_path;
  std::string log_origin = "ossgate.local/provenance";
  bool seed_default_registry = true;
  size_t max_batch = 1024;

  // Ed25519 PKCS#8 PEM files (mode 0600).
  std::string token_signing_key_file;
  std::string checkpoint_signing_key_file;
  std::vector<PreviousTokenKey> previous_token_keys;

  std::string token_issuer = "ossgate-provenance";
  absl::Duration token_ttl = absl::Minutes(5);
  // Leeway workers allow; previous keys stay published for
  // retired_at + token_ttl + token_leeway.
  absl::Duration token_leeway = absl::Seconds(30);

  // If set, the bound port is written here (atomically) once serving.
  std::string port_file;
  // Optional plaintext host:port serving only grpc.health.v1, for probes
  // that cannot speak TLS (Kubernetes native gRPC probes). Empty = none.
  std::string health_listen_address;
};

// INVALID_ARGUMENT naming the offending flag.
absl::Status ValidateConfig(const ServerConfig& config);

class ProvenanceServer {
 public:
  // Validates the config, loads keys, opens the ledger and starts serving.
  // `clock` must outlive the server (nullptr = system clock).
  static absl::StatusOr<std::unique_ptr<ProvenanceServer>> Start(const ServerConfig& config,
                                                                 const Clock* clock = nullptr);
  ~ProvenanceServer();

  int port() const { return port_; }
  // Stops accepting calls, waits up to `grace` for in-flight calls (which
  // still get their durable answers), then closes the ledger.
  void Shutdown(absl::Duration grace = absl::Seconds(5));
  void Wait();

 private:
  ProvenanceServer() = default;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<ProvenanceServices> services_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;  // plaintext, health only; may be null
  int port_ = 0;
  bool shut_down_ = false;
};

// Runs until SIGINT/SIGTERM. Used by main(); returns the exit status.
int RunServer(const ServerConfig& config);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_SERVER_SERVER_H_
