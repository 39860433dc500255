// Serving benchmark of the inference worker in the shape of vLLM's
// benchmarks/benchmark_serving.py (not a test: run by hand or by
// tools/gpu_run.sh, results in docs/perf.md). Starts the real
// provenance_service and inference_worker binaries on loopback with mutual
// TLS, registers the model with provctl and lets the worker load it through
// the provenance gate (bench_services.h), then sends streaming Generate
// requests:
//   - for each --rates value, requests arrive as a Poisson process of that
//     rate (exponential gaps; an arrival never waits for earlier requests)
//     for --duration_s seconds or --num_requests requests, whichever ends
//     first;
//   - then, with --closed_loop_streams=N, a closed-loop maximum: N requests
//     in flight, each finished one replaced at once (vLLM's
//     --request-rate=inf --max-concurrency=N), for the same limits.
// Prompt and output lengths are drawn from --prompt_len and --output_len
// (workload.h); the same seed gives every level the same sequence of
// lengths. Prompts are token ids, sampled at --temperature with ignore_eos,
// so outputs run to their drawn length. Each level waits for its requests
// to finish, at most --drain_s after its last arrival; what still runs then
// is cancelled and counted as unfinished.
//
// The client uses gRPC's callback API: one reactor per request, a dispatcher
// thread that only sleeps and starts calls, streams spread over
// --connections TLS connections. The report's "send lag" (actual send minus
// scheduled arrival) shows whether the benchmark kept up.
//
// Metrics (workload.h has the definitions, which follow vLLM's): request and
// output-token throughput, TTFT, TPOT, ITL at p50/p90/p99, errors and
// unfinished requests per level, as a markdown table on stdout and in --out,
// and as JSON in --json_out.
//
//   serving_bench [--backend=cpu] [--preset=small | --model=FILE] [--vocab=tiny]
//                 [--rates=2,5] [--closed_loop_streams=8] [--duration_s=20] [--num_requests=0]
//                 [--prompt_len=lognormal:512:0.8:64:4096] [--output_len=lognormal:256:0.8:32:1024]
//                 [--seed=0] [--max_sequences=64] [--max_context=0] [--step_token_budget=512]
//                 [--out=report.md] [--json_out=report.json] [--source_dir=CHECKOUT] [--bin_dir=DIR]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/worker/bench_services.h"
#include "bench/worker/workload.h"
#include "grpcpp/grpcpp.h"
#include "ossgate/inference/v1/inference.grpc.pb.h"

ABSL_FLAG(std::string, backend, "cpu", "worker --backend (cpu, cuda, auto)");
ABSL_FLAG(std::string, preset, "small", "model dimensions of the random model (tools/make_model presets)");
ABSL_FLAG(std::string, model, "", "serve this GGUF file instead of a random model of --preset");
ABSL_FLAG(std::string, vocab, "tiny",
          "vocabulary of the random model (tools/make_model names: tiny, o200k, placeholder:N, or a vocab file)");
ABSL_FLAG(std::vector<std::string>, rates, std::vector<std::string>({"2", "5"}),
          "Poisson arrival rates in requests/s, one level each (empty: none)");
ABSL_FLAG(int, closed_loop_streams, 8, "a last, closed-loop level with this many requests in flight (0: none)");
ABSL_FLAG(double, duration_s, 20, "seconds of arrivals per level (0: no time limit; then --num_requests)");
ABSL_FLAG(int, num_requests, 0, "requests per level (0: no count limit; then --duration_s)");
ABSL_FLAG(double, drain_s, 60,
          "seconds a level waits after its last arrival for running requests; the rest are cancelled (unfinished)");
ABSL_FLAG(std::string, prompt_len, "lognormal:512:0.8:64:4096",
          "prompt tokens: fixed:N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA:MIN:MAX");
ABSL_FLAG(std::string, output_len, "lognormal:256:0.8:32:1024",
          "output tokens (max_tokens with ignore_eos), same forms");
