// The workload and the metrics of the worker benchmarks, apart from gRPC so
// tests can check them directly (serving_bench uses all of it,
// worker_load_bench the percentiles): request lengths drawn from stated distributions,
// Poisson arrival times, and per-level metrics defined as in vLLM's
// benchmarks/benchmark_serving.py (calculate_metrics and the streaming
// request functions it uses):
//   TTFT     first token message received - request sent
//   latency  last token message received - request sent (E2EL)
//   TPOT     (latency - TTFT) / (output tokens - 1), per request with more
//            than one output token; a request that ended early counts the
//            tokens it actually got
//   ITL      gap between consecutive token messages of one stream
//   request throughput  completed requests / level duration
//   output throughput   output tokens received / level duration
// Percentiles interpolate linearly between ranks (numpy.percentile).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ossgate::worker_bench {

// A distribution of token counts, parsed from
//   fixed:N                          always N
//   uniform:MIN:MAX                  integers in [MIN, MAX], equally likely
//   lognormal:MEDIAN:SIGMA:MIN:MAX   exp(N(ln MEDIAN, SIGMA^2)) rounded, truncated
//                                    to [MIN, MAX] (redrawn, not clamped, so the
//                                    bounds get no spikes)
// Immutable; Sample is const and deterministic given the generator.
class LengthDistribution {
 public:
  // InvalidArgument naming `flag` and what is wrong (unknown kind, counts
  // < 1, MIN > MAX, SIGMA <= 0, bounds that keep under 1% of the lognormal).
  static absl::StatusOr<LengthDistribution> Parse(const std::string& flag, const std::string& spec);

  int Sample(std::mt19937_64& rng) const;
  int min() const { return min_; }
  int max() const { return max_; }
  const std::string& spec() const { return spec_; }

 private:
  enum class Kind { kFixed, kUniform, kLognormal };
  Kind kind_ = Kind::kFixed;
  int min_ = 1, max_ = 1;
  double median_ = 1, sigma_ = 0;
  std::string spec_;
};

// Arrival times (seconds from the level's start) of a Poisson process of
// `rate` requests/s: exponential gaps, the first request at the first gap.
// Arrivals stop at `duration_s` (<= 0: no time limit) or after `max_count`
// requests (<= 0: no count limit); at least one limit must be set.
std::vector<double> PoissonArrivals(double rate, double duration_s, int max_count, uint64_t seed);

// What happened to one request; times in seconds from the level's start.
struct RequestRecord {
  enum class Outcome {
    kPending,     // not finished (never in a computed level)
    kCompleted,   // the stream ended OK with at least one token
    kError,       // the RPC failed, or ended OK without a token
    kUnfinished,  // still running at the level's drain limit: cancelled by the benchmark
  };
  int prompt_tokens = 0;
  int max_tokens = 0;
  double scheduled_s = 0;  // Poisson arrival time; the send time for closed-loop requests
  double sent_s = 0;
  double first_token_s = -1;  // -1: no token received
  double last_token_s = -1;
  double done_s = 0;  // the stream's end (OnDone)
  int output_tokens = 0;
  std::vector<double> itl_s;  // gaps between consecutive token messages
  Outcome outcome = Outcome::kPending;
  std::string error;
};

struct Quantiles {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};

struct LevelMetrics {
  int sent = 0;
  int completed = 0;
  int errors = 0;
  int unfinished = 0;
  double duration_s = 0;      // level start to the end of its last request
  int64_t input_tokens = 0;   // prompts of completed requests
  int64_t output_tokens = 0;  // every token received, including unfinished requests'
  double request_throughput = 0;
  double output_throughput = 0;
  Quantiles ttft_s, tpot_s, itl_s, e2el_s;  // completed requests only, as vLLM
  Quantiles send_lag_s;                     // sent - scheduled: how late the benchmark sent (0 for closed loop)
};

// Metrics of one level's finished records (none kPending).
LevelMetrics ComputeLevelMetrics(const std::vector<RequestRecord>& records);

// The p-th quantile (p in [0, 1]) with linear interpolation between the
// closest ranks, as numpy.percentile (what vLLM's benchmark_serving
// reports); 0 for no samples.
double Percentile(std::vector<double> samples, double p);

// Mean, p50, p90, p99, max (zeros for no samples).
Quantiles Summarize(std::vector<double> samples);

}  // namespace ossgate::worker_bench
