// The engine interface: one forward step over a batch of sequences. The CPU
// reference backend implements it now; the CUDA backend implements the same
// interface, so the scheduler, the worker and every end-to-end test run
// unchanged on either.
//
// Data flow of one step: the caller (the generation loop or the worker's
// scheduler) picks, for each running sequence, the tokens to feed (a prompt
// chunk or the one token sampled last step); Forward() appends them to each
// sequence's KV cache and returns logits. A sequence's positions are implicit:
// its new tokens continue from its current length. ForwardSample() does the
// same and samples the next tokens inside the backend, returning only their
// ids (on the GPU, a few bytes instead of a vocabulary of floats per row).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/model/kv_cache.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/model/sampler.h"

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

// How ForwardSample samples one step's next token: exactly what
// Sampler(params).Sample(row, history, step) would do on the host
// (SequenceState::NextSampling gives both fields). Penalties must be off:
// they need the token history, which the backend does not have.
struct StepSampling {
  SamplingParams params;
  uint64_t step = 0;  // RNG counter: index of the token being generated (tokens generated so far)
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
  // (rows requested by the steps) * vocab floats, rows in step order; the
  // logits of config().unsampled_tokens are -inf (SuppressUnsampled).
  // On error no sequence's state changes.
  virtual absl::Status Forward(std::span<const SequenceStep> steps, std::vector<float>* logits) = 0;

  // Runs the steps like Forward and samples the next token of every step
  // that asks for Logits::kLast. `sampling` has one entry per step, in step
  // order (sampling[i] for steps[i]; the entries of kNone steps are ignored),
  // so a caller builds both spans in one loop. `tokens` is resized to one
  // token per kLast step, in step order; kNone steps get none. Each token is
  // the one Sampler(params).Sample(row, {}, step) returns for the step's
  // logits row, Philox draw included, so the host and the GPU agree.
  // InvalidArgument, before any state changes, for a kAll step, a `sampling`
  // of another size than `steps`, or penalties (they need the token history:
  // use Forward and sample on the host); otherwise the errors of Forward.
  // The default runs Forward and samples on the host; the CUDA backend
  // samples on the GPU and copies back only the token ids.
  virtual absl::Status ForwardSample(std::span<const SequenceStep> steps, std::span<const StepSampling> sampling,
                                     std::vector<int32_t>* tokens);
};

// Sets the logits of config.unsampled_tokens (ids the model never emits) to
// -inf in `rows` rows of vocab_size floats. Every backend's Forward applies
// it, and the GPU sampler excludes the same ids, so no sampler returns them.
void SuppressUnsampled(const ModelConfig& config, float* logits, size_t rows);

// The checks every backend's Forward makes before touching any state, then
// the block reservation: each sequence registered, present once, with tokens
// in [0, vocab_size), staying within max_context, and the KV pool holding the
// blocks all of them need. NotFound / InvalidArgument / ResourceExhausted
// (nothing reserved) name the sequence and the problem.
absl::Status ValidateAndReserve(std::span<const SequenceStep> steps, int vocab_size, int max_context,
                                KvBlockManager& kv);

// The checks ForwardSample makes before anything else (shared by the default
// and the CUDA implementation): one StepSampling per step, no kAll step, no
// penalties on a kLast step. InvalidArgument names the step and the problem.
absl::Status ValidateSampling(std::span<const SequenceStep> steps, std::span<const StepSampling> sampling);

}  // namespace ossgate::model
