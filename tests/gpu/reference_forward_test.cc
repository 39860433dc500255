// The instrumented reference forward pass used by the GPU accuracy tests
// (reference_forward.h) must be the CPU backend: bitwise equal logits on
// random models (full and sliding layers, every weight type the GPU tests
// use), and forcing its own expert choices must change nothing. CPU only.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "inference_worker/model/cpu_backend.h"
#include "inference_worker/model/weights.h"
#include "tests/gpu/reference_forward.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

TEST(ReferenceForward, EqualsTheCpuBackendBitwise) {
  struct Case {
    int layers, window;
    float residual_scale;
    gguf::GgmlType dense, experts;
  };
  for (const Case& k : {Case{3, 8, 1.0f, gguf::GgmlType::kQ8_0, gguf::GgmlType::kMXFP4},
                        Case{2, 128, 0.5f, gguf::GgmlType::kBF16, gguf::GgmlType::kQ8_0},
                        Case{4, 16, 0.35f, gguf::GgmlType::kF32, gguf::GgmlType::kF16}}) {
    const std::string path = WriteTestModel(
        "reference_forward",
        [&](tools::RandomModelSpec& s) {
          s.config.n_layers = k.layers;
          s.config.sliding_window = k.window;
          s.residual_scale = k.residual_scale;
          s.dense_type = k.dense;
          s.expert_type = k.experts;
        },
        150);
    auto m = LoadModel(path);
    std::remove(path.c_str());
    ASSERT_NE(m, nullptr);
    model::CpuBackendOptions o;
    o.n_threads = 2;
    o.kv.max_sequences = 1;
    o.max_context = 256;
    auto cpu = model::CpuBackend::Create(*m->file, o);
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    const model::ModelConfig& c = (*cpu)->config();
    std::mt19937 rng(k.layers * 1000 + k.window);
    std::vector<int32_t> tokens(140);
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % c.vocab_size);
    ASSERT_TRUE((*cpu)->kv().AddSequence(1).ok());
    std::vector<float> want;
    model::SequenceStep step{1, tokens, model::Logits::kAll};
    ASSERT_TRUE((*cpu)->Forward({&step, 1}, &want).ok());

    auto weights = model::BindWeights(*m->file, c);
    ASSERT_TRUE(weights.ok()) << weights.status();
    model::ThreadPool pool(3);
    const ReferenceResult got = ReferenceForward(c, *weights, tokens, pool);
    ASSERT_EQ(got.logits.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.logits.data(), want.data(), want.size() * sizeof(float)))
        << "layers " << k.layers << " window " << k.window;
    ASSERT_EQ(got.ids.size(), static_cast<size_t>(c.n_layers) * tokens.size() * c.n_experts_used);
    for (int32_t id : got.ids) ASSERT_TRUE(id >= 0 && id < c.n_experts);

    // Forcing the routing it chose itself changes nothing.
    const ReferenceResult same = ReferenceForward(c, *weights, tokens, pool, &got.ids);
    EXPECT_EQ(0, std::memcmp(same.logits.data(), want.data(), want.size() * sizeof(float)));
    // Forcing another expert set changes the logits of that token only
    // (and of later ones, through attention): the forced path is live.
    std::vector<int32_t> other = got.ids;
    const size_t pos = 70;  // layer 0, token 70: swap its last expert for one it did not pick
    int32_t* ids = &other[pos * c.n_experts_used];
    for (int e = 0; e < c.n_experts; ++e) {
      if (std::find(ids, ids + c.n_experts_used, e) == ids + c.n_experts_used) {
        ids[c.n_experts_used - 1] = e;
        break;
      }
    }
    const ReferenceResult changed = ReferenceForward(c, *weights, tokens, pool, &other);
    const size_t V = c.vocab_size;
    EXPECT_EQ(0, std::memcmp(changed.logits.data(), want.data(), pos * V * sizeof(float)));
    EXPECT_NE(0, std::memcmp(changed.logits.data() + pos * V, want.data() + pos * V, V * sizeof(float)));
  }
}

TEST(ReferenceForward, RouterMarginIsTheGapAfterTheKthLargest) {
  const float l[6] = {0.5f, 3.0f, -1.0f, 2.0f, 2.75f, 0.0f};
  EXPECT_FLOAT_EQ(RouterMargin(l, 6, 2), 0.75f);  // 2.75 vs 2.0
  EXPECT_FLOAT_EQ(RouterMargin(l, 6, 3), 1.5f);   // 2.0 vs 0.5
}

}  // namespace
}  // namespace ossgate::testing
