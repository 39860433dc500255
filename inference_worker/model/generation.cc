#include "inference_worker/model/generation.h"

#include "absl/strings/str_cat.h"

#include <algorithm>
#include <chrono>
#include <optional>

namespace ossgate::model {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
    case FinishReason::kToolCall: return "tool_calls";
  }
  return "unknown";
}

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
  for (const std::string& s : stops_) longest_ = std::max(longest_, s.size());
}

std::string StopMatcher::Push(const std::string& text) {
  if (matched_) return "";
  held_ += text;
  if (stops_.empty()) return std::exchange(held_, "");
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    matched_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Hold back the longest suffix that is a prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n) {
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  // Never split a UTF-8 sequence: move the cut left past continuation bytes.
  size_t cut = held_.size() - keep;
  while (cut > 0 && cut < held_.size() && (static_cast<unsigned char>(held_[cut]) & 0xC0) == 0x80) --cut;
  std::string out = held_.substr(0, cut);
  held_.erase(0, cut);
  return out;
}

std::string StopMatcher::Flush() { return matched_ ? "" : std::exchange(held_, ""); }

SequenceState::SequenceState(const text::Tokenizer& tokenizer, std::vector<int32_t> prompt, GenerationParams params)
    : prompt_(std::move(prompt)),
      params_(std::move(params)),
      sampler_(params_.sampling),
      history_(prompt_),
      // The prompt's last token tells the decoder whether the first generated
      // one starts a text segment (SentencePiece's "▁" prefix is then dropped).
      decoder_(tokenizer, prompt_.empty() ? std::nullopt : std::optional<int32_t>(prompt_.back())),
      harmony_(params_.harmony ? std::make_unique<text::HarmonyParser>(tokenizer) : nullptr),
      stops_(params_.stop_strings) {}

SequenceState::StepResult SequenceState::Step(std::span<float> logits) {
  if (finished()) {
    StepResult r;
    r.finish = finish_;
    return r;
  }
  return Accept(sampler_.Sample(logits, history_, generated_.size()));
}

SequenceState::StepResult SequenceState::Accept(int32_t token) {
  StepResult r;
  if (finished()) {
    r.finish = finish_;
    return r;
  }
  if (token == kNoToken) return r;  // the sampler refused the row: nothing recorded
  r.token = token;
  generated_.push_back(r.token);
  history_.push_back(r.token);
  const bool stop_token =
      std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(), r.token) != params_.stop_token_ids.end();
  if (harmony_) {
    bool harmony_stop = false;
    text::HarmonyParser::Delta d = harmony_->Push(r.token, &harmony_stop);
    r.channel = std::move(d.channel);
    r.recipient = std::move(d.recipient);
    r.content_type = std::move(d.content_type);
    r.text = stops_.Push(d.text);
    if (stop_token || harmony_stop || stops_.matched()) {
      finish_ = harmony_->stopped_for_tool_call() ? FinishReason::kToolCall : FinishReason::kStop;
    } else if (static_cast<int>(generated_.size()) >= params_.max_tokens) {
      r.text += stops_.Flush();
      finish_ = FinishReason::kLength;
    }
    r.finish = finish_;
    return r;
  }
  if (stop_token) {
    r.text = stops_.Push(decoder_.Flush());
    if (!stops_.matched()) r.text += stops_.Flush();
    finish_ = FinishReason::kStop;
  } else {
    r.text = stops_.Push(decoder_.Push(r.token));
    if (stops_.matched()) {
      finish_ = FinishReason::kStop;
    } else if (static_cast<int>(generated_.size()) >= params_.max_tokens) {
      r.text += stops_.Push(decoder_.Flush());
      if (!stops_.matched()) r.text += stops_.Flush();
      finish_ = stops_.matched() ? FinishReason::kStop : FinishReason::kLength;
    }
  }
  r.finish = finish_;
  return r;
}

absl::StatusOr<SequenceState::StepResult> ForwardStep(Backend& backend, SequenceState& state, const SequenceStep& step,
                                                      std::vector<float>* logits) {
  if (step.logits != Logits::kLast) {
    return absl::InvalidArgumentError("ForwardStep: the step must ask for Logits::kLast");
  }
  const size_t index = state.generated().size();
  SequenceState::StepResult r;
  if (state.NeedsHostLogits()) {
    if (absl::Status s = backend.Forward({&step, 1}, logits); !s.ok()) return s;
    r = state.Step(*logits);
  } else {
    const StepSampling sampling = state.NextSampling();
    std::vector<int32_t> token;
    if (absl::Status s = backend.ForwardSample({&step, 1}, {&sampling, 1}, &token); !s.ok()) return s;
    r = state.Accept(token.at(0));
  }
  if (r.token == kNoToken && r.finish == FinishReason::kNone) {
    return absl::InternalError(absl::StrCat("step ", index, ": the logits hold NaN or no value above -inf, so no token "
                                            "can be sampled (a numerical fault in the model or the backend)"));
  }
  return r;
}

absl::StatusOr<GenerationResult> GenerateOne(Backend& backend, const text::Tokenizer& tokenizer, SeqId seq,
                                             const std::vector<int32_t>& prompt, const GenerationParams& params,
                                             const std::function<void(const std::string&)>& on_text) {
  using Clock = std::chrono::steady_clock;
  if (prompt.empty()) return absl::InvalidArgumentError("prompt is empty");
  if (absl::Status s = backend.kv().AddSequence(seq); !s.ok()) return s;
  GenerationResult result;
  SequenceState state(tokenizer, prompt, params);
  std::vector<float> logits;
  SequenceState::StepResult r;
  // One step and its token.
  auto run = [&](const SequenceStep& step) {
    absl::StatusOr<SequenceState::StepResult> taken = ForwardStep(backend, state, step, &logits);
    if (!taken.ok()) return taken.status();
    r = *std::move(taken);
    return absl::OkStatus();
  };
  const auto t0 = Clock::now();
  SequenceStep step{seq, prompt, Logits::kLast};
  absl::Status status = run(step);
  auto t_first = Clock::now();
  while (status.ok()) {
    if (result.tokens.empty()) t_first = Clock::now();
    result.tokens.push_back(r.token);
    result.text += r.text;
    if (on_text && !r.text.empty()) on_text(r.text);
    if (r.finish != FinishReason::kNone) {
      result.finish = r.finish;
      break;
    }
    step = SequenceStep{seq, {&result.tokens.back(), 1}, Logits::kLast};
    status = run(step);
  }
  backend.kv().RemoveSequence(seq);
  if (!status.ok()) return status;
  result.prefill_seconds = std::chrono::duration<double>(t_first - t0).count();
  result.decode_seconds = std::chrono::duration<double>(Clock::now() - t_first).count();
  return result;
}

}  // namespace ossgate::model
