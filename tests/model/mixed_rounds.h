// RunRounds: drives a backend through batches that mix prompt chunks
// (Logits::kNone) with last chunks and decode steps (Logits::kLast), sampling
// either in the backend (ForwardSample) or on the host (Forward +
// model::Sampler), as the serving engine does. Shared by the CPU and CUDA
// backend tests, which compare the two ways.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/model/backend.h"
#include "inference_worker/model/sampler.h"

namespace ossgate::testing {

// One part of a round of RunRounds: sequence `seq` feeds its next `n` prompt
// tokens, or (n = 0) the token it sampled last.
struct Part {
  int seq = 0;
  int n = 0;
};

// Runs `rounds` on sequences first_id + i (prompt i, params[i]); a step asks
// for kLast once its prompt is fed, else kNone. With `forward_sample` the
// backend samples (RNG counter: tokens generated so far + step_offset;
// kNone steps get a penalised entry, which must be ignored); otherwise
// Forward and model::Sampler on each kLast row. Returns the sampled tokens
// per sequence and removes the sequences.
inline std::vector<std::vector<int32_t>> RunRounds(model::Backend& b, model::SeqId first_id,
                                            const std::vector<std::vector<int32_t>>& prompts,
                                            const std::vector<model::SamplingParams>& params,
                                            const std::vector<std::vector<Part>>& rounds, bool forward_sample,
                                            uint64_t step_offset = 0) {
  const size_t V = static_cast<size_t>(b.config().vocab_size);
  model::SamplingParams penalised;
  penalised.repetition_penalty = 1.5f;
  std::vector<size_t> fed(prompts.size(), 0);
  std::vector<std::vector<int32_t>> gen(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_TRUE(b.kv().AddSequence(first_id + static_cast<model::SeqId>(i)).ok());
  }
  for (size_t round = 0; round < rounds.size(); ++round) {
    std::vector<model::SequenceStep> steps;
    std::vector<model::StepSampling> sampling;
    std::vector<size_t> sampled_seq;  // the sequence of each kLast step, in step order
    for (const Part& p : rounds[round]) {
      const size_t i = static_cast<size_t>(p.seq);
      std::span<const int32_t> toks;
      if (p.n > 0) {
        toks = {prompts[i].data() + fed[i], static_cast<size_t>(p.n)};
        fed[i] += static_cast<size_t>(p.n);
      } else {
        toks = {&gen[i].back(), 1};
      }
      const bool last = fed[i] == prompts[i].size();
      const model::Logits kind = last ? model::Logits::kLast : model::Logits::kNone;
      steps.push_back({first_id + static_cast<model::SeqId>(i), toks, kind});
      sampling.push_back(last ? model::StepSampling{params[i], gen[i].size() + step_offset}
                              : model::StepSampling{penalised, 0});
      if (last) sampled_seq.push_back(i);
    }
    std::vector<int32_t> tokens;
    if (forward_sample) {
      const absl::Status s = b.ForwardSample(steps, sampling, &tokens);
      EXPECT_TRUE(s.ok()) << "round " << round << ": " << s;
    } else {
      std::vector<float> logits;
      const absl::Status s = b.Forward(steps, &logits);
      EXPECT_TRUE(s.ok()) << "round " << round << ": " << s;
      EXPECT_EQ(logits.size(), sampled_seq.size() * V);
      for (size_t r = 0; r < sampled_seq.size() && (r + 1) * V <= logits.size(); ++r) {
        const size_t i = sampled_seq[r];
        tokens.push_back(model::Sampler(params[i]).Sample({logits.data() + r * V, V}, {}, gen[i].size()));
      }
    }
    EXPECT_EQ(tokens.size(), sampled_seq.size()) << "round " << round;
    if (tokens.size() != sampled_seq.size()) break;
    for (size_t r = 0; r < tokens.size(); ++r) gen[sampled_seq[r]].push_back(tokens[r]);
  }
  for (size_t i = 0; i < prompts.size(); ++i) b.kv().RemoveSequence(first_id + static_cast<model::SeqId>(i));
  return gen;
}

}  // namespace ossgate::testing
