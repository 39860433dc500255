// The serving engine over the CPU backend: its streams equal what one
// sequence alone gives with host sampling (Forward, then SequenceState::Step
// on the logits: the engine's path before sampling moved into the backend),
// whether a step samples in the backend (ForwardSample) or, for requests
// that need host logits (penalties, log-probabilities), on the host; and
// steps that need no host logits never copy them. Then the engine's
// failure paths: a sequence whose logits hold NaN ends alone with INTERNAL
// naming the step, a stream nobody reads gives its capacity back after the
// stall timeout, and requests belong to their owner.
#include "inference_worker/serving/engine.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inference_worker/model/cpu_backend.h"
#include "inference_worker/text/vocab_file.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using model::FinishReason;
using model::GenerationParams;

// Passes every call to a backend, counts the two kinds of step and
// remembers the thread that runs them (the engine's step loop).
class CountingBackend final : public model::Backend {
 public:
  explicit CountingBackend(model::Backend& inner) : inner_(inner) {}
  const model::ModelConfig& config() const override { return inner_.config(); }
  std::string Description() const override { return inner_.Description(); }
  model::KvBlockManager& kv() override { return inner_.kv(); }
  absl::Status Forward(std::span<const model::SequenceStep> steps, std::vector<float>* logits) override {
    ++forward_calls;
    RecordThread();
    return inner_.Forward(steps, logits);
  }
  absl::Status ForwardSample(std::span<const model::SequenceStep> steps,
                             std::span<const model::StepSampling> sampling, std::vector<int32_t>* tokens) override {
    ++forward_sample_calls;
    RecordThread();
    bool prompt_chunk = false, samples = false;
    for (const model::SequenceStep& s : steps) {
      prompt_chunk |= s.logits == model::Logits::kNone;
      samples |= s.logits == model::Logits::kLast;
    }
    if (prompt_chunk && samples) ++mixed_forward_sample_calls;
    return inner_.ForwardSample(steps, sampling, tokens);
  }
  std::atomic<int> forward_calls{0};
  std::atomic<int> forward_sample_calls{0};
  std::atomic<int> mixed_forward_sample_calls{0};  // kNone and kLast steps in one batch
  std::thread::id loop_thread() {
    std::lock_guard<std::mutex> lock(mu_);
    return loop_;
  }

 private:
  void RecordThread() {
    std::lock_guard<std::mutex> lock(mu_);
    loop_ = std::this_thread::get_id();
  }
  std::mutex mu_;
  std::thread::id loop_;
  model::Backend& inner_;
};

// Plays a model that writes a given token sequence: every token sampled in
// the backend is replaced by the next one of `script` (one sequence at a
// time; the inner backend still runs, so the KV cache is kept as usual).
class ScriptedBackend final : public model::Backend {
 public:
  ScriptedBackend(model::Backend& inner, std::vector<int32_t> script) : inner_(inner), script_(std::move(script)) {}
  const model::ModelConfig& config() const override { return inner_.config(); }
  std::string Description() const override { return inner_.Description(); }
  model::KvBlockManager& kv() override { return inner_.kv(); }
  absl::Status Forward(std::span<const model::SequenceStep>, std::vector<float>*) override {
    return absl::UnimplementedError("ScriptedBackend only samples in the backend");
  }
  absl::Status ForwardSample(std::span<const model::SequenceStep> steps,
                             std::span<const model::StepSampling> sampling, std::vector<int32_t>* tokens) override {
    if (absl::Status s = inner_.ForwardSample(steps, sampling, tokens); !s.ok()) return s;
    for (int32_t& t : *tokens) t = next_ < script_.size() ? script_[next_++] : t;
    return absl::OkStatus();
  }

 private:
  model::Backend& inner_;
  const std::vector<int32_t> script_;
  size_t next_ = 0;
};

struct Output {
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason finish = FinishReason::kNone;
  int chunks_with_logprobs = 0;
  int usage_generated = -1;
  int usage_prompt = -1;
};

