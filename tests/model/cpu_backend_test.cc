// The CPU backend against the naive float64 reference, and its KV-cache,
// chunking and batching behaviour.
#include "inference_worker/model/cpu_backend.h"

#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "gtest/gtest.h"
#include "tests/model/mixed_rounds.h"
#include "tests/model/reference_model.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using model::CpuBackend;
using model::CpuBackendOptions;
using model::SequenceStep;

double RelErr(const float* got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

int Argmax(const float* v, int n) { return static_cast<int>(std::max_element(v, v + n) - v); }
int Argmax(const std::vector<double>& v) { return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin()); }

std::vector<int32_t> RandomTokens(int n, int vocab, uint64_t seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = static_cast<int32_t>((tools::HashUniform(seed, 99, i) + 1.0f) * 0.5f * vocab) % vocab;
  return t;
}

std::unique_ptr<CpuBackend> MakeBackend(const gguf::GgufFile& f, int max_seqs = 4) {
  CpuBackendOptions o;
  o.n_threads = 2;
  o.kv.max_sequences = max_seqs;
  o.max_context = 512;
  auto b = CpuBackend::Create(f, o);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *std::move(b) : nullptr;
}

// Model with a short window (8) so rings wrap and sliding layers matter
// within a 40-token prompt; Q8_0 dense weights and MXFP4 experts.
class CpuBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = WriteTestModel("cpu_backend", [](tools::RandomModelSpec& s) {
      s.config.sliding_window = 8;
      s.config.n_layers = 3;
    });
    model_ = LoadModel(path_);
    ASSERT_NE(model_, nullptr);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  std::string path_;
  std::unique_ptr<LoadedModel> model_;
};

TEST_F(CpuBackendTest, PrefillMatchesFloat64ReferenceAtEveryPosition) {
  auto backend = MakeBackend(*model_->file);
  const auto& c = backend->config();
  const auto tokens = RandomTokens(40, c.vocab_size, 1);
  ASSERT_TRUE(backend->kv().AddSequence(1).ok());
  std::vector<float> logits;
  SequenceStep step{1, tokens, model::Logits::kAll};
  ASSERT_TRUE(backend->Forward({&step, 1}, &logits).ok());
  const auto ref = ReferenceLogits(*model_->file, c, tokens);
  for (size_t t = 0; t < tokens.size(); ++t) {
    const float* got = &logits[t * c.vocab_size];
    EXPECT_LT(RelErr(got, ref[t]), 1e-5) << "position " << t;
    EXPECT_EQ(Argmax(got, c.vocab_size), Argmax(ref[t])) << "position " << t;
  }
}

TEST_F(CpuBackendTest, ChunkedPrefillAndDecodeMatchOneShotPrefill) {
  auto backend = MakeBackend(*model_->file);
  const int V = backend->config().vocab_size;
  const auto tokens = RandomTokens(37, V, 2);
  std::vector<float> full;
  ASSERT_TRUE(backend->kv().AddSequence(1).ok());
  SequenceStep all{1, tokens, model::Logits::kAll};
  ASSERT_TRUE(backend->Forward({&all, 1}, &full).ok());

  // Chunks of 5 (shorter than the ring) then 13 (longer than the window of 8),
  // then one token at a time.
  ASSERT_TRUE(backend->kv().AddSequence(2).ok());
  std::vector<float> got;
  size_t pos = 0;
  for (size_t chunk : {5u, 13u, 1u, 1u, 1u, 16u}) {
    std::span<const int32_t> part(tokens.data() + pos, chunk);
    SequenceStep s{2, part, model::Logits::kAll};
    std::vector<float> out;
    ASSERT_TRUE(backend->Forward({&s, 1}, &out).ok());
    got.insert(got.end(), out.begin(), out.end());
    pos += chunk;
  }
  ASSERT_EQ(pos, tokens.size());
  ASSERT_EQ(got.size(), full.size());
  double worst = 0;
  for (size_t i = 0; i < full.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - full[i]));
  EXPECT_LT(worst, 1e-4);
  EXPECT_EQ(backend->kv().Length(2), 37);
}