ABSL_FLAG(double, temperature, 1.0, "sampling temperature of every request");
ABSL_FLAG(uint64_t, seed, 0, "seed of the lengths, prompts, arrivals and sampling");
ABSL_FLAG(int, connections, 4, "TLS connections the requests are spread over");
ABSL_FLAG(int, max_sequences, 64, "worker --max_sequences");
ABSL_FLAG(int, max_context, 0, "worker --max_context (0: the largest prompt + the largest output)");
ABSL_FLAG(int, step_token_budget, 512, "worker --step_token_budget");
ABSL_FLAG(int, max_waiting, 4096, "worker --max_waiting (large: overload queues, as in vLLM, instead of failing)");
ABSL_FLAG(int, threads, 0, "worker --threads (CPU backend; 0 = all cores)");
ABSL_FLAG(std::vector<std::string>, worker_args, std::vector<std::string>(),
          "more worker flags, comma-separated (e.g. --kv_blocks=4096)");
ABSL_FLAG(std::string, out, "", "write the markdown report here too");
ABSL_FLAG(std::string, json_out, "", "write the results as JSON here");
ABSL_FLAG(std::string, bin_dir, "",
          "directory with provenance_service, provctl and inference_worker (default: this build's binaries)");
ABSL_FLAG(std::string, source_dir, "",
          "the ossgate checkout (for tools/certs/make_dev_pki.sh); default $OSSGATE_SOURCE_DIR, else the working "
          "directory");

namespace ossgate::worker_bench {
namespace {

namespace pb = ::ossgate::inference::v1;
using Clock = std::chrono::steady_clock;

// Everything validated before the (slow) services start.
struct Config {
  std::vector<double> rates;
  int closed_loop_streams = 0;
  double duration_s = 0;
  int num_requests = 0;
  double drain_s = 0;
  LengthDistribution prompt_len, output_len;
  float temperature = 1;
  uint64_t seed = 0;
  int connections = 1;
  std::string source_dir;
  std::vector<std::string> worker_flags;
};

absl::StatusOr<Config> ParseConfig() {
  Config c;
  for (const std::string& r : absl::GetFlag(FLAGS_rates)) {
    double rate = 0;
    if (!absl::SimpleAtod(r, &rate) || !(rate > 0) || rate > 1e6) {
      return absl::InvalidArgumentError(absl::StrCat("--rates: '", r, "' is not a rate in requests/s (> 0)"));
    }
    c.rates.push_back(rate);
  }
  c.closed_loop_streams = absl::GetFlag(FLAGS_closed_loop_streams);
  if (c.closed_loop_streams < 0) return absl::InvalidArgumentError("--closed_loop_streams must be >= 0");
  if (c.rates.empty() && c.closed_loop_streams == 0) {
    return absl::InvalidArgumentError("nothing to run: give --rates and/or --closed_loop_streams");
  }
  c.duration_s = absl::GetFlag(FLAGS_duration_s);
  c.num_requests = absl::GetFlag(FLAGS_num_requests);
  if (c.duration_s < 0 || c.num_requests < 0) {
    return absl::InvalidArgumentError("--duration_s and --num_requests must be >= 0");
  }
  if (c.duration_s == 0 && c.num_requests == 0) {
    return absl::InvalidArgumentError("a level needs an end: set --duration_s and/or --num_requests");
  }
  c.drain_s = absl::GetFlag(FLAGS_drain_s);
  if (!(c.drain_s >= 0)) return absl::InvalidArgumentError("--drain_s must be >= 0");
  auto prompt = LengthDistribution::Parse("prompt_len", absl::GetFlag(FLAGS_prompt_len));
  if (!prompt.ok()) return prompt.status();
  auto output = LengthDistribution::Parse("output_len", absl::GetFlag(FLAGS_output_len));
  if (!output.ok()) return output.status();
  c.prompt_len = *prompt;
  c.output_len = *output;
  c.temperature = static_cast<float>(absl::GetFlag(FLAGS_temperature));
  if (!(c.temperature >= 0)) return absl::InvalidArgumentError("--temperature must be >= 0");
  c.seed = absl::GetFlag(FLAGS_seed);
  c.connections = absl::GetFlag(FLAGS_connections);
  if (c.connections < 1 || c.connections > 64) return absl::InvalidArgumentError("--connections must be 1..64");

  const int max_sequences = absl::GetFlag(FLAGS_max_sequences);
  const int max_waiting = absl::GetFlag(FLAGS_max_waiting);
  const int step_token_budget = absl::GetFlag(FLAGS_step_token_budget);
  int max_context = absl::GetFlag(FLAGS_max_context);
  const int needed = c.prompt_len.max() + c.output_len.max();
  if (max_context == 0) max_context = needed;
  if (max_sequences < 1 || max_waiting < 0 || step_token_budget < 1 || max_context < 1) {
    return absl::InvalidArgumentError(
        "--max_sequences, --step_token_budget and --max_context must be >= 1, --max_waiting >= 0");
  }
  if (needed > max_context) {
    return absl::InvalidArgumentError(absl::StrCat("--max_context=", max_context,
                                                   " is below the largest prompt + output (", needed,
                                                   " tokens from --prompt_len and --output_len)"));
  }
  if (c.closed_loop_streams > max_sequences + max_waiting) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--closed_loop_streams=", c.closed_loop_streams,
        " exceeds what the worker admits (--max_sequences + --max_waiting = ", max_sequences + max_waiting, ")"));
  }
  auto source_dir = ResolveSourceDir(absl::GetFlag(FLAGS_source_dir));
  if (!source_dir.ok()) return source_dir.status();
  c.source_dir = *source_dir;
  c.worker_flags = {absl::StrCat("--backend=", absl::GetFlag(FLAGS_backend)),
                    absl::StrCat("--max_sequences=", max_sequences),
                    absl::StrCat("--max_context=", max_context),
                    absl::StrCat("--max_waiting=", max_waiting),
                    absl::StrCat("--step_token_budget=", step_token_budget),
                    absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads))};
  for (const std::string& f : absl::GetFlag(FLAGS_worker_args)) {
    if (f.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("--worker_args: '", f, "' is not a flag (--name=value)"));
    }
    c.worker_flags.push_back(f);
  }
  return c;
}

