// The CUDA backend: the gpt-oss forward pass on one NVIDIA GPU behind the
// same model::Backend interface as the CPU reference, so the worker, its
// scheduler and the end-to-end tests run unchanged on either.
//
// Weights stay in their file formats in device memory (MXFP4 experts, Q8_0 /
// BF16 / F16 / F32 dense), repacked into the tiled layout of kernels/layout.h.
// The KV cache is bf16 in the block layout of the KvBlockManager (full layers
// index a growing block table, sliding layers a ring). Decode steps replay
// CUDA graphs captured per batch-size bucket. See docs/cuda.md.
//
// This header is always compiled; without CUDA the factory returns
// Unimplemented.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/backend.h"
#include "inference_worker/model/model_file.h"
#include "inference_worker/model/sampler.h"
#include "inference_worker/model/parallel.h"
#include "inference_worker/model/weights.h"
#include "kernels/gemm_tuning.h"

namespace ossgate::gpu {

struct CudaBackendOptions {
  int device = 0;
  // Capacity of the KV cache. num_full_blocks > 0 is used as given (it must
  // fit in the free memory); 0 sizes the pool from gpu_memory_fraction.
  model::KvCacheOptions kv{.block_size = 16, .num_full_blocks = 0, .max_sequences = 8};
  // With num_full_blocks = 0: the share of the device's total memory the
  // backend may fill (like vLLM's gpu_memory_utilization). The KV pool gets
  // fraction x total - (memory in use after the weights and the per-pass
  // buffers, other processes included), in whole blocks, at most
  // max_sequences x max_context worth (more could not be used); a model that
  // leaves less than one sequence of max_context tokens is refused before
  // its upload. In (0, 1].
  double gpu_memory_fraction = 0.9;
  int max_context = 4096;  // clamped to the model's context length
  // Tokens per internal forward pass (sizes the activation buffers). A step
  // with more tokens runs as several passes; results are identical.
  int max_step_tokens = 2048;
  bool use_graphs = true;  // decode steps as CUDA graphs
  int upload_threads = 0;  // host threads repacking weights (0 = all cores)
  // Precision experiment, not for serving: keep K/V in fp16 instead of bf16
  // (same bytes; 11 instead of 8 significant bits, but a range that real
  // models' keys may exceed). Attention reads K/V as fp16 either way, so this
  // is exactly what an fp32 cache would give. Used by the accuracy tests to
  // measure how much of the GPU-vs-CPU difference the bf16 cache causes.
  bool kv_fp16 = false;
};

// Device memory by component, in bytes.
struct VramReport {
  int64_t weights_attention = 0;    // q/k/v/o matrices and their biases
  int64_t weights_experts = 0;      // gate/up/down experts and their biases
  int64_t weights_ffn = 0;          // the dense families' gate/up/down
  int64_t weights_router = 0;       // router matrices and biases
  int64_t weights_embedding = 0;    // token_embd
  int64_t weights_unembedding = 0;  // output
  int64_t weights_small = 0;        // norms, sinks, RoPE table
  int64_t kv_cache = 0;
  int64_t activations = 0;  // per-pass buffers (sized by max_step_tokens) and logits
  int64_t workspace = 0;    // step metadata, attention split states, routing
  int64_t weights() const {
    return weights_attention + weights_experts + weights_ffn + weights_router + weights_embedding +
           weights_unembedding + weights_small;
  }
  int64_t total() const { return weights() + kv_cache + activations + workspace; }
  std::string ToString() const;
};

// The extra surface of the CUDA backend (benchmarks, tests).
//
// Its model::Backend::ForwardSample samples on the GPU (greedy, temperature,
// top-k, top-p, min-p; the same algorithm and Philox draws as
// model::Sampler) and copies back only the token ids of the Logits::kLast
// steps; kNone steps (prompt chunks) may share the batch, and decode batches
// still run as CUDA graphs. top_k > 1024 falls back to the host sampler over
// copied logits.
class CudaBackend : public model::Backend {
 public:
  virtual VramReport Vram() const = 0;
  // Per-kernel timing of eager steps (graphs are off while profiling).
  virtual void SetProfiling(bool on) = 0;
  virtual std::string ProfileReport() const = 0;
  struct ProfileEntry {
    std::string name;
    double ms = 0;      // summed over calls
    int64_t calls = 0;  // launches (one per layer for per-layer phases)
  };
  virtual std::vector<ProfileEntry> Profile() const = 0;
  virtual void ResetProfile() = 0;
  // Test hook: run decode steps eagerly even when graphs are enabled.
  virtual void SetUseGraphs(bool on) = 0;
  // Test hook: while on, every pass runs eagerly and records the expert ids
  // its router chose; TakeRoutingTrace returns them ([layer][token][k] per
  // pass, passes in order) and clears the record.
  virtual void SetRoutingTrace(bool on) = 0;
  virtual std::vector<int32_t> TakeRoutingTrace() = 0;
  // Benchmark hook (results become meaningless): leave out the launches of
  // the phases whose bit is set (bit i = PhaseNames()[i]), so that timing
  // graph replays with and without a phase gives its cost inside a graph.
  virtual void SetSkipPhases(uint32_t mask) = 0;
  // Benchmark hook: kernels::SetGemmTuning, and the captured graphs dropped
  // so the next steps use the new choice.
  virtual void SetGemmTuning(const kernels::GemmTuning& t) = 0;
  static const std::vector<std::string>& PhaseNames();
};

// Binds and uploads the weights of `file` (which need not outlive the
// backend: everything it needs is copied to the device) and
// allocates the KV cache (see gpu_memory_fraction). Errors: Unimplemented without CUDA or without a
// GPU of compute capability >= 8.0; InvalidArgument for unsupported tensor
// types; ResourceExhausted when the device memory does not suffice.
absl::StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackendImpl(const gguf::GgufFile& file,
                                                                   const CudaBackendOptions& options);
absl::StatusOr<std::unique_ptr<model::Backend>> CreateCudaBackend(const gguf::GgufFile& file,
                                                                  const CudaBackendOptions& options);

// A rank of a tensor-parallel layout (ShardedCudaBackend, docs/parallel.md):
// its config and weights (model::ShardConfig and SliceWeights over the host
// bytes of `file`; read during the call only) and the all-reduce that sums
// its blocks' partial outputs (outlives the backend; not capturable: graphs
// off). The backend computes its heads and intermediate slice on
// options.device.
class DeviceAllReduce;
struct CudaRankSetup {
  const model::ModelConfig* config = nullptr;
  const model::Weights* weights = nullptr;
  DeviceAllReduce* all_reduce = nullptr;
  // gpt-oss: the first of the rank's experts (model::Shard::expert_begin);
  // how many there are is the weights' expert matrix count.
  int expert_begin = 0;
};
// The model split over GPUs `devices` by `layout` (ShardedCudaBackend, NCCL),
// behind one model::Backend. Unimplemented without CUDA; InvalidArgument for
// a layout the model cannot take; Unavailable without NCCL.
absl::StatusOr<std::unique_ptr<model::Backend>> CreateShardedCudaBackend(const gguf::GgufFile& file,
                                                                        const CudaBackendOptions& options,
                                                                        const model::ParallelLayout& layout,
                                                                        const std::vector<int>& devices);

absl::StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackendRank(const gguf::GgufFile& file,
                                                                   const CudaBackendOptions& options,
                                                                   const CudaRankSetup& rank);

// The streaming load's destination: model::StreamModelFile copies each chunk
// of the file, as it is read and hashed, through a few pinned buffers into
// one device allocation of the file's size, so the file never sits in host
// memory. The first bytes (kHeaderKeepBytes) are also kept on the host for
// the header. Nothing is parsed until ParseHeader, which the caller calls
// only after the provenance check of the digest the stream returned.
class DeviceModelImage : public model::ModelSink {
 public:
  static constexpr uint64_t kHeaderKeepBytes = uint64_t{32} << 20;
  // The GGUF header, from the bytes kept on the host (and, for a longer
  // header, more copied back from the device), with every TensorInfo::data
  // pointing into device memory. After a successful Finish only.
  virtual absl::StatusOr<gguf::GgufFile> ParseHeader() = 0;
  virtual uint64_t size() const = 0;
  // Copies bytes [offset, offset + n) of the file to `out` (host memory).
  virtual absl::Status CopyToHost(uint64_t offset, uint64_t n, uint8_t* out) const = 0;
  // The backend has repacked tensor `t` (file offset data_offset +
  // t.offset) and its kernels reading it have finished: the device memory
  // of the file that only consumed tensors used is freed as it comes free
  // (where the driver supports it; ReleasesProgressively).
  virtual void Consumed(const gguf::TensorInfo& t, uint64_t data_offset) = 0;
  virtual bool ReleasesProgressively() const = 0;
  // Device bytes the file still holds.
  virtual uint64_t ResidentBytes() const = 0;
  // Frees the device copy of the file (the backend calls it once the
  // weights are repacked); CopyToHost fails after it.
  virtual void ReleaseDeviceMemory() = 0;
};
// Unimplemented without CUDA or without a visible device.
absl::StatusOr<std::unique_ptr<DeviceModelImage>> CreateDeviceModelImage(int device);

// The backend of a verified image (`file` = image->ParseHeader()): the
// weights are bound to the device bytes, their scales checked for
// non-finite values on the device, and repacked on the device into the
// kernels' layout; the image's device memory is released before the KV
// cache is allocated. On an error before that the image keeps its bytes
// (the caller may copy them back for another backend). Same errors as
// CreateCudaBackendImpl.
absl::StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackendFromImage(DeviceModelImage& image,
                                                                        const gguf::GgufFile& file,
                                                                        const CudaBackendOptions& options);

}  // namespace ossgate::gpu
