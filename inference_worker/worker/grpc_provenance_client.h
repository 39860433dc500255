// ProvenanceClient over gRPC (mutual TLS, or plaintext on loopback for
// development), used by the worker's model gate.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "inference_worker/worker/model_gate.h"

namespace ossgate::worker {

struct ProvenanceClientConfig {
  std::string address;        // host:port
  std::string ca_cert_path;   // CA that signed the service's certificate
  std::string cert_path;      // this worker's client certificate (role worker)
  std::string key_path;       // its private key
  bool insecure_loopback = false;  // development only: plaintext to 127.0.0.1/::1
  std::string tls_server_name;     // override the expected server name; empty = host of address
  absl::Duration rpc_timeout = absl::Seconds(10);
};

// Reads the TLS material and creates the channel (it connects lazily).
// VerifyModel answers a failed TLS certificate verification (either side's,
// named by gRPC or found by a diagnostic handshake, tls_probe.h) with
// UNAUTHENTICATED naming it, not UNAVAILABLE: the gate must not retry it.
absl::StatusOr<std::unique_ptr<ProvenanceClient>> MakeGrpcProvenanceClient(const ProvenanceClientConfig& config);

// True for host:port addresses on the loopback interface (127.x, localhost,
// [::1]): where the worker allows plaintext in development.
bool IsLoopbackAddress(const std::string& address);

// Reads a whole small file (certificates, keys).
absl::StatusOr<std::string> ReadSmallFile(const std::string& path);

}  // namespace ossgate::worker
