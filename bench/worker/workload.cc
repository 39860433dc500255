#include "bench/worker/workload.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ossgate::worker_bench {

namespace {

// Token counts are bounded well below int's range; a length beyond the
// largest context any preset serves is a typo.
constexpr int kMaxLength = 1 << 20;

double NormalCdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

}  // namespace

absl::StatusOr<LengthDistribution> LengthDistribution::Parse(const std::string& flag, const std::string& spec) {
  const std::vector<std::string> parts = absl::StrSplit(spec, ':');
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "='", spec, "': ", why,
                     " (fixed:N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA:MIN:MAX, counts in tokens)"));
  };
  auto count = [&](const std::string& s, int* out) {
    return absl::SimpleAtoi(s, out) && *out >= 1 && *out <= kMaxLength;
  };
  LengthDistribution d;
  d.spec_ = spec;
  const std::string& kind = parts[0];
  if (kind == "fixed") {
    if (parts.size() != 2) return bad("fixed takes one count");
    if (!count(parts[1], &d.min_)) return bad(absl::StrCat("'", parts[1], "' is not a count from 1 to ", kMaxLength));
    d.max_ = d.min_;
    d.kind_ = Kind::kFixed;
    return d;
  }
  if (kind == "uniform") {
    if (parts.size() != 3) return bad("uniform takes MIN:MAX");
    if (!count(parts[1], &d.min_) || !count(parts[2], &d.max_)) {
      return bad(absl::StrCat("MIN and MAX must be counts from 1 to ", kMaxLength));
    }
    if (d.min_ > d.max_) return bad("MIN > MAX");
    d.kind_ = Kind::kUniform;
    return d;
  }
  if (kind == "lognormal") {
    if (parts.size() != 5) return bad("lognormal takes MEDIAN:SIGMA:MIN:MAX");
    if (!absl::SimpleAtod(parts[1], &d.median_) || !(d.median_ > 0)) return bad("MEDIAN must be > 0");
    if (!absl::SimpleAtod(parts[2], &d.sigma_) || !(d.sigma_ > 0) || d.sigma_ > 10) {
      return bad("SIGMA must be in (0, 10]");
    }
    if (!count(parts[3], &d.min_) || !count(parts[4], &d.max_)) {
      return bad(absl::StrCat("MIN and MAX must be counts from 1 to ", kMaxLength));
    }
    if (d.min_ > d.max_) return bad("MIN > MAX");
    // Draws are redrawn until they fall inside the bounds; refuse bounds that
    // would make that a long loop (and the stated median meaningless).
    const double mu = std::log(d.median_);
    const double kept = NormalCdf((std::log(d.max_ + 0.5) - mu) / d.sigma_) -
                        NormalCdf((std::log(std::max(0.5, d.min_ - 0.5)) - mu) / d.sigma_);
    if (kept < 0.01) {
      return bad(absl::StrCat("[MIN, MAX] keeps only ", kept * 100, "% of the distribution; move the median inside"));
    }
    d.kind_ = Kind::kLognormal;
    return d;
  }
  return bad(absl::StrCat("unknown kind '", kind, "'"));
}

int LengthDistribution::Sample(std::mt19937_64& rng) const {
  switch (kind_) {
    case Kind::kFixed:
      return min_;
    case Kind::kUniform:
      return std::uniform_int_distribution<int>(min_, max_)(rng);
    case Kind::kLognormal: {
      std::lognormal_distribution<double> dist(std::log(median_), sigma_);
      for (;;) {  // Parse guarantees at least 1% acceptance
        const double x = std::round(dist(rng));
        if (x >= min_ && x <= max_) return static_cast<int>(x);
      }
    }
  }
  return min_;
}

std::vector<double> PoissonArrivals(double rate, double duration_s, int max_count, uint64_t seed) {
  std::vector<double> out;
  if (!(rate > 0) || (duration_s <= 0 && max_count <= 0)) return out;
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  for (double t = gap(rng); (duration_s <= 0 || t < duration_s); t += gap(rng)) {
    if (max_count > 0 && static_cast<int>(out.size()) >= max_count) break;
    out.push_back(t);
  }
  if (out.empty()) out.push_back(0);  // a level sends at least one request
  return out;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = std::clamp(p, 0.0, 1.0) * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (rank - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

Quantiles Summarize(std::vector<double> v) {
  Quantiles q;
  if (v.empty()) return q;
  std::sort(v.begin(), v.end());
  q.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  q.p50 = Percentile(v, 0.50);
  q.p90 = Percentile(v, 0.90);
  q.p99 = Percentile(v, 0.99);
  q.max = v.back();
  return q;
}

LevelMetrics ComputeLevelMetrics(const std::vector<RequestRecord>& records) {
  LevelMetrics m;
  std::vector<double> ttft, tpot, itl, e2el, lag;
  for (const RequestRecord& r : records) {
    ++m.sent;
    m.duration_s = std::max(m.duration_s, r.done_s);
    m.output_tokens += r.output_tokens;
    lag.push_back(r.sent_s - r.scheduled_s);
    switch (r.outcome) {
      case RequestRecord::Outcome::kCompleted: {
        ++m.completed;
        m.input_tokens += r.prompt_tokens;
        const double first = r.first_token_s - r.sent_s;
        const double latency = r.last_token_s - r.sent_s;
        ttft.push_back(first);
        e2el.push_back(latency);
        if (r.output_tokens > 1) tpot.push_back((latency - first) / (r.output_tokens - 1));
        itl.insert(itl.end(), r.itl_s.begin(), r.itl_s.end());
        break;
      }
      case RequestRecord::Outcome::kError:
      case RequestRecord::Outcome::kPending:  // a bug in the caller; never counted as success
        ++m.errors;
        break;
      case RequestRecord::Outcome::kUnfinished:
        ++m.unfinished;
        break;
    }
  }
  if (m.duration_s > 0) {
    m.request_throughput = m.completed / m.duration_s;
    m.output_throughput = static_cast<double>(m.output_tokens) / m.duration_s;
  }
  m.ttft_s = Summarize(std::move(ttft));
  m.tpot_s = Summarize(std::move(tpot));
  m.itl_s = Summarize(std::move(itl));
  m.e2el_s = Summarize(std::move(e2el));
  m.send_lag_s = Summarize(std::move(lag));
  return m;
}

}  // namespace ossgate::worker_bench