// Requests of one level, in order: lengths from one generator seeded by
// --seed (so every level gets the same sequence), prompt tokens drawn from
// the pool, a per-request sampling seed.
class RequestMaker {
 public:
  RequestMaker(const Config& c, const std::vector<int32_t>& pool) : c_(c), pool_(pool), lengths_(c.seed) {}

  pb::GenerateRequest Next(RequestRecord* record) {
    const int prompt_len = c_.prompt_len.Sample(lengths_);
    const int output_len = c_.output_len.Sample(lengths_);
    std::mt19937_64 tokens(c_.seed * 0x9E3779B97F4A7C15ull + index_);
    std::uniform_int_distribution<size_t> pick(0, pool_.size() - 1);
    pb::GenerateRequest req;
    auto* ids = req.mutable_token_ids()->mutable_ids();
    ids->Reserve(prompt_len);
    for (int i = 0; i < prompt_len; ++i) ids->Add(pool_[pick(tokens)]);
    req.set_max_tokens(output_len);
    req.set_ignore_eos(true);
    req.mutable_sampling()->set_temperature(c_.temperature);
    req.mutable_sampling()->set_seed(c_.seed * 1000003ull + index_);
    ++index_;
    record->prompt_tokens = prompt_len;
    record->max_tokens = output_len;
    return req;
  }

 private:
  const Config& c_;
  const std::vector<int32_t>& pool_;
  std::mt19937_64 lengths_;
  uint64_t index_ = 0;
};

class Level;

