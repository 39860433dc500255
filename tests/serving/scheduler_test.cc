// The continuous-batching scheduler: admission by worst-case KV blocks, FCFS
// without overtaking, decode before prefill, chunked prefill within the token
// budget, pause, removal, and the bounded wait queue. The KV manager is the
// real one; the tests play the engine (Reserve/Commit the scheduled tokens).
#include "inference_worker/serving/scheduler.h"

#include <algorithm>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/model/kv_cache.h"

namespace ossgate::serving {

// For EXPECT_EQ on plans (found by argument-dependent lookup, so not in the
// anonymous namespace).
bool operator==(const ScheduledSeq& a, const ScheduledSeq& b) {
  return a.id == b.id && a.first_token == b.first_token && a.n_tokens == b.n_tokens && a.samples == b.samples;
}
std::ostream& operator<<(std::ostream& os, const ScheduledSeq& s) {
  return os << "{id " << s.id << ", first " << s.first_token << ", n " << s.n_tokens << (s.samples ? ", samples}" : "}");
}

namespace {

using model::KvBlockManager;
using model::KvCacheOptions;

KvCacheOptions Kv(int block_size, int blocks, int max_seqs) {
  KvCacheOptions o;
  o.block_size = block_size;
  o.num_full_blocks = blocks;
  o.max_sequences = max_seqs;
  return o;
}

SchedulerOptions Opts(int max_running, int max_waiting, int budget) {
  SchedulerOptions o;
  o.max_running = max_running;
  o.max_waiting = max_waiting;
  o.step_token_budget = budget;
  return o;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void Init(KvCacheOptions kv, SchedulerOptions opts, int window = 0) {
    kv_ = std::make_unique<KvBlockManager>(kv, window);
    sched_ = std::make_unique<Scheduler>(opts, *kv_);
  }

  // Runs the plan like an engine: reserve and commit the KV, report done.
  void Run(const std::vector<ScheduledSeq>& plan) {
    for (const ScheduledSeq& s : plan) {
      const absl::Status st = kv_->Reserve(s.id, s.n_tokens);
      ASSERT_TRUE(st.ok()) << "admitted sequence ran out of KV blocks: " << st;
      kv_->Commit(s.id, s.n_tokens);
      sched_->OnStepDone(s);
    }
  }
  std::vector<ScheduledSeq> Step() {
    std::vector<ScheduledSeq> plan = sched_->Schedule();
    Run(plan);
    return plan;
  }

  std::unique_ptr<KvBlockManager> kv_;
  std::unique_ptr<Scheduler> sched_;
};

// ---------------------------------------------------------------------------
// Submit

TEST_F(SchedulerTest, SubmitValidatesTheRequest) {
  Init(Kv(4, 10, 4), Opts(4, 8, 64));
  EXPECT_EQ(sched_->Submit(1, 0, 5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sched_->Submit(1, 5, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sched_->Submit(1, -3, 5).code(), absl::StatusCode::kInvalidArgument);
  // 30 + 11 tokens = 11 blocks > the 10 in the pool: can never run.
  const absl::Status too_big = sched_->Submit(1, 30, 11);
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_big.message().find("10"), absl::string_view::npos) << too_big;
  EXPECT_TRUE(sched_->Submit(1, 30, 10).ok());  // exactly the pool
  EXPECT_EQ(sched_->num_waiting(), 1);
  EXPECT_EQ(sched_->Submit(1, 2, 2).code(), absl::StatusCode::kAlreadyExists);
  sched_->Schedule();
  ASSERT_TRUE(sched_->IsRunning(1));
  EXPECT_EQ(sched_->Submit(1, 2, 2).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(SchedulerTest, BoundedWaitQueueRefusesWithResourceExhausted) {
  Init(Kv(4, 100, 4), Opts(1, 2, 64));
  ASSERT_TRUE(sched_->Submit(1, 4, 4).ok());
  ASSERT_TRUE(sched_->Submit(2, 4, 4).ok());
  const absl::Status full = sched_->Submit(3, 4, 4);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_EQ(sched_->num_waiting(), 2);
  sched_->Schedule();  // admits 1 (max_running 1): the queue has room again
  EXPECT_EQ(sched_->num_waiting(), 1);
  EXPECT_TRUE(sched_->Submit(3, 4, 4).ok());
  EXPECT_EQ(sched_->Submit(4, 4, 4).code(), absl::StatusCode::kResourceExhausted);
}

// ---------------------------------------------------------------------------
// Admission

TEST_F(SchedulerTest, AdmitsByWorstCaseBlocks) {
  Init(Kv(4, 10, 8), Opts(8, 8, 64));
  ASSERT_TRUE(sched_->Submit(1, 10, 10).ok());  // 20 tokens: 5 blocks
  ASSERT_TRUE(sched_->Submit(2, 8, 12).ok());   // 20 tokens: 5 blocks
  ASSERT_TRUE(sched_->Submit(3, 1, 1).ok());    // 1 block: does not fit
  sched_->Schedule();
  EXPECT_TRUE(sched_->IsRunning(1));
  EXPECT_TRUE(sched_->IsRunning(2));
  EXPECT_FALSE(sched_->IsRunning(3));
  EXPECT_EQ(sched_->reserved_blocks(), 10);
  EXPECT_EQ(sched_->num_running(), 2);
  EXPECT_EQ(sched_->num_waiting(), 1);
  // Admitted sequences are registered with the KV manager; waiting ones not.
  EXPECT_TRUE(kv_->HasSequence(1));
  EXPECT_TRUE(kv_->HasSequence(2));
  EXPECT_FALSE(kv_->HasSequence(3));
}

TEST_F(SchedulerTest, FcfsNoOvertaking) {
  Init(Kv(4, 10, 8), Opts(8, 8, 64));
  ASSERT_TRUE(sched_->Submit(1, 10, 10).ok());  // 5 blocks
  ASSERT_TRUE(sched_->Submit(2, 16, 16).ok());  // 8 blocks: must wait for 1
  ASSERT_TRUE(sched_->Submit(3, 2, 2).ok());    // 1 block: would fit, but 2 is first
  sched_->Schedule();
  EXPECT_TRUE(sched_->IsRunning(1));
  EXPECT_FALSE(sched_->IsRunning(2));
  EXPECT_FALSE(sched_->IsRunning(3));
  EXPECT_EQ(sched_->reserved_blocks(), 5);
  for (int i = 0; i < 5; ++i) Step();
  EXPECT_FALSE(sched_->IsRunning(3)) << "3 overtook 2";
  sched_->Remove(1);
  sched_->Schedule();
  EXPECT_TRUE(sched_->IsRunning(2));
  EXPECT_TRUE(sched_->IsRunning(3));  // 8 + 1 <= 10
  EXPECT_EQ(sched_->reserved_blocks(), 9);
}

TEST_F(SchedulerTest, RunningIsCappedByOptionsAndByKvSequenceSlots) {
  Init(Kv(4, 100, 8), Opts(2, 8, 64));
  for (SeqId id = 1; id <= 4; ++id) ASSERT_TRUE(sched_->Submit(id, 2, 2).ok());
  sched_->Schedule();
  EXPECT_EQ(sched_->num_running(), 2);
  EXPECT_TRUE(sched_->IsRunning(1));
  EXPECT_TRUE(sched_->IsRunning(2));

  Init(Kv(4, 100, 3), Opts(16, 8, 64));  // the KV manager has only 3 slots
  for (SeqId id = 1; id <= 4; ++id) ASSERT_TRUE(sched_->Submit(id, 2, 2).ok());
  sched_->Schedule();
  EXPECT_EQ(sched_->num_running(), 3);
  EXPECT_EQ(kv_->num_sequences(), 3);
  EXPECT_FALSE(sched_->IsRunning(4));
}

// ---------------------------------------------------------------------------
// Planning

TEST_F(SchedulerTest, ChunkedPrefillWithinTheTokenBudget) {
  Init(Kv(4, 100, 4), Opts(4, 8, 4));
  ASSERT_TRUE(sched_->Submit(1, 10, 3).ok());
  EXPECT_EQ(Step(), (std::vector<ScheduledSeq>{{1, 0, 4, false}}));
  EXPECT_EQ(Step(), (std::vector<ScheduledSeq>{{1, 4, 4, false}}));
  EXPECT_EQ(Step(), (std::vector<ScheduledSeq>{{1, 8, 2, true}}));  // the last chunk samples
  EXPECT_EQ(Step(), (std::vector<ScheduledSeq>{{1, 10, 1, true}}));  // then decode, one token
  EXPECT_EQ(Step(), (std::vector<ScheduledSeq>{{1, 11, 1, true}}));
  EXPECT_EQ(kv_->Length(1), 12);
}

TEST_F(SchedulerTest, PrefillChunksGoOldestFirst) {
  Init(Kv(4, 100, 4), Opts(4, 8, 5));
  ASSERT_TRUE(sched_->Submit(7, 3, 2).ok());
  ASSERT_TRUE(sched_->Submit(2, 3, 2).ok());  // lower id, later arrival
  EXPECT_EQ(Step(), (std::vector<ScheduledSeq>{{7, 0, 3, true}, {2, 0, 2, false}}));
}

TEST_F(SchedulerTest, DecodeBeforePrefill) {
  Init(Kv(4, 100, 4), Opts(4, 8, 4));
  ASSERT_TRUE(sched_->Submit(1, 2, 5).ok());
  EXPECT_EQ(Step(), (std::vector<ScheduledSeq>{{1, 0, 2, true}}));
  ASSERT_TRUE(sched_->Submit(2, 10, 5).ok());
  // 1 is decoding: its token comes first, the prompt of 2 gets the rest.
  EXPECT_EQ(Step(), (std::vector<ScheduledSeq>{{1, 2, 1, true}, {2, 0, 3, false}}));
  EXPECT_EQ(Step(), (std::vector<ScheduledSeq>{{1, 3, 1, true}, {2, 3, 3, false}}));
}

TEST_F(SchedulerTest, PausedSequencesAreSkippedUntilUnpaused) {
  Init(Kv(4, 100, 4), Opts(4, 8, 8));
  ASSERT_TRUE(sched_->Submit(1, 2, 5).ok());
  ASSERT_TRUE(sched_->Submit(2, 2, 5).ok());
  Step();  // both prefilled and sampled
  sched_->SetPaused(1, true);
  for (int i = 0; i < 3; ++i) {
    const std::vector<ScheduledSeq> plan = Step();
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].id, 2);
  }
  sched_->SetPaused(1, false);
  const std::vector<ScheduledSeq> plan = Step();
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0], (ScheduledSeq{1, 2, 1, true}));  // resumes where it stopped
  // Pausing during prefill holds the prompt chunks too.
  ASSERT_TRUE(sched_->Submit(3, 20, 2).ok());
  sched_->Schedule();  // admit 3 (plan discarded: nothing ran)
  sched_->SetPaused(3, true);
  for (const ScheduledSeq& s : Step()) EXPECT_NE(s.id, 3);
  // Pausing unknown or waiting ids is harmless.
  sched_->SetPaused(99, true);
}

TEST_F(SchedulerTest, EmptyPlanWhenNothingCanRun) {
  Init(Kv(4, 100, 4), Opts(4, 8, 8));
  EXPECT_TRUE(sched_->Schedule().empty());
  ASSERT_TRUE(sched_->Submit(1, 2, 5).ok());
  Step();
  sched_->SetPaused(1, true);
  EXPECT_TRUE(sched_->Schedule().empty());
}

// ---------------------------------------------------------------------------
// Removal

TEST_F(SchedulerTest, RemoveFreesBlocksAndLetsAWaitingRequestIn) {
  Init(Kv(4, 10, 4), Opts(4, 8, 64));
  ASSERT_TRUE(sched_->Submit(1, 20, 12).ok());  // 8 blocks
  ASSERT_TRUE(sched_->Submit(2, 10, 6).ok());   // 4 blocks: waits
  Step();                                       // 1 prefills 20 tokens: 5 blocks in use
  EXPECT_EQ(kv_->free_full_blocks(), 5);
  EXPECT_FALSE(sched_->IsRunning(2));
  sched_->Remove(1);
  EXPECT_FALSE(sched_->IsRunning(1));
  EXPECT_FALSE(kv_->HasSequence(1));
  EXPECT_EQ(kv_->free_full_blocks(), 10);
  EXPECT_EQ(sched_->reserved_blocks(), 0);
  const std::vector<ScheduledSeq> plan = Step();
  EXPECT_TRUE(sched_->IsRunning(2));
  EXPECT_EQ(plan, (std::vector<ScheduledSeq>{{2, 0, 10, true}}));
  EXPECT_EQ(sched_->reserved_blocks(), 4);
}

TEST_F(SchedulerTest, RemoveAWaitingRequestAndUnknownIds) {
  Init(Kv(4, 10, 4), Opts(1, 8, 64));
  ASSERT_TRUE(sched_->Submit(1, 4, 4).ok());
  ASSERT_TRUE(sched_->Submit(2, 4, 4).ok());
  ASSERT_TRUE(sched_->Submit(3, 4, 4).ok());
  sched_->Schedule();
  sched_->Remove(2);  // waiting
  EXPECT_EQ(sched_->num_waiting(), 1);
  sched_->Remove(12345);  // unknown
  EXPECT_EQ(sched_->num_running(), 1);
  sched_->Remove(1);
  sched_->Schedule();
  EXPECT_TRUE(sched_->IsRunning(3));
  EXPECT_FALSE(sched_->IsRunning(2));
  EXPECT_TRUE(sched_->Submit(2, 4, 4).ok());  // the id is free again
}

// ---------------------------------------------------------------------------
// A random workload played to completion: every plan respects the budget
// and the order (decodes first, each sequence once, contiguous tokens), an
// admitted sequence never runs out of KV blocks, and everything finishes.

TEST_F(SchedulerTest, RandomWorkloadInvariants) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    const int budget = 8 + static_cast<int>(rng() % 40);
    Init(Kv(4, 64, 6), Opts(5, 6, budget), 16);
    struct Req {
      int prompt, max_new, sampled = 0, fed = 0;
    };
    std::map<SeqId, Req> live;
    SeqId next_id = 0;
    int finished = 0, steps = 0;
    while (finished < 30 && steps < 10000) {
      ++steps;
      if (next_id < 30 && rng() % 2 == 0) {
        Req r{1 + static_cast<int>(rng() % 60), 1 + static_cast<int>(rng() % 40)};
        const absl::Status s = sched_->Submit(next_id, r.prompt, r.max_new);
        if (s.ok()) {
          live[next_id++] = r;
        } else {
          ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
        }
      }
      const std::vector<ScheduledSeq> plan = sched_->Schedule();
      int total = 0;
      bool seen_prefill = false;
      std::set<SeqId> ids;
      for (const ScheduledSeq& s : plan) {
        ASSERT_TRUE(live.count(s.id)) << s;
        Req& r = live[s.id];
        ASSERT_TRUE(ids.insert(s.id).second) << "sequence twice in one plan";
        ASSERT_GT(s.n_tokens, 0) << s;
        ASSERT_EQ(s.first_token, r.fed) << s;
        const bool decode = r.fed >= r.prompt;
        if (decode) {
          ASSERT_FALSE(seen_prefill) << "decode after a prefill chunk";
          ASSERT_EQ(s.n_tokens, 1);
          ASSERT_TRUE(s.samples);
        } else {
          seen_prefill = true;
          ASSERT_LE(s.first_token + s.n_tokens, r.prompt) << s;
          ASSERT_EQ(s.samples, s.first_token + s.n_tokens == r.prompt) << s;
        }
        total += s.n_tokens;
      }
      ASSERT_LE(total, budget);
      ASSERT_LE(sched_->num_running(), 5);
      Run(plan);
      for (const ScheduledSeq& s : plan) {
        Req& r = live[s.id];
        r.fed += s.n_tokens;
        if (s.samples && ++r.sampled == r.max_new) {
          sched_->Remove(s.id);
          live.erase(s.id);
          ++finished;
        }
      }
    }
    EXPECT_EQ(finished, 30) << "seed " << seed << ": stuck after " << steps << " steps";
    EXPECT_EQ(sched_->num_running(), 0);
    EXPECT_EQ(sched_->num_waiting(), 0);
    EXPECT_EQ(sched_->reserved_blocks(), 0);
    EXPECT_EQ(kv_->free_full_blocks(), 64);
    EXPECT_EQ(kv_->num_sequences(), 0);
  }
}

// KNOWN ISSUE (reported, not fixed here): when step_token_budget is smaller
// than max_running, the decodes (handed out in SeqId order) can use the whole
// budget every step, so a sequence admitted later never even gets its prompt
// prefilled, and with more decoders than budget the highest ids never decode.
// Nothing rejects such options (budget >= max_running would prevent it).
TEST_F(SchedulerTest, NoDecoderStarvesWhenTheBudgetIsSmallerThanTheRunningSet) {
  Init(Kv(4, 100, 4), Opts(3, 8, 2));
  for (SeqId id = 1; id <= 3; ++id) ASSERT_TRUE(sched_->Submit(id, 1, 100).ok());
  std::map<SeqId, int> decoded;
  for (int i = 0; i < 30; ++i) {
    for (const ScheduledSeq& s : Step()) ++decoded[s.id];
  }
  for (SeqId id = 1; id <= 3; ++id) EXPECT_GE(decoded[id], 10) << "sequence " << id << " starved";
}

}  // namespace
}  // namespace ossgate::serving
