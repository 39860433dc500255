// The CPU reference backend: the exact forward pass of every family (gpt-oss:
// spec §5; qwen2, phi3: HF transformers' Qwen2/Phi3ForCausalLM) in float32
// over weights used in place (rows dequantized on the fly), with a paged KV
// cache in float32. Multi-threaded over rows, tokens and heads.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/backend.h"
#include "inference_worker/model/parallel.h"
#include "inference_worker/model/thread_pool.h"
#include "inference_worker/model/weights.h"

namespace ossgate::model {

struct CpuBackendOptions {
  int n_threads = 0;  // 0 = all hardware threads
  // Capacity of the KV cache. num_full_blocks = 0 picks enough blocks for
  // max_sequences sequences of max_context tokens each.
  KvCacheOptions kv{.block_size = 16, .num_full_blocks = 0, .max_sequences = 8};
  int max_context = 4096;  // clamped to the model's context length
};

// InvalidArgument unless block_size, max_sequences and max_context are positive.
absl::Status CheckCpuBackendOptions(const CpuBackendOptions& options);

// The KV block manager a backend with these options uses (its capacity as
// documented on CpuBackendOptions::kv).
std::unique_ptr<KvBlockManager> MakeCpuKvManager(const CpuBackendOptions& options, int max_context, int window);

class CpuBackend final : public Backend {
 public:
  // Binds the weights of `file` (which, with the bytes it points into, must
  // outlive the backend) and allocates the KV cache.
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(const gguf::GgufFile& file,
                                                            const CpuBackendOptions& options);

  const ModelConfig& config() const override { return config_; }
  std::string Description() const override;
  KvBlockManager& kv() override { return *kv_; }
  absl::Status Forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override;

  // Diagnostics (the GPU accuracy tests): called for every token of every
  // MoE layer (gpt-oss) after the router, with the token's router logits and the
  // chosen expert ids in rank order, which the hook may replace by other
  // distinct experts (e.g. another backend's choice); the routing weights are
  // then the softmax of the chosen experts' logits (cpu::RouterSoftmax), as
  // for the router's own choice. Replacing nothing changes nothing.
  using RouterHook =
      std::function<void(int layer, SeqId seq, int pos, std::span<const float> logits, std::span<int32_t> ids)>;
  void SetRouterHook(RouterHook hook) { router_hook_ = std::move(hook); }

 private:
  friend class ShardedCpuBackend;
  // A rank of a parallel layout (ShardedCpuBackend): `config` and `weights`
  // are the rank's (ShardConfig, SliceWeights), `kv` the group's shared block
  // manager, `comm` sums the blocks' partial outputs. A whole model: null kv
  // (the backend makes its own), null comm, expert_begin 0.
  CpuBackend(ModelConfig config, ShardWeights weights, const CpuBackendOptions& options, int max_context,
             KvBlockManager* kv, int expert_begin, Communicator* comm);

  // Forward after ValidateAndReserve and before the commit: the forward pass
  // itself (every rank of a group runs it on the same steps); null logits:
  // no final norm and unembedding (a rank other than 0).
  void Run(std::span<const SequenceStep> steps, std::vector<float>* logits);
  // Sums a block's partial output over the group (nothing for a whole model).
  void AllReduce(std::vector<float>& v, int64_t n);

  struct StepState;         // one Forward step: its tokens and activations (cpu_backend.cc)
  struct AttentionWeights;  // one layer's attention tensors, whatever the family

  // The blocks of a layer; each adds its output to the residual stream s.x.
  // Attention: norm, q/k/v (+ biases where the family has them), RoPE,
  // causal attention over the cache (the window on sliding layers, sink
  // logits for gpt-oss), output projection; this step's K/V are cached.
  void AttentionBlock(int layer, const AttentionWeights& w, StepState& s);
  // gpt-oss: norm, router top-k, clamped-SwiGLU experts, weighted sum.
  void MoeBlock(int layer, const LayerWeights& L, StepState& s);
  // qwen2, phi3: norm, down(silu(gate(h)) * up(h)).
  void DenseFfnBlock(const DenseLayerWeights& L, StepState& s);

  // K or V storage of layer `layer` for the block of `slot`.
  float* KvRow(bool value, int layer, KvSlot slot);

  const ModelConfig config_;  // of a rank: its heads and intermediate slice (ShardConfig)
  const ShardWeights weights_storage_;
  const Weights& weights_ = weights_storage_.weights;
  const RopeTables rope_;
  const int max_context_;
  ThreadPool pool_;
  std::unique_ptr<KvBlockManager> own_kv_;
  KvBlockManager* const kv_;
  const int expert_begin_;  // experts [expert_begin_, + weights_.layers[l].gate_exps.n_mats) are computed here
  Communicator* const comm_;
  // Per layer: index among the layers of its kind (full or sliding).
  std::vector<int> kind_index_;
  int n_full_layers_ = 0;
  int n_sliding_layers_ = 0;
  // (kind layers, blocks, block_size, kv_dim) for K and V of each kind.
  std::vector<float> k_full_, v_full_, k_ring_, v_ring_;
  RouterHook router_hook_;
};

}  // namespace ossgate::model
