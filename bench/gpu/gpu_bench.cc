// gpu_bench: throughput of the CUDA backend on a gpt-oss GGUF (the full 20b
// shape with random weights, written by ossgate-make-model --preset=20b).
//
//   gpu_bench --model=/tmp/20b.gguf --out=/path/bench.md
//
// Reports: the worker's streaming load (read + SHA-256 + copy to the
// device, parse, device repack) against one read + SHA-256 pass over the
// file, and the process's peak host memory; device copy bandwidth (the decode floor); prefill tok/s for 512
// and 4,096-token prompts; batch-1 decode tok/s at context 128 and 8,192 with
// achieved GB/s next to the floor; aggregate decode tok/s at 8 to 256
// sequences; VRAM by component and peak; a per-kernel breakdown; and the
// 24 GB configuration (32,768-token KV cache). Decode uses GPU sampling
// (greedy) and CUDA graphs, as a serving loop would.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <span>
#include <numeric>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "bench/gpu/bench_options.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/cuda/sharded_cuda_backend.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/model/model_file.h"
#include "inference_worker/model/weights.h"
#include "kernels/cuda_check.h"
#include "kernels/layout.h"

ABSL_FLAG(std::string, model, "", "GGUF to benchmark (gpt-oss, qwen2 or phi3; required)");
ABSL_FLAG(std::string, out, "", "markdown results file (optional)");
ABSL_FLAG(int, decode_steps, 64, "decode steps timed per measurement");
ABSL_FLAG(bool, big_kv, true, "also check the 24 GB configuration (32,768-token KV cache)");
ABSL_FLAG(float, temperature, 0.0f, "--decode_only: sampling temperature (0 = greedy)");
ABSL_FLAG(int, top_k, 0, "--decode_only: top-k (0 = off)");
ABSL_FLAG(float, top_p, 1.0f, "--decode_only: top-p (1 = off)");
ABSL_FLAG(float, min_p, 0.0f, "--decode_only: min-p (0 = off)");
ABSL_FLAG(bool, quick, false,
          "only the load, VRAM, a 512-token prefill, batch-1 decode at context 128 and aggregate decode at 64 "
          "sequences (the 120b shape, whose full run does not fit a 10-minute slot)");
ABSL_FLAG(bool, long_context, false,
          "only the load and the long-context measurements: prefill of 32,768 and 131,040-token prompts (chunked "
          "into passes of 4,096 tokens), batch-1 decode at context 131,072");
ABSL_FLAG(int, tensor_parallel, 1,
          "if > 1: the model split over GPUs 0 .. N-1 (ShardedCudaBackend over NCCL, docs/parallel.md): the load "
          "from host memory, a 512-token prefill, batch-1 decode at context 128 and aggregate decode at 64 and 128 "
          "sequences, each with the share of the step spent in the all-reduces; then exit");
ABSL_FLAG(int, decode_only, 0,
          "if > 0: only prefill this many 128-token sequences, time --decode_steps batched decode steps and exit "
          "(for quick runs and for ncu: kernel launches are 243 per prefill, then 3 warm-up steps)");

namespace {

using Clock = std::chrono::steady_clock;
using ossgate::model::Logits;
using ossgate::model::SequenceStep;
namespace gpu = ossgate::gpu;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string g_report;
void Out(const std::string& s) {
  std::fputs(s.c_str(), stdout);
  std::fflush(stdout);
  g_report += s;
}

constexpr uint64_t kReadChunk = uint64_t{64} << 20;

// Reads and hashes into one reused buffer: the cost of the read + SHA-256
// pass alone.
class DiscardSink : public ossgate::model::ModelSink {
 public:
  absl::Status Begin(uint64_t) override { return absl::OkStatus(); }
  absl::StatusOr<std::span<uint8_t>> Next(uint64_t, uint64_t max) override {
    buf_.resize(kReadChunk);
    return std::span<uint8_t>(buf_.data(), std::min<uint64_t>(max, buf_.size()));
  }
  absl::Status Commit(uint64_t, uint64_t) override { return absl::OkStatus(); }
  absl::Status Finish() override { return absl::OkStatus(); }

