// Sampler: greedy, temperature, top-k/top-p/min-p, penalties, the Philox
// RNG and the shared arithmetic of sampling_math.h, each against a float64
// reference written here.
#include "inference_worker/model/sampler.h"
#include "inference_worker/model/sampling_math.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace ossgate::model {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> RandomLogits(int n, uint64_t seed, float lo = -3.0f, float hi = 3.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// softmax(l / T) in float64.
std::vector<double> Softmax(const std::vector<float>& logits, double temperature) {
  double m = -std::numeric_limits<double>::infinity();
  for (float l : logits) m = std::max(m, static_cast<double>(l));
  std::vector<double> p(logits.size());
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) total += p[i] = std::exp((logits[i] - m) / temperature);
  for (double& x : p) x /= total;
  return p;
}

// Token ids by decreasing logit, ties to the lower id.
std::vector<int32_t> ByLogit(const std::vector<float>& logits) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  return order;
}

// The distribution after truncation, as in HF's warpers in their default
// order: temperature, top-k, top-p (over the renormalised survivors: the
// smallest prefix by probability whose mass reaches top_p), min-p (keep
// p >= min_p * p_max).
std::vector<double> Truncated(const std::vector<float>& logits, const SamplingParams& s) {
  const std::vector<double> p = Softmax(logits, s.temperature);
  const std::vector<int32_t> order = ByLogit(logits);
  size_t keep = order.size();
  if (s.top_k > 0) keep = std::min<size_t>(keep, s.top_k);
  if (s.top_p < 1.0f) {
    double mass = 0;
    for (size_t i = 0; i < keep; ++i) mass += p[order[i]];
    double cum = 0;
    size_t i = 0;
    while (i < keep) {
      cum += p[order[i++]];
      if (cum >= s.top_p * mass) break;
    }
    keep = std::max<size_t>(1, i);
  }
  if (s.min_p > 0.0f) {
    size_t i = 1;
    while (i < keep && p[order[i]] >= s.min_p * p[order[0]]) ++i;
    keep = i;
  }
  std::vector<double> out(logits.size(), 0.0);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += p[order[i]];
  for (size_t i = 0; i < keep; ++i) out[order[i]] = p[order[i]] / total;
  return out;
}

// Draws `n` tokens with seeds 0..n-1 at step 0 (fresh logits each time).
std::vector<int> Histogram(const std::vector<float>& logits, SamplingParams s, int n) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) {
    s.seed = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull + 12345;
    Sampler sampler(s);
    std::vector<float> l = logits;
    const int32_t t = sampler.Sample(l, {}, 0);
    EXPECT_GE(t, 0);
    EXPECT_LT(t, static_cast<int32_t>(logits.size()));
    if (t >= 0 && t < static_cast<int32_t>(logits.size())) ++counts[t];
  }
  return counts;
}

// Pearson chi-square of counts against probabilities, over the cells with
// p > 0; a count in a cell with p = 0 is reported as infinite.
double ChiSquare(const std::vector<int>& counts, const std::vector<double>& p, int n, int* cells) {
  double chi2 = 0;
  *cells = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      if (counts[i] != 0) return std::numeric_limits<double>::infinity();
      continue;
    }
    const double e = p[i] * n;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++*cells;
  }
  return chi2;
}

// A loose deterministic bound: mean df, plus 6 standard deviations of the
// chi-square distribution (sqrt(2 df)), plus slack for small cells.
void ExpectFits(const std::vector<int>& counts, const std::vector<double>& p, int n, const std::string& what) {
  int cells = 0;
  const double chi2 = ChiSquare(counts, p, n, &cells);
  const double df = std::max(1, cells - 1);
  EXPECT_LT(chi2, df + 6 * std::sqrt(2 * df) + 10) << what << " (df " << df << ")";
}

// ---------------------------------------------------------------------------
// Greedy

