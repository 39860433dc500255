#include "inference_worker/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <unordered_map>

namespace ossgate::model {

namespace {

// One Philox4x32 round pair constants (Salmon et al., "Parallel random
// numbers: as easy as 1, 2, 3", SC'11).
constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

void MulHiLo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}

// 32-bit key whose unsigned order is the order of the logits (NaN as -inf,
// -0 as +0): the float bits, with the sign flipped for positives and every
// bit flipped for negatives.
uint32_t OrderKey(float l) {
  if (std::isnan(l)) l = -std::numeric_limits<float>::infinity();
  if (l == 0.0f) l = 0.0f;
  uint32_t b;
  std::memcpy(&b, &l, sizeof(b));
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

}  // namespace

std::vector<int32_t> CandidateOrder(std::span<const float> logits) {
  // Stable LSD radix sort (4 passes of 8 bits) of the ids by the inverted key
  // (ascending inverted key = descending logit); stability keeps equal
  // logits in increasing id. O(n), where a comparison sort of a 201,088-token
  // vocabulary took most of a CPU sampling step.
  const size_t n = logits.size();
  if (n == 0) return {};
  std::vector<uint32_t> key(n), key_tmp(n);
  std::vector<int32_t> order(n), order_tmp(n);
  for (size_t i = 0; i < n; ++i) {
    key[i] = ~OrderKey(logits[i]);
    order[i] = static_cast<int32_t>(i);
  }
  for (int shift = 0; shift < 32; shift += 8) {
    size_t count[257] = {};
    for (size_t i = 0; i < n; ++i) ++count[((key[i] >> shift) & 255u) + 1];
    if (count[((key[0] >> shift) & 255u) + 1] == n) continue;  // every key has this byte: nothing moves
    for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
    for (size_t i = 0; i < n; ++i) {
      const size_t at = count[(key[i] >> shift) & 255u]++;
      key_tmp[at] = key[i];
      order_tmp[at] = order[i];
    }
    key.swap(key_tmp);
    order.swap(order_tmp);
  }
  return order;
}

std::array<uint32_t, 4> Philox4x32_10(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    MulHiLo(kPhiloxM0, c0, &hi0, &lo0);
    MulHiLo(kPhiloxM1, c2, &hi1, &lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n1 = lo1;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    const uint32_t n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return {c0, c1, c2, c3};
}

float PhiloxUniform(uint64_t seed, uint64_t counter) {
  const std::array<uint32_t, 4> out =
      Philox4x32_10({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u},
                    {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  // 24 random bits -> [0, 1) exactly representable in float.
  return static_cast<float>(out[0] >> 8) * (1.0f / 16777216.0f);
}

bool UsesPenalties(const SamplingParams& p) {
  return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
}

int32_t Sampler::Sample(std::span<float> logits, std::span<const int32_t> history, uint64_t step) const {
  const SamplingParams& p = params_;
  const int32_t n = static_cast<int32_t>(logits.size());
  if (UsesPenalties(p)) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t t : history) {
      if (t >= 0 && t < n) ++counts[t];
    }
    for (const auto& [t, count] : counts) {
      float& l = logits[t];
      if (p.repetition_penalty != 1.0f) l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
      l -= p.presence_penalty + p.frequency_penalty * static_cast<float>(count);
    }
  }
  if (p.temperature <= 0.0f) {
    // Greedy; NaN logits never win, ties go to the lowest id.
    int32_t best = 0;
    for (int32_t i = 1; i < n; ++i) {
      if (logits[i] > logits[best] || std::isnan(logits[best])) best = i;
    }
    return best;
  }
  // Candidates by probability, highest first, ties to the lower id.
  std::vector<int32_t> order;
  int32_t keep = n;
  if (p.top_k > 0 && p.top_k < n) {
    keep = p.top_k;
    order.resize(n);
    std::iota(order.begin(), order.end(), 0);
    auto by_logit = [&](int32_t a, int32_t b) {
      const float la = std::isnan(logits[a]) ? -std::numeric_limits<float>::infinity() : logits[a];
      const float lb = std::isnan(logits[b]) ? -std::numeric_limits<float>::infinity() : logits[b];
      return la != lb ? la > lb : a < b;
    };
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_logit);
  } else {
    order = CandidateOrder(logits);
  }
  const double max_l = logits[order[0]];
  // An infinite best logit has all the probability mass (ties: lowest id);
  // a row with no finite logit at all has no distribution: take the first.
  if (!std::isfinite(max_l)) return order[0];
  std::vector<double> prob(keep);
  double total = 0.0;
  for (int32_t i = 0; i < keep; ++i) {
    const float l = logits[order[i]];
    prob[i] = std::isnan(l) ? 0.0 : std::exp((static_cast<double>(l) - max_l) / p.temperature);
    total += prob[i];
  }
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    int32_t i = 0;
    while (i < keep) {
      cum += prob[i++];
      if (cum >= p.top_p * total) break;
    }
    keep = std::max(1, i);
  }
  if (p.min_p > 0.0f) {
    int32_t i = 1;
    while (i < keep && prob[i] >= p.min_p * prob[0]) ++i;
    keep = i;
  }
  total = 0.0;
  for (int32_t i = 0; i < keep; ++i) total += prob[i];
  const double target = static_cast<double>(PhiloxUniform(p.seed, step)) * total;
  double cum = 0.0;
  for (int32_t i = 0; i < keep; ++i) {
    cum += prob[i];
    if (target < cum) return order[i];
  }
  return order[keep - 1];
}

}  // namespace ossgate::model