// One streaming Generate: records when each token message arrives. Owned
// by its Level, which keeps it until every call of the level has ended.
class StreamCall final : public grpc::ClientReadReactor<pb::GenerateResponse> {
 public:
  StreamCall(Level* level, pb::GenerateRequest request, RequestRecord record)
      : level_(level), request_(std::move(request)), record_(std::move(record)) {}

  void Start(pb::InferenceService::Stub* stub);
  // Cancels the call (drain limit reached); harmless after it ended.
  void Cut() {
    cut_.store(true);
    ctx_.TryCancel();
  }
  // Valid once the level saw this call end.
  const RequestRecord& record() const { return record_; }

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  Level* const level_;
  grpc::ClientContext ctx_;
  const pb::GenerateRequest request_;
  pb::GenerateResponse response_;
  // Written only by this call's reactions (which gRPC serializes), read by
  // the level after OnDone (ordered by the level's mutex).
  RequestRecord record_;
  pb::FinishReason finish_reason_ = pb::FINISH_REASON_UNSPECIFIED;
  std::atomic<bool> cut_{false};
};

// The calls of one level, the count in flight, and the level's clock.
class Level {
 public:
  explicit Level(const std::vector<std::unique_ptr<pb::InferenceService::Stub>>& stubs)
      : stubs_(stubs), t0_(Clock::now()) {}

  double Now() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  Clock::time_point At(double s) const {
    return t0_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  // Starts a call; never blocks on the server.
  void Launch(pb::GenerateRequest request, RequestRecord record) {
    StreamCall* call;
    size_t n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back(std::make_unique<StreamCall>(this, std::move(request), std::move(record)));
      call = calls_.back().get();
      n = calls_.size();
      ++in_flight_;
    }
    call->Start(stubs_[n % stubs_.size()].get());
  }

  // Waits until fewer than `limit` calls are in flight (true) or `until`
  // passes (false).
  bool WaitForSlot(int limit, Clock::time_point until) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, until, [&] { return in_flight_ < limit; });
  }

  // Waits for every call to end; at `until` cancels those still running and
  // waits for them too. False if cancelled calls did not end (then the
  // calls cannot be freed safely).
  bool Drain(Clock::time_point until) {
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_until(lock, until, [&] { return in_flight_ == 0; })) return true;
    std::vector<StreamCall*> running;
    for (auto& c : calls_) running.push_back(c.get());
    lock.unlock();
    // Outside the lock: a cancelled call may end on this thread.
    for (StreamCall* c : running) c->Cut();
    lock.lock();
    return cv_.wait_for(lock, std::chrono::seconds(60), [&] { return in_flight_ == 0; });
  }

  void Ended() {
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    cv_.notify_all();
  }

  std::vector<RequestRecord> Records() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<RequestRecord> out;
    for (const auto& c : calls_) out.push_back(c->record());
    return out;
  }

 private:
  const std::vector<std::unique_ptr<pb::InferenceService::Stub>>& stubs_;
  const Clock::time_point t0_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<StreamCall>> calls_;  // guarded by mu_
  int in_flight_ = 0;                               // guarded by mu_
};

void StreamCall::Start(pb::InferenceService::Stub* stub) {
  record_.sent_s = level_->Now();
  stub->async()->Generate(&ctx_, &request_, this);
  StartRead(&response_);
  StartCall();
}

void StreamCall::OnReadDone(bool ok) {
  if (!ok) return;  // the stream is over; OnDone follows
  if (const int n = response_.token_ids_size(); n > 0) {
    const double now = level_->Now();
    if (record_.first_token_s < 0) {
      record_.first_token_s = now;
    } else {
      record_.itl_s.push_back(now - record_.last_token_s);
    }
    record_.last_token_s = now;
    record_.output_tokens += n;
  }
  if (response_.has_final()) {
    finish_reason_ = response_.final().finish_reason();
    if (finish_reason_ == pb::FINISH_REASON_ERROR) record_.error = response_.final().error();
  }
  StartRead(&response_);
}

