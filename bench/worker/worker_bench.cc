// Load benchmark of the inference worker (CPU or CUDA backend; not a test:
// run by hand or by tools/gpu_run.sh, results in docs/perf.md). Starts the real provenance_service and
// inference_worker binaries on loopback with mutual TLS (the same harness as
// tests/worker/worker_e2e_test.cc), with a random gpt-oss model written for
// the run, then drives closed-loop streaming clients at several
// concurrencies: each client sends Generate, reads the stream to the end and
// sends the next request.
//
// With --faces=grpc,http every level also runs over the OpenAI-compatible
// HTTP API (/v1/completions with stream: true, the same token prompt and
// parameters; one server-sent event per token), so the two faces' latencies
// can be compared on the same worker.
//
// Reported per concurrency level, measured over a fixed window after a
// warm-up (client-side wall clock):
//   tokens/s   generated tokens received in the window / window length
//   TTFT       request sent -> first token received (requests sent in the window)
//   ITL        gap between consecutive token messages of one stream
//
//   worker_load_bench [--concurrency=1,8,32] [--seconds=10] [--warmup_seconds=2]
//                     [--preset=small] [--vocab=tiny] [--prompt_tokens=64] [--max_tokens=128]
//                     [--backend=cpu] [--bin_dir=DIR] [--source_dir=CHECKOUT] [--faces=grpc,http]
//                     [--model_file=M.gguf]
//
// Prints a markdown table for docs/perf.md.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/worker/bench_services.h"
#include "httplib.h"
#include "inference_worker/http/api_keys.h"
#include "nlohmann/json.hpp"
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
ABSL_FLAG(std::vector<std::string>, faces, std::vector<std::string>({"grpc"}),
          "APIs to drive at every level: grpc, http (the OpenAI-compatible API, streaming /v1/completions)");
ABSL_FLAG(std::string, model_file, "", "serve this GGUF instead of a random model of --preset/--vocab");
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

// The measurement window of a closed-loop level and one client's share of
// it: first-token latency of requests sent inside the window, inter-token
// latencies and tokens that arrive inside it.
struct Window {
  Clock::time_point from, to;
  bool Inside(Clock::time_point t) const { return t >= from && t < to; }
};

struct ClientTally {
  std::vector<double> ttft, itl;
  int64_t tokens = 0;
  int done = 0, errors = 0;
};

// One request's stream as the client sees it.
class StreamTimer {
 public:
  StreamTimer(const Window& w, ClientTally* tally) : w_(w), tally_(tally), sent_(Clock::now()), last_(sent_) {}
  // `n` tokens arrived at `now`.
  void Tokens(Clock::time_point now, int64_t n) {
    if (first_) {
      if (w_.Inside(sent_)) tally_->ttft.push_back(Seconds(sent_, now));
      first_ = false;
    } else if (w_.Inside(now)) {
      tally_->itl.push_back(Seconds(last_, now));
    }
    if (w_.Inside(now)) tally_->tokens += n;
    last_ = now;
  }
  // A request that completed counts if its last token came inside the window.
  void Completed() {
    if (w_.Inside(last_)) ++tally_->done;
  }

 private:
  const Window& w_;
  ClientTally* tally_;
  const Clock::time_point sent_;
  Clock::time_point last_;
  bool first_ = true;
};

// `clients` closed-loop clients for warm-up + window: each calls
// `request(client, n, window, tally)` for its n-th request until the window
// ends; samples inside the window only.
LevelResult RunClosedLoop(int clients, double warmup_s, double window_s,
                          const std::function<void(int, uint64_t, const Window&, ClientTally*)>& request) {
  const auto after = [](Clock::time_point t, double s) {
    return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  Window w;
  w.from = after(Clock::now(), warmup_s);
  w.to = after(w.from, window_s);
  std::mutex mu;
  LevelResult out;
  out.clients = clients;
  int64_t tokens_in_window = 0;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      ClientTally tally;
      for (uint64_t n = 0; Clock::now() < w.to; ++n) request(c, n, w, &tally);
      std::lock_guard<std::mutex> lock(mu);
      out.ttft.insert(out.ttft.end(), tally.ttft.begin(), tally.ttft.end());
      out.itl.insert(out.itl.end(), tally.itl.begin(), tally.itl.end());
      tokens_in_window += tally.tokens;
      out.requests += tally.done;
      out.errors += tally.errors;
    });
  }
  for (auto& t : threads) t.join();
  out.tokens_per_s = tokens_in_window / window_s;
  return out;
}

