// What the worker benchmarks (worker_load_bench, serving_bench) share: the
// checkout and binaries to use at run time, the two services started as
// processes with a model registered through provctl and loaded through the
// provenance gate, and a pool of prompt tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "ossgate/inference/v1/inference.grpc.pb.h"
#include "tests/worker/worker_harness.h"

namespace ossgate::worker_bench {

// The ossgate checkout this run uses (tools/certs/make_dev_pki.sh comes from
// it): `flag` when set, else $OSSGATE_SOURCE_DIR, else the working directory
// if it is a checkout. Never the directory the binary was built from, so a
// bundle runs from whatever path it was unpacked to. The error says how to
// give the directory.
absl::StatusOr<std::string> ResolveSourceDir(const std::string& flag);

// provenance_service, provctl and inference_worker from `bin_dir`; when it is
// empty, from `exe_dir` (the benchmark's own folder: a bundle or an install)
// if all three are there, else from the build tree, found relative to
// `exe_dir` (no build path is compiled in: the build tree may have moved).
worker_test::Binaries ResolveBinaries(const std::string& bin_dir, const std::string& exe_dir);

// The worker's engine steps over a stretch of a benchmark: the differences
// of its /metrics counters (ossgate_worker_step_*) between two scrapes
// (BenchServices::Steps).
struct EngineSteps {
  bool ok = false;                // both scrapes answered
  double count[3] = {0, 0, 0};    // decode, mixed, prefill steps (kStepKinds)
  double seconds[3] = {0, 0, 0};  // their backend time
  double host_count = 0, host_seconds = 0;
  double prefill_tokens = 0, decode_tokens = 0;
};
inline constexpr const char* kStepKinds[3] = {"decode", "mixed", "prefill"};
EngineSteps StepsBetween(const EngineSteps& a, const EngineSteps& b);
// One markdown row's cells after the label: steps, decode steps, mean ms,
// mixed steps, mean ms, prefill steps, mean ms, host µs/step, prompt share
// of tokens, decode tokens/step.
std::string StepsCells(const EngineSteps& e);
inline constexpr const char* kStepsHeader =
    "steps | decode steps | mean ms | mixed steps | mean ms | prefill steps | mean ms | host µs/step | prompt share "
    "of tokens | decode tokens/step |";

struct ServiceOptions {
  std::string source_dir;  // from ResolveSourceDir
  std::string bin_dir;     // see ResolveBinaries
  // An existing GGUF to serve; empty = a random gpt-oss model of `preset`
  // (tools/make_model presets) with `vocab` (tiny, o200k, placeholder:N or a
  // vocab file), written into the run's temporary directory.
  std::string model_file;
  std::string preset = "small";
  std::string vocab = "tiny";
  std::vector<std::string> worker_flags;  // appended to the worker's command line
  std::string temp_prefix = "worker_bench";
};

// provenance_service and inference_worker on loopback with mutual TLS (and
// the worker's /metrics on plain loopback); the model is trusted with
// `provctl trust add-file` and the worker loads it only after the gate
// approved it. Start returns once the worker is SERVING.
// The destructor stops the worker (SIGTERM, then the harness kills what is
// left) and removes the temporary directory. Start and the destructor must
// run on the same thread (the children die with the thread that spawned
// them); the stub and channels are thread-safe.
class BenchServices {
 public:
  static absl::StatusOr<std::unique_ptr<BenchServices>> Start(const ServiceOptions& options);
  ~BenchServices();
  BenchServices(const BenchServices&) = delete;
  BenchServices& operator=(const BenchServices&) = delete;

  ossgate::inference::v1::InferenceService::Stub* stub() const { return stub_.get(); }
  const ossgate::inference::v1::ModelInfo& info() const { return info_; }
  // A new TLS connection (its own subchannel) with the benchmark client's
  // certificate, for spreading streams over several connections.
  std::shared_ptr<grpc::Channel> NewChannel() const;
  // One line: the model's shape and where the worker runs it.
  std::string Describe() const;
  std::string WorkerLog() const { return worker_->Log(); }
  // The CA of the worker's certificate (for HTTPS clients of --http_listen).
  std::string CaPath() const { return prov_->pki() + "/ca.pem"; }
  // The worker's engine-step counters now (totals), from its /metrics (the
  // worker listens on a loopback port of its own); ok false if no answer.
  EngineSteps Steps() const;

 private:
  BenchServices() = default;
  // Declared first so it is removed last, after the processes are gone.
  std::unique_ptr<worker_test::TempDir> dir_;
  std::string model_label_;
  std::unique_ptr<worker_test::ProvenanceProcess> prov_;
  std::unique_ptr<worker_test::WorkerProcess> worker_;
  std::unique_ptr<ossgate::inference::v1::InferenceService::Stub> stub_;
  ossgate::inference::v1::ModelInfo info_;
  int metrics_port_ = 0;
};

// Token ids of ordinary English text in the served model's tokenizer (the
// worker's Tokenize), for building prompts; vocabularies whose tokenizer
// gives nothing (placeholder vocabularies have no merges) get ids
// 0..min(vocab, 1000)-1. Never empty.
std::vector<int32_t> PromptTokenPool(ossgate::inference::v1::InferenceService::Stub* stub, uint32_t vocab_size);

}  // namespace ossgate::worker_bench