TEST_F(CpuBackendTest, OutputIsIndependentOfTheRestOfTheBatch) {
  auto backend = MakeBackend(*model_->file);
  const int V = backend->config().vocab_size;
  const auto a = RandomTokens(21, V, 3), b = RandomTokens(9, V, 4), c = RandomTokens(30, V, 5);
  std::vector<float> alone;
  ASSERT_TRUE(backend->kv().AddSequence(1).ok());
  SequenceStep sa{1, a, model::Logits::kAll};
  ASSERT_TRUE(backend->Forward({&sa, 1}, &alone).ok());

  ASSERT_TRUE(backend->kv().AddSequence(2).ok());
  ASSERT_TRUE(backend->kv().AddSequence(3).ok());
  ASSERT_TRUE(backend->kv().AddSequence(4).ok());
  std::vector<SequenceStep> batch = {{2, b, model::Logits::kLast}, {3, a, model::Logits::kAll}, {4, c, model::Logits::kLast}};
  std::vector<float> mixed;
  ASSERT_TRUE(backend->Forward(batch, &mixed).ok());
  ASSERT_EQ(mixed.size(), static_cast<size_t>(V) * (1 + a.size() + 1));
  // Rows: b's last, then every row of a, then c's last. Bitwise equal.
  for (size_t i = 0; i < alone.size(); ++i) ASSERT_EQ(alone[i], mixed[V + i]) << "element " << i;

  // And a decode step of `a` batched with others equals a decode step alone.
  const int32_t next = 7;
  std::vector<float> d1, d2;
  SequenceStep s1{1, {&next, 1}, model::Logits::kLast};
  ASSERT_TRUE(backend->Forward({&s1, 1}, &d1).ok());
  std::vector<SequenceStep> batch2 = {{4, {&next, 1}, model::Logits::kLast}, {3, {&next, 1}, model::Logits::kLast}, {2, {&next, 1}, model::Logits::kNone}};
  ASSERT_TRUE(backend->Forward(batch2, &d2).ok());
  for (int i = 0; i < V; ++i) ASSERT_EQ(d1[i], d2[V + i]);
}

