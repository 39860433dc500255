// Private to the CUDA backend: CudaBackendImpl, the class behind the public
// CudaBackend (cuda_backend.h), and the types its files share. The class is
// defined in one file per concern, in the order a step meets them:
//
//   cuda_backend.cc           creation (device and model checks, KV cache and
//                             per-pass buffers), profiling and routing-trace
//                             hooks, the factories
//   cuda_backend_weights.cc   device layout and upload of the weights
//   cuda_backend_forward.cc   per-pass metadata, the layer loop, Forward
//   cuda_backend_graphs.cc    the cache of CUDA graphs that decode passes replay
//   cuda_backend_sampling.cc  ForwardSample: sampling on the GPU
//
// Only those files include this header.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "inference_worker/cuda/device_collective.h"
#include "absl/status/statusor.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/model/thread_pool.h"
#include "inference_worker/model/weights.h"
#include "kernels/cuda_check.h"
#include "kernels/ops.h"

namespace ossgate::gpu::internal {

using kernels::TiledMatrix;
using kernels::WFormat;
using model::Logits;
using model::SequenceStep;

constexpr int kStageBytes = 64 << 20;  // pinned staging buffer for the upload (x2)
// The sink logit of the families without attention sinks: exp(-1e30 - m)
// is exactly 0 for every finite m, and two empty split states still merge
// to a finite state (an infinite sink would give inf - inf).
constexpr float kNoSink = -1e30f;

inline int NextPow2(int v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

// Owns device and pinned host allocations; counts bytes per category.
class Memory {
 public:
  Memory() = default;
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;
  ~Memory() {
    for (void* p : device_) cudaFree(p);
    for (void* p : host_) cudaFreeHost(p);
  }
  // nullptr (and failed() = true) when the device is out of memory.
  template <typename T>
  T* Device(int64_t count, int64_t* category) {
    const size_t bytes = std::max<size_t>(1, static_cast<size_t>(count) * sizeof(T));
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      failed_ = true;
      return nullptr;
    }
    device_.push_back(p);
    *category += static_cast<int64_t>(bytes);
    return static_cast<T*>(p);
  }
  template <typename T>
  T* Host(int64_t count) {
    void* p = nullptr;
    CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(1, static_cast<size_t>(count) * sizeof(T))));
    host_.push_back(p);
    return static_cast<T*>(p);
  }
  bool failed() const { return failed_; }

 private:
  std::vector<void*> device_;
  std::vector<void*> host_;
  bool failed_ = false;
};

// Where a pass's int32 metadata lives in the meta buffer (offsets in ints).
struct MetaLayout {
  int64_t tokens = 0, pos = 0, tok_seq = 0;
  int64_t seq_start = 0, seq_n = 0, seq_first = 0, full_off = 0, ring_off = 0;
  int64_t prefill_items = 0, decode_items = 0, split_off = 0, out_rows = 0;
  int64_t ring_tables = 0, full_tables = 0, total = 0;
  // header: [0] valid tokens, [1] prefill items, [2] decode items
};

// One sequence's share of a pass: tokens [begin, end) of steps[step].
struct PassSeq {
  int step = 0;
  int begin = 0;
  int end = 0;
};

// Sizes a pass's launches need (grid bounds; counts live on the device).
struct PassShape {
  int rows = 0;           // B rows of the dense GEMMs (valid + padding)
  int valid = 0;          // real tokens
  int prefill_items = 0;  // bounds
  int decode_items = 0;
  int splits_full = 0;
  int splits_sliding = 0;
  int out_rows = 0;  // logits rows listed in out_rows
  int64_t meta_ints = 0;
  bool operator<(const PassShape& o) const {
    return std::tie(rows, prefill_items, decode_items, splits_full, splits_sliding, out_rows) <
           std::tie(o.rows, o.prefill_items, o.decode_items, o.splits_full, o.splits_sliding, o.out_rows);
  }
};