// One sequence alone, prefilled in one step, sampled on the host from
// Forward's logits.
Output HostReference(model::Backend& b, const text::Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                     const GenerationParams& params) {
  Output out;
  const model::SeqId seq = 1000;
  EXPECT_TRUE(b.kv().AddSequence(seq).ok());
  model::SequenceState state(tokenizer, prompt, params);
  std::vector<float> logits;
  model::SequenceStep step{seq, prompt, model::Logits::kLast};
  absl::Status s = b.Forward({&step, 1}, &logits);
  while (s.ok()) {
    const model::SequenceState::StepResult r = state.Step(logits);
    out.tokens.push_back(r.token);
    out.text += r.text;
    if (r.finish != FinishReason::kNone) {
      out.finish = r.finish;
      break;
    }
    step = model::SequenceStep{seq, {&out.tokens.back(), 1}, model::Logits::kLast};
    s = b.Forward({&step, 1}, &logits);
  }
  EXPECT_TRUE(s.ok()) << s;
  b.kv().RemoveSequence(seq);
  return out;
}

// Plays a backend whose numbers went bad for one sequence: the one whose
// prompt starts with kPoisonToken gets NaN logits (Forward) or kNoToken
// (ForwardSample, as the samplers answer a NaN row) when its token number
// `poison_step` is sampled. Everything else passes through.
class PoisoningBackend final : public model::Backend {
 public:
  static constexpr int32_t kPoisonToken = 7;
  PoisoningBackend(model::Backend& inner, uint64_t poison_step) : inner_(inner), poison_step_(poison_step) {}
  const model::ModelConfig& config() const override { return inner_.config(); }
  std::string Description() const override { return inner_.Description(); }
  model::KvBlockManager& kv() override { return inner_.kv(); }
  absl::Status Forward(std::span<const model::SequenceStep> steps, std::vector<float>* logits) override {
    if (absl::Status s = inner_.Forward(steps, logits); !s.ok()) return s;
    const int vocab = config().vocab_size;
    size_t row = 0;
    for (const model::SequenceStep& s : steps) {
      if (s.logits != model::Logits::kLast) continue;
      if (Poisoned(s)) {
        (*logits)[row * vocab + 11] = std::numeric_limits<float>::quiet_NaN();
        ++poisoned;
      }
      ++row;
    }
    return absl::OkStatus();
  }
  absl::Status ForwardSample(std::span<const model::SequenceStep> steps, std::span<const model::StepSampling> sampling,
                             std::vector<int32_t>* tokens) override {
    if (absl::Status s = inner_.ForwardSample(steps, sampling, tokens); !s.ok()) return s;
    size_t row = 0;
    for (const model::SequenceStep& s : steps) {
      if (s.logits != model::Logits::kLast) continue;
      if (Poisoned(s)) {
        (*tokens)[row] = model::kNoToken;
        ++poisoned;
      }
      ++row;
    }
    return absl::OkStatus();
  }
  std::atomic<int> poisoned{0};

 private:
  // Whether this kLast step samples the poisoned sequence's token number
  // poison_step_ (counting its samples per sequence id).
  bool Poisoned(const model::SequenceStep& s) {
    if (!first_chunk_seen_.count(s.seq)) {
      first_chunk_seen_.insert(s.seq);
      if (!s.tokens.empty() && s.tokens[0] == kPoisonToken) victims_.insert(s.seq);
    }
    const uint64_t n = samples_[s.seq]++;
    return victims_.count(s.seq) && n == poison_step_;
  }
  model::Backend& inner_;
  const uint64_t poison_step_;
  std::set<model::SeqId> first_chunk_seen_, victims_;
  std::map<model::SeqId, uint64_t> samples_;
};

// Counts what the engine reports.
class CountingObserver final : public serving::EngineObserver {
 public:
  void OnFirstToken(double) override {}
  void OnToken(double) override {}
  void OnFinished(FinishReason reason, const serving::Usage&) override { finished[static_cast<int>(reason)]++; }
  void OnStalled() override { ++stalled; }
  std::atomic<int> stalled{0};
  std::map<int, int> finished;  // engine thread only, read after the engine stopped
};

// Pops the next chunk, waiting up to `timeout`; nullopt if none came.
std::optional<serving::OutputChunk> PopWithin(serving::RequestStream& stream, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto c = stream.Pop()) return c;
    if (std::chrono::steady_clock::now() > end) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // poll interval
  }
}

