// The serving engine over the CPU backend: its streams equal what one
// sequence alone gives with host sampling (Forward, then SequenceState::Step
// on the logits: the engine's path before sampling moved into the backend),
// whether a step samples in the backend (ForwardSample) or, for requests
// that need host logits (penalties, log-probabilities), on the host; and
// steps that need no host logits never copy them.
#include "inference_worker/serving/engine.h"

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/model/cpu_backend.h"
#include "inference_worker/text/vocab_file.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using model::FinishReason;
using model::GenerationParams;

// Passes every call to a backend and counts the two kinds of step.
class CountingBackend final : public model::Backend {
 public:
  explicit CountingBackend(model::Backend& inner) : inner_(inner) {}
  const model::ModelConfig& config() const override { return inner_.config(); }
  std::string Description() const override { return inner_.Description(); }
  model::KvBlockManager& kv() override { return inner_.kv(); }
  absl::Status Forward(std::span<const model::SequenceStep> steps, std::vector<float>* logits) override {
    ++forward_calls;
    return inner_.Forward(steps, logits);
  }
  absl::Status ForwardSample(std::span<const model::SequenceStep> steps,
                             std::span<const model::StepSampling> sampling, std::vector<int32_t>* tokens) override {
    ++forward_sample_calls;
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

 private:
  model::Backend& inner_;
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

}  // namespace
}  // namespace ossgate::testing
