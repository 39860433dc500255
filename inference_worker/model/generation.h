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
#include "inference_worker/model/backend.h"
#include "inference_worker/model/sampler.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::model {

// kToolCall: a harmony reply ended with <|call|> after a message to a
// function tool ("functions.NAME"); the caller runs the tool and continues
// the conversation with its reply (OpenAI's finish_reason "tool_calls").
enum class FinishReason { kNone, kStop, kLength, kCancelled, kError, kToolCall };
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
// feed it the logits of its last position (Step), or a token the backend
// sampled (Accept, after Backend::ForwardSample with NextSampling()), and get
// the text. Both give the same token and text for the same logits.
class SequenceState {
 public:
  SequenceState(const text::Tokenizer& tokenizer, std::vector<int32_t> prompt, GenerationParams params);

  struct StepResult {
    int32_t token = -1;
    std::string text;                 // valid UTF-8, may be empty
    // Harmony mode only: header of the message `text` belongs to.
    std::string channel;       // e.g. "final"
    std::string recipient;     // e.g. "functions.get_weather" for a tool call's arguments; empty = none
    std::string content_type;  // e.g. "json"; empty = none
    FinishReason finish = FinishReason::kNone;
  };
  // Samples from `logits` (modified in place: penalties), then Accept()s the
  // token. After the end, returns the finish reason and no token.
  StepResult Step(std::span<float> logits);
  // Records `token` as the next generated token and returns its text: stop
  // ids, stop strings, text decoding, harmony, max tokens. Use it with a
  // token sampled as NextSampling() says. After the end, returns the finish
  // reason and no token. kNoToken (a sampler's refusal of a NaN row) records
  // nothing and comes back as the token with no finish reason: the caller
  // ends the request with an error (ForwardStep returns INTERNAL).
  StepResult Accept(int32_t token);
  // How Step would sample the next token: the request's parameters and the
  // RNG counter (the number of tokens generated so far).
  StepSampling NextSampling() const { return {params_.sampling, generated_.size()}; }
  // Whether the next token needs the logits on the host (penalties use the
  // history); if not, Backend::ForwardSample can sample it.
  bool NeedsHostLogits() const { return UsesPenalties(params_.sampling); }

  const std::vector<int32_t>& prompt() const { return prompt_; }
  const std::vector<int32_t>& generated() const { return generated_; }
  bool finished() const { return finish_ != FinishReason::kNone; }
  FinishReason finish_reason() const { return finish_; }

 private:
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

// Runs `step` (one sequence, Logits::kLast) on `backend` and feeds the next
// token to `state`: sampled in the backend (ForwardSample with
// state.NextSampling(); on the GPU only the token id comes back) unless
// state.NeedsHostLogits(), else sampled on the host from Forward's logits
// (Step). The same token either way. `logits` is scratch space.
absl::StatusOr<SequenceState::StepResult> ForwardStep(Backend& backend, SequenceState& state, const SequenceStep& step,
                                                      std::vector<float>* logits);

struct GenerationResult {
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason finish = FinishReason::kNone;
  double prefill_seconds = 0;  // time to first token
  double decode_seconds = 0;
};

// Runs one sequence to completion on `backend` (prefill in one step, then
// decode), sampling in the backend (ForwardSample) unless penalties need the
// host. on_text receives each text delta as it is produced (may be null).
// The sequence id `seq` must be unused; it is removed at the end.
absl::StatusOr<GenerationResult> GenerateOne(Backend& backend, const text::Tokenizer& tokenizer, SeqId seq,
                                             const std::vector<int32_t>& prompt, const GenerationParams& params,
                                             const std::function<void(const std::string&)>& on_text);

}  // namespace ossgate::model
