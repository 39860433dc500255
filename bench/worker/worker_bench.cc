// Load benchmark of the inference worker (CPU or CUDA backend; not a test:
// run by hand or by tools/gpu_run.sh, results in docs/perf.md). Starts the real provenance_service and
// inference_worker binaries on loopback with mutual TLS (the same harness as
// tests/worker/worker_e2e_test.cc), with a random gpt-oss model written for
// the run, then drives closed-loop streaming clients at several
// concurrencies: each client sends Generate, reads the stream to the end and
// sends the next request.
//
// Reported per concurrency level, measured over a fixed window after a
// warm-up (client-side wall clock):
//   tokens/s   generated tokens received in the window / window length
//   TTFT       request sent -> first token received (requests sent in the window)
//   ITL        gap between consecutive token messages of one stream
//
//   worker_load_bench [--concurrency=1,8,32] [--seconds=10] [--warmup_seconds=2]
//                     [--preset=small] [--vocab=tiny] [--prompt_tokens=64] [--max_tokens=128]
//                     [--backend=cpu] [--bin_dir=DIR] [--source_dir=CHECKOUT]
//
// Prints a markdown table for docs/perf.md.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bench/worker/bench_services.h"
#include "bench/worker/workload.h"
#include "grpcpp/grpcpp.h"
#include "ossgate/inference/v1/inference.grpc.pb.h"

ABSL_FLAG(std::vector<std::string>, concurrency, std::vector<std::string>({"1", "8", "32"}), "client counts");
ABSL_FLAG(double, seconds, 10, "measured seconds per concurrency level");
ABSL_FLAG(double, warmup_seconds, 2, "unmeasured warm-up seconds per level");
ABSL_FLAG(std::string, preset, "small", "model dimensions (tools/make_model presets: tiny, small, ...)");
ABSL_FLAG(int, prompt_tokens, 64, "prompt length in tokens (token-id prompts)");
ABSL_FLAG(int, max_tokens, 128, "generated tokens per request (ignore_eos, so always this many)");
ABSL_FLAG(int, threads, 0, "worker CPU backend threads (0 = all cores)");
ABSL_FLAG(std::string, backend, "cpu", "worker --backend (cpu, cuda, auto)");
ABSL_FLAG(double, temperature, 0.8, "sampling temperature of the requests (0 = greedy)");
ABSL_FLAG(std::vector<std::string>, temperatures, {},
          "if set: run every concurrency level at each of these temperatures (e.g. 0,1.0), one table row each, "
          "on the same worker; overrides --temperature");
ABSL_FLAG(std::string, vocab, "tiny", "model vocabulary (tools/make_model names: tiny, o200k, placeholder:N)");
ABSL_FLAG(std::string, bin_dir, "",
          "directory with provenance_service, provctl and inference_worker (default: this build's binaries)");
ABSL_FLAG(int, step_token_budget, 256, "worker --step_token_budget");
ABSL_FLAG(std::string, source_dir, "",
          "the ossgate checkout (for tools/certs/make_dev_pki.sh); default $OSSGATE_SOURCE_DIR, else the working "
          "directory");

namespace ossgate::worker_bench {
namespace {

namespace pb = ::ossgate::inference::v1;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

struct LevelResult {
  int clients = 0;
  double tokens_per_s = 0;
  int requests = 0;  // completed in the window
  int errors = 0;
  std::vector<double> ttft, itl;
};

// Closed-loop clients against `stub` for warm-up + window; samples inside
// the window only.
LevelResult RunLevel(pb::InferenceService::Stub* stub, int clients, const std::vector<int32_t>& prompt,
                     double warmup_s, double window_s, int max_tokens, float temperature) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point measure_from = start + std::chrono::duration_cast<Clock::duration>(
                                                     std::chrono::duration<double>(warmup_s));
  const Clock::time_point measure_to = measure_from + std::chrono::duration_cast<Clock::duration>(
                                                          std::chrono::duration<double>(window_s));
  std::mutex mu;
  LevelResult out;
  out.clients = clients;
  int64_t tokens_in_window = 0;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::vector<double> ttft, itl;
      int64_t tokens = 0;
      int done = 0, errors = 0;
      for (uint64_t n = 0; Clock::now() < measure_to; ++n) {
        pb::GenerateRequest req;
        for (int32_t id : prompt) req.mutable_token_ids()->add_ids(id);
        req.set_max_tokens(max_tokens);
        req.set_ignore_eos(true);
        req.mutable_sampling()->set_temperature(temperature);
        req.mutable_sampling()->set_seed(c * 100000 + n);
        grpc::ClientContext ctx;
        const Clock::time_point sent = Clock::now();
        auto reader = stub->Generate(&ctx, req);
        pb::GenerateResponse m;
        Clock::time_point last = sent;
        bool first = true, cancelled = false;
        while (reader->Read(&m)) {
          const Clock::time_point now = Clock::now();
          if (m.token_ids_size() > 0) {
            if (first) {
              if (sent >= measure_from && sent < measure_to) ttft.push_back(Seconds(sent, now));
              first = false;
            } else if (now >= measure_from && now < measure_to) {
              itl.push_back(Seconds(last, now));
            }
            if (now >= measure_from && now < measure_to) tokens += m.token_ids_size();
            last = now;
          }
          if (now >= measure_to && !cancelled) {  // the window is over: stop this stream
            ctx.TryCancel();
            cancelled = true;
          }
        }
        const grpc::Status s = reader->Finish();
        if (s.ok()) {
          if (last >= measure_from && last < measure_to) ++done;
        } else if (!cancelled) {
          ++errors;
          std::fprintf(stderr, "client %d: %s\n", c, s.error_message().c_str());
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      out.ttft.insert(out.ttft.end(), ttft.begin(), ttft.end());
      out.itl.insert(out.itl.end(), itl.begin(), itl.end());
      tokens_in_window += tokens;
      out.requests += done;
      out.errors += errors;
    });
  }
  for (auto& t : threads) t.join();
  out.tokens_per_s = tokens_in_window / window_s;
  return out;
}

