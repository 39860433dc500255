#include "inference_worker/worker/metrics.h"

#include <chrono>
#include <cstdio>

namespace ossgate::worker {

namespace {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace

WorkerMetrics::WorkerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("ossgate_worker_requests_total")
                   .Help("Finished Generate requests by finish reason")
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
                   .Help("Sequences by state (running, waiting)")
                   .Register(*registry_);
  running_ = &seqs.Add({{"state", "running"}});
  waiting_ = &seqs.Add({{"state", "waiting"}});
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
}

WorkerMetrics::~WorkerMetrics() { StopWatching(); }

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
    std::fprintf(stderr, "metrics: cannot listen on %s: %s\n", address.c_str(), e.what());
    return false;
  }
}

void WorkerMetrics::WatchEngine(const serving::Engine* engine, int period_ms) {
  watcher_ = std::thread([this, engine, period_ms] {
    while (!stop_.load()) {
      const serving::EngineStats s = engine->Stats();
      running_->Set(s.running);
      waiting_->Set(s.waiting);
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
