#include "inference_worker/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "inference_worker/model/sampling_math.h"

namespace ossgate::model {

namespace {

namespace sm = sampling;

// Draw-independent part of the order key: NaN as -inf (CandidateOrder's
// contract; sampled rows never hold NaN).
uint32_t OrderKeyNanLast(float l) {
  return sm::IsNaN(l) ? sm::OrderKey(-std::numeric_limits<float>::infinity()) : sm::OrderKey(l);
}

// The ids a draw chooses among (sampler.h): above -inf, at or before the cut
// in candidate order, and with z >= z_min.
struct KeptSet {
  float max_l, inv_t, z_min;
  bool has_cut;
  uint32_t cut_key;
  int32_t cut_id;
};

// The loops that run the shared arithmetic over a whole row are built twice:
// with the FMA instruction where the CPU has it (chosen at load time), and
// with the library's fmaf. Both give the same bits (an FMA rounds once
// either way); the instruction is several times faster.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define OSSGATE_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define OSSGATE_FMA_CLONES
#endif

// The kept id with the best Gumbel score (ties to the lower id); `first` is
// a kept id scored first. A score is l / T + G with G < kGumbelBound (the
// largest G, of the smallest Exp(1) variate 2^-33, is 22.9), so an id whose
// l / T is below the best score so far minus the bound cannot win and is
// skipped without drawing: with a model's logits most of the vocabulary is
// there. The result is the full argmax either way.
constexpr double kGumbelBound = 24.0;
OSSGATE_FMA_CLONES int32_t GumbelArgmax(std::span<const float> logits, const KeptSet& k, int32_t first, uint64_t seed,
                                        uint64_t step) {
  const int32_t n = static_cast<int32_t>(logits.size());
  const uint32_t minus_inf_key = sm::OrderKey(-std::numeric_limits<float>::infinity());
  auto score_of = [&](int32_t i) {
    return sm::GumbelScore(logits[i], k.inv_t, sm::GumbelBlock(seed, step, static_cast<uint32_t>(i >> 2)).w[i & 3]);
  };
  int32_t pick = first;
  float pick_score = score_of(first);
  double floor_l = static_cast<double>(pick_score) - kGumbelBound;  // l / T below this cannot win
  sm::PhiloxBlock block{};
  int64_t block_group = -1;
  for (int32_t i = 0; i < n; ++i) {
    const float l = logits[i];
    const uint32_t key = sm::OrderKey(l);
    if (key == minus_inf_key || i == first) continue;
    if (static_cast<double>(sm::Mul(l, k.inv_t)) < floor_l) continue;
    if (k.has_cut && sm::Before(k.cut_key, k.cut_id, key, i)) continue;
    if (sm::RelativeLogit(l, k.max_l, k.inv_t) < k.z_min) continue;
    if (block_group != (i >> 2)) {
      block_group = i >> 2;
      block = sm::GumbelBlock(seed, step, static_cast<uint32_t>(block_group));
    }
    const float score = sm::GumbelScore(l, k.inv_t, block.w[i & 3]);
    if (score > pick_score || (score == pick_score && i < pick)) {
      pick = i, pick_score = score;
      floor_l = static_cast<double>(pick_score) - kGumbelBound;
    }
  }
  return pick;
}

// Sum of the integer masses of logits[order[0 .. n)].
OSSGATE_FMA_CLONES uint64_t MassOf(std::span<const float> logits, std::span<const int32_t> order, float max_l,
                                   float inv_t) {
  uint64_t total = 0;
  for (int32_t id : order) total += sm::Mass(sm::RelativeLogit(logits[id], max_l, inv_t));
  return total;
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
    key[i] = ~OrderKeyNanLast(logits[i]);
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
  const sm::PhiloxBlock b = sm::Philox4x32_10(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1]);
  return {b.w[0], b.w[1], b.w[2], b.w[3]};
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
  // The first id in candidate order; a NaN anywhere refuses the row.
  int32_t best = -1;
  uint32_t best_key = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (sm::IsNaN(logits[i])) return kNoToken;
    const uint32_t key = sm::OrderKey(logits[i]);
    if (best < 0 || key > best_key) best = i, best_key = key;
  }
  // No finite or +inf logit: no distribution to sample (a numerical fault,
  // like NaN).
  if (best < 0 || logits[best] == -std::numeric_limits<float>::infinity()) return kNoToken;
  const float max_l = logits[best];
  if (p.temperature <= 0.0f || std::isinf(max_l)) return best;

  const float inv_t = sm::Div(1.0f, p.temperature);
  const float z_min = p.min_p > 0.0f ? sm::MinPBound(p.min_p) : -std::numeric_limits<float>::infinity();
  // The top-k / top-p cut: the last kept element in candidate order.
  bool has_cut = false;
  uint32_t cut_key = 0;
  int32_t cut_id = 0;
  const bool top_k = p.top_k > 0 && p.top_k < n;
  if (top_k || p.top_p < 1.0f) {
    const std::vector<int32_t> order = CandidateOrder(logits);
    int32_t keep = top_k ? p.top_k : n;
    if (p.top_p < 1.0f) {
      const uint64_t total = MassOf(logits, std::span<const int32_t>(order).first(keep), max_l, inv_t);
      const uint64_t threshold = sm::TopPThreshold(p.top_p, total);
      uint64_t cum = 0;
      int32_t j = 0;
      while (j < keep) {
        cum += sm::Mass(sm::RelativeLogit(logits[order[j]], max_l, inv_t));
        ++j;
        if (cum >= threshold) break;
      }
      keep = j;
    }
    if (keep < n) {
      has_cut = true;
      cut_id = order[keep - 1];
      cut_key = sm::OrderKey(logits[cut_id]);
    }
  }
  // Gumbel-max over the kept ids (>= 0: the best id is always kept).
  const KeptSet kept = {max_l, inv_t, z_min, has_cut, cut_key, cut_id};
  return GumbelArgmax(logits, kept, best, p.seed, step);
}


}  // namespace ossgate::model