struct LayerDev {
  TiledMatrix qkv, o, gate_up, down;
  float* attn_norm = nullptr;
  float* qkv_bias = nullptr;
  float* o_bias = nullptr;
  float* sinks = nullptr;
  float* post_norm = nullptr;
  float* router_w = nullptr;
  float* router_b = nullptr;
  float* gate_b = nullptr;
  float* up_b = nullptr;
  float* down_b = nullptr;
  kernels::bf16_t* k_cache = nullptr;
  kernels::bf16_t* v_cache = nullptr;
};

// A graph captured for one decode shape.
struct Graph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};

// Phases of a layer (and the unembedding), as marked in the profile; the
// order of CudaBackend::PhaseNames().
enum Phase : int {
  kQkv = 0, kRope, kAttention, kKvWrite, kO, kAddNorm, kRouter, kGateUp, kDown, kCombineNorm, kUnembed,
  kAllReduce,  // a tensor-parallel rank's all-reduces (none on one GPU)
  kNumPhases
};

class CudaBackendImpl final : public CudaBackend {
 public:
  // `image` (may be null): the file's bytes are in device memory (the
  // streaming load); file's tensor data points there.
  // `rank` (may be null): a rank of a tensor-parallel layout, whose config
  // and weights replace the file's (then `image` must be null).
  static absl::StatusOr<std::unique_ptr<CudaBackendImpl>> Create(const gguf::GgufFile& file,
                                                                 const CudaBackendOptions& options,
                                                                 DeviceModelImage* image = nullptr,
                                                                 const CudaRankSetup* rank = nullptr);
  ~CudaBackendImpl() override;

  const model::ModelConfig& config() const override { return config_; }
  std::string Description() const override { return description_; }
  model::KvBlockManager& kv() override { return *kv_; }
  absl::Status Forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override;
  absl::Status ForwardSample(std::span<const SequenceStep> steps, std::span<const model::StepSampling> sampling,
                             std::vector<int32_t>* tokens) override;
  VramReport Vram() const override { return vram_; }
  void SetProfiling(bool on) override { profiling_ = on; }
  std::string ProfileReport() const override;
  std::vector<ProfileEntry> Profile() const override {
    std::vector<ProfileEntry> v;
    for (const auto& [name, e] : profile_) v.push_back({name, e.first, e.second});
    return v;
  }
  void ResetProfile() override { profile_.clear(); }
  void SetUseGraphs(bool on) override { use_graphs_ = on; }
  void SetRoutingTrace(bool on) override;
  void SetSkipPhases(uint32_t mask) override {
    if (mask == skip_) return;
    skip_ = mask;
    DropGraphs();
  }
  std::vector<int32_t> TakeRoutingTrace() override { return std::exchange(trace_, {}); }
  void SetGemmTuning(const kernels::GemmTuning& t) override {
    kernels::SetGemmTuning(t);
    DropGraphs();
  }

 private:
  // Creation (cuda_backend.cc).
  CudaBackendImpl(model::ModelConfig config, const CudaBackendOptions& options, int max_context);
  // The per-pass buffers (activations, workspace, metadata), allocated
  // before the weights so that the KV plan sees them in use.
  absl::Status AllocateBuffers();
  // The KV pool's blocks: --kv_blocks when given (checked against the free
  // memory), else what gpu_memory_fraction leaves (memory_plan.h) after what
  // is in use now and `to_allocate` more bytes. ResourceExhausted, naming the
  // sizes, when not even one sequence of max_context tokens fits.
  absl::StatusOr<int64_t> PlanKvBlocks(int64_t to_allocate) const;
  // After the upload: plans again from the measured memory, re-creates kv_
  // with that pool and allocates the K/V arrays and attention split states.
  absl::Status AllocateKv();

