#include "inference_worker/serving/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace ossgate::serving {

using model::FinishReason;

// ---- RequestStream -------------------------------------------------------

std::optional<OutputChunk> RequestStream::Pop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (queue_.empty()) return std::nullopt;
  OutputChunk c = std::move(queue_.front());
  queue_.pop_front();
  return c;
}

OutputChunk RequestStream::WaitPop() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty(); });
  OutputChunk c = std::move(queue_.front());
  queue_.pop_front();
  return c;
}

void RequestStream::Cancel() { cancelled_.store(true); }

void RequestStream::SetNotify(std::function<void()> notify) {
  std::lock_guard<std::mutex> lock(mu_);
  notify_ = std::move(notify);
}

void RequestStream::Push(OutputChunk chunk) {
  std::function<void()> notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(chunk));
    notify = notify_;
  }
  cv_.notify_all();
  if (notify) notify();
}

size_t RequestStream::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

// ---- Engine --------------------------------------------------------------

namespace {

// Log-softmax of the (penalised) logits at the sampling temperature, the
// chosen token's value and the top-n alternatives.
TokenLogprob ComputeLogprobs(std::span<const float> logits, float temperature, int32_t token, int top_n) {
  const double t = temperature > 0 ? temperature : 1.0;
  double m = -std::numeric_limits<double>::infinity();
  for (float l : logits) {
    if (!std::isnan(l)) m = std::max(m, static_cast<double>(l) / t);
  }
  double sum = 0;
  for (float l : logits) {
    if (!std::isnan(l)) sum += std::exp(static_cast<double>(l) / t - m);
  }
  const double log_z = m + std::log(sum);
  auto lp = [&](int32_t i) { return static_cast<float>(static_cast<double>(logits[i]) / t - log_z); };
  TokenLogprob out;
  out.token = token;
  out.logprob = lp(token);
  if (top_n > 0) {
    std::vector<int32_t> idx(logits.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
    const size_t n = std::min<size_t>(top_n, idx.size());
    std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    for (size_t i = 0; i < n; ++i) out.top.emplace_back(idx[i], lp(idx[i]));
  }
  return out;
}

}  // namespace

Engine::Engine(model::Backend& backend, const text::Tokenizer& tokenizer, const EngineOptions& options,
               EngineObserver* observer)
    : backend_(backend),
      tokenizer_(tokenizer),
      options_(options),
      observer_(observer),
      epoch_(std::chrono::steady_clock::now()),
      scheduler_(options.scheduler, backend.kv()) {
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() { Stop(); }

double Engine::Now() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_).count();
}

void Engine::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::shared_ptr<RequestStream>> Engine::Submit(GenerationRequest request) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return absl::UnavailableError("the worker is shutting down");
  if (request.request_id.empty()) request.request_id = absl::StrCat("req-", next_id_);
  if (by_request_.count(request.request_id)) {
    return absl::AlreadyExistsError(absl::StrCat("request_id: '", request.request_id, "' is already running"));
  }
  const SeqId id = next_id_++;
  if (absl::Status s = scheduler_.Submit(id, static_cast<int>(request.prompt.size()), request.params.max_tokens);
      !s.ok()) {
    return s;
  }
  Active a;
  a.stream = std::make_shared<RequestStream>(request.request_id);
  a.state = std::make_unique<model::SequenceState>(tokenizer_, request.prompt, request.params);
  a.tokens = request.prompt;
  a.submitted = Now();
  a.request = std::move(request);
  auto stream = a.stream;
  by_request_.emplace(a.request.request_id, id);
  active_.emplace(id, std::move(a));
  cv_.notify_all();
  return stream;
}

absl::Status Engine::Abort(const std::string& request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_request_.find(request_id);
  if (it == by_request_.end()) return absl::NotFoundError(absl::StrCat("request_id: no running request '", request_id, "'"));
  active_.at(it->second).stream->Cancel();
  cv_.notify_all();
  return absl::OkStatus();
}

EngineStats Engine::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineStats s = stats_;
  s.running = scheduler_.num_running();
  s.waiting = scheduler_.num_waiting();
  s.kv_blocks_total = backend_.kv().num_full_blocks();
  s.kv_blocks_used = s.kv_blocks_total - backend_.kv().free_full_blocks();
  return s;
}

