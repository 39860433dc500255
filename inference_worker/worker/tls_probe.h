// A diagnostic TLS handshake with the provenance service, made with the
// worker's own credentials when a gRPC call could not connect, to tell a
// certificate problem (which no retry can fix) from a service that is down.
//
// gRPC names a certificate the worker rejects ("certificate verify failed"),
// but a gRPC server that rejects the worker's certificate completes the TLS
// handshake and then closes the connection without an alert or a byte (it
// checks the client certificate after the handshake), which gRPC reports
// only as "Socket closed", the same as for a service that went away. A
// healthy gRPC server sends its HTTP/2 settings right after the handshake;
// the probe tells the two apart.
//
// Thread-safety: pure function (blocking, bounded by `timeout` per step).
#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ossgate::worker {

struct TlsProbeConfig {
  std::string address;                        // host:port or [v6]:port
  std::string server_name;                    // name the service's certificate must carry; empty = host of address
  std::string ca_pem;                         // CA(s) of the service's certificate
  std::string cert_pem;                       // this worker's certificate chain
  std::string key_pem;                        // its private key
  absl::Duration timeout = absl::Seconds(3);  // per step: connect, handshake, first read
};

struct TlsProbeResult {
  // Empty when TLS works, when the service cannot be reached at all, or when
  // the failure is not about certificates (those are worth retrying). Else
  // e.g. "certificate verify failed (unable to get local issuer
  // certificate)", "tlsv1 alert unknown ca", or that the service closed the
  // connection right after the handshake.
  std::string failure;
  // Whether the service refused our certificate (else we refused its).
  bool refused_by_service = false;
};

// Handshakes with the service as the worker's gRPC channel would, and reads
// its first answer. A close without a byte right after the handshake counts
// only if a second probe, 200 ms later, sees the same (a server that is
// restarting is not a certificate problem).
TlsProbeResult ProbeTlsCertificates(const TlsProbeConfig& config);

// The marker of a certificate verification failure (either side's) in an
// OpenSSL reason or a gRPC error message, if it holds one.
std::optional<absl::string_view> TlsVerificationFailure(absl::string_view message);

}  // namespace ossgate::worker