TEST_F(CpuBackendTest, RejectsBadStepsWithoutChangingState) {
  auto backend = MakeBackend(*model_->file, /*max_seqs=*/2);
  std::vector<float> logits;
  const int32_t ok_tok = 1, bad_tok = 100000;
  SequenceStep unknown{42, {&ok_tok, 1}, model::Logits::kLast};
  EXPECT_EQ(backend->Forward({&unknown, 1}, &logits).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(backend->kv().AddSequence(1).ok());
  SequenceStep bad{1, {&bad_tok, 1}, model::Logits::kLast};
  auto s = backend->Forward({&bad, 1}, &logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("outside the vocabulary"), std::string::npos) << s;
  SequenceStep empty{1, {}, model::Logits::kLast};
  EXPECT_EQ(backend->Forward({&empty, 1}, &logits).code(), absl::StatusCode::kInvalidArgument);
  std::vector<SequenceStep> twice = {{1, {&ok_tok, 1}, model::Logits::kLast}, {1, {&ok_tok, 1}, model::Logits::kLast}};
  EXPECT_EQ(backend->Forward(twice, &logits).code(), absl::StatusCode::kInvalidArgument);
  std::vector<int32_t> too_long(513, 1);
  SequenceStep over{1, too_long, model::Logits::kLast};
  EXPECT_EQ(backend->Forward({&over, 1}, &logits).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(backend->kv().Length(1), 0);
  ASSERT_TRUE(backend->kv().AddSequence(2).ok());
  EXPECT_EQ(backend->kv().AddSequence(3).code(), absl::StatusCode::kResourceExhausted);
}

// ---------------------------------------------------------------------------
// ForwardSample (the Backend default: Forward, then model::Sampler per row)

// The serving engine's batches: prompt chunks (kNone) next to decode steps
// and last chunks (kLast). ForwardSample returns, per kLast step in step
// order, exactly the token model::Sampler draws from Forward's logits.
TEST_F(CpuBackendTest, ForwardSampleOfMixedBatchesEqualsForwardAndTheSampler) {
  auto backend = MakeBackend(*model_->file, 8);
  ASSERT_NE(backend, nullptr);
  const int V = backend->config().vocab_size;
  const std::vector<std::vector<int32_t>> prompts = {RandomTokens(12, V, 11), RandomTokens(15, V, 12),
                                                     RandomTokens(7, V, 13)};
  std::vector<model::SamplingParams> params(3);
  params[0].temperature = 0.0f;  // greedy
  params[1].temperature = 0.9f, params[1].top_k = 20, params[1].top_p = 0.9f, params[1].seed = 5;
  params[2].temperature = 1.3f, params[2].min_p = 0.02f, params[2].seed = 6;
  const std::vector<std::vector<Part>> rounds = {
      {{0, 12}, {1, 9}},          // kLast prompt, kNone chunk
      {{2, 4}, {0, 0}, {1, 6}},   // kNone chunk first, then a decode step and a last chunk
      {{0, 0}, {2, 3}, {1, 0}},   // a last chunk between decode steps
      {{1, 0}, {2, 0}, {0, 0}}, {{2, 0}, {0, 0}, {1, 0}}, {{0, 0}, {1, 0}, {2, 0}},
      {{0, 0}, {1, 0}, {2, 0}}, {{0, 0}, {1, 0}, {2, 0}}, {{0, 0}, {1, 0}, {2, 0}},
  };
  const auto want = RunRounds(*backend, 1, prompts, params, rounds, /*forward_sample=*/false);
  const auto got = RunRounds(*backend, 11, prompts, params, rounds, /*forward_sample=*/true);
  ASSERT_EQ(want[0].size(), 9u);
  ASSERT_EQ(want[1].size(), 8u);
  ASSERT_EQ(want[2].size(), 7u);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], want[i]) << "sequence " << i;

  // The RNG counter is what the caller passes: another counter draws other
  // tokens for the seeded sequences (so the comparison above would catch a
  // backend that ignored it), and greedy does not care.
  const auto shifted = RunRounds(*backend, 21, prompts, params, rounds, /*forward_sample=*/true, /*step_offset=*/1);
  EXPECT_EQ(shifted[0], want[0]);
  EXPECT_TRUE(shifted[1] != want[1] || shifted[2] != want[2]);
}

// Ids of type UNUSED (the padding of a vocabulary) are -inf in Forward's
// logits and never come out of ForwardSample, even at a temperature that
// makes every other id about equally likely.
TEST(CpuBackendUnusedTokensTest, AreNeverSampled) {
  tools::RandomModelSpec spec;
  ASSERT_TRUE(tools::ApplyPreset("tiny", &spec.config).ok());
  spec.seed = 3;
  spec.threads = 2;
  text::VocabSpec vocab = PlaceholderVocab(96);
  for (int id = 40; id < 96; ++id) vocab.token_types[id] = 5;  // UNUSED
  const std::string path = TempPath("cpu_backend_unused");
  ASSERT_TRUE(tools::WriteRandomModel(spec, vocab, path).ok());
  auto model = LoadModel(path);
  std::remove(path.c_str());
  ASSERT_NE(model, nullptr);
  auto backend = MakeBackend(*model->file);
  ASSERT_NE(backend, nullptr);
  ASSERT_EQ(backend->config().unsampled_tokens.size(), 56u);
  ASSERT_TRUE(backend->kv().AddSequence(1).ok());
  const std::vector<int32_t> prompt = RandomTokens(6, 40, 5);
  std::vector<float> logits;
  SequenceStep first{1, prompt, model::Logits::kLast};
  ASSERT_TRUE(backend->Forward({&first, 1}, &logits).ok());
  for (int id = 0; id < 96; ++id) {
    if (id < 40) {
      EXPECT_TRUE(std::isfinite(logits[id])) << id;
    } else {
      EXPECT_EQ(logits[id], -std::numeric_limits<float>::infinity()) << id;
    }
  }
  model::StepSampling hot;
  hot.params.temperature = 50.0f;
  hot.params.seed = 9;
  int32_t token = 1;
  for (int step = 0; step < 60; ++step) {
    hot.step = static_cast<uint64_t>(step);
    SequenceStep s{1, {&token, 1}, model::Logits::kLast};
    std::vector<int32_t> out;
    ASSERT_TRUE(backend->ForwardSample({&s, 1}, {&hot, 1}, &out).ok());
    ASSERT_EQ(out.size(), 1u);
    ASSERT_GE(out[0], 0);
    ASSERT_LT(out[0], 40) << "step " << step;
    token = out[0];
  }
}