void StreamCall::OnDone(const grpc::Status& status) {
  record_.done_s = level_->Now();
  using Outcome = RequestRecord::Outcome;
  const bool ended_badly = finish_reason_ == pb::FINISH_REASON_ERROR || finish_reason_ == pb::FINISH_REASON_CANCELLED;
  if (status.ok() && !ended_badly && record_.output_tokens > 0) {
    record_.outcome = Outcome::kCompleted;
  } else if (cut_.load()) {
    record_.outcome = Outcome::kUnfinished;
  } else {
    record_.outcome = Outcome::kError;
    if (!status.ok()) {
      record_.error = absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())), ": ",
                                   status.error_message());
    } else if (ended_badly) {
      record_.error = absl::StrCat("finished with ", pb::FinishReason_Name(finish_reason_), " ", record_.error);
    } else {
      record_.error = "the stream ended without a token";
    }
  }
  level_->Ended();
}

struct LevelResult {
  std::string label;
  double rate = 0;  // 0 for the closed loop
  int streams = 0;  // closed loop only
  LevelMetrics metrics;
  EngineSteps steps;
};

void ReportErrors(const std::string& label, const std::vector<RequestRecord>& records) {
  int shown = 0, errors = 0;
  for (const RequestRecord& r : records) {
    if (r.outcome != RequestRecord::Outcome::kError) continue;
    if (++errors <= 3) {
      std::fprintf(stderr, "serving_bench: %s: request failed: %s\n", label.c_str(), r.error.c_str());
      ++shown;
    }
  }
  if (errors > shown) std::fprintf(stderr, "serving_bench: %s: %d more failed\n", label.c_str(), errors - shown);
}

// One level: Poisson arrivals at `rate`, or (rate 0) a closed loop of
// `streams`.
void RunLevel(const Config& c, const std::vector<int32_t>& pool,
              const std::vector<std::unique_ptr<pb::InferenceService::Stub>>& stubs, double rate, int streams,
              uint64_t level_index, LevelResult* out) {
  RequestMaker maker(c, pool);
  std::vector<double> arrivals;
  std::vector<std::pair<pb::GenerateRequest, RequestRecord>> prepared;
  if (rate > 0) {
    // Built before the clock starts, so the dispatcher only sleeps and sends.
    arrivals = PoissonArrivals(rate, c.duration_s, c.num_requests, c.seed * 7919 + level_index + 1);
    for (double t : arrivals) {
      RequestRecord r;
      r.scheduled_s = t;
      pb::GenerateRequest req = maker.Next(&r);
      prepared.emplace_back(std::move(req), std::move(r));
    }
  }
  Level level(stubs);
  double last_arrival = 0;
  if (rate > 0) {
    for (auto& [req, rec] : prepared) {
      std::this_thread::sleep_until(level.At(rec.scheduled_s));
      last_arrival = rec.scheduled_s;
      level.Launch(std::move(req), std::move(rec));
    }
  } else {
    const Clock::time_point end = level.At(c.duration_s > 0 ? c.duration_s : 1e9);
    for (int i = 0; c.num_requests == 0 || i < c.num_requests; ++i) {
      if (!level.WaitForSlot(streams, end) || Clock::now() >= end) break;
      RequestRecord r;
      pb::GenerateRequest req = maker.Next(&r);
      r.scheduled_s = level.Now();
      last_arrival = r.scheduled_s;
      level.Launch(std::move(req), std::move(r));
    }
  }
  if (!level.Drain(level.At(last_arrival + c.drain_s))) {
    // Calls that never ended still reference the level, which therefore
    // cannot be destroyed: leave at once (the reports of earlier levels are
    // written; the worker dies with this process).
    std::fprintf(stderr, "serving_bench: %s: cancelled streams did not end within 60 s\n", out->label.c_str());
    std::fflush(nullptr);
    std::_Exit(1);
  }
  const std::vector<RequestRecord> records = level.Records();
  ReportErrors(out->label, records);
  out->metrics = ComputeLevelMetrics(records);
}