Output Drain(serving::RequestStream& stream) {
  Output out;
  for (;;) {
    serving::OutputChunk c = stream.WaitPop();
    out.tokens.insert(out.tokens.end(), c.tokens.begin(), c.tokens.end());
    out.text += c.text;
    if (!c.logprobs.empty()) ++out.chunks_with_logprobs;
    if (c.final) {
      EXPECT_TRUE(c.error.empty()) << c.error;
      out.finish = c.finish;
      out.usage_generated = c.usage.generated_tokens;
      out.usage_prompt = c.usage.prompt_tokens;
      return out;
    }
  }
}

std::vector<int32_t> Prompt(int n, uint32_t seed) {
  std::vector<int32_t> t(n);
  // Byte tokens: the tiny vocabulary's first 256 ids are the bytes.
  for (int i = 0; i < n; ++i) t[i] = static_cast<int32_t>((tools::HashUniform(seed, 5, i) + 1.0f) * 0.5f * 255.0f);
  return t;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = TempPath("engine_test");
    tools::RandomModelSpec spec;
    ASSERT_TRUE(tools::ApplyPreset("tiny", &spec.config).ok());
    spec.seed = 31;
    spec.threads = 2;
    ASSERT_TRUE(tools::WriteRandomModel(spec, text::MakeTinyVocab(), path_).ok());
    model_ = LoadModel(path_);
    ASSERT_NE(model_, nullptr);
    auto tok = text::Tokenizer::FromGguf(*model_->file);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = *std::move(tok);
    engine_backend_ = MakeBackend(4);
    reference_backend_ = MakeBackend(1);
    ASSERT_NE(engine_backend_, nullptr);
    ASSERT_NE(reference_backend_, nullptr);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  std::unique_ptr<model::CpuBackend> MakeBackend(int max_sequences) {
    model::CpuBackendOptions o;
    o.n_threads = 2;
    o.kv.max_sequences = max_sequences;
    o.max_context = 256;
    auto b = model::CpuBackend::Create(*model_->file, o);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? *std::move(b) : nullptr;
  }

  // Runs the requests through an engine (4 sequences at a time, 6 tokens a
  // step: prompts are prefilled in chunks next to other sequences' decode
  // steps, and the later requests join while the first ones decode) and
  // expects every stream to equal the host-sampled reference.
  void ExpectStreamsEqualHostSampling(const std::vector<serving::GenerationRequest>& requests,
                                      CountingBackend& counting) {
    serving::EngineOptions o;
    o.scheduler.max_running = 4;
    o.scheduler.step_token_budget = 6;
    std::vector<Output> got;
    {
      serving::Engine engine(counting, *tokenizer_, o);
      std::vector<std::shared_ptr<serving::RequestStream>> streams;
      for (const serving::GenerationRequest& r : requests) {
        auto s = engine.Submit(r);
        ASSERT_TRUE(s.ok()) << s.status();
        streams.push_back(*s);
      }
      for (auto& s : streams) got.push_back(Drain(*s));
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      const serving::GenerationRequest& r = requests[i];
      const Output want = HostReference(*reference_backend_, *tokenizer_, r.prompt, r.params);
      EXPECT_EQ(got[i].tokens, want.tokens) << r.request_id;
      EXPECT_EQ(got[i].text, want.text) << r.request_id;
      EXPECT_EQ(got[i].finish, want.finish) << r.request_id;
      EXPECT_EQ(got[i].usage_generated, static_cast<int>(want.tokens.size())) << r.request_id;
      EXPECT_EQ(got[i].usage_prompt, static_cast<int>(r.prompt.size())) << r.request_id;
      EXPECT_EQ(got[i].chunks_with_logprobs, r.logprobs >= 0 ? static_cast<int>(want.tokens.size()) : 0)
          << r.request_id;
    }
  }

  static serving::GenerationRequest Request(const std::string& id, std::vector<int32_t> prompt, float temperature,
                                            uint64_t seed, int max_tokens = 20) {
    serving::GenerationRequest r;
    r.request_id = id;
    r.prompt = std::move(prompt);
    r.params.sampling.temperature = temperature;
    r.params.sampling.seed = seed;
    r.params.max_tokens = max_tokens;
    return r;
  }

  std::string path_;
  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  std::unique_ptr<model::CpuBackend> engine_backend_, reference_backend_;
};

