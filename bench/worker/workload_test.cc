#include "bench/worker/workload.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ossgate::worker_bench {
namespace {

using ::testing::HasSubstr;

TEST(LengthDistributionTest, RejectsMalformedSpecsNamingTheFlag) {
  for (const char* spec : {"", "normal:5", "fixed", "fixed:0", "fixed:x", "fixed:1:2", "uniform:5", "uniform:9:3",
                           "uniform:0:3", "lognormal:100:0.5:10", "lognormal:0:0.5:1:10", "lognormal:100:0:1:1000",
                           "lognormal:100:-1:1:1000", "lognormal:100:0.5:20:10", "fixed:99999999"}) {
    auto d = LengthDistribution::Parse("prompt_len", spec);
    ASSERT_FALSE(d.ok()) << spec;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(d.status().message(), HasSubstr("--prompt_len"));
  }
}

TEST(LengthDistributionTest, RejectsBoundsThatKeepAlmostNothing) {
  // Median 10 with sigma 0.1: [1000, 2000] is 46 sigmas away.
  auto d = LengthDistribution::Parse("output_len", "lognormal:10:0.1:1000:2000");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("keeps only"));
}

TEST(LengthDistributionTest, FixedAndUniform) {
  std::mt19937_64 rng(1);
  auto fixed = LengthDistribution::Parse("x", "fixed:37");
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->min(), 37);
  EXPECT_EQ(fixed->max(), 37);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(fixed->Sample(rng), 37);

  auto uniform = LengthDistribution::Parse("x", "uniform:3:6");
  ASSERT_TRUE(uniform.ok());
  std::vector<int> seen(7, 0);
  for (int i = 0; i < 4000; ++i) {
    const int n = uniform->Sample(rng);
    ASSERT_GE(n, 3);
    ASSERT_LE(n, 6);
    ++seen[n];
  }
  for (int n = 3; n <= 6; ++n) EXPECT_NEAR(seen[n], 1000, 150) << n;
}

TEST(LengthDistributionTest, LognormalHasItsMedianAndStaysInBounds) {
  auto d = LengthDistribution::Parse("prompt_len", "lognormal:512:0.8:64:4096");
  ASSERT_TRUE(d.ok()) << d.status();
  std::mt19937_64 rng(7);
  std::vector<double> v;
  for (int i = 0; i < 20000; ++i) {
    const int n = d->Sample(rng);
    ASSERT_GE(n, 64);
    ASSERT_LE(n, 4096);
    v.push_back(n);
  }
  EXPECT_NEAR(Percentile(v, 0.5), 512, 20);
  // The spread is the stated sigma: the 84th percentile is one sigma up.
  EXPECT_NEAR(std::log(Percentile(v, 0.8413) / 512), 0.8, 0.05);
  // Redrawn, not clamped: the bounds hold no pile of samples.
  EXPECT_LT(std::count(v.begin(), v.end(), 4096.0), 20);
  EXPECT_LT(std::count(v.begin(), v.end(), 64.0), 20);

  // Deterministic for a seed.
  std::mt19937_64 a(3), b(3);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(d->Sample(a), d->Sample(b));
}

TEST(PoissonArrivalsTest, RateGapsAndLimits) {
  const std::vector<double> t = PoissonArrivals(50, 100, 0, 11);
  // 5,000 expected; the count of a Poisson process has sd sqrt(5000) = 71.
  EXPECT_NEAR(static_cast<double>(t.size()), 5000, 300);
  ASSERT_TRUE(std::is_sorted(t.begin(), t.end()));
  EXPECT_GT(t.front(), 0);
  EXPECT_LT(t.back(), 100);
  std::vector<double> gaps;
  for (size_t i = 1; i < t.size(); ++i) gaps.push_back(t[i] - t[i - 1]);
  const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / gaps.size();
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  const double sd = std::sqrt(var / gaps.size());
  EXPECT_NEAR(mean, 0.02, 0.002);
  // Exponential gaps: sd = mean (evenly spaced arrivals would give 0).
  EXPECT_NEAR(sd / mean, 1.0, 0.1);

  EXPECT_EQ(PoissonArrivals(50, 100, 30, 11).size(), 30u);
  EXPECT_EQ(PoissonArrivals(50, 0, 30, 11).size(), 30u);
  EXPECT_EQ(PoissonArrivals(50, 100, 0, 11), t);
  EXPECT_NE(PoissonArrivals(50, 100, 0, 12), t);
}

TEST(PercentileTest, InterpolatesLikeNumpy) {
  const std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(Percentile(v, 0.5), 2.5);    // numpy.percentile([1,2,3,4], 50)
  EXPECT_DOUBLE_EQ(Percentile(v, 0.9), 3.7);    // ... 90
  EXPECT_DOUBLE_EQ(Percentile(v, 0.99), 3.97);  // ... 99
  EXPECT_DOUBLE_EQ(Percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile(v, 1), 4);
  EXPECT_DOUBLE_EQ(Percentile({}, 0.5), 0);
  const Quantiles q = Summarize(v);
  EXPECT_DOUBLE_EQ(q.mean, 2.5);
  EXPECT_DOUBLE_EQ(q.max, 4);
}

