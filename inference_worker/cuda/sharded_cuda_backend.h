// Several GPUs behind one model::Backend (docs/parallel.md): one CudaBackend
// rank per GPU, each driven by its own host thread, computing its attention
// heads and its slice of every expert's (or the dense FFN's) intermediate
// dimension, the partial outputs summed by the group's all-reduce (NCCL, or
// host-staged for tests that put several ranks on one GPU). The scheduler
// sees one KV block manager, rank 0's; the others mirror it before each step
// and make the same reservations.
//
// With expert groups (expert_parallel > 1) a rank holds only its experts: the
// router, replicated, numbers the rank's active experts and tiles from its
// first one, and the rank zeroes the pair rows of the others' experts before
// the all-reduce. Not yet: the streaming load into several devices (the file
// is bound in host memory and each rank uploads its slices). Run so far only
// with ranks sharing one GPU (gpu_sharded_test), not across several GPUs.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/cuda/device_collective.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/parallel.h"

namespace ossgate::gpu {

enum class RankCollective {
  kNccl,        // one NCCL communicator per GPU (devices distinct); CUDA graphs stay on
  kHostStaged,  // through host memory (tests; devices may repeat); graphs off
};

class ShardedCudaBackend final : public model::Backend {
 public:
  // Rank r on devices[r] (layout.world entries). options.device is ignored;
  // options.kv.num_full_blocks = 0 sizes rank 0's pool from its free memory
  // and gives the others the same size (refused if a rank cannot hold it).
  // InvalidArgument for a layout the model cannot take (PlanShard,
  // SliceWeights); the errors of CreateCudaBackend; Unavailable without NCCL.
  static absl::StatusOr<std::unique_ptr<ShardedCudaBackend>> Create(const gguf::GgufFile& file,
                                                                     const CudaBackendOptions& options,
                                                                     const model::ParallelLayout& layout,
                                                                     std::span<const int> devices,
                                                                     RankCollective collective);
  ~ShardedCudaBackend() override;

  const model::ModelConfig& config() const override { return config_; }
  std::string Description() const override { return description_; }
  model::KvBlockManager& kv() override { return ranks_[0]->kv(); }
  absl::Status Forward(std::span<const model::SequenceStep> steps, std::vector<float>* logits) override;
  absl::Status ForwardSample(std::span<const model::SequenceStep> steps,
                             std::span<const model::StepSampling> sampling, std::vector<int32_t>* tokens) override;

  CudaBackend& rank(int r) { return *ranks_[r]; }
  int world() const { return static_cast<int>(ranks_.size()); }
  // Benchmark hook: CudaBackend::SetSkipPhases on every rank (on its thread);
  // skipping "all_reduce" times a step without communication (results then
  // meaningless).
  void SetSkipPhases(uint32_t mask);

 private:
  class RankThread;
  ShardedCudaBackend() = default;
  // Mirrors rank 0's KV manager into the others, runs fn(r) on every rank's
  // thread (rank 0's too), and returns rank 0's status after checking that
  // every rank returned the same code.
  absl::Status OnEveryRank(const std::function<absl::Status(int)>& fn);
  // One all-reduce of known values on every rank before any step (and any
  // graph capture): the group works and sums right, or the error says not.
  absl::Status CheckCollective();

  model::ModelConfig config_;
  std::string description_;
  std::vector<std::unique_ptr<DeviceAllReduce>> all_reduce_;
  std::unique_ptr<model::InProcessGroup> host_group_;
  std::vector<std::unique_ptr<CudaBackend>> ranks_;
  std::vector<std::unique_ptr<RankThread>> threads_;
};

}  // namespace ossgate::gpu
