#include "inference_worker/model/backend.h"

#include <limits>
#include <set>

#include "absl/strings/str_cat.h"

namespace ossgate::model {

absl::Status ValidateAndReserve(std::span<const SequenceStep> steps, int vocab_size, int max_context,
                                KvBlockManager& kv) {
  std::set<SeqId> seen;
  int needed_blocks = 0;
  for (const SequenceStep& s : steps) {
    if (!kv.HasSequence(s.seq)) return absl::NotFoundError(absl::StrCat("Forward: unknown sequence ", s.seq));
    if (!seen.insert(s.seq).second) {
      return absl::InvalidArgumentError(absl::StrCat("Forward: sequence ", s.seq, " appears twice in one step"));
    }
    if (s.tokens.empty()) return absl::InvalidArgumentError(absl::StrCat("Forward: sequence ", s.seq, " has no tokens"));
    for (int32_t t : s.tokens) {
      if (t < 0 || t >= vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("Forward: token id ", t, " is outside the vocabulary [0, ", vocab_size, ")"));
      }
    }
    const int64_t new_len = kv.Length(s.seq) + static_cast<int64_t>(s.tokens.size());
    if (new_len > max_context) {
      return absl::InvalidArgumentError(absl::StrCat("Forward: sequence ", s.seq, " would reach ", new_len,
                                                     " tokens, over the context limit of ", max_context));
    }
    needed_blocks += kv.FullBlocksFor(static_cast<int>(new_len)) - static_cast<int>(kv.FullTable(s.seq).size());
  }
  if (needed_blocks > kv.free_full_blocks()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Forward: KV cache needs ", needed_blocks, " blocks, ", kv.free_full_blocks(), " free"));
  }
  for (const SequenceStep& s : steps) {
    if (absl::Status st = kv.Reserve(s.seq, static_cast<int>(s.tokens.size())); !st.ok()) return st;
  }
  return absl::OkStatus();
}

void SuppressUnsampled(const ModelConfig& config, float* logits, size_t rows) {
  const size_t vocab = static_cast<size_t>(config.vocab_size);
  for (size_t r = 0; r < rows; ++r) {
    for (int32_t id : config.unsampled_tokens) logits[r * vocab + static_cast<size_t>(id)] = -std::numeric_limits<float>::infinity();
  }
}

absl::Status ValidateSampling(std::span<const SequenceStep> steps, std::span<const StepSampling> sampling) {
  if (sampling.size() != steps.size()) {
    return absl::InvalidArgumentError(absl::StrCat("ForwardSample: ", sampling.size(), " sampling entries for ",
                                                   steps.size(), " steps; one per step is required"));
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].logits == Logits::kAll) {
      return absl::InvalidArgumentError(
          absl::StrCat("ForwardSample: sequence ", steps[i].seq,
                       " asks for Logits::kAll; ForwardSample samples one token per Logits::kLast step (use "
                       "Forward for every position's logits)"));
    }
    if (steps[i].logits == Logits::kLast && UsesPenalties(sampling[i].params)) {
      return absl::InvalidArgumentError(
          absl::StrCat("ForwardSample: sequence ", steps[i].seq,
                       " uses a repetition, presence or frequency penalty, which needs the token history; use "
                       "Forward and sample on the host"));
    }
  }
  return absl::OkStatus();
}

absl::Status Backend::ForwardSample(std::span<const SequenceStep> steps, std::span<const StepSampling> sampling,
                                    std::vector<int32_t>* tokens) {
  // Checked before Forward so that a refused call changes no state.
  if (absl::Status s = ValidateSampling(steps, sampling); !s.ok()) return s;
  std::vector<float> logits;
  if (absl::Status s = Forward(steps, &logits); !s.ok()) return s;
  const size_t vocab = static_cast<size_t>(config().vocab_size);
  tokens->clear();
  size_t row = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].logits != Logits::kLast) continue;
    // No penalties (checked above), so the history is irrelevant.
    const Sampler sampler(sampling[i].params);
    tokens->push_back(sampler.Sample({logits.data() + row * vocab, vocab}, {}, sampling[i].step));
    ++row;
  }
  return absl::OkStatus();
}

}  // namespace ossgate::model
