// The inference worker process: gRPC server, provenance-gated model load,
// serving engine, metrics, graceful shutdown.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "inference_worker/worker/grpc_provenance_client.h"
#include "inference_worker/worker/model_gate.h"

namespace ossgate::worker {

inline constexpr char kInferenceServiceName[] = "ossgate.inference.v1.InferenceService";

struct WorkerConfig {
  // Serving.
  std::string listen = "127.0.0.1:50061";  // InferenceService (+ health, reflection)
  std::string health_listen;               // optional plaintext health-only port, e.g. 0.0.0.0:8081
  std::string metrics_listen;              // optional Prometheus /metrics, e.g. 0.0.0.0:9091
  std::string tls_cert, tls_key;           // server certificate for clients
  std::string tls_client_ca;               // when set, clients must present a certificate from this CA
  bool insecure_dev_loopback = false;      // plaintext, only on 127.0.0.1/::1
  // Model and provenance.
  GateConfig gate;
  std::vector<std::string> pinned_key_paths;  // PEM public keys of the provenance token signer(s)
  ProvenanceClientConfig provenance;
  bool wait_for_model = false;  // on rejection, keep running NOT_SERVING and retry every retry_interval
  absl::Duration retry_interval = absl::Seconds(30);
  // Engine.
  std::string backend = "auto";  // auto (CUDA if a usable GPU is present), cpu, cuda
  int cuda_device = 0;
  int threads = 0;
  int max_sequences = 16;
  int max_context = 4096;
  int kv_blocks = 0;  // 0 = max_sequences * max_context worth
  int max_waiting = 64;
  int step_token_budget = 256;
  absl::Duration drain_timeout = absl::Seconds(30);
};

// Runs until SIGTERM/SIGINT (graceful drain) or a fatal load error.
// Returns the process exit code: 0 after a clean shutdown, 2 for bad
// configuration, 3 when the model was rejected or could not be verified,
// 4 when it could not be loaded.
int RunWorker(const WorkerConfig& config);

}  // namespace ossgate::worker
