// What the tensor-parallel tests (CPU: parallel_test, GPU: gpu_sharded_test)
// share: a gpt-oss shape every layout of 1, 2 and 4 ranks can split, and a
// script of prefill and decode steps whose logits rows and greedy tokens two
// backends are compared on.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/model/backend.h"
#include "tools/make_model/random_model.h"

namespace ossgate::testing {

// gpt-oss shape with 4 KV heads of 32 (a Q8_0 block per head of the output
// projection's columns) and 4 MXFP4 blocks of intermediate, so 1, 2 and 4
// ranks split it; short window so sliding layers wrap their rings.
inline void ShardableShape(tools::RandomModelSpec& s) {
  auto& c = s.config;
  c.n_layers = 3, c.d_model = 64, c.n_heads = 8, c.n_kv_heads = 4, c.head_dim = 32, c.n_experts = 8, c.d_ff = 128;
  c.sliding_window = 8;
}

inline std::vector<int32_t> Tokens(int n, int vocab, uint64_t seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) {
    t[i] = static_cast<int32_t>((tools::HashUniform(seed, 5, i) + 1.0f) * 0.5f * vocab) % vocab;
  }
  return t;
}

// A 40-token prompt (every position's logits) then 12 greedy steps, with a
// second sequence decoding beside it from step 4 on: the logits of every
// row, and the greedy tokens.
struct ScriptRun {
  std::vector<std::vector<float>> rows;
  std::vector<int32_t> greedy;
};
inline ScriptRun RunScript(model::Backend& b) {
  ScriptRun out;
  const int V = b.config().vocab_size;
  EXPECT_TRUE(b.kv().AddSequence(1).ok());
  EXPECT_TRUE(b.kv().AddSequence(2).ok());
  const auto prompt = Tokens(40, V, 1), other = Tokens(9, V, 2);
  std::vector<float> logits;
  model::SequenceStep step{1, prompt, model::Logits::kAll};
  EXPECT_TRUE(b.Forward({&step, 1}, &logits).ok());
  for (int t = 0; t < 40; ++t) out.rows.emplace_back(logits.begin() + t * V, logits.begin() + (t + 1) * V);
  int32_t next = static_cast<int32_t>(std::max_element(logits.end() - V, logits.end()) - (logits.end() - V));
  int32_t next2 = 0;
  for (int i = 0; i < 12; ++i) {
    out.greedy.push_back(next);
    std::vector<model::SequenceStep> steps = {{1, {&next, 1}, model::Logits::kLast}};
    if (i == 4) steps.push_back({2, other, model::Logits::kLast});
    if (i > 4) steps.push_back({2, {&next2, 1}, model::Logits::kLast});
    EXPECT_TRUE(b.Forward(steps, &logits).ok());
    for (size_t r = 0; r < steps.size(); ++r) out.rows.emplace_back(logits.begin() + r * V, logits.begin() + (r + 1) * V);
    next = static_cast<int32_t>(std::max_element(logits.begin(), logits.begin() + V) - logits.begin());
    if (steps.size() > 1) {
      next2 = static_cast<int32_t>(std::max_element(logits.begin() + V, logits.begin() + 2 * V) - (logits.begin() + V));
    }
  }
  return out;
}

inline double RelErr(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(want[i])) continue;  // suppressed tokens
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

// The largest RelErr over the rows of two runs of the script.
inline double WorstRowError(const ScriptRun& got, const ScriptRun& want) {
  EXPECT_EQ(got.rows.size(), want.rows.size());
  double worst = 0;
  for (size_t r = 0; r < std::min(got.rows.size(), want.rows.size()); ++r) {
    worst = std::max(worst, RelErr(got.rows[r], want.rows[r]));
  }
  return worst;
}

}  // namespace ossgate::testing
