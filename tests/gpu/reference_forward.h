// An instrumented copy of the CPU reference forward pass (the operations and
// their order in model::CpuBackend::Forward, for one sequence whose prompt is
// one step), used to explain GPU-vs-CPU differences:
//   - it records each layer's router logits and top-k expert ids;
//   - it can run with the expert choices forced to another backend's (the
//     GPU's), keeping everything else fp32, so the remaining difference is
//     the GPU's rounding alone, without the cascade of a swapped expert.
// Without forcing, its logits are bitwise those of CpuBackend (checked by
// reference_forward_test, which runs in CI).
#pragma once

#include <cstdint>
#include <vector>

#include "inference_worker/model/model_config.h"
#include "inference_worker/model/thread_pool.h"
#include "inference_worker/model/weights.h"

namespace ossgate::testing {

struct ReferenceResult {
  std::vector<float> logits;         // [T][vocab] (every position)
  std::vector<int32_t> ids;          // [layers][T][k] expert ids in rank order (the ones used)
  std::vector<float> router_logits;  // [layers][T][n_experts]
};

// forced_ids: null, or [layers][T][k] expert ids to use instead of the
// router's top-k (their weights are the softmax of the reference's own
// router logits of those experts, as cpu::RouterTopK computes it).
ReferenceResult ReferenceForward(const model::ModelConfig& c, const model::Weights& w,
                                 const std::vector<int32_t>& tokens, model::ThreadPool& pool,
                                 const std::vector<int32_t>* forced_ids = nullptr);

// Gap between the k-th and (k+1)-th largest router logit of one token (how
// close the router was to choosing another expert set).
float RouterMargin(const float* logits, int n_experts, int k);

}  // namespace ossgate::testing