// Closed-loop clients against `stub` (gRPC Generate streams).
LevelResult RunLevel(pb::InferenceService::Stub* stub, int clients, const std::vector<int32_t>& prompt,
                     double warmup_s, double window_s, int max_tokens, float temperature) {
  return RunClosedLoop(clients, warmup_s, window_s, [&](int c, uint64_t n, const Window& w, ClientTally* tally) {
    pb::GenerateRequest req;
    for (int32_t id : prompt) req.mutable_token_ids()->add_ids(id);
    req.set_max_tokens(max_tokens);
    req.set_ignore_eos(true);
    req.mutable_sampling()->set_temperature(temperature);
    req.mutable_sampling()->set_seed(c * 100000 + n);
    grpc::ClientContext ctx;
    StreamTimer timer(w, tally);
    auto reader = stub->Generate(&ctx, req);
    pb::GenerateResponse m;
    bool cancelled = false;
    while (reader->Read(&m)) {
      const Clock::time_point now = Clock::now();
      if (m.token_ids_size() > 0) timer.Tokens(now, m.token_ids_size());
      if (now >= w.to && !cancelled) {  // the window is over: stop this stream
        ctx.TryCancel();
        cancelled = true;
      }
    }
    const grpc::Status s = reader->Finish();
    if (s.ok()) {
      timer.Completed();
    } else if (!cancelled) {
      ++tally->errors;
      std::fprintf(stderr, "client %d: %s\n", c, s.error_message().c_str());
    }
  });
}