 private:
  std::vector<uint8_t> buf_;
};

// The worker's load path (backend_factory, worker_server): the file
// streamed into a DeviceModelImage, parsed after the read, the backend made
// from the image.
struct Loaded {
  std::unique_ptr<gpu::CudaBackend> backend;
  uint64_t size = 0;
  double stream_s = 0, parse_s = 0, create_s = 0, total_s = 0;
};
Loaded LoadStreamed(const std::string& path, const gpu::CudaBackendOptions& opt) {
  Loaded l;
  const auto t0 = Clock::now();
  auto image = gpu::CreateDeviceModelImage(opt.device);
  auto fail = [&](const absl::Status& s) {
    std::fprintf(stderr, "load: %s\n", std::string(s.message()).c_str());
    return std::move(l);
  };
  if (!image.ok()) return fail(image.status());
  auto digest = ossgate::model::StreamModelFile(path, uint64_t{1} << 40, **image, nullptr, kReadChunk);
  if (!digest.ok()) return fail(digest.status());
  l.size = digest->size;
  l.stream_s = Since(t0);
  const auto t_parse = Clock::now();
  auto file = (*image)->ParseHeader();
  if (!file.ok()) return fail(file.status());
  l.parse_s = Since(t_parse);
  const auto t_create = Clock::now();
  auto backend = gpu::CreateCudaBackendFromImage(**image, *file, opt);
  if (!backend.ok()) return fail(backend.status());
  l.create_s = Since(t_create);
  l.backend = *std::move(backend);
  l.total_s = Since(t0);
  return l;
}

int64_t g_peak_used = 0;
void SamplePeak() {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  g_peak_used = std::max<int64_t>(g_peak_used, static_cast<int64_t>(total_b - free_b));
}

double CopyBandwidth() {
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  CUDA_CHECK(cudaMalloc(&a, bytes));
  CUDA_CHECK(cudaMalloc(&b, bytes));
  CUDA_CHECK(cudaMemset(a, 1, bytes));
  std::vector<float> ms;
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  for (int i = 0; i < 12; ++i) {
    CUDA_CHECK(cudaEventRecord(e0));
    CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaEventRecord(e1));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
    if (i >= 2) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  CUDA_CHECK(cudaFree(a));
  CUDA_CHECK(cudaFree(b));
  return 2.0 * bytes / (ms[ms.size() / 2] * 1e-3) / 1e9;  // read + write
}

std::vector<int32_t> Prompt(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> t(n);
  uint32_t x = seed;
  for (int32_t& v : t) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<int32_t>((x >> 8) % static_cast<uint32_t>(vocab));
  }
  return t;
}

// Bytes a batch-1 decode step must read: the weights it touches (gpt-oss:
// dense layers, 4 experts per layer, router, unembedding, one embedding
// row; the dense families: every weight on the device but the embedding
// table, of which one row) and the KV cache up to `ctx`.
double DecodeBytesFor(const ossgate::model::ModelConfig& c, int ctx, const gpu::VramReport& vram) {
  using ossgate::kernels::TiledSize;
  using ossgate::kernels::WFormat;
  auto tiled = [](WFormat f, int64_t rows, int64_t cols, bool gu) {
    const auto s = TiledSize(f, rows, cols, gu);
    return static_cast<double>(s.codes + s.scales);
  };
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), F = c.d_ff, E = c.n_experts;
  double per_layer = tiled(WFormat::kQ8_0, Q + 2 * KV, D, false) + tiled(WFormat::kQ8_0, D, Q, false) +
                     4.0 * (Q + 2 * KV + D) + 4.0 * (E * D + E) +
                     c.n_experts_used * (tiled(WFormat::kMxfp4, F, D, true) + tiled(WFormat::kMxfp4, D, F, false) +
                                         4.0 * (2 * F + D));
  double bytes = per_layer * c.n_layers + tiled(WFormat::kQ8_0, c.vocab_size, D, false) + D / 32.0 * 34;
  if (c.family != ossgate::model::Family::kGptOss) {
    bytes = static_cast<double>(vram.weights() - vram.weights_embedding) + D * 2.0;
  }
  int full = 0, sliding = 0;
  for (int l = 0; l < c.n_layers; ++l) (c.IsSlidingLayer(l) ? sliding : full)++;
  bytes += 2.0 * 2 * KV * (static_cast<double>(full) * ctx + static_cast<double>(sliding) * std::min(ctx, c.sliding_window));
  return bytes;
}

