#include "inference_worker/serving/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ossgate::serving {

namespace {

// Every running sequence must be able to decode in every step, or the ones
// scheduled last would starve: the token budget is at least max_running.
SchedulerOptions Normalize(SchedulerOptions o) {
  o.max_running = std::max(1, o.max_running);
  o.step_token_budget = std::max(o.step_token_budget, o.max_running);
  return o;
}

}  // namespace

Scheduler::Scheduler(const SchedulerOptions& options, model::KvBlockManager& kv)
    : options_(Normalize(options)), kv_(kv) {}

int Scheduler::WorstBlocks(const Seq& s) const { return kv_.FullBlocksFor(s.prompt_tokens + s.max_new_tokens); }

absl::Status Scheduler::Submit(SeqId id, int prompt_tokens, int max_new_tokens) {
  if (prompt_tokens <= 0 || max_new_tokens <= 0) {
    return absl::InvalidArgumentError("prompt and max_new_tokens must be positive");
  }
  if (running_.count(id) || std::any_of(waiting_.begin(), waiting_.end(), [&](const auto& w) { return w.first == id; })) {
    return absl::AlreadyExistsError(absl::StrCat("request ", id, " is already scheduled"));
  }
  Seq s;
  s.prompt_tokens = prompt_tokens;
  s.max_new_tokens = max_new_tokens;
  s.known_tokens = prompt_tokens;
  s.worst_blocks = WorstBlocks(s);
  if (s.worst_blocks > kv_.num_full_blocks()) {
    // Named after the request field the client can change (the error model
    // of inference.proto: INVALID_ARGUMENT messages start with the field).
    return absl::InvalidArgumentError(absl::StrCat("max_tokens: prompt (", prompt_tokens, ") + max_tokens (",
                                                   max_new_tokens, ") needs ", s.worst_blocks,
                                                   " KV blocks but the pool has ", kv_.num_full_blocks()));
  }
  if (static_cast<int>(waiting_.size()) >= options_.max_waiting) {
    return absl::ResourceExhaustedError(absl::StrCat("the worker is at capacity (", running_.size(), " running, ",
                                                     waiting_.size(), " waiting); retry later"));
  }
  s.arrival = next_arrival_++;
  waiting_.emplace_back(id, s);
  return absl::OkStatus();
}

void Scheduler::Remove(SeqId id) {
  if (auto it = running_.find(id); it != running_.end()) {
    reserved_blocks_ -= it->second.worst_blocks;
    running_.erase(it);
    kv_.RemoveSequence(id);
    return;
  }
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), [&](const auto& w) { return w.first == id; }),
                 waiting_.end());
}

void Scheduler::SetPaused(SeqId id, bool paused) {
  if (auto it = running_.find(id); it != running_.end()) it->second.paused = paused;
}

std::vector<ScheduledSeq> Scheduler::Schedule() {
  // Admit in arrival order while slots and the worst-case block budget allow.
  const int max_running = std::min(options_.max_running, kv_.max_sequences());
  while (!waiting_.empty() && static_cast<int>(running_.size()) < max_running) {
    auto& [id, s] = waiting_.front();
    if (reserved_blocks_ + s.worst_blocks > kv_.num_full_blocks()) break;  // FCFS: no overtaking
    if (!kv_.AddSequence(id).ok()) break;
    reserved_blocks_ += s.worst_blocks;
    running_.emplace(id, s);
    waiting_.pop_front();
  }

  std::vector<ScheduledSeq> plan;
  int budget = options_.step_token_budget;
  // Decode first: sequences whose whole known context is cached except the
  // last sampled token.
  for (auto& [id, s] : running_) {
    if (s.paused || s.fed_tokens < s.prompt_tokens) continue;
    if (s.known_tokens - s.fed_tokens == 1 && budget > 0) {
      plan.push_back({id, s.fed_tokens, 1, true});
      --budget;
    }
  }
  // Then prompt chunks, oldest first.
  std::vector<std::pair<uint64_t, SeqId>> prefilling;
  for (auto& [id, s] : running_) {
    if (!s.paused && s.fed_tokens < s.prompt_tokens) prefilling.emplace_back(s.arrival, id);
  }
  std::sort(prefilling.begin(), prefilling.end());
  for (const auto& [arrival, id] : prefilling) {
    if (budget <= 0) break;
    Seq& s = running_.at(id);
    const int n = std::min(budget, s.prompt_tokens - s.fed_tokens);
    plan.push_back({id, s.fed_tokens, n, s.fed_tokens + n == s.prompt_tokens});
    budget -= n;
  }
  return plan;
}

void Scheduler::OnStepDone(const ScheduledSeq& step) {
  auto it = running_.find(step.id);
  if (it == running_.end()) return;
  Seq& s = it->second;
  s.fed_tokens += step.n_tokens;
  if (step.samples) ++s.known_tokens;
}

}  // namespace ossgate::serving