// The linear-time candidate order is exactly the comparison sort it
// replaced: logit descending, ties in increasing id, NaN as -inf, -0 = +0.
TEST(CandidateOrderTest, EqualsTheComparisonSort) {
  std::mt19937 rng(77);
  for (int n : {1, 2, 7, 256, 4096, 201088}) {
    std::vector<float> l(n);
    std::uniform_int_distribution<int> pick(0, 9);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    for (float& v : l) {
      switch (pick(rng)) {
        case 0: v = 0.0f; break;
        case 1: v = -0.0f; break;
        case 2: v = std::numeric_limits<float>::quiet_NaN(); break;
        case 3: v = -std::numeric_limits<float>::infinity(); break;
        case 4: v = std::numeric_limits<float>::infinity(); break;
        case 5: v = static_cast<float>(static_cast<int>(normal(rng))); break;  // many exact ties
        default: v = normal(rng); break;
      }
    }
    std::vector<int32_t> want(n);
    std::iota(want.begin(), want.end(), 0);
    auto clean = [&](int32_t i) { return std::isnan(l[i]) ? -std::numeric_limits<float>::infinity() : l[i]; };
    std::sort(want.begin(), want.end(), [&](int32_t a, int32_t b) {
      const float la = clean(a), lb = clean(b);
      return la != lb ? la > lb : a < b;
    });
    EXPECT_EQ(CandidateOrder(l), want) << "n " << n;
  }
  EXPECT_TRUE(CandidateOrder({}).empty());
}

TEST(SamplerGreedyTest, ArgmaxWithTiesToTheLowestId) {
  Sampler s({.temperature = 0.0f});
  std::vector<float> l = {1.0f, 3.0f, 3.0f, 2.0f};
  EXPECT_EQ(s.Sample(l, {}, 0), 1);
  std::vector<float> all_equal(9, -2.0f);
  EXPECT_EQ(s.Sample(all_equal, {}, 0), 0);
  std::vector<float> last = {0.0f, 1.0f, 2.0f, 5.0f};
  EXPECT_EQ(s.Sample(last, {}, 0), 3);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::vector<float> r = RandomLogits(101, seed);
    const int32_t want = ByLogit(r)[0];
    EXPECT_EQ(s.Sample(r, {}, seed), want);
  }
}

TEST(SamplerGreedyTest, IgnoresSeedAndStep) {
  const std::vector<float> base = RandomLogits(50, 3);
  const int32_t want = ByLogit(base)[0];
  for (uint64_t seed : {0ull, 1ull, 99ull}) {
    for (uint64_t step : {0ull, 7ull, 1ull << 40}) {
      std::vector<float> l = base;
      EXPECT_EQ(Sampler({.temperature = 0.0f, .seed = seed}).Sample(l, {}, step), want);
    }
  }
}

// ---------------------------------------------------------------------------
// Temperature and truncation: distributions

TEST(SamplerDistributionTest, TemperatureMatchesSoftmaxOfScaledLogits) {
  const std::vector<float> logits = RandomLogits(10, 42, -2.0f, 2.0f);
  constexpr int kDraws = 20000;
  for (float t : {0.5f, 1.0f, 2.0f}) {
    const std::vector<int> counts = Histogram(logits, {.temperature = t}, kDraws);
    ExpectFits(counts, Softmax(logits, t), kDraws, "T=" + std::to_string(t));
  }
  // The test has power: T = 0.5 draws do not fit T = 2 probabilities.
  int cells = 0;
  const std::vector<int> cold = Histogram(logits, {.temperature = 0.5f}, kDraws);
  EXPECT_GT(ChiSquare(cold, Softmax(logits, 2.0), kDraws, &cells), 1000.0);
}