// One short request through the whole path before any level, so a broken
// setup fails with its reason instead of a table of errors.
absl::Status WarmUp(pb::InferenceService::Stub* stub, const std::vector<int32_t>& pool, int prompt_tokens,
                    int output_tokens) {
  pb::GenerateRequest req;
  for (int i = 0; i < prompt_tokens; ++i) req.mutable_token_ids()->add_ids(pool[i % pool.size()]);
  req.set_max_tokens(output_tokens);
  req.set_ignore_eos(true);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  auto reader = stub->Generate(&ctx, req);
  pb::GenerateResponse m;
  int tokens = 0;
  while (reader->Read(&m)) tokens += m.token_ids_size();
  const grpc::Status s = reader->Finish();
  if (!s.ok()) return absl::UnavailableError(absl::StrCat("warm-up request failed: ", s.error_message()));
  if (tokens != output_tokens) {
    return absl::InternalError(absl::StrCat("warm-up request got ", tokens, " tokens, not ", output_tokens));
  }
  return absl::OkStatus();
}

std::string Ms(double s) { return absl::StrFormat("%.1f", s * 1e3); }
std::string MsFine(double s) { return absl::StrFormat("%.2f", s * 1e3); }

std::string MarkdownTable(const std::vector<LevelResult>& levels) {
  std::string t =
      "| load | sent | done | errors | unfinished | duration s | req/s | output tok/s | TTFT p50 ms | TTFT p90 ms | "
      "TTFT p99 ms | TPOT p50 ms | TPOT p90 ms | TPOT p99 ms | ITL p50 ms | ITL p90 ms | ITL p99 ms | send lag max ms "
      "|\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const LevelResult& l : levels) {
    const LevelMetrics& m = l.metrics;
    absl::StrAppend(&t, "| ", l.label, " | ", m.sent, " | ", m.completed, " | ", m.errors, " | ", m.unfinished, " | ",
                    absl::StrFormat("%.1f", m.duration_s), " | ", absl::StrFormat("%.2f", m.request_throughput), " | ",
                    absl::StrFormat("%.0f", m.output_throughput), " | ", Ms(m.ttft_s.p50), " | ", Ms(m.ttft_s.p90),
                    " | ", Ms(m.ttft_s.p99), " | ", MsFine(m.tpot_s.p50), " | ", MsFine(m.tpot_s.p90), " | ",
                    MsFine(m.tpot_s.p99), " | ", MsFine(m.itl_s.p50), " | ", MsFine(m.itl_s.p90), " | ",
                    MsFine(m.itl_s.p99), " | ", MsFine(m.send_lag_s.max), " |\n");
  }
  return t;
}

