// Tensor and expert parallelism (issue 16): how one model's work is split
// over the ranks (GPUs) of one host, each rank's part of the weights, and the
// collective that joins the parts.
//
// The layout, for `world` ranks:
// - Attention is tensor-parallel over every rank: the query heads and the KV
//   heads they read are split evenly (rank r owns KV heads [r*n/W, (r+1)*n/W)
//   and their query groups), so each rank keeps the KV cache of its own heads
//   and its slice of the output projection's columns gives a partial sum.
// - MoE layers (gpt-oss) are expert-parallel over `expert_parallel` groups of
//   world/expert_parallel ranks each: group g owns experts
//   [g*E/groups, (g+1)*E/groups); inside a group each expert's intermediate
//   dimension is split (gate/up rows, down columns) over the group's ranks.
//   expert_parallel = world is pure expert parallelism, 1 pure tensor
//   parallelism of the experts. Dense FFNs (qwen2, phi3) split their
//   intermediate dimension over every rank.
// - Each block's partial outputs are summed by one all-reduce (two per
//   layer), after which every rank holds the same residual stream; the
//   embedding, the norms, the router and the unembedding are replicated, so
//   every rank routes every token identically (its inputs are the same bits).
// A bias of a split projection (o_proj's, an expert's down bias) is added by
// one rank only: the first of those that share the output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/model/weights.h"

namespace ossgate::model {

struct ParallelLayout {
  int world = 1;            // ranks; attention heads and dense FFNs are split over all of them
  int expert_parallel = 0;  // MoE expert groups (divides world); 0 = world (pure expert parallelism)

  int ExpertGroups() const { return expert_parallel > 0 ? expert_parallel : world; }
  std::string ToString() const;
};

// What rank `rank` of a layout owns.
struct Shard {
  int rank = 0;
  int world = 1;
  int q_head_begin = 0, n_q_heads = 0;    // query heads [begin, begin + n)
  int kv_head_begin = 0, n_kv_heads = 0;  // KV heads [begin, begin + n)
  int expert_begin = 0, n_experts = 0;    // gpt-oss: experts computed here (0 for dense families)
  int ff_begin = 0, ff_size = 0;          // intermediate rows [begin, begin + size) of each FFN computed here
  bool attn_bias = true;                  // adds the output projection's bias (rank 0)
  bool ffn_bias = true;                   // adds the down projection's bias (the first ff slice)
};

// The shard of `rank`. `ff_unit` is the granularity of the intermediate
// split: the block size (elements) of the down projection's type, whose
// columns are split. InvalidArgument, naming the count that does not divide
// and the choices that would, for a layout the model cannot take: world < 1,
// KV heads not divisible by world, expert_parallel not dividing world or the
// experts, or fewer intermediate blocks than ranks sharing them.
absl::StatusOr<Shard> PlanShard(const ModelConfig& config, const ParallelLayout& layout, int rank, int64_t ff_unit);

// The model config a rank computes with: its query and KV heads, its part of
// the intermediate dimension; the expert count stays the model's (the router
// is replicated).
ModelConfig ShardConfig(const ModelConfig& config, const Shard& shard);

// A rank's weights: row ranges are views into the full model's bytes, column
// ranges (the output and down projections) are copied into `storage`, whose
// buffers the views point into (moving a ShardWeights keeps them valid).
struct ShardWeights {
  Weights weights;
  std::vector<std::vector<uint8_t>> storage;
};
// InvalidArgument if a column range does not fall on the blocks of its
// matrix's type (a head of head_dim columns narrower than a k-quant block).
absl::StatusOr<ShardWeights> SliceWeights(const Weights& full, const ModelConfig& config, const Shard& shard);

// The block size of the matrix type whose columns the intermediate split
// cuts (gpt-oss: the experts' down projection; dense: ffn_down).
int64_t FfSplitUnit(const Weights& full);

// The collective of a group of ranks. AllReduceSum leaves in every rank's
// `data` the sum of all ranks' `data` (same length on every rank), the same
// bits on every rank. Every rank must make the same calls in the same order.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void AllReduceSum(std::span<float> data) = 0;
};

// Ranks that are threads of one process (the CPU backend's parallel mode and
// tests): sums in rank order, ((r0 + r1) + r2) + ..., each rank reducing
// 1/world of the elements.
class InProcessGroup {
 public:
  explicit InProcessGroup(int world);
  ~InProcessGroup();
  InProcessGroup(const InProcessGroup&) = delete;
  InProcessGroup& operator=(const InProcessGroup&) = delete;

  int world() const;
  Communicator& rank(int r);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ossgate::model
