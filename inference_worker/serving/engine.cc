#include "inference_worker/serving/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "inference_worker/model/sampler.h"

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

void RequestStream::Enqueue(OutputChunk chunk) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(chunk));
  }
  cv_.notify_all();
}

void RequestStream::Notify() {
  std::function<void()> notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    notify = notify_;
  }
  if (notify) notify();
}

// ---- StreamNotifier ------------------------------------------------------

StreamNotifier::StreamNotifier() : thread_([this] { Run(); }) {}

StreamNotifier::~StreamNotifier() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void StreamNotifier::Schedule(std::vector<std::shared_ptr<RequestStream>>& streams) {
  bool added = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : streams) {
      if (s->notify_queued().exchange(true)) continue;  // already waiting: its callback sees this chunk too
      queue_.push_back(std::move(s));
      added = true;
    }
  }
  streams.clear();
  if (added) cv_.notify_one();
}

void StreamNotifier::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_, nothing left
    std::shared_ptr<RequestStream> s = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    // Cleared before the callback: a chunk pushed from here on queues the
    // stream again, so no chunk is left without a callback after it. (An
    // exchange, not a store: it reads the producer's exchange(true), so
    // every chunk enqueued before that is visible to the callback's Pop.)
    s->notify_queued().exchange(false);
    s->Notify();
    s.reset();
    lock.lock();
  }
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

// 128 random bits as 32 lowercase hex digits: sequential ids ("req-1120",
// "req-1121", ...) would tell every client the ids of everyone else's
// requests. std::random_device reads the kernel's (or the CPU's) entropy.
std::string RandomRequestId() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string id;
  id.reserve(32);
  for (int word = 0; word < 4; ++word) {
    uint32_t v = rd();
    for (int i = 0; i < 8; ++i, v >>= 4) id += kHex[v & 15];
  }
  return id;
}

bool HoldsNaN(std::span<const float> row) {
  return std::any_of(row.begin(), row.end(), [](float v) { return std::isnan(v); });
}

}  // namespace

Engine::Engine(model::Backend& backend, const text::Tokenizer& tokenizer, const EngineOptions& options,
               EngineObserver* observer)
    : backend_(backend),
      tokenizer_(tokenizer),
      options_(options),
      observer_(observer),
      epoch_(std::chrono::steady_clock::now()),
      notifier_(std::make_unique<StreamNotifier>()),
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
  notifier_.reset();  // runs the callbacks still queued (the final chunks), then stops
}

absl::StatusOr<std::shared_ptr<RequestStream>> Engine::Submit(GenerationRequest request) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return absl::UnavailableError("the worker is shutting down");
  if (request.request_id.empty()) request.request_id = RandomRequestId();
  if (by_request_.count({request.owner, request.request_id})) {
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
  by_request_.emplace(OwnedId{a.request.owner, a.request.request_id}, id);
  active_.emplace(id, std::move(a));
  cv_.notify_all();
  return stream;
}