// Where the worker's time went, per level: its engine steps by kind (mean
// backend time), the engine's host time between back-to-back steps, and the
// share of prompt tokens in what the model ran.
std::string StepsTable(const std::vector<LevelResult>& levels) {
  std::string t = absl::StrCat("| load | ", kStepsHeader, "\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const LevelResult& l : levels) absl::StrAppend(&t, "| ", l.label, " | ", StepsCells(l.steps), "\n");
  return t;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    const unsigned char u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      absl::StrAppend(&out, absl::StrFormat("\\u%04x", u));
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string JsonQuantiles(const Quantiles& q) {
  return absl::StrFormat("{\"mean\": %.4f, \"p50\": %.4f, \"p90\": %.4f, \"p99\": %.4f, \"max\": %.4f}", q.mean * 1e3,
                         q.p50 * 1e3, q.p90 * 1e3, q.p99 * 1e3, q.max * 1e3);
}

std::string Json(const std::string& model, const std::string& workload, const std::vector<LevelResult>& levels) {
  std::string j = absl::StrCat("{\n  \"model\": ", JsonString(model), ",\n  \"workload\": ", JsonString(workload),
                               ",\n  \"levels\": [");
  for (size_t i = 0; i < levels.size(); ++i) {
    const LevelResult& l = levels[i];
    const LevelMetrics& m = l.metrics;
    absl::StrAppend(&j, i ? "," : "", "\n    {\"load\": ", JsonString(l.label),
                    ", \"rate\": ", l.rate > 0 ? absl::StrFormat("%g", l.rate) : "null",
                    ", \"streams\": ", l.streams > 0 ? absl::StrCat(l.streams) : "null", ", \"sent\": ", m.sent,
                    ", \"completed\": ", m.completed, ", \"errors\": ", m.errors, ", \"unfinished\": ", m.unfinished,
                    absl::StrFormat(", \"duration_s\": %.6f", m.duration_s), ", \"input_tokens\": ", m.input_tokens,
                    ", \"output_tokens\": ", m.output_tokens,
                    absl::StrFormat(", \"request_throughput\": %.4f, \"output_throughput\": %.2f", m.request_throughput,
                                    m.output_throughput),
                    ", \"ttft_ms\": ", JsonQuantiles(m.ttft_s), ", \"tpot_ms\": ", JsonQuantiles(m.tpot_s),
                    ", \"itl_ms\": ", JsonQuantiles(m.itl_s), ", \"e2el_ms\": ", JsonQuantiles(m.e2el_s),
                    ", \"send_lag_ms\": ", JsonQuantiles(m.send_lag_s));
    const EngineSteps& e = l.steps;
    if (e.ok) {
      absl::StrAppend(&j, ", \"engine_steps\": {");
      for (int k = 0; k < 3; ++k) {
        absl::StrAppend(&j, absl::StrFormat("\"%s\": {\"count\": %.0f, \"seconds\": %.6f}, ", kStepKinds[k],
                                            e.count[k], e.seconds[k]));
      }
      absl::StrAppend(&j, absl::StrFormat("\"host\": {\"count\": %.0f, \"seconds\": %.6f}, \"prefill_tokens\": %.0f, "
                                          "\"decode_tokens\": %.0f}",
                                          e.host_count, e.host_seconds, e.prefill_tokens, e.decode_tokens));
    }
    absl::StrAppend(&j, "}");
  }
  return j + "\n  ]\n}\n";
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

int Fail(const absl::Status& s, int code) {
  std::fprintf(stderr, "serving_bench: %s\n", s.ToString().c_str());
  return code;
}

int Run() {
  auto config = ParseConfig();
  if (!config.ok()) return Fail(config.status(), 2);
  const Config& c = *config;
  const std::string out_path = absl::GetFlag(FLAGS_out), json_path = absl::GetFlag(FLAGS_json_out);
  // Fail on an unwritable report before spending minutes on the run.
  for (const std::string& p : {out_path, json_path}) {
    if (p.empty()) continue;
    if (auto s = WriteText(p, ""); !s.ok()) return Fail(s, 2);
  }

  ServiceOptions so;
  so.source_dir = c.source_dir;
  so.bin_dir = absl::GetFlag(FLAGS_bin_dir);
  so.model_file = absl::GetFlag(FLAGS_model);
  so.preset = absl::GetFlag(FLAGS_preset);
  so.vocab = absl::GetFlag(FLAGS_vocab);
  so.worker_flags = c.worker_flags;
  so.temp_prefix = "serving_bench";
  auto services = BenchServices::Start(so);
  if (!services.ok()) return Fail(services.status(), 1);
  const pb::ModelInfo& info = (*services)->info();
  if (static_cast<uint32_t>(c.prompt_len.max() + c.output_len.max()) > info.context_length()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("the worker serves ", info.context_length(),
                                                        " tokens per sequence, fewer than the largest prompt + "
                                                        "output; lower --prompt_len/--output_len")),
                2);
  }
  const std::vector<int32_t> pool = PromptTokenPool((*services)->stub(), info.vocab_size());
  if (auto s = WarmUp((*services)->stub(), pool, std::min(16, c.prompt_len.max()), std::min(4, c.output_len.max()));
      !s.ok()) {
    std::fprintf(stderr, "worker log:\n%s\n", (*services)->WorkerLog().c_str());
    return Fail(s, 1);
  }
  std::vector<std::unique_ptr<pb::InferenceService::Stub>> stubs;
  for (int i = 0; i < c.connections; ++i) stubs.push_back(pb::InferenceService::NewStub((*services)->NewChannel()));

  const std::string model = (*services)->Describe();
  const std::string limits =
      absl::StrCat(c.duration_s > 0 ? absl::StrFormat("%g s of arrivals", c.duration_s) : "",
                   c.duration_s > 0 && c.num_requests > 0 ? " or " : "",
                   c.num_requests > 0 ? absl::StrCat(c.num_requests, " requests") : "",
                   absl::StrFormat(" per level (whichever ends first), then up to %g s to finish", c.drain_s));
  const std::string workload = absl::StrFormat(
      "prompts %s tokens (random ids of ordinary text), outputs %s tokens (ignore_eos), temperature %g, seed %d; %s; "
      "%d TLS connections",
      c.prompt_len.spec(), c.output_len.spec(), c.temperature, c.seed, limits, c.connections);
  std::printf("%s\nworker flags: %s\n%s\n\n", model.c_str(), absl::StrJoin(c.worker_flags, " ").c_str(),
              workload.c_str());
  std::fflush(stdout);

  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::vector<LevelResult> levels;
  // Rewritten after every level, so a run stopped by a time limit keeps the
  // levels it finished.
  auto write_reports = [&]() -> absl::Status {
    if (!out_path.empty()) {
      const std::string report =
          absl::StrCat("# Serving benchmark (Poisson arrivals)\n\n- date: ", date, "\n- ", model, "\n- worker flags: `",
                       absl::StrJoin(c.worker_flags, " "), "`\n- workload: ", workload, "\n\n", MarkdownTable(levels),
                       "\nEngine steps (the worker's /metrics over each level):\n\n", StepsTable(levels));
      if (auto s = WriteText(out_path, report); !s.ok()) return s;
    }
    if (!json_path.empty()) return WriteText(json_path, Json(model, workload, levels));
    return absl::OkStatus();
  };
  uint64_t index = 0;
  auto run = [&](double rate, int streams, std::string label) -> absl::Status {
    LevelResult r;
    r.label = std::move(label);
    r.rate = rate;
    r.streams = streams;
    std::fprintf(stderr, "serving_bench: level %s\n", r.label.c_str());
    const EngineSteps before = (*services)->Steps();
    RunLevel(c, pool, stubs, rate, streams, index++, &r);
    r.steps = StepsBetween(before, (*services)->Steps());
    const LevelMetrics& m = r.metrics;
    std::fprintf(stderr, "serving_bench: %s: %d sent, %d done, %d errors, %d unfinished, %.0f output tok/s\n",
                 r.label.c_str(), m.sent, m.completed, m.errors, m.unfinished, m.output_throughput);
    levels.push_back(std::move(r));
    return write_reports();
  };
  for (double rate : c.rates) {
    if (auto s = run(rate, 0, absl::StrFormat("Poisson %g req/s", rate)); !s.ok()) return Fail(s, 1);
  }
  if (c.closed_loop_streams > 0) {
    const int n = c.closed_loop_streams;
    if (auto s = run(0, n, absl::StrFormat("closed loop, %d streams", n)); !s.ok()) return Fail(s, 1);
  }
  std::printf("%s\n%s", MarkdownTable(levels).c_str(), StepsTable(levels).c_str());
  return 0;
}

}  // namespace
}  // namespace ossgate::worker_bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return ossgate::worker_bench::Run();
}
