// Prometheus metrics of the worker (prometheus-cpp), exported over HTTP on
// the metrics port: request counters (finished by finish reason, refused by
// gRPC code; HTTP API requests by route and status), token counters, time-to-first-token and inter-token latency
// histograms, running/waiting/paused sequences, streams ended because their
// client stopped reading, KV block usage, model load duration; per engine
// step its backend time by kind (decode, prefill, mixed), the engine's host
// time between steps and the prefill and decode tokens.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "inference_worker/http/http_server.h"
#include "inference_worker/serving/engine.h"
#include "inference_worker/worker/inference_service.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace ossgate::worker {

class WorkerMetrics final : public serving::EngineObserver, public ServiceObserver, public http::HttpObserver {
 public:
  WorkerMetrics();
  ~WorkerMetrics() override;

  // Serves /metrics on `address` (host:port). Throws nothing; returns false
  // (and logs) if the port cannot be bound.
  bool Expose(const std::string& address);
  // Samples engine gauges every `period_ms` until destruction.
  void WatchEngine(const serving::Engine* engine, int period_ms = 500);
  // Stops sampling; call before the engine goes away.
  void StopWatching();

  void SetModelLoadSeconds(double seconds) { load_seconds_->Set(seconds); }

  // EngineObserver (engine thread).
  void OnFirstToken(double seconds) override { ttft_->Observe(seconds); }
  void OnToken(double seconds) override {
    itl_->Observe(seconds);
  }
  void OnFinished(model::FinishReason reason, const serving::Usage& usage) override;
  void OnStalled() override { stalled_->Increment(); }
  void OnStep(const serving::StepStats& step) override;

  // ServiceObserver (gRPC threads).
  void OnGenerateRefused(grpc::StatusCode code) override;

  // HttpObserver (HTTP connection threads).
  void OnHttpRequest(const std::string& route, int status) override;

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* http_requests_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generated_tokens_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* itl_;
  prometheus::Gauge* running_;
  prometheus::Gauge* waiting_;
  prometheus::Gauge* paused_;
  prometheus::Counter* stalled_;
  prometheus::Gauge* kv_used_;
  prometheus::Gauge* kv_total_;
  prometheus::Gauge* load_seconds_;
  prometheus::Histogram* step_decode_;
  prometheus::Histogram* step_prefill_;
  prometheus::Histogram* step_mixed_;
  prometheus::Histogram* step_host_;
  prometheus::Counter* step_prefill_tokens_;
  prometheus::Counter* step_decode_tokens_;
  std::atomic<bool> stop_{false};
  std::thread watcher_;
};

}  // namespace ossgate::worker