TEST(SamplerDistributionTest, TopKTopPMinPFollowTheTruncatedDistribution) {
  const std::vector<float> logits = RandomLogits(12, 77, -2.5f, 2.5f);
  constexpr int kDraws = 20000;
  const SamplingParams cases[] = {
      {.temperature = 1.0f, .top_k = 3},
      {.temperature = 0.7f, .top_k = 1},
      {.temperature = 1.0f, .top_p = 0.6f},
      {.temperature = 1.5f, .top_p = 0.9f},
      {.temperature = 1.0f, .min_p = 0.2f},
      {.temperature = 0.8f, .top_k = 6, .top_p = 0.8f},
  };
  for (const SamplingParams& s : cases) {
    const std::string what = "T=" + std::to_string(s.temperature) + " k=" + std::to_string(s.top_k) +
                             " p=" + std::to_string(s.top_p) + " min_p=" + std::to_string(s.min_p);
    ExpectFits(Histogram(logits, s, kDraws), Truncated(logits, s), kDraws, what);
  }
}

// ---------------------------------------------------------------------------
// Truncation never returns an excluded token (many random logit vectors).

TEST(SamplerTruncationTest, NeverReturnsAnExcludedToken) {
  for (uint64_t trial = 0; trial < 300; ++trial) {
    std::mt19937_64 rng(trial);
    const int n = 2 + static_cast<int>(rng() % 200);
    const std::vector<float> logits = RandomLogits(n, 1000 + trial, -6.0f, 6.0f);
    SamplingParams s;
    s.temperature = 0.3f + static_cast<float>(rng() % 20) / 10.0f;
    switch (trial % 4) {
      case 0: s.top_k = 1 + static_cast<int32_t>(rng() % 8); break;
      case 1: s.top_p = 0.05f + static_cast<float>(rng() % 90) / 100.0f; break;
      case 2: s.min_p = 0.05f + static_cast<float>(rng() % 90) / 100.0f; break;
      case 3:
        s.top_k = 1 + static_cast<int32_t>(rng() % 20);
        s.top_p = 0.5f;
        s.min_p = 0.1f;
        break;
    }
    const std::vector<double> allowed = Truncated(logits, s);
    for (uint64_t seed = 0; seed < 40; ++seed) {
      s.seed = seed;
      std::vector<float> l = logits;
      const int32_t t = Sampler(s).Sample(l, {}, trial);
      ASSERT_GE(t, 0);
      ASSERT_LT(t, n);
      EXPECT_GT(allowed[t], 0.0) << "trial " << trial << " token " << t << " was excluded (k=" << s.top_k
                                 << " p=" << s.top_p << " min_p=" << s.min_p << ")";
    }
  }
}

TEST(SamplerTruncationTest, TopKOneIsGreedy) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    std::vector<float> l = RandomLogits(64, seed);
    const int32_t want = ByLogit(l)[0];
    EXPECT_EQ(Sampler({.temperature = 1.0f, .top_k = 1, .seed = seed}).Sample(l, {}, seed), want);
  }
}

TEST(SamplerTruncationTest, TopKLargerThanVocabularyIsNoLimit) {
  const std::vector<float> logits = RandomLogits(5, 8);
  const std::vector<int> counts = Histogram(logits, {.temperature = 1.0f, .top_k = 100}, 10000);
  ExpectFits(counts, Softmax(logits, 1.0), 10000, "top_k > n");
}

// Softmax's limit: a +inf logit holds all the mass.
TEST(SamplerTruncationTest, AnInfiniteLogitIsAlwaysChosen) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::vector<float> l = RandomLogits(10, seed);
    l[4] = kInf;
    EXPECT_EQ(Sampler({.temperature = 1.0f, .seed = seed}).Sample(l, {}, 0), 4) << "seed " << seed;
  }
}

TEST(SamplerTruncationTest, MinusInfinityLogitsAreNeverChosen) {
  std::vector<float> base = RandomLogits(10, 9);
  for (int i = 0; i < 10; i += 2) base[i] = -kInf;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::vector<float> l = base;
    const int32_t t = Sampler({.temperature = 1.0f, .seed = seed}).Sample(l, {}, seed);
    EXPECT_EQ(t % 2, 1) << "seed " << seed;
  }
}

// ---------------------------------------------------------------------------
// Penalties: logits are modified in place (sampler.h), so with greedy
// sampling the penalised values can be read back.