// Per-phase table of a profiled batch-1 decode: ms per step, share, and for
// the phases that stream weights or the KV cache, the bytes one call must
// read and the bandwidth achieved.
std::string PhaseTable(const std::vector<gpu::CudaBackend::ProfileEntry>& prof, const ossgate::model::ModelConfig& c,
                       int ctx, int steps) {
  using ossgate::kernels::TiledSize;
  using ossgate::kernels::WFormat;
  auto tiled = [](WFormat f, int64_t rows, int64_t cols, bool gu) {
    const auto t = TiledSize(f, rows, cols, gu);
    return static_cast<double>(t.codes + t.scales);
  };
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), F = c.d_ff, K = c.n_experts_used;
  int full = 0, sliding = 0;
  for (int l = 0; l < c.n_layers; ++l) (c.IsSlidingLayer(l) ? sliding : full)++;
  const double kv_per_layer =
      2.0 * 2 * KV * (static_cast<double>(full) * ctx + static_cast<double>(sliding) * std::min(ctx, c.sliding_window)) /
      c.n_layers;
  auto bytes_of = [&](const std::string& n) -> double {
    if (n == "qkv_gemm") return tiled(WFormat::kQ8_0, Q + 2 * KV, D, false);
    if (n == "o_gemm") return tiled(WFormat::kQ8_0, D, Q, false);
    if (n == "experts_gate_up") return K * tiled(WFormat::kMxfp4, F, D, true);
    if (n == "experts_down") return K * tiled(WFormat::kMxfp4, D, F, false);
    if (n == "unembedding") return tiled(WFormat::kQ8_0, c.vocab_size, D, false);
    if (n == "attention") return kv_per_layer;
    return 0;
  };
  double total = 0;
  for (const auto& e : prof) total += e.ms;
  std::vector<gpu::CudaBackend::ProfileEntry> rows = prof;
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.ms > b.ms; });
  std::string out = "| phase | ms/step | share | calls/step | us/call | MB/call | GB/s |\n|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& e : rows) {
    const double per_call_us = e.calls ? e.ms * 1e3 / e.calls : 0;
    const double mb = bytes_of(e.name) / 1e6;
    out += absl::StrFormat("| %s | %.3f | %.1f%% | %.0f | %.1f | %s | %s |\n", e.name, e.ms / steps,
                           total > 0 ? 100 * e.ms / total : 0.0, static_cast<double>(e.calls) / steps, per_call_us,
                           mb > 0 ? absl::StrFormat("%.2f", mb) : "", mb > 0 ? absl::StrFormat("%.0f", mb * 1e3 / per_call_us) : "");
  }
  out += absl::StrFormat("| **total (eager)** | **%.3f** | | | | | |\n", total / steps);
  return out;
}

struct Bench {
  ossgate::model::Backend& b;
  int vocab;
  ossgate::model::SeqId next_id = 1;

  // Prefills a fresh sequence with `len` tokens; returns seconds.
  double Prefill(ossgate::model::SeqId id, int len) {
    const auto p = Prompt(len, vocab, static_cast<uint32_t>(id));
    std::vector<float> logits;
    SequenceStep s{id, p, Logits::kLast};
    CUDA_CHECK(cudaDeviceSynchronize());
    const auto t0 = Clock::now();
    const absl::Status st = b.Forward({&s, 1}, &logits);
    if (!st.ok()) {
      std::fprintf(stderr, "prefill failed: %s\n", std::string(st.message()).c_str());
      std::exit(1);
    }
    return Since(t0);
  }