// The same closed loop over the HTTP API: one HTTPS connection per client
// (keep-alive), /v1/completions with stream: true; each server-sent event
// with text is one token.
LevelResult RunLevelHttp(int port, const std::string& ca, const std::string& key, int clients,
                         const std::vector<int32_t>& prompt, double warmup_s, double window_s, int max_tokens,
                         float temperature) {
  std::vector<std::unique_ptr<httplib::SSLClient>> conns;
  for (int c = 0; c < clients; ++c) {
    auto cli = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    cli->set_ca_cert_path(ca.c_str());
    cli->enable_server_certificate_verification(true);
    cli->set_read_timeout(120);
    conns.push_back(std::move(cli));
  }
  return RunClosedLoop(clients, warmup_s, window_s, [&](int c, uint64_t n, const Window& w, ClientTally* tally) {
    const nlohmann::json body = {{"model", "bench"},     {"prompt", prompt},           {"max_tokens", max_tokens},
                                 {"ignore_eos", true},   {"temperature", temperature}, {"seed", c * 100000 + n},
                                 {"stream", true}};
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.set_header("Authorization", "Bearer " + key);
    req.set_header("Content-Type", "application/json");
    req.body = body.dump();
    std::string pending;
    StreamTimer timer(w, tally);
    bool cancelled = false, finished = false;
    req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
      const Clock::time_point now = Clock::now();
      pending.append(data, len);
      for (size_t end; (end = pending.find("\n\n")) != std::string::npos; pending.erase(0, end + 2)) {
        const std::string event = pending.substr(0, end);
        if (event.rfind("data: ", 0) != 0) continue;
        if (event == "data: [DONE]") {
          finished = true;
          continue;
        }
        const nlohmann::json j = nlohmann::json::parse(event.substr(6), nullptr, false);
        if (j.is_discarded() || !j.contains("choices") || j["choices"].empty()) continue;
        if (j["choices"][0].value("text", "").empty()) continue;
        timer.Tokens(now, 1);
      }
      if (now >= w.to) {  // the window is over: drop this stream
        cancelled = true;
        return false;
      }
      return true;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    const bool ok = conns[c]->send(req, res, error);
    if (ok && res.status == 200 && finished) {
      timer.Completed();
    } else if (!cancelled) {
      ++tally->errors;
      std::fprintf(stderr, "http client %d: %s status %d\n", c, httplib::to_string(error).c_str(), res.status);
    }
  });
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
  so.model_file = absl::GetFlag(FLAGS_model_file);
  bool grpc_face = false, http_face = false;
  for (const std::string& f : absl::GetFlag(FLAGS_faces)) {
    if (f == "grpc") {
      grpc_face = true;
    } else if (f == "http") {
      http_face = true;
    } else {
      std::fprintf(stderr, "bad --faces value '%s' (grpc, http)\n", f.c_str());
      return 2;
    }
  }
  // The HTTP face: a key made for this run, its hash in a key file.
  worker_test::TempDir http_dir("worker_bench_http");
  const std::string http_key = "sk-bench-" + http::Sha256Hex(absl::StrCat(::getpid(), "-", Clock::now().time_since_epoch().count()));
  int http_port = 0;
  if (http_face) {
    auto port = worker_test::PickFreePort();
    if (!port.ok()) {
      std::fprintf(stderr, "%s\n", port.status().ToString().c_str());
      return 1;
    }
    http_port = *port;
    if (auto st = worker_test::WriteFile(http_dir / "keys", absl::StrCat("bench ", http::Sha256Hex(http_key), "\n"));
        !st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    so.worker_flags.push_back(absl::StrCat("--http_listen=127.0.0.1:", http_port));
    so.worker_flags.push_back("--http_api_keys=" + http_dir / "keys");
    so.worker_flags.push_back("--model_name=bench");
  }
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
  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return v.empty() ? 0.0 : sum / static_cast<double>(v.size());
  };
  int errors = 0;
  std::string steps_table;  // rows of the engine-step table, printed after the main one
  for (int clients : levels) {
    for (float temperature : temperatures) {
      double itl_mean[2] = {0, 0};  // grpc, http
      for (const bool http_run : {false, true}) {
        if (http_run ? !http_face : !grpc_face) continue;
        const EngineSteps before = (*services)->Steps();
        LevelResult r =
            http_run ? RunLevelHttp(http_port, (*services)->CaPath(), http_key, clients, prompt,
                                    absl::GetFlag(FLAGS_warmup_seconds), absl::GetFlag(FLAGS_seconds), max_tokens,
                                    temperature)
                     : RunLevel(stub, clients, prompt, absl::GetFlag(FLAGS_warmup_seconds),
                                absl::GetFlag(FLAGS_seconds), max_tokens, temperature);
        // The same columns for both faces; with both, a label after the row.
        std::printf("| %g | %7d | %8.0f | %13d | %11.1f | %11.1f | %10.2f | %10.2f | %6d |%s\n", temperature, clients,
                    r.tokens_per_s, r.requests, 1e3 * Percentile(r.ttft, 0.5), 1e3 * Percentile(r.ttft, 0.99),
                    1e3 * Percentile(r.itl, 0.5), 1e3 * Percentile(r.itl, 0.99), r.errors,
                    (grpc_face && http_face) ? (http_run ? " http" : " grpc") : "");
        std::fflush(stdout);
        absl::StrAppend(&steps_table, absl::StrFormat("| %g | %d%s | ", temperature, clients,
                                                      (grpc_face && http_face) ? (http_run ? " http" : " grpc") : ""),
                        StepsCells(StepsBetween(before, (*services)->Steps())), "\n");
        itl_mean[http_run ? 1 : 0] = mean(r.itl);
        errors += r.errors;
      }
      if (grpc_face && http_face && itl_mean[0] > 0) {
        std::printf("  ITL mean at %d streams: grpc %.3f ms, http %.3f ms (http %+.1f%%)\n", clients,
                    1e3 * itl_mean[0], 1e3 * itl_mean[1], 100.0 * (itl_mean[1] / itl_mean[0] - 1.0));
      }
    }
  }
  std::printf("\nEngine steps (the worker's /metrics over each level, warm-up included):\n\n| temperature | streams | %s\n"
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n%s",
              kStepsHeader, steps_table.c_str());
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace ossgate::worker_bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return ossgate::worker_bench::Run();
}