std::vector<float> Penalised(const std::vector<float>& logits, const std::vector<int32_t>& history,
                             SamplingParams s) {
  s.temperature = 0.0f;
  std::vector<float> l = logits;
  Sampler(s).Sample(l, history, 0);
  return l;
}

TEST(SamplerPenaltyTest, RepetitionDividesPositiveAndMultipliesNegative) {
  const std::vector<float> logits = {2.0f, -2.0f, 0.0f, 4.0f, -1.0f};
  const std::vector<int32_t> history = {0, 1, 2, 1, 0, 0};  // 3 is absent
  const std::vector<float> got = Penalised(logits, history, {.repetition_penalty = 2.0f});
  // Applied once per distinct token, not once per occurrence.
  EXPECT_FLOAT_EQ(got[0], 1.0f);
  EXPECT_FLOAT_EQ(got[1], -4.0f);
  EXPECT_FLOAT_EQ(got[2], 0.0f);
  EXPECT_FLOAT_EQ(got[3], 4.0f);
  EXPECT_FLOAT_EQ(got[4], -1.0f);
}

TEST(SamplerPenaltyTest, PresenceIsSubtractedOncePerDistinctToken) {
  const std::vector<float> logits = {2.0f, -2.0f, 0.5f, 4.0f};
  const std::vector<int32_t> history = {0, 0, 0, 1, 2, 2};
  const std::vector<float> got = Penalised(logits, history, {.presence_penalty = 0.75f});
  EXPECT_FLOAT_EQ(got[0], 1.25f);
  EXPECT_FLOAT_EQ(got[1], -2.75f);
  EXPECT_FLOAT_EQ(got[2], -0.25f);
  EXPECT_FLOAT_EQ(got[3], 4.0f);
}

TEST(SamplerPenaltyTest, FrequencyIsSubtractedPerOccurrence) {
  const std::vector<float> logits = {2.0f, -2.0f, 0.5f, 4.0f};
  const std::vector<int32_t> history = {0, 0, 0, 1, 2, 2};
  const std::vector<float> got = Penalised(logits, history, {.frequency_penalty = 0.5f});
  EXPECT_FLOAT_EQ(got[0], 0.5f);   // 3 occurrences
  EXPECT_FLOAT_EQ(got[1], -2.5f);  // 1
  EXPECT_FLOAT_EQ(got[2], -0.5f);  // 2
  EXPECT_FLOAT_EQ(got[3], 4.0f);   // 0
}

TEST(SamplerPenaltyTest, AllThreeTogetherOnRandomInputs) {
  // Repetition first, then presence and frequency (the order of llama.cpp
  // and vLLM); float64 reference.
  for (uint64_t trial = 0; trial < 20; ++trial) {
    const int n = 50;
    const std::vector<float> logits = RandomLogits(n, 300 + trial);
    std::mt19937_64 rng(trial);
    std::vector<int32_t> history(30);
    for (int32_t& t : history) t = static_cast<int32_t>(rng() % 20);
    const SamplingParams s = {.repetition_penalty = 1.3f, .presence_penalty = 0.4f, .frequency_penalty = 0.15f};
    const std::vector<float> got = Penalised(logits, history, s);
    for (int i = 0; i < n; ++i) {
      const int count = static_cast<int>(std::count(history.begin(), history.end(), i));
      double want = logits[i];
      if (count > 0) {
        want = want > 0 ? want / 1.3 : want * 1.3;
        want -= 0.4 + 0.15 * count;
      }
      EXPECT_NEAR(got[i], want, 1e-5) << "trial " << trial << " token " << i << " count " << count;
    }
  }
}

TEST(SamplerPenaltyTest, PenaltyChangesTheGreedyChoice) {
  std::vector<float> l = {5.0f, 4.0f};
  EXPECT_EQ(Sampler({.temperature = 0.0f, .presence_penalty = 2.0f}).Sample(l, std::vector<int32_t>{0}, 0), 1);
}