  // Weights (cuda_backend_weights.cc).
  // Gives every tensor its device form. With `image`, the weights' bytes
  // are in device memory and are repacked there; otherwise on host threads
  // through the pinned staging buffers of upload_.
  absl::Status Upload(const gguf::GgufFile& file, const model::Weights& w, DeviceModelImage* image);
  // The scales of every matrix checked for non-finite values on the device
  // (image loads; host files are checked by BindWeights).
  absl::Status CheckFiniteOnDevice(const model::Weights& w);
  absl::StatusOr<TiledMatrix> UploadMatrix(WFormat fmt, int64_t rows, int64_t cols, int64_t n_mats, bool gate_up,
                                           const kernels::RepackSource& src, bool on_device, int64_t* category);
  // nullptr for an empty vector (an absent bias).
  float* UploadFloats(const std::vector<float>& v, int64_t* category);
  // q/k/v fused into d->qkv and o into d->o, with the format checks.
  absl::Status UploadAttention(int l, const model::Matrix& wq, const model::Matrix& wk, const model::Matrix& wv,
                               const model::Matrix& wo, bool on_device, LayerDev* d);
  // gate/up interleaved into d->gate_up and down into d->down: n_mats
  // experts (gpt-oss) or one matrix (the dense families).
  absl::Status UploadGatedFfn(int l, const model::Matrix& gate, const model::Matrix& up, const model::Matrix& down,
                              int64_t n_mats, bool on_device, LayerDev* d);

  // The forward pass (cuda_backend_forward.cc).
  absl::Status Validate(std::span<const SequenceStep> steps);
  std::vector<std::vector<PassSeq>> PlanPasses(std::span<const SequenceStep> steps) const;
  PassShape FillMeta(std::span<const SequenceStep> steps, const std::vector<PassSeq>& pass, bool pad_for_graph);
  void UploadMeta(const PassShape& shape);
  void EnqueueLayers(const PassShape& shape);
  // The feed-forward half of a dense (qwen2, phi3) layer over T rows.
  void EnqueueDenseFfn(int l, int T);
  // A rank's partial block output summed over the group (nothing without one).
  void AllReduce(float* data, int64_t n);
  void EnqueueLogits(int first_out_row, int n_rows);
  void RunPass(const PassShape& shape, bool graph);

  // CUDA graphs (cuda_backend_graphs.cc).
  bool IsGraphStep(std::span<const SequenceStep> steps) const;
  // Pads a decode pass's metadata (meta_host_) and shape to its graph bucket.
  void PadForGraph(PassShape* shape);
  // Launches the graph of `shape`, captured from EnqueueLayers and
  // EnqueueLogits on first use.
  void LaunchGraph(const PassShape& shape);
  void DropGraphs();

  // Profiling, routing trace and skipped phases (cuda_backend.cc).
  void Mark(const char* name);
  void CollectProfile();
  // After an eager pass has completed: profile marks and routing trace.
  void CollectEager(const PassShape& shape);
  // Whether phase `name` (one of PhaseNames()) runs (SetSkipPhases).
  bool Runs(int phase) const { return (skip_ >> phase & 1u) == 0; }

  // The model, the options and the host side of the KV cache.
  const model::ModelConfig config_;
  const model::RopeTables rope_;
  const int max_context_;
  const CudaBackendOptions options_;
  // Created with max_sequences x max_context worth of blocks, re-created by
  // AllocateKv with the pool actually allocated (the ring part is the same).
  std::optional<model::KvBlockManager> kv_;
  std::string description_;
  bool use_graphs_ = true;
  DeviceAllReduce* all_reduce_ = nullptr;  // a rank of a tensor-parallel layout
  // gpt-oss: the experts this backend computes, [expert_begin_, + n_local_experts_)
  // (all of them unless it is an expert-parallel rank).
  int expert_begin_ = 0;
  int n_local_experts_ = 0;
  bool profiling_ = false;