// Greedy and seeded requests only: every step samples in the backend, and
// the streams are those of host sampling (a wrong RNG counter or params in
// the steps would change the seeded ones).
TEST_F(EngineTest, BackendSamplingStreamsEqualHostSampling) {
  std::vector<serving::GenerationRequest> requests;
  requests.push_back(Request("greedy", Prompt(30, 1), 0.0f, 0));
  requests.push_back(Request("top-k-top-p", Prompt(25, 2), 0.9f, 11));
  requests.back().params.sampling.top_k = 20;
  requests.back().params.sampling.top_p = 0.9f;
  requests.push_back(Request("min-p", Prompt(17, 3), 1.2f, 12));
  requests.back().params.sampling.min_p = 0.05f;
  requests.push_back(Request("hot", Prompt(40, 4), 1.5f, 13, 24));
  requests.push_back(Request("stop-string", Prompt(9, 5), 1.0f, 14));
  requests.back().params.stop_strings = {"e"};
  requests.push_back(Request("late-greedy", Prompt(21, 6), 0.0f, 0));
  CountingBackend counting(*engine_backend_);
  ExpectStreamsEqualHostSampling(requests, counting);
  EXPECT_EQ(counting.forward_calls.load(), 0);
  EXPECT_GT(counting.forward_sample_calls.load(), 20);
  EXPECT_GT(counting.mixed_forward_sample_calls.load(), 0);
}

// Records the engine's steps (engine thread only; read after the engine
// stopped).
class StepObserver final : public serving::EngineObserver {
 public:
  void OnFirstToken(double) override {}
  void OnToken(double) override {}
  void OnFinished(FinishReason, const serving::Usage& usage) override {
    generated += usage.generated_tokens;
    ++finished;
  }
  void OnStep(const serving::StepStats& step) override { steps.push_back(step); }
  std::vector<serving::StepStats> steps;
  int generated = 0, finished = 0;
};

// Every step is reported with its prefill and decode tokens: the prefill
// tokens add up to the prompts (chunked by a budget of 6 tokens), the decode
// tokens to the generated tokens fed back (all but each request's last),
// and some steps mix both; every step has a backend time, and steps that
// follow one another have a host time.
TEST_F(EngineTest, StepsReportTheirPrefillAndDecodeTokensAndTimes) {
  serving::EngineOptions o;
  o.scheduler.max_running = 3;
  o.scheduler.step_token_budget = 6;
  StepObserver observer;
  const std::vector<int> prompt_lens = {13, 7, 20, 5};
  {
    serving::Engine engine(*engine_backend_, *tokenizer_, o, &observer);
    std::vector<std::shared_ptr<serving::RequestStream>> streams;
    for (size_t i = 0; i < prompt_lens.size(); ++i) {
      serving::GenerationRequest r = Request(absl::StrCat("r", i), Prompt(prompt_lens[i], 70 + i), 0.0f, 0, 9);
      auto s = engine.Submit(r);
      ASSERT_TRUE(s.ok()) << s.status();
      streams.push_back(*s);
    }
    for (auto& s : streams) EXPECT_EQ(Drain(*s).tokens.size(), 9u);
  }
  ASSERT_EQ(observer.finished, 4);
  int prefill = 0, decode = 0, mixed = 0, with_host = 0;
  for (const serving::StepStats& st : observer.steps) {
    EXPECT_GT(st.sequences, 0);
    EXPECT_LE(st.prefill_tokens + st.decode_tokens, 6);
    EXPECT_LE(st.decode_tokens, st.sequences);  // one generated token per sequence
    EXPECT_GT(st.backend_seconds, 0.0);
    prefill += st.prefill_tokens;
    decode += st.decode_tokens;
    mixed += st.prefill_tokens > 0 && st.decode_tokens > 0;
    with_host += st.host_seconds >= 0;
  }
  EXPECT_EQ(prefill, 13 + 7 + 20 + 5);
  EXPECT_EQ(decode, observer.generated - 4);
  EXPECT_GT(mixed, 0);
  EXPECT_GT(with_host, static_cast<int>(observer.steps.size()) / 2);
}