TEST(SamplerPenaltyTest, OutOfRangeHistoryIdsAreIgnored) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  const std::vector<float> got =
      Penalised(logits, {-1, 3, 1000000, std::numeric_limits<int32_t>::min()}, {.frequency_penalty = 1.0f});
  EXPECT_EQ(got, logits);
}

TEST(SamplerPenaltyTest, DisabledPenaltiesLeaveLogitsUntouched) {
  const std::vector<float> logits = RandomLogits(20, 4);
  EXPECT_EQ(Penalised(logits, {0, 1, 2, 3, 3, 3}, {}), logits);
}

// ---------------------------------------------------------------------------
// Determinism

TEST(SamplerDeterminismTest, SameSeedAndStepGiveTheSameToken) {
  const std::vector<float> logits = RandomLogits(1000, 6, -1.0f, 1.0f);  // flat-ish: many likely tokens
  const SamplingParams p = {.temperature = 1.0f, .top_p = 0.95f, .seed = 1234};
  std::set<int32_t> seen_steps, seen_seeds;
  for (uint64_t step = 0; step < 50; ++step) {
    std::vector<float> a = logits, b = logits;
    const int32_t ta = Sampler(p).Sample(a, {}, step);
    const int32_t tb = Sampler(p).Sample(b, {}, step);
    EXPECT_EQ(ta, tb) << "step " << step;
    seen_steps.insert(ta);
    SamplingParams q = p;
    q.seed = step;
    std::vector<float> c = logits;
    seen_seeds.insert(Sampler(q).Sample(c, {}, 0));
  }
  // And the RNG actually varies with the step and with the seed.
  EXPECT_GT(seen_steps.size(), 30u);
  EXPECT_GT(seen_seeds.size(), 30u);
}

// ---------------------------------------------------------------------------
// Philox

