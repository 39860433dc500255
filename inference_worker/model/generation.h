// Per-sequence generation logic shared by the CLI, the tests and the
// worker's scheduler: sampling with penalties, stop token ids, stop strings
// (with held-back text so a partial match is never emitted), max tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/model/engine.h"
#include "inference_worker/model/sampler.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::model {

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* FinishReasonName(FinishReason r);

struct GenerationParams {
  SamplingParams sampling;
  int max_tokens = 256;                   // generated tokens, >= 1
  std::vector<int32_t> stop_token_ids;    // generation ends after emitting one of these (not included in text)
  std::vector<std::string> stop_strings;  // generation ends when the text contains one (text cut before it)
  // The output is harmony (a chat answer): text comes from the message
  // contents, tagged with their channel; header tokens produce no text, and
  // stop strings apply to the content text.
  bool harmony = false;
};

// Matches stop strings across token boundaries. Push() returns the text that
// can be emitted now: everything except a suffix that might still grow into
// a stop string. After a match, the text up to the stop string is returned
// and matched() is true.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  std::string Push(const std::string& text);
  std::string Flush();  // held-back text at the end of generation
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  size_t longest_ = 0;
  std::string held_;
  bool matched_ = false;
};

// The state of one sequence being generated, independent of the backend:
// feed it the logits of its last position, get the next token and the text.
class SequenceState {
 public:
  SequenceState(const text::Tokenizer& tokenizer, std::vector<int32_t> prompt, GenerationParams params);

  struct StepResult {
    int32_t token = -1;
    std::string text;                 // valid UTF-8, may be empty
    std::string channel;              // harmony channel of `text` (harmony mode only)
    FinishReason finish = FinishReason::kNone;
  };
  // Samples from `logits` (modified in place), updates the state.
  StepResult Step(std::span<float> logits);

  const std::vector<int32_t>& prompt() const { return prompt_; }
  const std::vector<int32_t>& generated() const { return generated_; }
  bool finished() const { return finish_ != FinishReason::kNone; }
  FinishReason finish_reason() const { return finish_; }

 private:
  const text::Tokenizer& tokenizer_;
  const std::vector<int32_t> prompt_;
  const GenerationParams params_;
  const Sampler sampler_;
  std::vector<int32_t> history_;  // prompt + generated, for penalties
  std::vector<int32_t> generated_;
  text::StreamDecoder decoder_;
  std::unique_ptr<text::HarmonyParser> harmony_;  // harmony mode only
  StopMatcher stops_;
  FinishReason finish_ = FinishReason::kNone;
};

struct GenerationResult {
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason finish = FinishReason::kNone;
  double prefill_seconds = 0;  // time to first token
  double decode_seconds = 0;
};

// Runs one sequence to completion on `backend` (prefill in one step, then
// decode). on_text receives each text delta as it is produced (may be null).
// The sequence id `seq` must be unused; it is removed at the end.
absl::StatusOr<GenerationResult> GenerateOne(Backend& backend, const text::Tokenizer& tokenizer, SeqId seq,
                                             const std::vector<int32_t>& prompt, const GenerationParams& params,
                                             const std::function<void(const std::string&)>& on_text);

}  // namespace ossgate::model