absl::Status Engine::Abort(const std::string& request_id, const std::string& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_request_.find(OwnedId{owner, request_id});
  if (it == by_request_.end()) {
    // The id is not echoed: it is the caller's input, and the message is the
    // same whether nobody or somebody else runs it.
    return absl::NotFoundError("request_id: no running or queued request of yours has this id");
  }
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
void Engine::Finish(SeqId id, Active& a, FinishReason reason, const absl::Status& error) {
  OutputChunk c;
  c.final = true;
  c.finish = reason;
  c.error_code = error.code();
  if (!error.ok()) c.error = error.ToString();
  c.usage.prompt_tokens = static_cast<int>(a.request.prompt.size());
  c.usage.generated_tokens = static_cast<int>(a.state->generated().size());
  const double now = Now();
  c.usage.total = now - a.submitted;
  c.usage.time_to_first_token = a.first_token >= 0 ? a.first_token - a.submitted : 0;
  c.usage.queued = (a.admitted >= 0 ? a.admitted : now) - a.submitted;
  ++stats_.requests_finished;
  if (observer_) observer_->OnFinished(reason, c.usage);
  a.stream->Enqueue(std::move(c));
  to_notify_.push_back(a.stream);
  scheduler_.Remove(id);
  by_request_.erase(OwnedId{a.request.owner, a.request.request_id});
}

void Engine::Loop() {
  std::vector<float> logits;
  std::vector<int32_t> sampled;
  const int vocab = backend_.config().vocab_size;
  double last_step_end = -1;  // when the previous backend call returned; < 0 after a wait for work
  for (;;) {
    std::vector<ScheduledSeq> plan;
    std::vector<model::SequenceStep> steps;
    std::vector<model::StepSampling> sampling;  // one per step (ForwardSample)
    StepStats stats;
    // Whether a sequence of the plan needs its logits on the host: log
    // probabilities are computed from them and penalties need the history.
    // Then the whole step runs through Forward and every sequence samples on
    // the host; otherwise the backend samples (on the GPU only the token ids
    // come back). Both give the same tokens.
    bool host_logits = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const double now = Now();
      int paused = 0;
      for (auto it = active_.begin(); it != active_.end();) {
        Active& a = it->second;
        if (stop_ || a.stream->cancelled()) {
          Finish(it->first, a, FinishReason::kCancelled);
          it = active_.erase(it);
          continue;
        }
        // Paused: the consumer has not taken its last chunks. A pause that
        // lasts the stall timeout means a client that stopped reading; it
        // would otherwise keep its slot and KV blocks for good.
        const bool is_paused = a.stream->pending() >= options_.max_pending_chunks;
        if (!is_paused) {
          a.paused_since = -1;
        } else if (a.paused_since < 0) {
          a.paused_since = now;
        } else if (now - a.paused_since >= options_.stall_timeout_seconds) {
          ++stats_.stalled;
          if (observer_) observer_->OnStalled();
          a.stream->MarkStalled();
          Finish(it->first, a, FinishReason::kCancelled);
          it = active_.erase(it);
          continue;
        }
        paused += is_paused;
        scheduler_.SetPaused(it->first, is_paused);
        ++it;
      }
      stats_.paused = paused;
      // The final chunks of requests ended above go out before anything
      // else happens (a wait, the step, or the end of the loop).
      if (!to_notify_.empty()) notifier_->Schedule(to_notify_);
      if (stop_) return;
      plan = scheduler_.Schedule();
      if (plan.empty()) {
        // Nothing runnable: wait for work, or poll paused streams.
        last_step_end = -1;
        if (active_.empty()) {
          cv_.wait(lock, [&] { return stop_ || !active_.empty(); });
        } else {
          cv_.wait_for(lock, std::chrono::milliseconds(2));
        }
        continue;
      }
      for (const ScheduledSeq& s : plan) {
        Active& a = active_.at(s.id);
        if (a.admitted < 0) a.admitted = now;
        steps.push_back({s.id, std::span<const int32_t>(a.tokens.data() + s.first_token, s.n_tokens),
                         s.samples ? model::Logits::kLast : model::Logits::kNone});
        sampling.push_back(s.samples ? a.state->NextSampling() : model::StepSampling{});
        if (s.samples && (a.request.logprobs >= 0 || a.state->NeedsHostLogits())) host_logits = true;
        const int prompt_len = static_cast<int>(a.request.prompt.size());
        const int prefill = std::clamp(prompt_len - s.first_token, 0, s.n_tokens);
        stats.prefill_tokens += prefill;
        stats.decode_tokens += s.n_tokens - prefill;
      }
      stats.sequences = static_cast<int>(plan.size());
    }

    // The step itself runs without the lock: Submit may add entries to
    // active_, but only this thread removes them or touches their tokens.
    const double step_start = Now();
    const absl::Status status =
        host_logits ? backend_.Forward(steps, &logits) : backend_.ForwardSample(steps, sampling, &sampled);
    const double step_end = Now();
    stats.backend_seconds = step_end - step_start;
    stats.host_seconds = last_step_end >= 0 ? step_start - last_step_end : -1;
    last_step_end = step_end;
    if (observer_) observer_->OnStep(stats);

    std::lock_guard<std::mutex> lock(mu_);
    size_t row = 0;
    for (const ScheduledSeq& s : plan) {
      auto it = active_.find(s.id);
      Active& a = it->second;
      if (!status.ok()) {
        Finish(s.id, a, FinishReason::kError, status);
        active_.erase(it);
        continue;
      }
      scheduler_.OnStepDone(s);
      if (!s.samples) continue;
      // Rows of logits (Forward) or sampled tokens (ForwardSample): one per
      // sampling sequence, in plan order.
      std::span<float> lg;
      int32_t token = model::kNoToken;
      if (host_logits) {
        lg = std::span<float>(logits.data() + row * vocab, vocab);
      } else {
        token = sampled[row];
      }
      ++row;
      // A NaN row (the samplers answer kNoToken for one) is a numerical
      // fault of this sequence: it ends alone, with its capacity freed, and
      // the rest of the step goes on. The host path checks the row itself,
      // before SequenceState::Step would record whatever the sampler made
      // of it. (A finished sequence never reaches Step again: it is erased
      // below, so a kNoToken from Step is the sampler's refusal.)
      const uint64_t step = a.state->generated().size();
      auto numerical_fault = [&] {
        return absl::InternalError(absl::StrCat("step ", step,
                                                ": the logits of this sequence hold NaN or nothing samplable (a "
                                                "numerical fault in the model weights or the backend); the request "
                                                "was ended"));
      };
      absl::Status fault;
      if (host_logits ? HoldsNaN(lg) : token == model::kNoToken) {
        fault = numerical_fault();
      } else if (!host_logits && (token < 0 || token >= vocab)) {
        fault = absl::InternalError(
            absl::StrCat("step ", step, ": the backend sampled token id ", token, ", outside [0, ", vocab, ")"));
      }
      model::SequenceState::StepResult r;
      if (fault.ok()) {
        r = host_logits ? a.state->Step(lg) : a.state->Accept(token);
        // A host sampler may refuse a row without NaN too (kNoToken for a
        // row with nothing samplable): the same fault, never a token -1.
        if (r.token == model::kNoToken) fault = numerical_fault();
      }
      if (!fault.ok()) {
        Finish(s.id, a, FinishReason::kError, fault);
        active_.erase(it);
        continue;
      }
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
      c.recipient = std::move(r.recipient);
      c.content_type = std::move(r.content_type);
      if (a.request.logprobs >= 0) {  // then host_logits
        c.logprobs.push_back(ComputeLogprobs(lg, a.request.params.sampling.temperature, r.token, a.request.logprobs));
      }
      a.stream->Enqueue(std::move(c));
      to_notify_.push_back(a.stream);
      if (r.finish == FinishReason::kNone) continue;
      stats_.prompt_tokens += a.request.prompt.size();
      Finish(s.id, a, r.finish);
      active_.erase(it);
    }
    // The step's outputs, handed to the notifier at once.
    if (!to_notify_.empty()) notifier_->Schedule(to_notify_);
  }
}

}  // namespace ossgate::serving