// Consumers that read only when their notify callback runs (as the gRPC
// reactor does) get every chunk, the final one included: no chunk is left
// without a callback after it, however the callbacks coalesce. The
// callbacks run off the step loop's thread (a gRPC write started there would
// delay the next step).
TEST_F(EngineTest, NotifyDrivenConsumersGetEveryChunkWithCallbacksOffTheStepLoop) {
  CountingBackend backend(*engine_backend_);
  serving::EngineOptions o;
  o.scheduler.max_running = 4;
  o.scheduler.step_token_budget = 16;
  struct Consumer {
    std::mutex mu;
    std::condition_variable cv;
    int rings = 0;
    std::set<std::thread::id> threads;
  };
  constexpr int kRequests = 6, kTokens = 24;
  std::vector<Consumer> consumers(kRequests);
  std::vector<int> tokens(kRequests, 0);
  std::vector<char> finished(kRequests, 0);  // one per reader thread (not vector<bool>: shared words)
  {
    serving::Engine engine(backend, *tokenizer_, o);
    std::vector<std::thread> readers;
    for (int i = 0; i < kRequests; ++i) {
      auto s = engine.Submit(Request(absl::StrCat("n", i), Prompt(5 + 3 * i, 90 + i), 0.7f, 100 + i, kTokens));
      if (!s.ok()) {  // (not ASSERT: the readers already started must be joined)
        ADD_FAILURE() << s.status();
        break;
      }
      std::shared_ptr<serving::RequestStream> stream = *s;
      Consumer& c = consumers[i];
      stream->SetNotify([&c] {
        std::lock_guard<std::mutex> lock(c.mu);
        ++c.rings;
        c.threads.insert(std::this_thread::get_id());
        c.cv.notify_all();
      });
      readers.emplace_back([&, i, stream] {
        Consumer& mine = consumers[i];
        int handled = 0;  // callbacks seen before the last read
        // The first read needs no callback (chunks may precede SetNotify);
        // every later one waits for a callback after the previous read.
        for (bool first = true; !finished[i]; first = false) {
          if (!first) {
            std::unique_lock<std::mutex> lock(mine.mu);
            if (!mine.cv.wait_for(lock, std::chrono::seconds(30), [&] { return mine.rings > handled; })) {
              ADD_FAILURE() << "request " << i << ": a chunk came without a callback after it";
              return;
            }
            handled = mine.rings;
          }
          while (auto chunk = stream->Pop()) {
            tokens[i] += static_cast<int>(chunk->tokens.size());
            if (chunk->final) finished[i] = 1;
          }
        }
      });
    }
    for (auto& t : readers) t.join();
  }
  const std::thread::id loop = backend.loop_thread();
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_TRUE(finished[i]) << i;
    EXPECT_EQ(tokens[i], kTokens) << i;
    EXPECT_GT(consumers[i].rings, 0) << i;
    EXPECT_EQ(consumers[i].threads.count(loop), 0u) << "request " << i << ": a callback ran on the step loop";
  }
}

// Requests that need host logits next to ones that do not: steps with a
// penalised or log-probability request run Forward and sample every
// sequence on the host, the others sample in the backend; the streams are
// the same either way.
TEST_F(EngineTest, StepsNeedingHostLogitsSampleOnTheHostWithTheSameStreams) {
  std::vector<serving::GenerationRequest> requests;
  requests.push_back(Request("seeded", Prompt(30, 7), 0.8f, 21));
  requests.back().params.sampling.top_k = 30;
  requests.push_back(Request("penalties", Prompt(12, 8), 0.7f, 22, 12));
  requests.back().params.sampling.repetition_penalty = 1.3f;
  requests.back().params.sampling.presence_penalty = 0.5f;
  requests.back().params.sampling.frequency_penalty = 0.2f;
  requests.push_back(Request("greedy", Prompt(19, 9), 0.0f, 0, 30));
  requests.push_back(Request("logprobs", Prompt(15, 10), 1.0f, 23, 8));
  requests.back().logprobs = 3;
  requests.push_back(Request("late-seeded", Prompt(26, 11), 1.1f, 24, 30));
  requests.back().params.sampling.top_p = 0.8f;
  CountingBackend counting(*engine_backend_);
  ExpectStreamsEqualHostSampling(requests, counting);
  EXPECT_GT(counting.forward_calls.load(), 0);
  EXPECT_GT(counting.forward_sample_calls.load(), 0);
}

