// The CPU reference of the GPU accuracy tests: the CPU backend itself, run
// on one prompt in one step (logits of every position) with its router hook
// recording every layer's router logits and expert choices, and optionally
// forcing the experts to another backend's (the GPU's), everything else
// fp32: the remaining difference is then the GPU's rounding alone, without
// the cascade of a swapped expert. CPU only (cpu_reference_test runs in CI).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/cpu_backend.h"

namespace ossgate::testing {

struct ReferenceResult {
  std::vector<float> logits;         // [T][vocab] (every position)
  std::vector<int32_t> ids;          // [layers][T][k] expert ids in rank order (the ones used)
  std::vector<float> router_logits;  // [layers][T][n_experts]
};

// forced_ids: null, or [layers][T][k] expert ids to use instead of the
// router's top-k (their weights are the softmax of the reference's own
// router logits of those experts, as for its own choice).
inline absl::StatusOr<ReferenceResult> CpuReference(const gguf::GgufFile& file, const std::vector<int32_t>& tokens,
                                                    const std::vector<int32_t>* forced_ids = nullptr) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  model::CpuBackendOptions o;
  o.kv.max_sequences = 1;
  o.max_context = static_cast<int>(T) + 16;
  auto backend = model::CpuBackend::Create(file, o);
  if (!backend.ok()) return backend.status();
  model::CpuBackend& b = **backend;
  const model::ModelConfig& c = b.config();
  const int64_t E = c.n_experts, K = c.n_experts_used;
  ReferenceResult res;
  res.ids.resize(static_cast<size_t>(c.n_layers) * T * K);
  res.router_logits.resize(static_cast<size_t>(c.n_layers) * T * E);
  b.SetRouterHook([&](int layer, model::SeqId, int pos, std::span<const float> logits, std::span<int32_t> ids) {
    const size_t at = static_cast<size_t>(layer) * T + pos;
    if (forced_ids) std::copy_n(forced_ids->begin() + at * K, K, ids.begin());
    std::copy(logits.begin(), logits.end(), res.router_logits.begin() + at * E);
    std::copy(ids.begin(), ids.end(), res.ids.begin() + at * K);
  });
  if (absl::Status s = b.kv().AddSequence(1); !s.ok()) return s;
  const model::SequenceStep step{1, tokens, model::Logits::kAll};
  if (absl::Status s = b.Forward({&step, 1}, &res.logits); !s.ok()) return s;
  return res;
}

// Gap between the k-th and (k+1)-th largest router logit of one token (how
// close the router was to choosing another expert set).
inline float RouterMargin(const float* logits, int n_experts, int k) {
  std::vector<float> v(logits, logits + n_experts);
  std::sort(v.begin(), v.end(), [](float a, float b) { return a > b; });
  return k < n_experts ? v[k - 1] - v[k] : INFINITY;
}

}  // namespace ossgate::testing