TEST_F(CpuBackendTest, ForwardSampleRefusesPenaltiesAndKAllWithoutChangingState) {
  auto backend = MakeBackend(*model_->file);
  ASSERT_NE(backend, nullptr);
  const auto tokens = RandomTokens(5, backend->config().vocab_size, 14);
  ASSERT_TRUE(backend->kv().AddSequence(1).ok());
  std::vector<int32_t> out;
  SequenceStep last{1, tokens, model::Logits::kLast};

  model::StepSampling repetition, presence, frequency;
  repetition.params.repetition_penalty = 1.1f;
  presence.params.presence_penalty = 0.5f;
  frequency.params.frequency_penalty = 0.5f;
  for (const model::StepSampling& pen : {repetition, presence, frequency}) {
    const absl::Status s = backend->ForwardSample({&last, 1}, {&pen, 1}, &out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("sequence 1 uses a repetition, presence or frequency penalty"), std::string::npos)
        << s;
    EXPECT_NE(s.message().find("token history"), std::string::npos) << s;
  }

  model::StepSampling greedy;
  greedy.params.temperature = 0.0f;
  SequenceStep all{1, tokens, model::Logits::kAll};
  absl::Status s = backend->ForwardSample({&all, 1}, {&greedy, 1}, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("sequence 1 asks for Logits::kAll"), std::string::npos) << s;

  const std::vector<model::StepSampling> two(2, greedy);
  s = backend->ForwardSample({&last, 1}, two, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("2 sampling entries for 1 steps"), std::string::npos) << s;

  // Nothing ran; the same step then samples normally.
  EXPECT_EQ(backend->kv().Length(1), 0);
  ASSERT_TRUE(backend->ForwardSample({&last, 1}, {&greedy, 1}, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(backend->kv().Length(1), 5);
  // Forward's errors come through unchanged.
  const int32_t bad_tok = 100000;
  SequenceStep bad{1, {&bad_tok, 1}, model::Logits::kLast};
  s = backend->ForwardSample({&bad, 1}, {&greedy, 1}, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("outside the vocabulary"), std::string::npos) << s;
  EXPECT_EQ(backend->kv().Length(1), 5);
}

// The backend's logits at every position of a random prompt against the
// float64 reference, within 1e-5.
void ExpectPromptMatchesReference(const std::string& path, int n_tokens, uint32_t seed, const std::string& label) {
  auto m = LoadModel(path);
  ASSERT_NE(m, nullptr);
  auto backend = MakeBackend(*m->file);
  ASSERT_NE(backend, nullptr);
  const auto tokens = RandomTokens(n_tokens, backend->config().vocab_size, seed);
  ASSERT_TRUE(backend->kv().AddSequence(1).ok());
  std::vector<float> logits;
  SequenceStep step{1, tokens, model::Logits::kAll};
  ASSERT_TRUE(backend->Forward({&step, 1}, &logits).ok());
  const auto ref = ReferenceLogits(*m->file, backend->config(), tokens);
  for (size_t t = 0; t < tokens.size(); ++t) {
    EXPECT_LT(RelErr(&logits[t * backend->config().vocab_size], ref[t]), 1e-5) << label << " position " << t;
  }
}

TEST(CpuBackendTypes, EveryDenseTypeMatchesTheReference) {
  for (auto type : {gguf::GgmlType::kF32, gguf::GgmlType::kF16, gguf::GgmlType::kBF16, gguf::GgmlType::kQ8_0}) {
    const std::string path = WriteTestModel(absl::StrCat("types", static_cast<int>(type)), [&](tools::RandomModelSpec& s) {
      s.dense_type = type;
      s.small_type = type == gguf::GgmlType::kQ8_0 ? gguf::GgmlType::kF32 : type;
      s.expert_type = type == gguf::GgmlType::kQ8_0 ? gguf::GgmlType::kMXFP4 : type;
    });
    ExpectPromptMatchesReference(path, 12, 8, absl::StrCat("type ", gguf::GgmlTypeName(static_cast<uint32_t>(type))));
    std::remove(path.c_str());
  }
}

// The k-quants end to end: Q4_K attention/embedding/unembedding with Q6_K
// experts and the reverse, at the smallest widths whose rows hold whole
// 256-element super-blocks.
TEST(CpuBackendTypes, KQuantModelsMatchTheReference) {
  const std::pair<gguf::GgmlType, gguf::GgmlType> mixes[] = {{gguf::GgmlType::kQ4_K, gguf::GgmlType::kQ6_K},
                                                             {gguf::GgmlType::kQ6_K, gguf::GgmlType::kQ4_K}};
  for (const auto& [dense, experts] : mixes) {
    const std::string label = absl::StrCat("dense ", gguf::GgmlTypeName(static_cast<uint32_t>(dense)), ", experts ",
                                           gguf::GgmlTypeName(static_cast<uint32_t>(experts)));
    const std::string name = absl::StrCat("kquants", static_cast<int>(dense));
    const std::string path = WriteTestModel(name, [&](tools::RandomModelSpec& s) {
      SetKQuantShape(&s.config);
      s.dense_type = dense;
      s.expert_type = experts;
    });
    ExpectPromptMatchesReference(path, 12, 9, label);
    std::remove(path.c_str());
  }
}

// Issue 14: a file whose YaRN original context (64) is below beta_fast·2π
// ≈ 201 has a negative low correction bound; the backend must clamp it as
// HF transformers does (the float64 reference clamps independently).
TEST(CpuBackendYarn, ShortOriginalContextMatchesTheClampedReference) {
  for (int head_dim : {16, 64}) {
    const std::string path = WriteTestModel(absl::StrCat("yarn_orig64_", head_dim), [&](tools::RandomModelSpec& s) {
      s.config.rope_original_context = 64;
      s.config.head_dim = head_dim;
    });
    auto m = LoadModel(path);
    ASSERT_NE(m, nullptr);
    auto config = model::ReadModelConfig(*m->file);
    ASSERT_TRUE(config.ok());
    ASSERT_EQ(config->rope_original_context, 64);
    ExpectPromptMatchesReference(path, 40, 14, absl::StrCat("head_dim ", head_dim));
    std::remove(path.c_str());
  }
}

TEST(CpuBackendLoad, RejectsOtherArchitecturesAndMissingTensors) {
  gguf::GgufWriter w;
  w.SetString("general.architecture", "llama");
  const std::string path = TempPath("llama");
  ASSERT_TRUE(w.Begin(path).ok());
  ASSERT_TRUE(w.Finish().ok());
  auto m = LoadModel(path);
  ASSERT_NE(m, nullptr);
  auto b = CpuBackend::Create(*m->file, {});
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("unsupported model architecture 'llama'"), std::string::npos) << b.status();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ossgate::testing
