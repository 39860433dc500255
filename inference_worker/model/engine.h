// The engine interface: one forward step over a batch of sequences. The CPU
// reference backend implements it now; the CUDA backend implements the same
// interface, so the scheduler, the worker and every end-to-end test run
// unchanged on either.
//
// Data flow of one step: the caller (the generation loop or the worker's
// scheduler) picks, for each running sequence, the tokens to feed (a prompt
// chunk or the one token sampled last step); Forward() appends them to each
// sequence's KV cache and returns logits. A sequence's positions are implicit:
// its new tokens continue from its current length.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/model/kv_cache.h"
#include "inference_worker/model/model_config.h"

namespace ossgate::model {

// Which logits a step returns for a sequence.
enum class Logits {
  kLast,  // the last new token's (to sample the next token)
  kAll,   // every new token's (scoring, tests)
  kNone,  // none (a prompt chunk that is not the last)
};

// One sequence's part of a batched step.
struct SequenceStep {
  SeqId seq = 0;
  std::span<const int32_t> tokens;  // new tokens (prefill chunk or one decode token); not empty
  Logits logits = Logits::kLast;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const ModelConfig& config() const = 0;
  // e.g. "cpu (16 threads)" or "cuda (NVIDIA H100 80GB HBM3)".
  virtual std::string Description() const = 0;

  // The block manager that owns the KV-cache bookkeeping. The scheduler
  // admits sequences against its free blocks. Not thread-safe: every method
  // of the backend is called from one thread (the engine loop).
  virtual KvBlockManager& kv() = 0;

  // Runs every step as one batch. Each sequence must already be registered
  // with kv().AddSequence, must have room for its new tokens (kv().Reserve is
  // called by Forward) and may appear only once. `logits` is resized to
  // (rows requested by the steps) * vocab floats, rows in step order.
  // On error no sequence's state changes.
  virtual absl::Status Forward(std::span<const SequenceStep> steps, std::vector<float>* logits) = 0;
};

// The checks every backend's Forward makes before touching any state, then
// the block reservation: each sequence registered, present once, with tokens
// in [0, vocab_size), staying within max_context, and the KV pool holding the
// blocks all of them need. NotFound / InvalidArgument / ResourceExhausted
// (nothing reserved) name the sequence and the problem.
absl::Status ValidateAndReserve(std::span<const SequenceStep> steps, int vocab_size, int max_context,
                                KvBlockManager& kv);

}  // namespace ossgate::model