  // Decode of `steps` tokens for the sequences `ids` (all already
  // prefilled), sampled on the GPU with `params` (greedy by default);
  // returns seconds per step (median over the steps).
  double Decode(const std::vector<ossgate::model::SeqId>& ids, int steps,
                ossgate::model::SamplingParams params = {.temperature = 0.0f}) {
    std::vector<int32_t> toks(ids.size(), 1);
    std::vector<ossgate::model::StepSampling> sampling(ids.size());
    for (size_t j = 0; j < ids.size(); ++j) {
      sampling[j].params = params;
      sampling[j].params.seed = params.seed + j;
    }
    std::vector<double> times;
    std::vector<int32_t> out;
    for (int i = 0; i < steps + 3; ++i) {
      std::vector<SequenceStep> st;
      for (size_t j = 0; j < ids.size(); ++j) st.push_back({ids[j], {&toks[j], 1}, Logits::kLast});
      const auto t0 = Clock::now();
      const absl::Status s = b.ForwardSample(st, sampling, &out);
      if (!s.ok()) {
        std::fprintf(stderr, "decode failed: %s\n", std::string(s.message()).c_str());
        std::exit(1);
      }
      if (i >= 3) times.push_back(Since(t0));  // first steps capture graphs
      for (ossgate::model::StepSampling& sm : sampling) ++sm.step;
      toks = out;
      for (int32_t& t : toks) {
        if (t < 0 || t >= vocab) t = 1;  // phase-skipping runs compute garbage
      }
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }
};

// --tensor_parallel=N: the model over N GPUs. Each decode figure is timed
// twice, with and without the all-reduces (CudaBackend phase "all_reduce"
// skipped on every rank; that run's tokens are meaningless), whose
// difference is the communication's share of the step.
int RunTensorParallel(const std::string& path, int n, gpu::CudaBackendOptions opt) {
  const auto t0 = Clock::now();
  auto bytes = ossgate::model::ReadModelFile(path);
  if (!bytes.ok()) {
    std::fprintf(stderr, "%s\n", std::string(bytes.status().message()).c_str());
    return 1;
  }
  auto file = ossgate::gguf::GgufFile::Parse(bytes->bytes());
  if (!file.ok()) {
    std::fprintf(stderr, "%s\n", std::string(file.status().message()).c_str());
    return 1;
  }
  const double read_s = Since(t0);
  std::vector<int> devices(n);
  std::iota(devices.begin(), devices.end(), 0);
  auto created = gpu::ShardedCudaBackend::Create(*file, opt, ossgate::model::ParallelLayout{n, 1}, devices,
                                                 gpu::RankCollective::kNccl);
  if (!created.ok()) {
    std::fprintf(stderr, "tensor-parallel backend: %s\n", std::string(created.status().message()).c_str());
    return 1;
  }
  gpu::ShardedCudaBackend& b = **created;
  const ossgate::model::ModelConfig c = b.config();
  Out(absl::StrFormat("%s\n%s\n\nload: read + SHA-256 into host memory %.2f s, ranks built (slices uploaded, NCCL "
                      "initialised, collective checked) %.2f s\n\n",
                      b.Description(), c.DebugString(), read_s, Since(t0) - read_s));
  Bench bench{b, c.vocab_size};
  const int steps = absl::GetFlag(FLAGS_decode_steps);
  const uint32_t skip_comm = 1u << (gpu::CudaBackend::PhaseNames().size() - 1);  // "all_reduce", the last phase
  // Median step time with and without communication.
  auto decode_both = [&](const std::vector<ossgate::model::SeqId>& ids, int k) {
    const double with = bench.Decode(ids, k);
    b.SetSkipPhases(skip_comm);
    const double without = bench.Decode(ids, k);
    b.SetSkipPhases(0);
    return std::pair{with, without};
  };
  Out("| measure | ms | tok/s | all-reduce share of the step |\n|---|---:|---:|---:|\n");
  {
    std::vector<double> ts;
    for (int r = 0; r < 4; ++r) {
      b.kv().AddSequence(1000).IgnoreError();
      const double t = bench.Prefill(1000, 512);
      if (r > 0) ts.push_back(t);  // the first is a warm-up
      b.kv().RemoveSequence(1000);
    }
    std::sort(ts.begin(), ts.end());
    Out(absl::StrFormat("| 512-token prefill | %.2f | %.0f | |\n", ts[1] * 1e3, 512 / ts[1]));
  }
  {
    b.kv().AddSequence(2000).IgnoreError();
    bench.Prefill(2000, 128);
    const auto [with, without] = decode_both({2000}, steps);
    Out(absl::StrFormat("| batch-1 decode, context 128 | %.3f | %.1f | %.0f%% |\n", with * 1e3, 1.0 / with,
                        100.0 * (with - without) / with));
    b.kv().RemoveSequence(2000);
  }
  for (int seqs : {64, 128}) {
    std::vector<ossgate::model::SeqId> ids;
    for (int i = 0; i < seqs; ++i) {
      ids.push_back(3000 + i);
      b.kv().AddSequence(ids.back()).IgnoreError();
      bench.Prefill(ids.back(), 128);
    }
    const auto [with, without] = decode_both(ids, std::max(16, steps / 2));
    Out(absl::StrFormat("| aggregate decode, %d sequences | %.3f | %.0f | %.0f%% |\n", seqs, with * 1e3, seqs / with,
                        100.0 * (with - without) / with));
    for (auto id : ids) b.kv().RemoveSequence(id);
  }
  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) std::ofstream(out) << g_report;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string path = absl::GetFlag(FLAGS_model);
  if (path.empty()) {
    std::fprintf(stderr, "--model is required\n");
    return 2;
  }
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  Out(absl::StrFormat("# gpu_bench\n\ncard: %s (sm_%d%d, %d SMs, %.1f GiB)\nmodel: %s\n\n", prop.name, prop.major,
                      prop.minor, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0, path));
  const double copy_gbs = CopyBandwidth();
  Out(absl::StrFormat("device copy bandwidth (read + write): %.0f GB/s\n\n", copy_gbs));
  if (const int n = absl::GetFlag(FLAGS_tensor_parallel); n > 1) {
    gpu::CudaBackendOptions opt = ossgate::bench::GpuBenchOptions(false, true, 128);
    opt.kv.num_full_blocks = 0;  // sized from each GPU's free memory, at most 128 sequences of 8,448 tokens
    return RunTensorParallel(path, n, opt);
  }

