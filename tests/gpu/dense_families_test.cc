// The dense families (qwen2, phi3) on the GPU against the CPU reference
// backend: every position of a 1,000-token prompt within 1e-2 relative
// logit error (dense models have no router, so no near-tie excuse: the bound
// holds at every position), the same argmax nearly everywhere, and 64
// identical greedy tokens, decoded step by step on the GPU (CUDA graphs, the
// split decode attention past 512 keys, the GPU sampler) and on the CPU.
// The shapes cover what the kernels had to learn for these families:
// query-head groups that do not divide 16 (Qwen2.5-0.5B: 14 heads over 2 KV
// heads), head_dim 96 (Phi-3-mini), no attention sinks, q/k/v biases without
// an o bias, tied embeddings, a sliding window on every layer (phi3), fused
// attn_qkv / gate-up tensors split into views, and the SiLU-gated FFN.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/cuda/memory_plan.h"
#include "inference_worker/model/cpu_backend.h"
#include "tests/gpu/accuracy.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using model::Logits;
using model::SequenceStep;

struct Shape {
  const char* name;
  const char* preset;
  std::function<void(tools::RandomModelSpec&)> tweak;
};

std::vector<int32_t> Tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (int& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

std::vector<int32_t> Greedy(model::Backend& b, model::SeqId id, const std::vector<int32_t>& prompt, int n) {
  std::vector<int32_t> out;
  EXPECT_TRUE(b.kv().AddSequence(id).ok());
  std::vector<float> logits;
  SequenceStep s{id, prompt, Logits::kLast};
  EXPECT_TRUE(b.Forward({&s, 1}, &logits).ok());
  const int V = b.config().vocab_size;
  for (int i = 0; i < n; ++i) {
    out.push_back(ArgmaxOf(logits.data(), V));
    SequenceStep d{id, {&out.back(), 1}, Logits::kLast};
    EXPECT_TRUE(b.Forward({&d, 1}, &logits).ok());
  }
  b.kv().RemoveSequence(id);
  return out;
}

std::vector<int32_t> GreedyOnGpuSampler(model::Backend& b, model::SeqId id, const std::vector<int32_t>& prompt,
                                        int n) {
  std::vector<int32_t> sampled, out;
  EXPECT_TRUE(b.kv().AddSequence(id).ok());
  model::StepSampling greedy;
  greedy.params.temperature = 0.0f;
  SequenceStep s{id, prompt, Logits::kLast};
  EXPECT_TRUE(b.ForwardSample({&s, 1}, {&greedy, 1}, &out).ok());
  for (int i = 0; i < n && out.size() == 1; ++i) {
    sampled.push_back(out[0]);
    SequenceStep d{id, {&sampled.back(), 1}, Logits::kLast};
    EXPECT_TRUE(b.ForwardSample({&d, 1}, {&greedy, 1}, &out).ok());
  }
  b.kv().RemoveSequence(id);
  return sampled;
}

class DenseFamilies : public ::testing::TestWithParam<Shape> {};

TEST_P(DenseFamilies, PromptLogitsAndGreedyDecodeMatchTheCpu) {
  const Shape& shape = GetParam();
  constexpr int kVocab = 256, kPrompt = 1000, kGreedy = 64, kContext = 1200;
  const std::string path = WritePresetModel(std::string("gpu_dense_") + shape.name, shape.preset,
                                            [&](tools::RandomModelSpec& s) {
                                              s.residual_scale = 1.0f / std::sqrt(2.0f * s.config.n_layers);
                                              if (shape.tweak) shape.tweak(s);
                                            },
                                            kVocab, 3);
  auto loaded = LoadModel(path);
  std::remove(path.c_str());
  ASSERT_NE(loaded, nullptr);

  gpu::CudaBackendOptions go;
  go.kv.max_sequences = 2;
  go.max_context = kContext;
  go.max_step_tokens = 2048;
  auto gpu_or = gpu::CreateCudaBackendImpl(*loaded->file, go);
  ASSERT_TRUE(gpu_or.ok()) << gpu_or.status();
  model::Backend& g = **gpu_or;
  model::CpuBackendOptions co;
  co.kv.max_sequences = 2;
  co.max_context = kContext;
  auto cpu_or = model::CpuBackend::Create(*loaded->file, co);
  ASSERT_TRUE(cpu_or.ok()) << cpu_or.status();
  model::Backend& c = **cpu_or;
  ASSERT_EQ(g.config().family, c.config().family);

  const auto prompt = Tokens(kPrompt, kVocab, 5);
  std::vector<float> lg, lc;
  for (auto [b, out] : {std::pair<model::Backend*, std::vector<float>*>{&g, &lg}, {&c, &lc}}) {
    ASSERT_TRUE(b->kv().AddSequence(1).ok());
    SequenceStep s{1, prompt, Logits::kAll};
    ASSERT_TRUE(b->Forward({&s, 1}, out).ok());
    b->kv().RemoveSequence(1);
  }
  const LogitStats st = CompareLogits(lg, lc, kVocab);
  std::printf("#### dense family %s (%s)\n%s\n", shape.name, c.config().DebugString().c_str(),
              st.Row("GPU (bf16 KV) vs CPU").c_str());
  EXPECT_LT(st.worst, 1e-2) << "position " << st.worst_pos;
  EXPECT_GE(st.argmax_equal, kPrompt * 99 / 100);

  const auto tg = Greedy(g, 2, prompt, kGreedy);
  const auto tc = Greedy(c, 2, prompt, kGreedy);
  EXPECT_EQ(tg, tc) << "greedy continuations of " << shape.name;
  EXPECT_EQ(GreedyOnGpuSampler(g, 2, prompt, kGreedy), tg) << "the GPU sampler's greedy tokens";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DenseFamilies,
    ::testing::Values(
        // Qwen2.5-0.5B's proportions: 14 query heads over 2 KV heads (groups
        // of 7), q/k/v biases, tied embeddings.
        Shape{"qwen2_groups_of_7", "qwen2-tiny",
              [](tools::RandomModelSpec& s) {
                s.config.n_heads = 14, s.config.n_kv_heads = 2, s.config.head_dim = 16;
              }},
        Shape{"qwen2_head_dim_64_bf16_untied", "qwen2-tiny",
              [](tools::RandomModelSpec& s) {
                s.config.head_dim = 64, s.config.tied_embeddings = false;
                s.dense_type = gguf::GgmlType::kBF16;
              }},
        // Phi-3-mini's: no GQA, head_dim 96, every layer windowed.
        Shape{"phi3_head_dim_96_window_300", "phi3-tiny",
              [](tools::RandomModelSpec& s) {
                s.config.d_model = 128, s.config.head_dim = 96, s.config.sliding_window = 300;
              }},
        Shape{"phi3_gqa_window_24_f16", "phi3-tiny",
              [](tools::RandomModelSpec& s) {
                s.config.n_kv_heads = 2, s.config.sliding_window = 24;
                s.dense_type = gguf::GgmlType::kF16;
              }}),
    [](const ::testing::TestParamInfo<Shape>& p) { return std::string(p.param.name); });

// The memory plan made before the upload equals what the upload allocates,
// by category, for a dense model too (its FFN is counted as feed-forward).
TEST(DenseFamiliesMemory, PlannedWeightBytesEqualTheVramReport) {
  const std::string path = WritePresetModel("gpu_dense_plan", "qwen2-tiny", [](tools::RandomModelSpec&) {}, 256, 3);
  auto loaded = LoadModel(path);
  std::remove(path.c_str());
  ASSERT_NE(loaded, nullptr);
  gpu::CudaBackendOptions o;
  o.kv.max_sequences = 2;
  o.max_context = 512;
  auto b = gpu::CreateCudaBackendImpl(*loaded->file, o);
  ASSERT_TRUE(b.ok()) << b.status();
  auto config = model::ReadModelConfig(*loaded->file);
  ASSERT_TRUE(config.ok());
  auto weights = model::BindWeights(*loaded->file, *config);
  ASSERT_TRUE(weights.ok());
  auto plan = gpu::PlanWeightBytes(*config, *weights, 512);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const gpu::VramReport r = (*b)->Vram();
  EXPECT_EQ(plan->attention, r.weights_attention);
  EXPECT_EQ(plan->ffn, r.weights_ffn);
  EXPECT_GT(r.weights_ffn, 0);
  EXPECT_EQ(r.weights_experts, 0);
  EXPECT_EQ(r.weights_router, 0);
  EXPECT_EQ(plan->total(), r.weights());
  EXPECT_NE(r.ToString().find("feed-forward"), std::string::npos) << r.ToString();
}

}  // namespace
}  // namespace ossgate::testing