int Run() {
  const auto source_dir = ResolveSourceDir(absl::GetFlag(FLAGS_source_dir));
  if (!source_dir.ok()) {
    std::fprintf(stderr, "%s\n", source_dir.status().ToString().c_str());
    return 2;
  }
  int max_clients = 1;
  std::vector<int> levels;
  for (const std::string& c : absl::GetFlag(FLAGS_concurrency)) {
    int n = 0;
    if (!absl::SimpleAtoi(c, &n) || n <= 0) {
      std::fprintf(stderr, "bad --concurrency value '%s'\n", c.c_str());
      return 2;
    }
    levels.push_back(n);
    max_clients = std::max(max_clients, n);
  }
  const int prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
  const int max_tokens = absl::GetFlag(FLAGS_max_tokens);
  ServiceOptions so;
  so.source_dir = *source_dir;
  so.bin_dir = absl::GetFlag(FLAGS_bin_dir);
  so.preset = absl::GetFlag(FLAGS_preset);
  so.vocab = absl::GetFlag(FLAGS_vocab);
  so.worker_flags = {absl::StrCat("--max_sequences=", max_clients),
                     absl::StrCat("--max_context=", prompt_tokens + max_tokens + 16),
                     absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads)),
                     absl::StrCat("--max_waiting=", 4 * max_clients),
                     absl::StrCat("--backend=", absl::GetFlag(FLAGS_backend)),
                     absl::StrCat("--step_token_budget=", absl::GetFlag(FLAGS_step_token_budget))};
  auto services = BenchServices::Start(so);
  if (!services.ok()) {
    std::fprintf(stderr, "%s\n", services.status().ToString().c_str());
    return 1;
  }
  pb::InferenceService::Stub* stub = (*services)->stub();
  const pb::ModelInfo& info = (*services)->info();

  // A prompt of exactly prompt_tokens: the pool of ordinary tokens repeated.
  const std::vector<int32_t> pool = PromptTokenPool(stub, info.vocab_size());
  std::vector<int32_t> prompt;
  while (static_cast<int>(prompt.size()) < prompt_tokens) prompt.push_back(pool[prompt.size() % pool.size()]);

  std::printf("%s\n", (*services)->Describe().c_str());
  std::vector<float> temperatures;
  for (const std::string& t : absl::GetFlag(FLAGS_temperatures)) {
    float v = 0;
    if (!absl::SimpleAtof(t, &v) || !(v >= 0.0f)) {
      std::fprintf(stderr, "bad --temperatures value '%s'\n", t.c_str());
      return 2;
    }
    temperatures.push_back(v);
  }
  if (temperatures.empty()) temperatures.push_back(static_cast<float>(absl::GetFlag(FLAGS_temperature)));
  std::printf("requests: %d-token prompt, %d generated tokens (ignore_eos); window %.0f s after %.0f s warm-up per "
              "level\n\n",
              prompt_tokens, max_tokens, absl::GetFlag(FLAGS_seconds), absl::GetFlag(FLAGS_warmup_seconds));
  std::printf("| temperature | streams | tokens/s | requests done | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | "
              "errors |\n|---:|--------:|---------:|--------------:|------------:|------------:|-----------:|-----------:|"
              "-------:|\n");
  int errors = 0;
  for (int clients : levels) {
    for (float temperature : temperatures) {
      LevelResult r = RunLevel(stub, clients, prompt, absl::GetFlag(FLAGS_warmup_seconds),
                               absl::GetFlag(FLAGS_seconds), max_tokens, temperature);
      std::printf("| %g | %7d | %8.0f | %13d | %11.1f | %11.1f | %10.2f | %10.2f | %6d |\n", temperature, clients,
                  r.tokens_per_s, r.requests, 1e3 * Percentile(r.ttft, 0.5), 1e3 * Percentile(r.ttft, 0.99),
                  1e3 * Percentile(r.itl, 0.5), 1e3 * Percentile(r.itl, 0.99), r.errors);
      std::fflush(stdout);
      errors += r.errors;
    }
  }
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace ossgate::worker_bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return ossgate::worker_bench::Run();
}
