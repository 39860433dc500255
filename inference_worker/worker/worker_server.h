// The inference worker process: gRPC server, provenance-gated model load,
// serving engine, metrics, graceful shutdown.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
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
  std::string tls_client_ca;               // clients must present a certificate from this CA (mTLS)
  // Client certificates must name one of these roles (spiffe://ossgate/role/<role>/<id>).
  std::vector<std::string> client_roles = {"client"};
  // TLS without client certificates: every client is anonymous. Refused
  // unless set explicitly (a warning is logged); exclusive with tls_client_ca.
  bool allow_unauthenticated_clients = false;
  bool insecure_dev_loopback = false;      // plaintext, only on 127.0.0.1/::1
  // The OpenAI-compatible HTTP API (docs/http.md): HTTPS on this address
  // with tls_cert/tls_key; empty = off. Clients authenticate with a client
  // certificate (tls_client_ca, client_roles) or an API key from
  // http_api_keys (reloaded on SIGHUP).
  std::string http_listen;
  std::string http_api_keys;
  size_t http_max_body_bytes = 8 << 20;
  // Model and provenance.
  GateConfig gate;
  std::vector<std::string> pinned_key_paths;  // PEM public keys of the provenance token signer(s)
  ProvenanceClientConfig provenance;
  bool wait_for_model = false;  // on rejection, keep running NOT_SERVING and retry every retry_interval
  absl::Duration retry_interval = absl::Seconds(30);
  // Engine.
  std::string backend = "auto";  // auto (CUDA if a usable GPU is present), cpu, cuda
  int cuda_device = 0;
  // Ranks of a tensor-parallel layout (docs/parallel.md): CUDA, GPUs
  // cuda_device .. cuda_device + tensor_parallel - 1; CPU, threads (a check
  // of the layout, not faster). expert_parallel: MoE expert groups (1: every
  // rank computes a slice of every expert; N: experts partitioned in N groups).
  int tensor_parallel = 1;
  int expert_parallel = 1;
  int threads = 0;
  int max_sequences = 16;
  int max_context = 4096;
  int kv_blocks = 0;  // 0 = CUDA: from gpu_memory_fraction; CPU: max_sequences * max_context worth
  double gpu_memory_fraction = 0.9;  // CUDA: share of the device memory for weights, buffers and KV cache
  bool load_to_device = true;        // CUDA: stream the file into device memory (DeviceModelImage)
  int max_waiting = 64;
  int step_token_budget = 256;
  // A stream whose client accepts no output for this long is ended and its
  // capacity freed (serving::EngineOptions::stall_timeout_seconds).
  absl::Duration stall_timeout = absl::Seconds(30);
  absl::Duration drain_timeout = absl::Seconds(30);
  // Tests only (--testonly_pause_at_phase): sleep this long on entering the
  // load phase "hashing" (while the file is read), "verifying" (before each
  // VerifyModel call) or "uploading" (before the backend is created), so a
  // test can signal the process in that phase.
  std::string testonly_pause_phase;
  absl::Duration testonly_pause = absl::Seconds(60);
};

// Checks the configuration before anything touches the network: InvalidArgument
// naming the flag and what to pass instead.
absl::Status ValidateWorkerConfig(const WorkerConfig& config);

// Runs until SIGTERM/SIGINT or a fatal load error. A signal while the model
// loads (hashing, verification, upload, or waiting for an approvable model)
// ends the process at once with 0: nothing is served yet, so there is nothing
// to drain, and no VerifyModel call follows the signal. Once serving, a
// signal drains (health NOT_SERVING, new calls UNAVAILABLE, running streams
// finish for up to drain_timeout). SIGHUP re-reads the HTTP API key file.
// Returns the process exit code: 0 after a
// clean shutdown, 2 for bad configuration (before any network call), 3 when
// the model was rejected or could not be verified, 4 when it could not be
// loaded.
int RunWorker(const WorkerConfig& config);

}  // namespace ossgate::worker
