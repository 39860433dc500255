// Device-memory arithmetic of the CUDA backend, in plain C++ so that CPU
// tests check it: the bytes the weights will take on the device (exactly as
// CudaBackendImpl::Upload allocates them), the bytes of the KV cache per
// block and per sequence, and the size of the KV pool that a fraction of the
// device memory leaves (--gpu_memory_fraction, like vLLM's
// gpu_memory_utilization). The backend measures the device (cudaMemGetInfo)
// and calls these; nothing here touches CUDA.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/model/weights.h"
#include "kernels/layout.h"

namespace ossgate::gpu {

// The weight categories of VramReport (cuda_backend.h), predicted.
struct WeightBytes {
  int64_t attention = 0;    // fused q/k/v, o, their biases
  int64_t experts = 0;      // fused gate/up, down, their biases
  int64_t ffn = 0;          // the dense families' fused gate/up and down
  int64_t router = 0;       // fp32 router matrix and bias
  int64_t embedding = 0;    // token_embd in its raw ggml rows
  int64_t unembedding = 0;  // output, tiled
  int64_t small = 0;        // norms, sinks, inv_freq, RoPE table of max_context x head_dim floats
  int64_t total() const { return attention + experts + ffn + router + embedding + unembedding + small; }
};

// The device format of one matrix fused from `parts` of layer `layer` (q/k/v,
// or gate/up; `names` says which, e.g. "attn_q, attn_k and attn_v"):
// kernels::FusedFormatForTypes of their types, or an InvalidArgument error
// naming the layer, the tensors and their types. Upload and PlanWeightBytes
// both decide with it, so a refused mix reads the same from either.
absl::StatusOr<kernels::WFormat> FusedFormat(int layer, const std::string& names,
                                             std::initializer_list<const model::Matrix*> parts);

// What Upload will allocate for `w` with a RoPE table of `max_context`
// positions (the backend's context, already clamped to the model's). Errors
// for a matrix type the kernels have no layout for, as Upload would give.
absl::StatusOr<WeightBytes> PlanWeightBytes(const model::ModelConfig& c, const model::Weights& w, int max_context);

// The KV cache's device bytes: full-attention layers draw blocks from the
// shared pool; sliding layers have a ring of `ring_blocks` per sequence,
// allocated for max_sequences up front. K and V are 2-byte (bf16 or fp16).
// per_pool_block also carries the attention split states that
// AllocateKv sizes from the pool (n_heads x (head_dim + 2) floats per
// `split_keys` pool tokens), rounded up, so a pool planned from it fits.
struct KvBytes {
  int block_size = 0;
  int64_t per_token = 0;       // K and V of one token in every full layer
  int64_t per_pool_block = 0;  // block_size tokens of that, plus the block's split-state share
  int64_t per_sequence = 0;    // the ring blocks of one sequence in every sliding layer
};
KvBytes PlanKvBytes(const model::ModelConfig& c, int block_size, int ring_blocks, int split_keys);

// The blocks a sequence of `tokens` tokens needs in the pool.
inline int64_t BlocksFor(int64_t tokens, int block_size) { return (tokens + block_size - 1) / block_size; }

struct KvPoolRequest {
  int64_t device_total = 0;  // cudaMemGetInfo total
  int64_t in_use = 0;        // device bytes in use now (total - free), all processes
  int64_t to_allocate = 0;   // bytes still to come before the pool (the weights, when planning before the upload)
  double fraction = 0.9;     // share of device_total this worker may fill
  KvBytes kv;
  int max_sequences = 0;
  int max_context = 0;       // tokens per sequence (clamped to the model's)
};

struct KvPoolPlan {
  int64_t blocks = 0;            // pool blocks of kv.block_size tokens
  int64_t max_tokens = 0;        // blocks * block_size: tokens all sequences together can hold
  int64_t kv_bytes = 0;          // pool + rings
  int64_t budget = 0;            // fraction * total - in_use - to_allocate
  bool capped = false;           // the pool holds every sequence at max_context; more would go unused
};

// The pool from what the fraction leaves: whole blocks, at most
// max_sequences x max_context worth (more cannot be used), at least one
// sequence of max_context tokens; ResourceExhausted naming the sizes and
// what to do when even that does not fit.
absl::StatusOr<KvPoolPlan> PlanKvPool(const KvPoolRequest& r);

// --gpu_memory_fraction must be in (0, 1].
absl::Status ValidateGpuMemoryFraction(double fraction);

std::string FormatGiB(int64_t bytes);

}  // namespace ossgate::gpu