// Sends the final chunk (with usage) and forgets the request. mu_ held.
void Engine::Finish(SeqId id, Active& a, FinishReason reason, const std::string& error) {
  OutputChunk c;
  c.final = true;
  c.finish = reason;
  c.error = error;
  c.usage.prompt_tokens = static_cast<int>(a.request.prompt.size());
  c.usage.generated_tokens = static_cast<int>(a.state->generated().size());
  const double now = Now();
  c.usage.total = now - a.submitted;
  c.usage.time_to_first_token = a.first_token >= 0 ? a.first_token - a.submitted : 0;
  c.usage.queued = (a.admitted >= 0 ? a.admitted : now) - a.submitted;
  ++stats_.requests_finished;
  if (observer_) observer_->OnFinished(reason, c.usage);
  a.stream->Push(std::move(c));
  scheduler_.Remove(id);
  by_request_.erase(a.request.request_id);
}

void Engine::Loop() {
  std::vector<float> logits;
  std::vector<int32_t> sampled;
  const int vocab = backend_.config().vocab_size;
  for (;;) {
    std::vector<ScheduledSeq> plan;
    std::vector<model::SequenceStep> steps;
    std::vector<model::StepSampling> sampling;  // one per step (ForwardSample)
    // Whether a sequence of the plan needs its logits on the host: log
    // probabilities are computed from them and penalties need the history.
    // Then the whole step runs through Forward and every sequence samples on
    // the host; otherwise the backend samples (on the GPU only the token ids
    // come back). Both give the same tokens.
    bool host_logits = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (auto it = active_.begin(); it != active_.end();) {
        if (stop_ || it->second.stream->cancelled()) {
          Finish(it->first, it->second, FinishReason::kCancelled, "");
          it = active_.erase(it);
          continue;
        }
        scheduler_.SetPaused(it->first, it->second.stream->pending() >= options_.max_pending_chunks);
        ++it;
      }
      if (stop_) return;
      plan = scheduler_.Schedule();
      if (plan.empty()) {
        // Nothing runnable: wait for work, or poll paused streams.
        if (active_.empty()) {
          cv_.wait(lock, [&] { return stop_ || !active_.empty(); });
        } else {
          cv_.wait_for(lock, std::chrono::milliseconds(2));
        }
        continue;
      }
      const double now = Now();
      for (const ScheduledSeq& s : plan) {
        Active& a = active_.at(s.id);
        if (a.admitted < 0) a.admitted = now;
        steps.push_back({s.id, std::span<const int32_t>(a.tokens.data() + s.first_token, s.n_tokens),
                         s.samples ? model::Logits::kLast : model::Logits::kNone});
        sampling.push_back(s.samples ? a.state->NextSampling() : model::StepSampling{});
        if (s.samples && (a.request.logprobs >= 0 || a.state->NeedsHostLogits())) host_logits = true;
      }
    }

    // The step itself runs without the lock: Submit may add entries to
    // active_, but only this thread removes them or touches their tokens.
    const absl::Status status =
        host_logits ? backend_.Forward(steps, &logits) : backend_.ForwardSample(steps, sampling, &sampled);

    std::lock_guard<std::mutex> lock(mu_);
    size_t row = 0;
    for (const ScheduledSeq& s : plan) {
      auto it = active_.find(s.id);
      Active& a = it->second;
      if (!status.ok()) {
        Finish(s.id, a, FinishReason::kError, std::string(status.message()));
        active_.erase(it);
        continue;
      }
      scheduler_.OnStepDone(s);
      if (!s.samples) continue;
      // Rows of logits (Forward) or sampled tokens (ForwardSample): one per
      // sampling sequence, in plan order.
      std::span<float> lg;
      model::SequenceState::StepResult r;
      if (host_logits) {
        lg = std::span<float>(logits.data() + row * vocab, vocab);
        r = a.state->Step(lg);
      } else {
        r = a.state->Accept(sampled[row]);
      }
      ++row;
      a.tokens.push_back(r.token);
      const double now = Now();
      if (a.first_token < 0) {
        a.first_token = now;
        if (observer_) observer_->OnFirstToken(now - a.submitted);
      } else if (observer_) {
        observer_->OnToken(now - a.last_token);
      }
      a.last_token = now;
      ++stats_.generated_tokens;
      OutputChunk c;
      c.tokens.push_back(r.token);
      c.text = std::move(r.text);
      c.channel = std::move(r.channel);
      if (a.request.logprobs >= 0) {  // then host_logits
        c.logprobs.push_back(ComputeLogprobs(lg, a.request.params.sampling.temperature, r.token, a.request.logprobs));
      }
      if (r.finish == FinishReason::kNone) {
        a.stream->Push(std::move(c));
        continue;
      }
      a.stream->Push(std::move(c));
      stats_.prompt_tokens += a.request.prompt.size();
      Finish(s.id, a, r.finish, "");
      active_.erase(it);
    }
  }
}

}  // namespace ossgate::serving
