// Continuous-batching scheduler: decides, before every engine step, which
// sequences run and with how many tokens. Host-only (no CUDA, no gRPC), so
// tests drive it directly.
//
// Policy:
//  - Admission: a waiting request is admitted (FCFS) when a sequence slot is
//    free and the KV pool can hold its worst case, prompt + max_tokens, on top
//    of the worst cases of everything already admitted. So a running sequence
//    never runs out of blocks and nothing is ever preempted.
//  - Every step first gives each decoding sequence its one token, then fills
//    the remaining token budget with prompt chunks (oldest request first), so
//    a long prompt is prefilled over several steps while streams keep going.
//  - A sequence whose client has not drained its output is paused (skipped)
//    until it has: backpressure instead of unbounded buffering.
//  - The wait queue is bounded; Submit beyond it is refused.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "inference_worker/model/kv_cache.h"

namespace ossgate::serving {

using model::SeqId;

struct SchedulerOptions {
  int max_running = 16;         // concurrent sequences (<= the KV manager's max_sequences)
  int max_waiting = 64;         // queued requests beyond the running ones
  int step_token_budget = 256;  // tokens per engine step (decode + prefill chunks); raised to max_running
};

// One sequence's work in a planned step.
struct ScheduledSeq {
  SeqId id = 0;
  int first_token = 0;  // index into the sequence's token list (prompt, then generated)
  int n_tokens = 0;
  bool samples = false;  // this step ends at the last known token: sample the next one
};

class Scheduler {
 public:
  Scheduler(const SchedulerOptions& options, model::KvBlockManager& kv);

  // Queues a request. ResourceExhausted when the wait queue is full;
  // InvalidArgument when its worst case can never fit the KV pool.
  absl::Status Submit(SeqId id, int prompt_tokens, int max_new_tokens);

  // Removes a request wherever it is (waiting or running) and frees its
  // blocks. Unknown ids are ignored.
  void Remove(SeqId id);

  // Marks a running sequence as (not) able to accept more output.
  void SetPaused(SeqId id, bool paused);

  // Admits what fits and plans the next step. Admitted sequences are
  // registered with the KV manager. An empty plan means nothing can run.
  std::vector<ScheduledSeq> Schedule();

  // After the step ran: the sequence consumed its scheduled tokens; if it
  // sampled, one more token now exists (the one to feed next step).
  void OnStepDone(const ScheduledSeq& s);

  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }
  bool IsRunning(SeqId id) const { return running_.count(id) != 0; }
  int reserved_blocks() const { return reserved_blocks_; }

 private:
  struct Seq {
    int prompt_tokens = 0;
    int max_new_tokens = 0;
    int known_tokens = 0;  // prompt + sampled so far
    int fed_tokens = 0;    // tokens already in the KV cache
    int worst_blocks = 0;
    bool paused = false;
    uint64_t arrival = 0;
  };
  int WorstBlocks(const Seq& s) const;

  const SchedulerOptions options_;
  model::KvBlockManager& kv_;
  std::deque<std::pair<SeqId, Seq>> waiting_;
  std::map<SeqId, Seq> running_;
  int reserved_blocks_ = 0;
  uint64_t next_arrival_ = 0;
};

}  // namespace ossgate::serving