// A sequence whose logits row holds NaN ends with INTERNAL naming the step
// (the index of the token being generated), its capacity is freed, and the
// other sequences of the same steps go on unchanged: in the backend-sampling
// path (kNoToken from ForwardSample) and the host path (a NaN row from
// Forward, for a request with log-probabilities).
TEST_F(EngineTest, NaNLogitsEndOnlyThatRequestWithInternalNamingTheStep) {
  for (const bool host_path : {false, true}) {
    SCOPED_TRACE(host_path ? "host sampling" : "backend sampling");
    constexpr uint64_t kPoisonStep = 3;
    PoisoningBackend poisoning(*engine_backend_, kPoisonStep);
    serving::EngineOptions o;
    o.scheduler.max_running = 2;  // the third request runs only once a slot is freed
    o.scheduler.step_token_budget = 64;
    std::vector<serving::GenerationRequest> requests;
    std::vector<int32_t> victim_prompt = Prompt(12, 40);
    victim_prompt[0] = PoisoningBackend::kPoisonToken;
    requests.push_back(Request("victim", victim_prompt, 0.8f, 41, 30));
    requests.push_back(Request("neighbour", Prompt(14, 42), 0.0f, 0, 30));
    requests.push_back(Request("queued", Prompt(9, 43), 0.9f, 44, 12));
    for (auto& r : requests) {
      r.params.stop_token_ids.clear();  // run to max_tokens: the step numbers are known
      if (r.prompt[0] == PoisoningBackend::kPoisonToken && r.request_id != "victim") r.prompt[0] = 65;
      if (host_path) r.logprobs = 2;
    }
    std::vector<Output> got;
    serving::OutputChunk victim_final;
    serving::EngineStats stats;
    {
      serving::Engine engine(poisoning, *tokenizer_, o);
      std::vector<std::shared_ptr<serving::RequestStream>> streams;
      for (const auto& r : requests) {
        auto st = engine.Submit(r);
        ASSERT_TRUE(st.ok()) << st.status();
        streams.push_back(*st);
      }
      // The victim's stream: kPoisonStep tokens, then the error.
      Output victim;
      for (;;) {
        auto c = PopWithin(*streams[0], std::chrono::seconds(60));
        ASSERT_TRUE(c.has_value()) << "the victim's stream never ended";
        victim.tokens.insert(victim.tokens.end(), c->tokens.begin(), c->tokens.end());
        if (c->final) {
          victim_final = *c;
          break;
        }
      }
      EXPECT_EQ(victim.tokens.size(), kPoisonStep);
      for (size_t i = 1; i < streams.size(); ++i) got.push_back(Drain(*streams[i]));
      stats = engine.Stats();
    }
    EXPECT_EQ(poisoning.poisoned.load(), 1);
    EXPECT_EQ(victim_final.finish, FinishReason::kError);
    EXPECT_EQ(victim_final.error_code, absl::StatusCode::kInternal);
    EXPECT_TRUE(absl::StartsWith(victim_final.error, "INTERNAL: ")) << victim_final.error;
    EXPECT_TRUE(absl::StrContains(victim_final.error, absl::StrCat("step ", kPoisonStep, ":"))) << victim_final.error;
    EXPECT_TRUE(absl::StrContains(victim_final.error, "NaN")) << victim_final.error;
    EXPECT_EQ(victim_final.usage.generated_tokens, static_cast<int>(kPoisonStep));
    // The others are what they would have been alone.
    for (size_t i = 1; i < requests.size(); ++i) {
      const serving::GenerationRequest& r = requests[i];
      const Output want = HostReference(*reference_backend_, *tokenizer_, r.prompt, r.params);
      EXPECT_EQ(got[i - 1].tokens, want.tokens) << r.request_id;
      EXPECT_EQ(got[i - 1].finish, FinishReason::kLength) << r.request_id;
    }
    // Nothing left behind: slots and KV blocks are all free.
    EXPECT_EQ(stats.running, 0);
    EXPECT_EQ(stats.waiting, 0);
    EXPECT_EQ(stats.kv_blocks_used, 0);
  }
}

