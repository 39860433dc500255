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
// 64-bit key, words in Random123 order (sampling_math.h, shared with the GPU).
std::array<uint32_t, 4> Philox4x32_10(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key);

// Stateless apart from the caller's history: Sample(logits, history, step)
// with the same arguments always returns the same token.
//
// The algorithm (sampling_math.h has the arithmetic, shared bit for bit
// with the GPU sampler, kernels/sampling.cu):
//   - a row holding NaN, or no logit above -inf, is refused: kNoToken;
//   - greedy (temperature <= 0): the first id in candidate order;
//   - otherwise, with m the best logit: if m is +inf, that id (it holds
//     all the mass); else the
//     kept set is the prefix of the candidate order cut by top-k (ids with
//     a logit of -inf count there but are never drawn), then top-p over the integer
//     masses of the top-k survivors, and min-p as z >= log(min_p) with
//     z = (l - m) / T; the token is the kept id with the highest Gumbel
//     score l / T + G(seed, step, id) (ties to the lower id): an exact draw
//     from softmax(l / T) over the kept set, with no sort of the vocabulary
//     unless top-k or top-p asks for a cut.
class Sampler {
 public:
  explicit Sampler(SamplingParams params) : params_(params) {}
  // `logits` is modified in place (penalties). `history` holds the tokens
  // that count for penalties (prompt and generated so far). `step` is the
  // index of the generated token (RNG counter). Returns kNoToken for a row
  // holding NaN or no logit above -inf (or an empty one).
  int32_t Sample(std::span<float> logits, std::span<const int32_t> history, uint64_t step) const;
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
};

}  // namespace ossgate::model