  // ---- start to ready: one read + SHA-256 pass over the file alone (the
  // bound the streaming load is measured against), then the worker's load:
  // the file streamed into device memory while hashed, the header parsed,
  // the weights checked and repacked on the device.
  double pass_s = 0;
  {
    DiscardSink discard;
    const auto t_pass = Clock::now();
    auto d = ossgate::model::StreamModelFile(path, uint64_t{1} << 40, discard, nullptr, kReadChunk);
    if (!d.ok()) {
      std::fprintf(stderr, "%s\n", std::string(d.status().message()).c_str());
      return 1;
    }
    pass_s = Since(t_pass);
  }
  const bool long_context = absl::GetFlag(FLAGS_long_context);
  const gpu::CudaBackendOptions opt =
      ossgate::bench::GpuBenchOptions(long_context, absl::GetFlag(FLAGS_quick), absl::GetFlag(FLAGS_decode_only));
  const int64_t rss_before = ossgate::model::PeakResidentBytes();
  Loaded loaded = LoadStreamed(path, opt);
  if (!loaded.backend) return 1;
  auto& backend = loaded.backend;
  const int64_t rss_peak = ossgate::model::PeakResidentBytes();
  gpu::CudaBackend& b = *backend;
  // A copy: the 24 GB section below runs after this backend is destroyed.
  const ossgate::model::ModelConfig c = b.config();
  SamplePeak();
  Out(absl::StrFormat("%s\n%s\n\n", b.Description(), c.DebugString()));
  Out(absl::StrFormat(
      "## Start to ready (the streaming load)\n\n| phase | s |\n|---|---:|\n| one read + SHA-256 pass over the file "
      "(%.2f GB, %.2f GB/s), for comparison | %.2f |\n| read + SHA-256 + copy to the device | %.2f |\n| parse the "
      "header | %.3f |\n| finite check + repack on the device, KV cache, buffers | %.2f |\n| **load, start to ready** "
      "| **%.2f** (%.3fx the read + SHA-256 pass; target <= 1.15x) |\n\npeak host memory of the process (VmHWM): "
      "%.0f MiB before the load, %.0f MiB after it (target < 1,536 MiB)\n\n",
      loaded.size / 1e9, loaded.size / 1e9 / pass_s, pass_s, loaded.stream_s, loaded.parse_s, loaded.create_s,
      loaded.total_s, loaded.total_s / pass_s, rss_before / 1048576.0, rss_peak / 1048576.0));
  if (long_context) {
    Out("## VRAM (1 sequence of up to 131,072 tokens, 4,096 tokens per pass)\n\n" + b.Vram().ToString() + "\n\n");
    Bench lb{b, c.vocab_size};
    Out("## Long context (one sequence; the prompt chunked into passes of 4,096 tokens)\n\n| measure | s | tok/s "
        "|\n|---|---:|---:|\n");
    for (int len : {32768, 131040}) {
      b.kv().AddSequence(7000).IgnoreError();
      const double t = lb.Prefill(7000, len);
      Out(absl::StrFormat("| prefill, %d-token prompt | %.2f | %.0f |\n", len, t, len / t));
      if (len == 131040) {
        const double d = lb.Decode({7000}, 24);
        Out(absl::StrFormat("| batch-1 decode at context %d-%d | %.5f | %.1f |\n", len, len + 27, d, 1.0 / d));
      }
      b.kv().RemoveSequence(7000);
      SamplePeak();
    }
    Out(absl::StrFormat("\npeak device memory in use during the run (cudaMemGetInfo): %.2f GiB\n",
                        g_peak_used / 1073741824.0));
    if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) std::ofstream(out) << g_report;
    return 0;
  }
  Out(absl::StrFormat("## VRAM (this configuration: %d sequences, %d-token context, %d tokens per pass)\n\n",
                      opt.kv.max_sequences, opt.max_context, opt.max_step_tokens) +
      b.Vram().ToString() + "\n\n");

  Bench bench{b, c.vocab_size};
  if (const int n = absl::GetFlag(FLAGS_decode_only); n > 0) {
    std::vector<ossgate::model::SeqId> ids;
    for (int i = 0; i < n; ++i) {
      ids.push_back(3000 + i);
      b.kv().AddSequence(ids.back()).IgnoreError();
      bench.Prefill(ids.back(), 128);
    }
    const ossgate::model::SamplingParams sp = {.temperature = absl::GetFlag(FLAGS_temperature),
                                               .top_k = absl::GetFlag(FLAGS_top_k),
                                               .top_p = absl::GetFlag(FLAGS_top_p),
                                               .min_p = absl::GetFlag(FLAGS_min_p),
                                               .seed = 7};
    const double t = bench.Decode(ids, absl::GetFlag(FLAGS_decode_steps), sp);
    Out(absl::StrFormat("decode, %d sequences at context 128 (T %g, top_k %d, top_p %g, min_p %g): %.3f ms/step, "
                        "%.1f tok/s\n",
                        n, sp.temperature, sp.top_k, sp.top_p, sp.min_p, t * 1e3, n / t));
    return 0;
  }
  // ---- prefill
  Out("## Prefill (one sequence, whole prompt in one step)\n\n| prompt | s | tok/s |\n|---:|---:|---:|\n");
  const bool quick = absl::GetFlag(FLAGS_quick);
  for (int len : {512, 4096}) {
    if (quick && len != 512) continue;
    b.kv().AddSequence(1000).IgnoreError();
    bench.Prefill(1000, len);  // warm-up
    b.kv().RemoveSequence(1000);
    std::vector<double> ts;
    for (int r = 0; r < 3; ++r) {
      b.kv().AddSequence(1000).IgnoreError();
      ts.push_back(bench.Prefill(1000, len));
      b.kv().RemoveSequence(1000);
    }
    std::sort(ts.begin(), ts.end());
    Out(absl::StrFormat("| %d | %.4f | %.0f |\n", len, ts[1], len / ts[1]));
    SamplePeak();
  }
  // ---- batch-1 decode
  const int steps = absl::GetFlag(FLAGS_decode_steps);
  Out(absl::StrFormat(
      "\n## Batch-1 decode (greedy on the GPU, CUDA graphs)\n\ncopy ceiling %.0f GB/s\n\n| context | ms/token | tok/s | "
      "bytes/token | achieved GB/s | floor tok/s |\n|---:|---:|---:|---:|---:|---:|\n",
      copy_gbs));
  for (int ctx : {128, 8192}) {
    if (quick && ctx != 128) continue;
    b.kv().AddSequence(2000).IgnoreError();
    bench.Prefill(2000, ctx);
    const double t = bench.Decode({2000}, steps);
    const double bytes_tok = DecodeBytesFor(c, ctx + steps / 2, b.Vram());
    Out(absl::StrFormat("| %d | %.3f | %.1f | %.3g | %.0f | %.0f |\n", ctx, t * 1e3, 1.0 / t, bytes_tok,
                        bytes_tok / t / 1e9, copy_gbs * 1e9 / bytes_tok));
    b.kv().RemoveSequence(2000);
    SamplePeak();
  }
  // ---- graph-mode cost of each phase: batch-1 decode with the phase left out
  if (!quick) {
    Out("\n## Cost of each phase inside the decode graph (batch 1: step time minus the step time without it)\n\n"
        "| phase | context | ms/step | us/launch |\n|---|---:|---:|---:|\n");
    const auto& names = gpu::CudaBackend::PhaseNames();
    for (int ctx : {128, 8192}) {
      const ossgate::model::SeqId id = 6000 + ctx;
      b.kv().AddSequence(id).IgnoreError();
      bench.Prefill(id, ctx);
      const double base = bench.Decode({id}, 24);
      for (size_t i = 0; i < names.size(); ++i) {
        if (ctx != 128 && names[i] != "attention") continue;
        if (names[i] == "all_reduce") continue;  // tensor-parallel ranks only (--tensor_parallel)
        b.SetSkipPhases(1u << i);
        const double t = bench.Decode({id}, 24);
        const int launches = names[i] == "unembedding" ? 1 : c.n_layers;
        Out(absl::StrFormat("| %s | %d | %.3f | %.1f |\n", names[i], ctx, (base - t) * 1e3, (base - t) * 1e6 / launches));
      }
      b.SetSkipPhases(0);
      Out(absl::StrFormat("| (whole step) | %d | %.3f | |\n", ctx, base * 1e3));
      b.kv().RemoveSequence(id);
    }
  }
  // ---- aggregate decode
  Out("\n## Aggregate decode (128-token prompts, greedy on the GPU)\n\n| sequences | ms/step | tok/s |\n|---:|---:|---:|\n");
  for (int n : {8, 32, 64, 128, 256}) {
    if (quick && n != 64) continue;
    std::vector<ossgate::model::SeqId> ids;
    std::vector<std::vector<int32_t>> prompts;
    std::vector<SequenceStep> st;
    for (int i = 0; i < n; ++i) {
      ids.push_back(3000 + i);
      b.kv().AddSequence(ids.back()).IgnoreError();
      prompts.push_back(Prompt(128, c.vocab_size, 3000 + i));
    }
    for (int i = 0; i < n; ++i) st.push_back({ids[i], prompts[i], Logits::kLast});
    std::vector<float> logits;
    if (absl::Status s = b.Forward(st, &logits); !s.ok()) {
      std::fprintf(stderr, "batch prefill failed: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    const double t = bench.Decode(ids, std::max(16, steps / 2));
    Out(absl::StrFormat("| %d | %.3f | %.0f |\n", n, t * 1e3, n / t));
    for (auto id : ids) b.kv().RemoveSequence(id);
    SamplePeak();
  }
  if (quick) {
    SamplePeak();
    Out(absl::StrFormat("\npeak device memory in use during the run (cudaMemGetInfo): %.2f GiB\n",
                        g_peak_used / 1073741824.0));
    if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) std::ofstream(out) << g_report;
    return 0;
  }
  // ---- where the GEMMs should switch from the small-batch path (every
  // weight tile read once per 8 tokens) to the large-batch one (64 tokens
  // per CTA): decode steps of n sequences under several limits.
  {
    Out("\n## GEMM path limits (decode at context 128; dense = largest dense GEMM on the small path, moe = largest "
        "average expert batch on it, p16 = 16-token small passes above this average, narrow = 4-row-tile large CTAs "
        "for small grids, tiles = MoE tile slots = tokens per large CTA, 0 = by the average)\n\n"
        "| sequences | dense | moe | p16 | narrow | tiles | ms/step | tok/s |\n"
        "|---:|---:|---:|---:|---|---:|---:|---:|\n");
    struct Limits {
      int dense, moe, p16;
      bool narrow;
      int tiles;
    };
    // The first row is the default, the second the default before the MoE
    // tiles of 16 slots (experts on the small path up to 16 pairs on
    // average, 64-slot tiles above); the others put every expert GEMM on the
    // large path (moe 0) with tiles of 8, 16, 32 or 64 slots.
    const Limits limits[] = {{32, 4, 8, true, 0},  {32, 16, 8, true, 64}, {32, 0, 8, true, 8},
                             {32, 0, 8, true, 16}, {32, 0, 8, true, 32},  {32, 0, 8, true, 64}};
    for (int n : {16, 32, 64, 128}) {
      std::vector<ossgate::model::SeqId> ids;
      for (int i = 0; i < n; ++i) {
        ids.push_back(8000 + i);
        b.kv().AddSequence(ids.back()).IgnoreError();
        bench.Prefill(ids.back(), 128);
      }
      for (const Limits& l : limits) {
        b.SetGemmTuning({.dense_small_max = l.dense, .moe_small_avg = l.moe, .pass16_min_avg = l.p16,
                         .large_narrow = l.narrow, .moe_tile_slots = l.tiles});
        const double t = bench.Decode(ids, 16);
        Out(absl::StrFormat("| %d | %d | %d | %d | %s | %d | %.3f | %.0f |\n", n, l.dense, l.moe, l.p16,
                            l.narrow ? "yes" : "no", l.tiles, t * 1e3, n / t));
      }
      b.SetGemmTuning({});
      for (auto id : ids) b.kv().RemoveSequence(id);
    }
  }
  // ---- what sampling costs: the same decode steps, greedy vs sampled on
  // the GPU (gpt-oss's recommended default is temperature 1, top_p 1).
  {
    struct Mode {
      const char* name;
      ossgate::model::SamplingParams p;
    };
    const Mode modes[] = {
        {"greedy", {.temperature = 0.0f}},
        {"temperature 1.0", {.temperature = 1.0f, .seed = 11}},
        {"temperature 0.8, top_p 0.9", {.temperature = 0.8f, .top_p = 0.9f, .seed = 12}},
        {"temperature 0.7, top_k 50", {.temperature = 0.7f, .top_k = 50, .seed = 13}},
        {"temperature 1.0, min_p 0.05", {.temperature = 1.0f, .min_p = 0.05f, .seed = 14}},
        {"temperature 0.8, top_k 50, top_p 0.95", {.temperature = 0.8f, .top_k = 50, .top_p = 0.95f, .seed = 15}},
    };
    Out("\n## Sampled decode (context 128, sampling on the GPU)\n\n| sequences | sampling | ms/step | tok/s | vs greedy "
        "|\n|---:|---|---:|---:|---:|\n");
    for (int n : {1, 64, 128}) {
      std::vector<ossgate::model::SeqId> ids;
      for (int i = 0; i < n; ++i) {
        ids.push_back(7000 + i);
        b.kv().AddSequence(ids.back()).IgnoreError();
        bench.Prefill(ids.back(), 128);
      }
      double greedy = 0;
      for (const Mode& m : modes) {
        const double t = bench.Decode(ids, std::max(16, steps / 2), m.p);
        if (greedy == 0) greedy = t;
        Out(absl::StrFormat("| %d | %s | %.3f | %.0f | %+.1f%% |\n", n, m.name, t * 1e3, n / t, 100 * (t / greedy - 1)));
      }
      for (auto id : ids) b.kv().RemoveSequence(id);
    }
  }
  // ---- per-kernel breakdown (eager launches with events), batch-1 decode
  // at both contexts, with the bytes each phase must read and its GB/s.
  b.SetProfiling(true);
  for (int ctx : {128, 8192}) {
    const ossgate::model::SeqId id = ctx == 128 ? 4000 : 4002;
    b.kv().AddSequence(id).IgnoreError();
    bench.Prefill(id, ctx);
    b.ResetProfile();
    const int prof_steps = 16;
    bench.Decode({id}, prof_steps);  // + 3 warm-up steps, all profiled
    Out(absl::StrFormat("\n## Where a batch-1 decode step goes (context %d, eager launches timed with events)\n\n", ctx) +
        PhaseTable(b.Profile(), c, ctx, prof_steps + 3));
    b.kv().RemoveSequence(id);
  }
  b.ResetProfile();
  b.kv().AddSequence(4001).IgnoreError();
  bench.Prefill(4001, 512);
  Out("\n## Where a 512-token prefill goes\n\n```\n" + b.ProfileReport() + "```\n");
  b.kv().RemoveSequence(4001);
  b.ResetProfile();
  // 64 sequences of 128 prompt tokens, then 64 more.
  std::vector<ossgate::model::SeqId> ids;
  for (int batch : {64, 128}) {
    while (static_cast<int>(ids.size()) < batch) {
      ids.push_back(5000 + static_cast<int>(ids.size()));
      b.kv().AddSequence(ids.back()).IgnoreError();
      const auto p = Prompt(128, c.vocab_size, static_cast<uint32_t>(ids.back()));
      std::vector<float> lg;
      SequenceStep s{ids.back(), p, Logits::kLast};
      b.Forward({&s, 1}, &lg).IgnoreError();
    }
    b.ResetProfile();
    bench.Decode(ids, 8);
    Out(absl::StrFormat("\n## Where a %d-sequence decode step goes (eager, sum over 11 steps)\n\n```\n", batch) +
        b.ProfileReport() + "```\n");
  }
  b.SetProfiling(false);
  SamplePeak();
  Out(absl::StrFormat("\npeak device memory in use during the run (cudaMemGetInfo): %.2f GiB\n",
                      g_peak_used / 1073741824.0));
  backend.reset();

  // ---- the 24 GB configuration: one sequence of 32,768 tokens
  if (absl::GetFlag(FLAGS_big_kv)) {
    CUDA_CHECK(cudaDeviceSynchronize());
    size_t free0 = 0, total0 = 0;
    CUDA_CHECK(cudaMemGetInfo(&free0, &total0));
    gpu::CudaBackendOptions o24;
    o24.kv.max_sequences = 1;
    o24.max_context = 32768;
    o24.max_step_tokens = 2048;
    Loaded l24 = LoadStreamed(path, o24);
    auto& b24 = l24.backend;
    if (!b24) {
      Out("\n24 GB configuration failed (the error is above)\n");
    } else {
      b24->kv().AddSequence(1).IgnoreError();
      const auto p = Prompt(4096, c.vocab_size, 77);
      std::vector<float> lg;
      SequenceStep s{1, p, Logits::kLast};
      b24->Forward({&s, 1}, &lg).IgnoreError();
      size_t free1 = 0, total1 = 0;
      CUDA_CHECK(cudaMemGetInfo(&free1, &total1));
      Out(absl::StrFormat(
          "\n## 20b + 32,768-token KV cache (1 sequence, 2,048 tokens per pass)\n\n%s\n\ndevice memory in use "
          "(cudaMemGetInfo, CUDA context included): %.2f GiB; target 24 GiB: %s\n",
          b24->Vram().ToString(), (total1 - free1) / 1073741824.0,
          (total1 - free1) <= 24ull * 1073741824 ? "fits" : "DOES NOT FIT"));
    }
  }
  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    std::ofstream(out) << g_report;
  }
  return 0;
}