// A stream nobody reads pauses its sequence (backpressure); after the stall
// timeout the engine ends it and frees its slot, so a request queued behind
// it runs. The stalled stream is marked, ends CANCELLED and is counted.
TEST_F(EngineTest, StreamNobodyReadsIsEndedAfterTheStallTimeoutAndFreesItsSlot) {
  serving::EngineOptions o;
  o.scheduler.max_running = 1;
  o.max_pending_chunks = 2;
  o.stall_timeout_seconds = 0.3;
  CountingObserver observer;
  serving::GenerationRequest follow = Request("follow-up", Prompt(10, 51), 0.0f, 0, 8);
  Output follow_out;
  serving::EngineStats stats;
  std::shared_ptr<serving::RequestStream> hog;
  const auto t0 = std::chrono::steady_clock::now();
  {
    serving::Engine engine(*engine_backend_, *tokenizer_, o, &observer);
    auto h = engine.Submit(Request("hog", Prompt(10, 50), 1.0f, 52, 200));
    ASSERT_TRUE(h.ok()) << h.status();
    hog = *h;
    auto f = engine.Submit(follow);
    ASSERT_TRUE(f.ok()) << f.status();
    // The follow-up can only run once the hog's slot is free.
    for (;;) {
      auto c = PopWithin(**f, std::chrono::seconds(30));
      ASSERT_TRUE(c.has_value()) << "the request behind a stalled stream never ran";
      follow_out.tokens.insert(follow_out.tokens.end(), c->tokens.begin(), c->tokens.end());
      if (c->final) {
        follow_out.finish = c->finish;
        break;
      }
    }
    stats = engine.Stats();
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(waited, 0.3);  // not before the timeout
  const Output want = HostReference(*reference_backend_, *tokenizer_, follow.prompt, follow.params);
  EXPECT_EQ(follow_out.tokens, want.tokens);
  EXPECT_EQ(stats.stalled, 1u);
  EXPECT_EQ(observer.stalled.load(), 1);
  EXPECT_TRUE(hog->stalled());
  // The hog's unread chunks, then its final one: CANCELLED, at most a few tokens.
  std::optional<serving::OutputChunk> last;
  int hog_tokens = 0;
  while (auto c = hog->Pop()) {
    hog_tokens += static_cast<int>(c->tokens.size());
    last = std::move(c);
  }
  ASSERT_TRUE(last.has_value());
  EXPECT_TRUE(last->final);
  EXPECT_EQ(last->finish, FinishReason::kCancelled);
  EXPECT_LE(hog_tokens, 3);
}

// A stream whose consumer keeps reading, slowly, is never ended: the stall
// timeout counts from the last chunk taken.
TEST_F(EngineTest, SlowButSteadyReaderIsNotStalled) {
  serving::EngineOptions o;
  o.max_pending_chunks = 2;
  o.stall_timeout_seconds = 1.0;
  serving::GenerationRequest r = Request("slow", Prompt(10, 53), 0.0f, 0, 12);
  Output out;
  serving::EngineStats stats;
  {
    serving::Engine engine(*engine_backend_, *tokenizer_, o);
    auto st = engine.Submit(r);
    ASSERT_TRUE(st.ok()) << st.status();
    for (;;) {
      // Slower than decoding (so the sequence pauses between reads), well
      // inside the timeout (also on a loaded machine).
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      auto c = PopWithin(**st, std::chrono::seconds(30));
      ASSERT_TRUE(c.has_value());
      out.tokens.insert(out.tokens.end(), c->tokens.begin(), c->tokens.end());
      if (c->final) {
        out.finish = c->finish;
        break;
      }
    }
    stats = engine.Stats();
  }
  EXPECT_EQ(stats.stalled, 0u);
  EXPECT_EQ(out.finish, FinishReason::kLength);
  EXPECT_EQ(out.tokens, HostReference(*reference_backend_, *tokenizer_, r.prompt, r.params).tokens);
}

// Requests belong to their owner: another owner's Abort is NOT_FOUND (the
// same answer as for an id nobody uses), and ids are per owner.
TEST_F(EngineTest, OnlyTheOwnerCanAbortARequest) {
  serving::EngineOptions o;
  o.scheduler.max_running = 2;
  serving::Engine engine(*engine_backend_, *tokenizer_, o);
  serving::GenerationRequest r = Request("shared-id", Prompt(10, 60), 1.0f, 61, 200);
  r.owner = "spiffe://ossgate/role/client/alice";
  auto alice = engine.Submit(r);
  ASSERT_TRUE(alice.ok()) << alice.status();
  const absl::Status by_bob = engine.Abort("shared-id", "spiffe://ossgate/role/client/bob");
  EXPECT_EQ(by_bob.code(), absl::StatusCode::kNotFound) << by_bob;
  EXPECT_EQ(engine.Abort("never-used", "spiffe://ossgate/role/client/bob").message(), by_bob.message());
  EXPECT_EQ(engine.Abort("shared-id").code(), absl::StatusCode::kNotFound);  // anonymous is another owner too
  // Bob may use the same id for a request of his own.
  serving::GenerationRequest mine = r;
  mine.owner = "spiffe://ossgate/role/client/bob";
  auto bob = engine.Submit(mine);
  ASSERT_TRUE(bob.ok()) << bob.status();
  EXPECT_EQ(engine.Submit(r).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(engine.Abort("shared-id", r.owner).ok());
  for (;;) {
    serving::OutputChunk c = (*alice)->WaitPop();
    if (c.final) {
      EXPECT_EQ(c.finish, FinishReason::kCancelled);
      break;
    }
  }
  EXPECT_TRUE(engine.Abort("shared-id", mine.owner).ok());
}

// Ids the engine assigns are 128 random bits: 32 hex digits, never repeating.
TEST_F(EngineTest, AssignedRequestIdsAreRandom128BitHex) {
  serving::EngineOptions o;
  o.scheduler.max_running = 4;
  serving::Engine engine(*engine_backend_, *tokenizer_, o);
  std::set<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto st = engine.Submit(Request("", Prompt(4, 70 + i), 0.0f, 0, 1));
    ASSERT_TRUE(st.ok()) << st.status();
    const std::string& id = (*st)->request_id();
    EXPECT_EQ(id.size(), 32u) << id;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    ids.insert(id);
    Drain(**st);
  }
  EXPECT_EQ(ids.size(), 3u);
}

// A harmony request whose model calls a function tool: the chunks carry the
// recipient and content type of the call's arguments, and the final chunk
// says kToolCall (what the gRPC face turns into FINISH_REASON_TOOL_CALLS).
TEST_F(EngineTest, HarmonyToolCallStreamsItsRecipientAndEndsWithToolCall) {
  const std::vector<int32_t> script = tokenizer_->Encode(
      "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary "
      "to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Oslo\"}<|call|>",
      /*allow_special=*/true);
  ScriptedBackend scripted(*engine_backend_, script);
  serving::GenerationRequest r = Request("tool", Prompt(12, 9), 0.0f, 0, 200);
  r.params.harmony = true;
  r.params.stop_token_ids = {*tokenizer_->SpecialTokenId("<|return|>"), *tokenizer_->SpecialTokenId("<|call|>")};
  serving::Engine engine(scripted, *tokenizer_, serving::EngineOptions{});
  auto stream = engine.Submit(r);
  ASSERT_TRUE(stream.ok()) << stream.status();
  std::string reasoning, args;
  std::vector<int32_t> tokens;
  for (;;) {
    serving::OutputChunk c = (*stream)->WaitPop();
    tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
    if (!c.text.empty() && c.channel == "analysis") {
      EXPECT_EQ(c.recipient, "");
      reasoning += c.text;
    } else if (!c.text.empty()) {
      EXPECT_EQ(c.channel, "commentary");
      EXPECT_EQ(c.recipient, "functions.get_weather");
      EXPECT_EQ(c.content_type, "json");
      args += c.text;
    }
    if (c.final) {
      EXPECT_EQ(c.finish, FinishReason::kToolCall);
      break;
    }
  }
  EXPECT_EQ(tokens, script);
  EXPECT_EQ(reasoning, "Need weather.");
  EXPECT_EQ(args, "{\"city\":\"Oslo\"}");
}

}  // namespace
}  // namespace ossgate::testing