// Known-answer vectors of Philox4x32-10 from Random123's tests/kat_vectors
// (DEShawResearch/random123, commit 9545ff6413f2, lines 27-29: the three
// "philox4x32 10" lines; the same values appear in the libstdc++ test of
// std::philox4x32, whose first output for the default key is 0x6627e8d5).
// Format there: counter words, key words, then the four output words.
TEST(PhiloxTest, Random123KnownAnswerVectors) {
  struct Kat {
    std::array<uint32_t, 4> ctr;
    std::array<uint32_t, 2> key;
    std::array<uint32_t, 4> out;
  };
  const Kat kats[] = {
      {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u},
       {0x00000000u, 0x00000000u},
       {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) EXPECT_EQ(Philox4x32_10(k.ctr, k.key), k.out) << std::hex << k.ctr[0];
}

// The Gumbel words: GumbelBlock(seed, step, g) is the Philox block of
// counter {g, step low, step high, 'GUMB'} and key {seed low, seed high}.
TEST(PhiloxTest, GumbelBlockUsesTheDocumentedWordMapping) {
  for (uint64_t seed : {0ull, 1ull, 0x0123456789ABCDEFull, ~0ull}) {
    for (uint64_t step : {0ull, 7ull, 1ull << 32, ~0ull}) {
      for (uint32_t g : {0u, 1u, 50271u}) {
        const sampling::PhiloxBlock b = sampling::GumbelBlock(seed, step, g);
        const auto want = Philox4x32_10(
            {g, static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), 0x47554D42u},
            {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
        for (int j = 0; j < 4; ++j) EXPECT_EQ(b.w[j], want[j]);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The shared arithmetic (sampling_math.h): accurate to a few float ulps.

TEST(SamplingMathTest, LogIsAccurate) {
  double worst = 0;
  for (int e = -126; e < 127; ++e) {
    for (int i = 0; i < 997; ++i) {
      const float x = std::ldexp(1.0f + static_cast<float>(i) / 997.0f, e);
      const double want = std::log(static_cast<double>(x));
      const double got = sampling::Log(x);
      const double err = std::abs(got - want) / std::max(std::abs(want), 1e-30);
      worst = std::max(worst, want == 0 ? std::abs(got) : err);
    }
  }
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(sampling::Log(1.0f), 0.0f);
}

TEST(SamplingMathTest, ExpNonPositiveIsAccurate) {
  double worst = 0;
  for (int i = 0; i <= 200000; ++i) {
    const float z = -87.0f * static_cast<float>(i) / 200000.0f;
    const double want = std::exp(static_cast<double>(z));
    const double got = sampling::ExpNonPositive(z);
    if (want < 1.2e-38) continue;  // below the normal range
    worst = std::max(worst, std::abs(got - want) / want);
  }
  EXPECT_LT(worst, 4e-7);
  EXPECT_EQ(sampling::ExpNonPositive(0.0f), 1.0f);
  EXPECT_EQ(sampling::ExpNonPositive(-kInf), 0.0f);
  EXPECT_EQ(sampling::ExpNonPositive(-100.0f), 0.0f);
  EXPECT_EQ(sampling::Mass(0.0f), uint64_t{1} << 32);
  EXPECT_EQ(sampling::Mass(-30.0f), 0u);  // exp(-30) * 2^32 < 1
}

// score(l = 0, T = 1) = -log(E) must be Gumbel(0, 1): CDF exp(-exp(-x)).
TEST(SamplingMathTest, GumbelScoresFollowTheGumbelDistribution) {
  constexpr int kBins = 40;
  constexpr int kDraws = 1 << 18;
  // Bin edges at the Gumbel quantiles i / kBins.
  std::vector<double> edges(kBins - 1);
  for (int i = 1; i < kBins; ++i) edges[i - 1] = -std::log(-std::log(static_cast<double>(i) / kBins));
  std::vector<int> counts(kBins, 0);
  double sum = 0;
  for (int i = 0; i < kDraws / 4; ++i) {
    const sampling::PhiloxBlock b = sampling::GumbelBlock(99, static_cast<uint64_t>(i % 13), static_cast<uint32_t>(i));
    for (uint32_t w : b.w) {
      const float x = sampling::GumbelScore(0.0f, 1.0f, w);
      ASSERT_TRUE(std::isfinite(x));
      sum += x;
      ++counts[std::upper_bound(edges.begin(), edges.end(), static_cast<double>(x)) - edges.begin()];
    }
  }
  EXPECT_NEAR(sum / kDraws, 0.5772156649, 0.01);  // Euler-Mascheroni
  ExpectFits(counts, std::vector<double>(kBins, 1.0 / kBins), kDraws, "Gumbel quantile bins");
  // The extremes of the word range stay finite and ordered.
  EXPECT_GT(sampling::GumbelScore(0.0f, 1.0f, 0u), 20.0f);
  EXPECT_LT(sampling::GumbelScore(0.0f, 1.0f, ~0u), -2.0f);
  EXPECT_TRUE(std::isfinite(sampling::GumbelScore(0.0f, 1.0f, ~0u)));
}

TEST(SamplingMathTest, TopPThresholdIsTheCeilingOfTheProduct) {
  EXPECT_EQ(sampling::TopPThreshold(0.5f, 10), 5u);
  EXPECT_EQ(sampling::TopPThreshold(0.5f, 11), 6u);
  EXPECT_EQ(sampling::TopPThreshold(1.0f, uint64_t{1} << 50), uint64_t{1} << 50);
  EXPECT_EQ(sampling::TopPThreshold(1e-9f, 1000), 1u);
}

// ---------------------------------------------------------------------------
// The contract, spelled out: the token is the kept id with the best Gumbel
// score, where the kept set is the candidate-order prefix of sampler.h.

TEST(SamplerContractTest, SampleIsTheGumbelArgmaxOfTheKeptPrefix) {
  for (uint64_t trial = 0; trial < 200; ++trial) {
    std::mt19937_64 rng(trial);
    const int n = 1 + static_cast<int>(rng() % 300);
    std::vector<float> logits = RandomLogits(n, 500 + trial, -8.0f, 8.0f);
    if (trial % 5 == 0) {
      for (float& v : logits) v = std::round(v);  // many ties
    }
    SamplingParams s;
    s.temperature = 0.2f + static_cast<float>(rng() % 30) / 10.0f;
    s.top_k = trial % 3 == 0 ? static_cast<int32_t>(rng() % 20) : 0;
    s.top_p = trial % 4 == 1 ? 0.3f + static_cast<float>(rng() % 70) / 100.0f : 1.0f;
    s.min_p = trial % 7 == 2 ? 0.01f + static_cast<float>(rng() % 50) / 100.0f : 0.0f;
    s.seed = rng();
    const uint64_t step = rng() % 1000;
    // Reference: sort, cut, score every kept id.
    const std::vector<int32_t> order = ByLogit(logits);
    const float m = logits[order[0]];
    const float inv_t = 1.0f / s.temperature;
    size_t keep = order.size();
    if (s.top_k > 0) keep = std::min<size_t>(keep, s.top_k);
    if (s.top_p < 1.0f) {
      uint64_t total = 0;
      for (size_t j = 0; j < keep; ++j) total += sampling::Mass((logits[order[j]] - m) * inv_t);
      const uint64_t threshold = sampling::TopPThreshold(s.top_p, total);
      uint64_t cum = 0;
      size_t j = 0;
      while (j < keep) {
        cum += sampling::Mass((logits[order[j]] - m) * inv_t);
        if (++j, cum >= threshold) break;
      }
      keep = j;
    }
    int32_t want = -1;
    float best = 0;
    for (size_t j = 0; j < keep; ++j) {
      const int32_t id = order[j];
      if (s.min_p > 0.0f && (logits[id] - m) * inv_t < sampling::MinPBound(s.min_p)) continue;
      const float score = sampling::GumbelScore(logits[id], inv_t, sampling::GumbelBlock(s.seed, step, id / 4).w[id % 4]);
      if (want < 0 || score > best || (score == best && id < want)) want = id, best = score;
    }
    std::vector<float> l = logits;
    EXPECT_EQ(Sampler(s).Sample(l, {}, step), want) << "trial " << trial;
  }
}

TEST(SamplerContractTest, ARowHoldingNaNIsRefused) {
  for (float t : {0.0f, 0.7f}) {
    for (int32_t top_k : {0, 3}) {
      std::vector<float> a = {1.0f, kNaN, 2.0f};
      EXPECT_EQ(Sampler({.temperature = t, .top_k = top_k}).Sample(a, {}, 0), kNoToken);
      std::vector<float> b(9, kNaN);
      EXPECT_EQ(Sampler({.temperature = t, .top_k = top_k}).Sample(b, {}, 0), kNoToken);
    }
  }
  std::vector<float> empty;
  EXPECT_EQ(Sampler({}).Sample(empty, {}, 0), kNoToken);
}

TEST(SamplerContractTest, MinusZeroTiesWithPlusZero) {
  std::vector<float> l = {-1.0f, -0.0f, 0.0f};
  EXPECT_EQ(Sampler({.temperature = 0.0f}).Sample(l, {}, 0), 1);
  std::vector<float> m = {-1.0f, 0.0f, -0.0f};
  EXPECT_EQ(Sampler({.temperature = 0.0f}).Sample(m, {}, 0), 1);
}

TEST(SamplerContractTest, NoLogitAboveMinusInfinityIsRefused) {
  std::vector<float> l(7, -kInf);
  EXPECT_EQ(Sampler({.temperature = 1.0f, .seed = 3}).Sample(l, {}, 5), kNoToken);
  EXPECT_EQ(Sampler({.temperature = 0.0f}).Sample(l, {}, 5), kNoToken);
  l[4] = -1e30f;
  EXPECT_EQ(Sampler({.temperature = 1.0f, .seed = 3}).Sample(l, {}, 5), 4);
}

}  // namespace
}  // namespace ossgate::model