RequestRecord Completed(double scheduled, double sent, std::vector<double> message_times,
                        std::vector<int> tokens_per_message, double done) {
  RequestRecord r;
  r.prompt_tokens = 100;
  r.max_tokens = 10;
  r.scheduled_s = scheduled;
  r.sent_s = sent;
  r.first_token_s = message_times.front();
  r.last_token_s = message_times.back();
  for (size_t i = 1; i < message_times.size(); ++i) r.itl_s.push_back(message_times[i] - message_times[i - 1]);
  r.output_tokens = std::accumulate(tokens_per_message.begin(), tokens_per_message.end(), 0);
  r.done_s = done;
  r.outcome = RequestRecord::Outcome::kCompleted;
  return r;
}

TEST(ComputeLevelMetricsTest, DefinitionsOfBenchmarkServing) {
  std::vector<RequestRecord> records;
  // TTFT 0.5, latency 0.8 (to the last token message, not the stream's
  // end), 3 tokens: TPOT (0.8 - 0.5) / 2 = 0.15; ITL 0.1 and 0.2.
  records.push_back(Completed(1.0, 1.0, {1.5, 1.6, 1.8}, {1, 1, 1}, 1.9));
  // Ended early (2 of 10 tokens): TPOT divides by its actual 1 token.
  records.push_back(Completed(2.0, 2.0, {2.2, 2.6}, {1, 1}, 2.6));
  // Two tokens in the last message: 3 tokens, TPOT (0.9 - 0.3) / 2 = 0.3,
  // one ITL sample of 0.6 (gaps are between messages).
  records.push_back(Completed(3.0, 3.0, {3.3, 3.9}, {1, 2}, 3.9));
  // One token: a TTFT, no TPOT.
  records.push_back(Completed(4.0, 4.001, {4.101}, {1}, 4.2));
  // Failed after 2 tokens: counts as an error, its tokens are throughput.
  RequestRecord failed;
  failed.sent_s = 4.5;
  failed.scheduled_s = 4.5;
  failed.first_token_s = 4.6;
  failed.last_token_s = 4.7;
  failed.output_tokens = 2;
  failed.done_s = 4.8;
  failed.outcome = RequestRecord::Outcome::kError;
  records.push_back(failed);
  // Cut at the drain limit after 5 tokens; the last thing to end (at 10 s).
  RequestRecord cut = failed;
  cut.output_tokens = 5;
  cut.done_s = 10;
  cut.outcome = RequestRecord::Outcome::kUnfinished;
  records.push_back(cut);

  const LevelMetrics m = ComputeLevelMetrics(records);
  EXPECT_EQ(m.sent, 6);
  EXPECT_EQ(m.completed, 4);
  EXPECT_EQ(m.errors, 1);
  EXPECT_EQ(m.unfinished, 1);
  EXPECT_DOUBLE_EQ(m.duration_s, 10);
  EXPECT_EQ(m.input_tokens, 400);
  EXPECT_EQ(m.output_tokens, 3 + 2 + 3 + 1 + 2 + 5);
  EXPECT_DOUBLE_EQ(m.request_throughput, 0.4);
  EXPECT_DOUBLE_EQ(m.output_throughput, 1.6);

  // TTFT: 0.5, 0.2, 0.3, 0.1.
  EXPECT_NEAR(m.ttft_s.mean, 0.275, 1e-9);
  EXPECT_NEAR(m.ttft_s.p50, 0.25, 1e-9);
  EXPECT_NEAR(m.ttft_s.max, 0.5, 1e-9);
  // TPOT: 0.15, 0.4, 0.3.
  EXPECT_NEAR(m.tpot_s.p50, 0.3, 1e-9);
  EXPECT_NEAR(m.tpot_s.max, 0.4, 1e-9);
  EXPECT_NEAR(m.tpot_s.mean, (0.15 + 0.4 + 0.3) / 3, 1e-9);
  // ITL: 0.1, 0.2, 0.4, 0.6.
  EXPECT_NEAR(m.itl_s.p50, 0.3, 1e-9);
  EXPECT_NEAR(m.itl_s.max, 0.6, 1e-9);
  // E2EL: 0.8, 0.6, 0.9, 0.1.
  EXPECT_NEAR(m.e2el_s.max, 0.9, 1e-9);
  // The one late send was 1 ms late.
  EXPECT_NEAR(m.send_lag_s.max, 0.001, 1e-9);
}

TEST(ComputeLevelMetricsTest, NothingCompleted) {
  RequestRecord r;
  r.done_s = 2;
  r.outcome = RequestRecord::Outcome::kError;
  const LevelMetrics m = ComputeLevelMetrics({r});
  EXPECT_EQ(m.errors, 1);
  EXPECT_EQ(m.completed, 0);
  EXPECT_EQ(m.request_throughput, 0);
  EXPECT_EQ(m.ttft_s.p99, 0);
}

}  // namespace
}  // namespace ossgate::worker_bench
