// Token sampling: greedy, temperature, top-k, top-p, min-p, and repetition,
// presence and frequency penalties, with a seeded counter-based RNG so a
// (seed, step) pair always draws the same number on the CPU and the GPU.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace ossgate::model {

// What Sampler::Sample and Backend::ForwardSample return for a row they
// refuse to sample because its logits hold NaN (a numerical fault upstream,
// e.g. non-finite weights): never a token id. The caller ends the request
// with an INTERNAL error naming the step.
inline constexpr int32_t kNoToken = -1;

struct SamplingParams {
  float temperature = 1.0f;          // 0 = greedy (argmax, lowest id on ties)
  int32_t top_k = 0;                 // 0 = disabled
  float top_p = 1.0f;                // 1 = disabled; (0, 1]
  float min_p = 0.0f;                // 0 = disabled; [0, 1]
  float repetition_penalty = 1.0f;   // 1 = disabled; > 0 (HF/CTRL style: divide positive logits, multiply negative)
  float presence_penalty = 0.0f;     // subtracted once per token that already occurred (OpenAI style)
  float frequency_penalty = 0.0f;    // subtracted once per occurrence (OpenAI style)
  uint64_t seed = 0;
};

// Whether any of the penalties is on. Penalties need the token history, so
// only the host can apply them (Backend::ForwardSample refuses them).
bool UsesPenalties(const SamplingParams& p);

// The sampler's candidate order: ids by logit descending, ties (and -0/+0)
// in increasing id, NaN as -infinity. Linear time.
std::vector<int32_t> CandidateOrder(std::span<const float> logits);

// The Philox4x32-10 block function (Salmon et al., SC'11; Random123's
// philox4x32 with 10 rounds): a pure function of a 128-bit counter and a
// 64-bit key, words in Random123 order.
std::array<uint32_t, 4> Philox4x32_10(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key);

// Philox4x32-10 uniform in [0, 1) for draw `counter` of stream `seed`:
// counter words {counter low 32 bits, counter high, 0, 0}, key {seed low,
// seed high}; the first output word's top 24 bits times 2^-24.
float PhiloxUniform(uint64_t seed, uint64_t counter);

// Stateless apart from the caller's history: Sample(logits, history, step)
// with the same arguments always returns the same token.
class Sampler {
 public:
  explicit Sampler(SamplingParams params) : params_(params) {}
  // `logits` is modified in place (penalties, temperature). `history` holds
  // the tokens that count for penalties (prompt and generated so far).
  // `step` is the index of the generated token (RNG counter).
  int32_t Sample(std::span<float> logits, std::span<const int32_t> history, uint64_t step) const;
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
};

}  // namespace ossgate::model