  // Host state of the weight upload (staging buffers, repacking threads).
  struct UploadState {
    explicit UploadState(int threads) : pool(threads) {
      for (int i = 0; i < 2; ++i) {
        CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&staging[i]), kStageBytes));
        CUDA_CHECK(cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming));
      }
    }
    ~UploadState() {
      for (int i = 0; i < 2; ++i) {
        cudaEventSynchronize(done[i]);
        cudaEventDestroy(done[i]);
        cudaFreeHost(staging[i]);
      }
    }
    uint8_t* staging[2] = {nullptr, nullptr};
    cudaEvent_t done[2] = {nullptr, nullptr};
    int which = 0;
    model::ThreadPool pool;
  };
  std::unique_ptr<UploadState> upload_;

  // Every device and pinned allocation, counted by component in vram_.
  Memory mem_;
  VramReport vram_;
  cudaStream_t stream_ = nullptr;

  // Weights.
  std::vector<LayerDev> layers_;
  const uint8_t* embd_ = nullptr;
  int embd_type_ = 0;
  int64_t embd_row_bytes_ = 0;
  TiledMatrix output_;
  float* output_norm_ = nullptr;
  double* inv_freq_ = nullptr;
  float* rope_table_ = nullptr;  // [max_context][head_dim]: cos, sin

  // Capacities.
  int max_tokens_ = 0;     // rows per pass
  int max_seqs_ = 0;
  int max_blocks_ = 0;     // full-table entries per sequence
  int logit_rows_ = 0;     // logits buffer rows
  int max_prefill_items_ = 0;
  int split_slots_ = 0;
  int tokens_per_item_ = 0;
  MetaLayout meta_;
  int32_t* meta_dev_ = nullptr;
  int32_t* meta_host_ = nullptr;

  // Activations.
  float* x_ = nullptr;
  kernels::half_t* h16_ = nullptr;
  float* h32_ = nullptr;
  float* qkv_ = nullptr;
  kernels::half_t* q16_ = nullptr;
  kernels::bf16_t* k_new_ = nullptr;
  kernels::bf16_t* v_new_ = nullptr;
  kernels::half_t* attn_ = nullptr;
  float* proj_ = nullptr;
  int32_t* ids_ = nullptr;
  float* wts_ = nullptr;
  int32_t* moe_offsets_ = nullptr;
  int32_t* moe_active_ = nullptr;
  int32_t* moe_counts_ = nullptr;  // [0] n_active, [1] n_tiles
  float* router_logits_ = nullptr;  // [max_tokens][E]
  uint32_t* router_done_ = nullptr;  // the router's completion counters (kept zero between launches)
  int32_t* moe_tiles_ = nullptr;
  int32_t* slot_token_ = nullptr;
  int32_t* pair_slot_ = nullptr;
  kernels::half_t* act_ = nullptr;
  float* y_ = nullptr;
  float* logits_dev_ = nullptr;
  float* logits_host_ = nullptr;
  float* part_ = nullptr;
  // Sampling (ForwardSample): each row's parameters and the chosen ids.
  kernels::SampleRow* sample_rows_dev_ = nullptr;
  kernels::SampleRow* sample_rows_host_ = nullptr;
  int32_t* sampled_dev_ = nullptr;
  uint8_t* sample_ws_ = nullptr;         // kernels::SampleWorkspaceBytes(logit_rows_), zeroed
  uint32_t* unsampled_dev_ = nullptr;    // bit per id of config_.unsampled_tokens (null: none)
  int32_t* sampled_host_ = nullptr;

  // Decode graphs by pass shape; a change of skip_ drops them.
  std::map<PassShape, Graph> graphs_;
  uint32_t skip_ = 0;

  // Routing trace (test hook): ids of each layer of the current pass.
  bool tracing_ = false;
  int32_t* trace_host_ = nullptr;  // pinned [layers][max_tokens][k]
  std::vector<int32_t> trace_;

  // Profiling (eager passes only).
  std::vector<std::pair<const char*, cudaEvent_t>> marks_;
  std::vector<cudaEvent_t> free_events_;
  std::map<std::string, std::pair<double, int64_t>> profile_;  // name -> (ms, count)
};

}  // namespace ossgate::gpu::internal
