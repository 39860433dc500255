// inference_worker: serves one provenance-approved gpt-oss model over gRPC
// (and, with --http_listen, the OpenAI-compatible HTTP API).
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_split.h"
#include "inference_worker/worker/worker_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50061", "address of the InferenceService (TLS unless --insecure_dev_loopback)");
ABSL_FLAG(std::string, health_listen, "", "optional plaintext address serving only grpc.health.v1 (for probes)");
ABSL_FLAG(std::string, metrics_listen, "", "optional address of the Prometheus /metrics endpoint");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate presented to clients");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA; clients must present a certificate it signed (mTLS) with a --client_roles identity (required "
          "unless --allow_unauthenticated_clients or --insecure_dev_loopback)");
ABSL_FLAG(std::string, client_roles, "client",
          "comma-separated roles a client certificate's spiffe://ossgate/role/<role>/<id> URI SAN may name");
ABSL_FLAG(bool, allow_unauthenticated_clients, false,
          "TLS without client certificates: every client is anonymous and may Abort any request (logs a warning)");
ABSL_FLAG(bool, insecure_dev_loopback, false, "development only: plaintext gRPC for clients and to the provenance service, loopback addresses only");
ABSL_FLAG(std::string, http_listen, "",
          "optional address of the OpenAI-compatible HTTP API (HTTPS with --tls_cert/--tls_key; docs/http.md), e.g. "
          "0.0.0.0:8443; off when empty");
ABSL_FLAG(std::string, http_api_keys, "",
          "file of API key hashes for the HTTP API (\"<key id> <sha256 hex>\" per line; tools/make_api_key.sh), "
          "re-read on SIGHUP");
ABSL_FLAG(int64_t, http_max_body_bytes, 8 << 20, "largest HTTP request body accepted; larger ones get 413");
ABSL_FLAG(std::string, model, "", "path of the GGUF model file (required)");
ABSL_FLAG(std::string, model_name, "", "model name sent to the provenance service (default: file name)");
ABSL_FLAG(std::string, source_uri, "", "where the file came from, e.g. hf://openai/gpt-oss-20b@<rev>/gpt-oss-20b-MXFP4.gguf (required)");
ABSL_FLAG(std::string, worker_id, "", "this worker's id; must match its client certificate (required)");
ABSL_FLAG(std::string, provenance, "127.0.0.1:50051", "address of the provenance service");
ABSL_FLAG(std::string, provenance_ca, "", "PEM CA of the provenance service's certificate");
ABSL_FLAG(std::string, provenance_cert, "", "PEM client certificate of this worker (role worker)");
ABSL_FLAG(std::string, provenance_key, "", "PEM private key of --provenance_cert");
ABSL_FLAG(std::string, provenance_server_name, "", "expected TLS name of the provenance service (default: host of --provenance)");
ABSL_FLAG(std::string, pinned_keys, "", "comma-separated PEM public keys of the provenance token signer (required)");
ABSL_FLAG(std::string, token_issuer, "", "expected approval-token issuer (empty = any pinned signer)");
ABSL_FLAG(int, verify_deadline_s, 120, "seconds to keep retrying an unreachable provenance service");
ABSL_FLAG(bool, wait_for_model, false, "when the model is rejected, stay up (NOT_SERVING) and retry instead of exiting");
ABSL_FLAG(std::string, backend, "auto", "engine backend: auto (CUDA when a usable GPU is present), cpu, cuda");
ABSL_FLAG(int, cuda_device, 0, "CUDA device index");
ABSL_FLAG(int, tensor_parallel, 1,
          "ranks to split the model over (docs/parallel.md): CUDA, GPUs --cuda_device .. --cuda_device + N - 1, "
          "attention heads and each expert's intermediate split, two NCCL all-reduces per layer; CPU, threads (a "
          "check of the layout, not faster)");
ABSL_FLAG(int, expert_parallel, 1,
          "MoE expert groups among the --tensor_parallel ranks (divides it; 1 = every rank computes a slice of every "
          "expert; N = the experts partitioned over the N groups, each expert's slices over a group's ranks)");
ABSL_FLAG(int, threads, 0, "CPU backend threads (0 = all cores)");
ABSL_FLAG(int, max_sequences, 16, "concurrent sequences");
ABSL_FLAG(int, max_context, 4096, "context length served per sequence");
ABSL_FLAG(int, kv_blocks, 0,
          "KV-cache blocks of 16 tokens (0 = CUDA: sized from --gpu_memory_fraction; CPU: max_sequences * "
          "max_context worth)");
