// The serving engine: one thread that runs the continuous-batching loop
// (scheduler -> backend step with sampling -> streams) over any Backend. A
// step samples inside the backend (Backend::ForwardSample: on the GPU only
// the token ids come back) unless a sequence in it needs host logits (log
// probabilities or penalties); then it runs Forward and samples on the host.
// The gRPC layer submits requests and reads their output streams; it never
// touches the backend.
//
// Threading: Submit, Abort and Stats are thread-safe. Everything else runs on
// the engine thread. RequestStream is the only object shared between the
// engine thread (producer) and a gRPC stream (consumer).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/model/engine.h"
#include "inference_worker/model/generation.h"
#include "inference_worker/serving/scheduler.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::serving {

struct GenerationRequest {
  std::string request_id;
  std::vector<int32_t> prompt;
  model::GenerationParams params;
  int logprobs = -1;  // top-n alternatives; < 0 = no log-probabilities
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // highest first
};

struct Usage {
  int prompt_tokens = 0;
  int generated_tokens = 0;
  double time_to_first_token = 0;  // seconds since submission
  double total = 0;
  double queued = 0;
};

// One streamed message.
struct OutputChunk {
  std::vector<int32_t> tokens;
  std::string text;
  std::string channel;
  std::vector<TokenLogprob> logprobs;
  bool final = false;
  model::FinishReason finish = model::FinishReason::kNone;
  std::string error;
  Usage usage;  // set on the final chunk
};

// Output of one request. The engine pushes chunks; the consumer pops them.
// The consumer's notify callback runs on the engine thread with no lock
// held; it must be quick (e.g. schedule a gRPC write).
class RequestStream {
 public:
  explicit RequestStream(std::string request_id) : request_id_(std::move(request_id)) {}
  const std::string& request_id() const { return request_id_; }

  // Consumer side.
  std::optional<OutputChunk> Pop();
  void Cancel();                               // client gone, deadline or Abort
  void SetNotify(std::function<void()> notify);  // called when a chunk is pushed
  // Blocks until a chunk is available (tests and simple clients).
  OutputChunk WaitPop();

  // Producer side.
  void Push(OutputChunk chunk);
  size_t pending() const;
  bool cancelled() const { return cancelled_.load(); }

 private:
  const std::string request_id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<OutputChunk> queue_;       // guarded by mu_
  std::function<void()> notify_;        // guarded by mu_
  std::atomic<bool> cancelled_{false};
};

struct EngineOptions {
  SchedulerOptions scheduler;
  // A stream with this many unread chunks pauses its sequence until the
  // client catches up (backpressure).
  size_t max_pending_chunks = 8;
};

struct EngineStats {
  int running = 0;
  int waiting = 0;
  int kv_blocks_total = 0;
  int kv_blocks_used = 0;
  uint64_t generated_tokens = 0;
  uint64_t prompt_tokens = 0;
  uint64_t requests_finished = 0;
};

// Observes finished requests and token timing (metrics); called on the
// engine thread.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  virtual void OnFirstToken(double seconds_since_submit) = 0;
  virtual void OnToken(double seconds_since_previous) = 0;
  virtual void OnFinished(model::FinishReason reason, const Usage& usage) = 0;
};

class Engine {
 public:
  // `backend` and `tokenizer` must outlive the engine. Starts the thread.
  Engine(model::Backend& backend, const text::Tokenizer& tokenizer, const EngineOptions& options,
         EngineObserver* observer = nullptr);
  ~Engine();  // Stop()s

  // Queues a request. ResourceExhausted when at capacity, AlreadyExists for
  // a duplicate request id, InvalidArgument when it can never fit.
  absl::StatusOr<std::shared_ptr<RequestStream>> Submit(GenerationRequest request);
  // Cancels a request by id; NotFound if it is not running or queued.
  absl::Status Abort(const std::string& request_id);
  EngineStats Stats() const;
  // Stops the loop; unfinished requests end with CANCELLED.
  void Stop();

 private:
  struct Active {
    GenerationRequest request;
    std::shared_ptr<RequestStream> stream;
    std::unique_ptr<model::SequenceState> state;
    std::vector<int32_t> tokens;  // prompt + generated
    double submitted = 0, admitted = -1, first_token = -1, last_token = 0;
  };
  void Loop();
  void Finish(SeqId id, Active& a, model::FinishReason reason, const std::string& error);
  double Now() const;

  model::Backend& backend_;
  const text::Tokenizer& tokenizer_;
  const EngineOptions options_;
  EngineObserver* const observer_;
  const std::chrono::steady_clock::time_point epoch_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Scheduler scheduler_;                       // guarded by mu_
  std::map<SeqId, Active> active_;            // guarded by mu_ (entries' states used by the engine thread only)
  std::map<std::string, SeqId> by_request_;   // guarded by mu_
  SeqId next_id_ = 1;                         // guarded by mu_
  bool stop_ = false;                         // guarded by mu_
  EngineStats stats_;                         // guarded by mu_
  std::thread thread_;
};

}  // namespace ossgate::serving
