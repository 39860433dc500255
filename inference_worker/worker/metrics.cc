#include "inference_worker/worker/metrics.h"

#include <cctype>
#include <chrono>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "inference_worker/worker/worker_log.h"

namespace ossgate::worker {

namespace {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

// Engine steps: from a small model's decode step (a fraction of a
// millisecond) to long prefill chunks.
prometheus::Histogram::BucketBoundaries StepBuckets() {
  return {0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.0125, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
}
prometheus::Histogram::BucketBoundaries HostBuckets() {
  return {0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1};
}

}  // namespace

WorkerMetrics::WorkerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("ossgate_worker_requests_total")
                   .Help(
                       "Generate requests: finished ones by finish_reason; refused ones (finish_reason=\"refused\") "
                       "by reason, the lowercase gRPC code")
                   .Register(*registry_);
  http_requests_ = &prometheus::BuildCounter()
                        .Name("ossgate_worker_http_requests_total")
                        .Help("Requests of the OpenAI-compatible HTTP API, by route and HTTP status")
                        .Register(*registry_);
  auto& tokens = prometheus::BuildCounter()
                     .Name("ossgate_worker_tokens_total")
                     .Help("Tokens processed, by kind (prompt, generated)")
                     .Register(*registry_);
  prompt_tokens_ = &tokens.Add({{"kind", "prompt"}});
  generated_tokens_ = &tokens.Add({{"kind", "generated"}});
  ttft_ = &prometheus::BuildHistogram()
               .Name("ossgate_worker_time_to_first_token_seconds")
               .Help("Time from request arrival to its first generated token")
               .Register(*registry_)
               .Add({}, LatencyBuckets());
  itl_ = &prometheus::BuildHistogram()
              .Name("ossgate_worker_inter_token_latency_seconds")
              .Help("Time between consecutive generated tokens of one request")
              .Register(*registry_)
              .Add({}, LatencyBuckets());
  auto& seqs = prometheus::BuildGauge()
                   .Name("ossgate_worker_sequences")
                   .Help(
                       "Sequences by state (running, waiting; paused: running but skipped because the "
                       "client has not read its output)")
                   .Register(*registry_);
  running_ = &seqs.Add({{"state", "running"}});
  waiting_ = &seqs.Add({{"state", "waiting"}});
  paused_ = &seqs.Add({{"state", "paused"}});
  stalled_ = &prometheus::BuildCounter()
                  .Name("ossgate_worker_stalled_streams_total")
                  .Help(
                      "Generate streams ended (capacity freed, call cancelled) because the client accepted no "
                      "output for --stall_timeout_s")
                  .Register(*registry_)
                  .Add({});
  auto& kv = prometheus::BuildGauge()
                 .Name("ossgate_worker_kv_blocks")
                 .Help("KV-cache blocks of full-attention layers (used, total)")
                 .Register(*registry_);
  kv_used_ = &kv.Add({{"kind", "used"}});
  kv_total_ = &kv.Add({{"kind", "total"}});
  load_seconds_ = &prometheus::BuildGauge()
                       .Name("ossgate_worker_model_load_seconds")
                       .Help("Duration of the last model load (hash, verify, parse, upload)")
                       .Register(*registry_)
                       .Add({});
  auto& steps = prometheus::BuildHistogram()
                    .Name("ossgate_worker_step_seconds")
                    .Help(
                        "Backend time of an engine step (the model over the step's tokens and the sampling), by kind: "
                        "decode (generated tokens only), prefill (prompt tokens only), mixed")
                    .Register(*registry_);
  step_decode_ = &steps.Add({{"kind", "decode"}}, StepBuckets());
  step_prefill_ = &steps.Add({{"kind", "prefill"}}, StepBuckets());
  step_mixed_ = &steps.Add({{"kind", "mixed"}}, StepBuckets());
  step_host_ = &prometheus::BuildHistogram()
                    .Name("ossgate_worker_step_host_seconds")
                    .Help(
                        "The engine's own time between two back-to-back steps (outputs of the one, scheduling of the "
                        "next), when the backend waits on it")
                    .Register(*registry_)
                    .Add({}, HostBuckets());
  auto& step_tokens = prometheus::BuildCounter()
                          .Name("ossgate_worker_step_tokens_total")
                          .Help("Tokens run through the model in engine steps, by kind (prefill: prompt tokens; "
                                "decode: generated tokens fed back)")
                          .Register(*registry_);
  step_prefill_tokens_ = &step_tokens.Add({{"kind", "prefill"}});
  step_decode_tokens_ = &step_tokens.Add({{"kind", "decode"}});
}

WorkerMetrics::~WorkerMetrics() { StopWatching(); }

void WorkerMetrics::OnStep(const serving::StepStats& step) {
  prometheus::Histogram* h = step.prefill_tokens == 0  ? step_decode_
                             : step.decode_tokens == 0 ? step_prefill_
                                                       : step_mixed_;
  h->Observe(step.backend_seconds);
  if (step.host_seconds >= 0) step_host_->Observe(step.host_seconds);
  step_prefill_tokens_->Increment(step.prefill_tokens);
  step_decode_tokens_->Increment(step.decode_tokens);
}

void WorkerMetrics::StopWatching() {
  stop_.store(true);
  if (watcher_.joinable()) watcher_.join();
}

bool WorkerMetrics::Expose(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
    exposer_->RegisterCollectable(registry_);
    return true;
  } catch (const std::exception& e) {
    LogLine(absl::StrCat("metrics: cannot listen on ", address, ": ", e.what()));
    return false;
  }
}

void WorkerMetrics::WatchEngine(const serving::Engine* engine, int period_ms) {
  watcher_ = std::thread([this, engine, period_ms] {
    while (!stop_.load()) {
      const serving::EngineStats s = engine->Stats();
      running_->Set(s.running);
      waiting_->Set(s.waiting);
      paused_->Set(s.paused);
      kv_used_->Set(s.kv_blocks_used);
      kv_total_->Set(s.kv_blocks_total);
      std::this_thread::sleep_for(std::chrono::milliseconds(period_ms));
    }
  });
}

void WorkerMetrics::OnFinished(model::FinishReason reason, const serving::Usage& usage) {
  requests_->Add({{"finish_reason", model::FinishReasonName(reason)}}).Increment();
  prompt_tokens_->Increment(usage.prompt_tokens);
  generated_tokens_->Increment(usage.generated_tokens);
}

}  // namespace ossgate::worker

namespace ossgate::worker {

void WorkerMetrics::OnGenerateRefused(grpc::StatusCode code) {
  // The canonical code name in lowercase, e.g. "invalid_argument".
  std::string reason = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  for (char& c : reason) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  requests_->Add({{"finish_reason", "refused"}, {"reason", reason}}).Increment();
}

void WorkerMetrics::OnHttpRequest(const std::string& route, int status) {
  http_requests_->Add({{"route", route}, {"status", std::to_string(status)}}).Increment();
}

}  // namespace ossgate::worker