ABSL_FLAG(double, gpu_memory_fraction, 0.9,
          "CUDA backend: share of the GPU's total memory the worker may fill with weights, buffers and KV cache, in "
          "(0, 1]; with --kv_blocks=0 the KV cache gets what is left, at most max_sequences * max_context worth");
ABSL_FLAG(bool, load_to_device, true,
          "CUDA backend: stream the model file straight into GPU memory while it is hashed (the file never sits in "
          "host memory); false reads it into host memory first");
ABSL_FLAG(int, max_waiting, 64, "queued requests beyond the running ones; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, step_token_budget, 256, "tokens per engine step (decode tokens + prompt chunks)");
ABSL_FLAG(int, drain_timeout_s, 30, "seconds to let running requests finish after SIGTERM");
ABSL_FLAG(double, stall_timeout_s, 30,
          "seconds a stream may go without its client accepting output before it is cancelled and its capacity "
          "freed");
ABSL_FLAG(std::string, testonly_pause_at_phase, "",
          "tests only: sleep --testonly_pause_s on entering the load phase hashing, verifying or uploading");
ABSL_FLAG(int, testonly_pause_s, 60, "tests only: see --testonly_pause_at_phase");

namespace {
// A flag's file as a path in the repository (the build machine's checkout
// path is not shown).
std::string SourcePath(absl::string_view file) {
  for (absl::string_view top : {"/inference_worker/", "/provenance_service/"}) {
    if (const size_t at = file.rfind(top); at != absl::string_view::npos) return std::string(file.substr(at + 1));
  }
  return std::string(absl::StripPrefix(file, "/"));
}
bool IsMainFile(absl::string_view file) { return absl::EndsWith(file, "worker/worker_main.cc"); }
}  // namespace

int main(int argc, char** argv) {
  // --help lists the flags of this file (Abseil's default looks for a file
  // named after the program), after an overview grouped by purpose.
  absl::FlagsUsageConfig usage;
  usage.contains_helpshort_flags = IsMainFile;
  usage.contains_help_flags = IsMainFile;
  usage.normalize_filename = SourcePath;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(R"(serves a provenance-approved gpt-oss GGUF model over gRPC and an
OpenAI-compatible HTTP API. The file is hashed, approved by the provenance service, its signed
token checked against --pinned_keys, and only then loaded.

Flags by purpose (descriptions and defaults below):
  Model and provenance gate  --model --source_uri --model_name --worker_id --provenance
                             --provenance_ca --provenance_cert --provenance_key
                             --provenance_server_name --pinned_keys --token_issuer
                             --verify_deadline_s --wait_for_model
  gRPC API                   --listen --tls_cert --tls_key --tls_client_ca --client_roles
                             --allow_unauthenticated_clients --insecure_dev_loopback
  HTTP API                   --http_listen --http_api_keys --http_max_body_bytes (TLS and client
                             roles as for gRPC; docs/http.md)
  Engine                     --backend --cuda_device --tensor_parallel --expert_parallel --threads
                             --max_sequences --max_context
                             --kv_blocks --gpu_memory_fraction --load_to_device --max_waiting
                             --step_token_budget
                             --stall_timeout_s
  Operations                 --health_listen --metrics_listen --drain_timeout_s
  Tests only                 --testonly_pause_at_phase --testonly_pause_s

Example (as tools/demo.sh starts it, with the dev PKI of tools/certs/make_dev_pki.sh):
  inference_worker --model=models/ossgate-small.gguf \
    --source_uri=ossgate://bundled/ossgate-small.gguf --worker_id=worker-1 \
    --provenance=127.0.0.1:7443 --provenance_ca=pki/ca.pem \
    --provenance_cert=pki/worker-worker-1.pem --provenance_key=pki/worker-worker-1.key \
    --pinned_keys=token.pub.pem --listen=127.0.0.1:50061 --tls_cert=pki/server.pem \
    --tls_key=pki/server.key --tls_client_ca=pki/ca.pem \
    --http_listen=127.0.0.1:8443 --http_api_keys=api_keys.txt)");
  absl::ParseCommandLine(argc, argv);
  ossgate::worker::WorkerConfig c;
  c.listen = absl::GetFlag(FLAGS_listen);
  c.health_listen = absl::GetFlag(FLAGS_health_listen);
  c.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  c.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  c.tls_key = absl::GetFlag(FLAGS_tls_key);
  c.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  c.client_roles.clear();
  for (absl::string_view r : absl::StrSplit(absl::GetFlag(FLAGS_client_roles), ',', absl::SkipEmpty())) {
    c.client_roles.emplace_back(r);
  }
  c.allow_unauthenticated_clients = absl::GetFlag(FLAGS_allow_unauthenticated_clients);
  c.insecure_dev_loopback = absl::GetFlag(FLAGS_insecure_dev_loopback);
  c.http_listen = absl::GetFlag(FLAGS_http_listen);
  c.http_api_keys = absl::GetFlag(FLAGS_http_api_keys);
  const int64_t max_body = absl::GetFlag(FLAGS_http_max_body_bytes);
  c.http_max_body_bytes = max_body < 0 ? 0 : static_cast<size_t>(max_body);
  c.gate.model_path = absl::GetFlag(FLAGS_model);
  c.gate.source_uri = absl::GetFlag(FLAGS_source_uri);
  c.gate.worker_id = absl::GetFlag(FLAGS_worker_id);
  c.gate.issuer = absl::GetFlag(FLAGS_token_issuer);
  c.gate.verify_deadline = absl::Seconds(absl::GetFlag(FLAGS_verify_deadline_s));
  c.gate.model_name = absl::GetFlag(FLAGS_model_name);
  if (c.gate.model_name.empty()) {
    const std::string& p = c.gate.model_path;
    std::string base = p.substr(p.find_last_of('/') + 1);
    if (base.size() > 5 && base.substr(base.size() - 5) == ".gguf") base.resize(base.size() - 5);
    c.gate.model_name = base;
  }
  c.provenance.address = absl::GetFlag(FLAGS_provenance);
  c.provenance.ca_cert_path = absl::GetFlag(FLAGS_provenance_ca);
  c.provenance.cert_path = absl::GetFlag(FLAGS_provenance_cert);
  c.provenance.key_path = absl::GetFlag(FLAGS_provenance_key);
  c.provenance.tls_server_name = absl::GetFlag(FLAGS_provenance_server_name);
  c.provenance.insecure_loopback = c.insecure_dev_loopback;
  for (absl::string_view k : absl::StrSplit(absl::GetFlag(FLAGS_pinned_keys), ',', absl::SkipEmpty())) {
    c.pinned_key_paths.emplace_back(k);
  }
  c.wait_for_model = absl::GetFlag(FLAGS_wait_for_model);
  c.backend = absl::GetFlag(FLAGS_backend);
  c.cuda_device = absl::GetFlag(FLAGS_cuda_device);
  c.tensor_parallel = absl::GetFlag(FLAGS_tensor_parallel);
  c.expert_parallel = absl::GetFlag(FLAGS_expert_parallel);
  c.threads = absl::GetFlag(FLAGS_threads);
  c.max_sequences = absl::GetFlag(FLAGS_max_sequences);
  c.max_context = absl::GetFlag(FLAGS_max_context);
  c.kv_blocks = absl::GetFlag(FLAGS_kv_blocks);
  c.gpu_memory_fraction = absl::GetFlag(FLAGS_gpu_memory_fraction);
  c.load_to_device = absl::GetFlag(FLAGS_load_to_device);
  c.max_waiting = absl::GetFlag(FLAGS_max_waiting);
  c.step_token_budget = absl::GetFlag(FLAGS_step_token_budget);
  c.drain_timeout = absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s));
  c.stall_timeout = absl::Seconds(absl::GetFlag(FLAGS_stall_timeout_s));
  c.testonly_pause_phase = absl::GetFlag(FLAGS_testonly_pause_at_phase);
  c.testonly_pause = absl::Seconds(absl::GetFlag(FLAGS_testonly_pause_s));
  if (c.gate.model_path.empty() || c.gate.source_uri.empty() || c.gate.worker_id.empty() || c.pinned_key_paths.empty()) {
    std::fprintf(stderr, "error: --model, --source_uri, --worker_id and --pinned_keys are required\n");
    return 2;
  }
  return ossgate::worker::RunWorker(c);
}
