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
//
// Requests belong to an owner (the identity of the client that submitted
// them): request ids are unique per owner, and only the owner can Abort one.
// A request whose consumer stops taking output holds its slot and KV blocks
// only for EngineOptions::stall_timeout_seconds; then the engine ends it.
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
#include "inference_worker/model/backend.h"
#include "inference_worker/model/generation.h"
#include "inference_worker/serving/scheduler.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::serving {

struct GenerationRequest {
  // Unique among the running and queued requests of `owner`. Empty: the
  // engine assigns 32 random hex digits (128 bits, so ids cannot be guessed).
  std::string request_id;
  // Who submitted it (e.g. the client certificate's SPIFFE URI; empty for
  // anonymous callers). Abort finds a request only under the same owner.
  std::string owner;
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
  // Harmony requests: header of the message `text` belongs to (see
  // model::SequenceState::StepResult).
  std::string channel;
  std::string recipient;
  std::string content_type;
  std::vector<TokenLogprob> logprobs;
  bool final = false;
  model::FinishReason finish = model::FinishReason::kNone;
  // With finish kError: the status code (kInternal for a numerical fault,
  // else the backend's) and "<CODE>: <message>", e.g. "INTERNAL: step 3: ...".
  absl::StatusCode error_code = absl::StatusCode::kOk;
  std::string error;
  Usage usage;  // set on the final chunk
};

// Output of one request. The engine pushes chunks; the consumer pops them.
// The consumer's notify callback runs with no lock held, on the engine's
// notifier thread (not the step loop: a gRPC write started from the
// callback may serialize and send inline); it must not block for long.
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

  // Whether the engine ended the request because its consumer took no
  // output for the stall timeout. Set before the final chunk is pushed, so a
  // notify callback that sees the final chunk also sees this; the consumer
  // should then drop its transport stream (the client is not reading).
  bool stalled() const { return stalled_.load(); }

  // Producer side. Enqueue queues a chunk (WaitPop wakes); Notify runs the
  // consumer's callback, which the engine leaves to its notifier thread.
  void Enqueue(OutputChunk chunk);
  void Notify();
  size_t pending() const;
  bool cancelled() const { return cancelled_.load(); }
  void MarkStalled() { stalled_.store(true); }
  // Set while the stream waits in a notifier's queue (one entry at a time).
  std::atomic<bool>& notify_queued() { return notify_queued_; }

 private:
  const std::string request_id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<OutputChunk> queue_;       // guarded by mu_
  std::function<void()> notify_;        // guarded by mu_
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> stalled_{false};
  std::atomic<bool> notify_queued_{false};
};

// Runs the notify callbacks of streams on its own thread, so the engine's
// step loop hands a step's outputs over with one wake-up instead of running
// every consumer's write. A stream already waiting in the queue is not
// queued twice (its callback pops whatever is there by then). The destructor
// runs what is queued, then stops.
class StreamNotifier {
 public:
  StreamNotifier();
  ~StreamNotifier();
  // Queues the streams' callbacks (empties `streams`).
  void Schedule(std::vector<std::shared_ptr<RequestStream>>& streams);

 private:
  void Run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<RequestStream>> queue_;  // guarded by mu_
  bool stop_ = false;                                 // guarded by mu_
  std::thread thread_;
};

struct EngineOptions {
  SchedulerOptions scheduler;
  // A stream with this many unread chunks pauses its sequence until the
  // client catches up (backpressure).
  size_t max_pending_chunks = 8;
  // A sequence paused this long without its consumer taking a chunk is
  // ended (finish kCancelled, RequestStream::stalled()) and its slot and KV
  // blocks are freed: a client that stops reading must not hold capacity
  // forever. Must be > 0.
  double stall_timeout_seconds = 30;
};

struct EngineStats {
  int running = 0;
  int waiting = 0;
  int paused = 0;  // running, but skipped: their consumer has not taken its output
  int kv_blocks_total = 0;
  int kv_blocks_used = 0;
  uint64_t generated_tokens = 0;
  uint64_t prompt_tokens = 0;
  uint64_t requests_finished = 0;
  uint64_t stalled = 0;  // requests ended because their consumer stopped taking output
};

// One engine step, as observed (metrics, benchmarks). A sequence's tokens
// are prefill while they are its prompt's, decode after (the generated
// tokens fed back, one per step).
struct StepStats {
  int sequences = 0;
  int prefill_tokens = 0;
  int decode_tokens = 0;
  // The backend call (Forward or ForwardSample: the model on every token
  // of the step and the sampling).
  double backend_seconds = 0;
  // The engine's own time since the previous step's backend call returned:
  // that step's outputs (tokens through SequenceState, chunks to the streams)
  // and this step's scheduling. Negative when the engine waited for work in
  // between (nothing to attribute).
  double host_seconds = -1;
};

// Observes finished requests and token timing (metrics); called on the
// engine thread.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  virtual void OnFirstToken(double seconds_since_submit) = 0;
  virtual void OnToken(double seconds_since_previous) = 0;
  virtual void OnFinished(model::FinishReason reason, const Usage& usage) = 0;
  // A request is being ended because its consumer took no output for the
  // stall timeout (OnFinished follows with kCancelled).
  virtual void OnStalled() {}
  // A step ran (after its backend call, before its outputs are handled).
  virtual void OnStep(const StepStats& step) {}
};

class Engine {
 public:
  // `backend` and `tokenizer` must outlive the engine. Starts the thread.
  Engine(model::Backend& backend, const text::Tokenizer& tokenizer, const EngineOptions& options,
         EngineObserver* observer = nullptr);
  ~Engine();  // Stop()s

  // Queues a request. ResourceExhausted when at capacity, AlreadyExists for
  // a request id its owner already runs, InvalidArgument when it can never
  // fit.
  absl::StatusOr<std::shared_ptr<RequestStream>> Submit(GenerationRequest request);
  // Cancels a request of `owner` by id. NotFound if that owner has no such
  // request running or queued, including when another owner has one: the
  // answer must not tell whether someone else uses the id.
  absl::Status Abort(const std::string& request_id, const std::string& owner = "");
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
    double paused_since = -1;  // < 0: not paused
  };
  using OwnedId = std::pair<std::string, std::string>;  // (owner, request id)
  void Loop();
  // Ends the request: the final chunk carries `reason` and, for kError,
  // `error` (its code and message).
  void Finish(SeqId id, Active& a, model::FinishReason reason, const absl::Status& error = absl::OkStatus());
  double Now() const;

  model::Backend& backend_;
  const text::Tokenizer& tokenizer_;
  const EngineOptions options_;
  EngineObserver* const observer_;
  const std::chrono::steady_clock::time_point epoch_;
  // Streams given a chunk since the last hand-over to notifier_ (engine
  // thread only). Declared before thread_: the loop uses it.
  std::vector<std::shared_ptr<RequestStream>> to_notify_;
  std::unique_ptr<StreamNotifier> notifier_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Scheduler scheduler_;                       // guarded by mu_
  std::map<SeqId, Active> active_;            // guarded by mu_ (entries' states used by the engine thread only)
  std::map<OwnedId, SeqId> by_request_;       // guarded by mu_
  SeqId next_id_ = 1;                         // guarded by mu_
  bool stop_ = false;                         // guarded by mu_
  EngineStats stats_;                         // guarded by mu_
  std::thread thread_;
};

}  // namespace ossgate::serving
