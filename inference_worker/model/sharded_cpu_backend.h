// The CPU backend split over ranks by a parallel layout (model/parallel.h):
// one CpuBackend per rank, each on its own thread with its share of the
// threads, computing its heads, experts and intermediate slices, the blocks'
// partial outputs summed by an in-process all-reduce. It checks on the CPU,
// against the whole-model backend, exactly the partition that the GPU ranks
// run (the tensor- and expert-parallel plan of issue 16); its speed is not
// the point (one host's cores, split).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/backend.h"
#include "inference_worker/model/cpu_backend.h"
#include "inference_worker/model/parallel.h"

namespace ossgate::model {

class ShardedCpuBackend final : public Backend {
 public:
  // Binds the weights of `file` (which, with its bytes, must outlive the
  // backend), plans and slices every rank's part and allocates each rank's
  // KV cache (its own heads). options.n_threads is the total, split evenly.
  // InvalidArgument for a layout the model cannot take (PlanShard,
  // SliceWeights), before anything is allocated.
  static absl::StatusOr<std::unique_ptr<ShardedCpuBackend>> Create(const gguf::GgufFile& file,
                                                                    const CpuBackendOptions& options,
                                                                    const ParallelLayout& layout);
  ~ShardedCpuBackend() override;

  const ModelConfig& config() const override { return config_; }
  std::string Description() const override;
  // One block manager for every rank: the ranks' caches hold their own heads
  // at the same slots.
  KvBlockManager& kv() override { return *kv_; }
  // Every rank runs the step on its thread; rank 0 alone computes the logits
  // (the others would compute the same: the unembedding is replicated).
  absl::Status Forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override;

  const std::vector<Shard>& shards() const { return shards_; }

 private:
  ShardedCpuBackend(ModelConfig config, ParallelLayout layout, int max_context, std::unique_ptr<KvBlockManager> kv);

  const ModelConfig config_;
  const ParallelLayout layout_;
  const int max_context_;
  std::unique_ptr<KvBlockManager> kv_;
  InProcessGroup group_;
  std::vector<Shard> shards_;
  std::vector<std::unique_ptr<CpuBackend>> ranks_;
  int threads_ = 0;
};

}  // namespace ossgate::model
