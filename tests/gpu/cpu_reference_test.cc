// The CPU reference of the GPU accuracy tests (cpu_reference.h): the CPU
// backend with its router hook. Recording must not change the logits,
// forcing the experts it chose itself (in any rank order) must change
// nothing, and forcing another expert must change that token's logits and
// no earlier one's (the forced path is live). CPU only: runs in CI.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "inference_worker/model/cpu_backend.h"
#include "inference_worker/model/cpu_ops.h"
#include "tests/gpu/cpu_reference.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

TEST(CpuReference, RecordsAndForcesTheRoutingOfTheCpuBackend) {
  struct Case {
    int layers, window;
    float residual_scale;
    gguf::GgmlType dense, experts;
  };
  for (const Case& k : {Case{3, 8, 1.0f, gguf::GgmlType::kQ8_0, gguf::GgmlType::kMXFP4},
                        Case{2, 128, 0.5f, gguf::GgmlType::kBF16, gguf::GgmlType::kQ8_0},
                        Case{4, 16, 0.35f, gguf::GgmlType::kF32, gguf::GgmlType::kF16}}) {
    const std::string path = WriteTestModel(
        "cpu_reference",
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
    const size_t K = c.n_experts_used, E = c.n_experts, V = c.vocab_size;
    std::mt19937 rng(k.layers * 1000 + k.window);
    std::vector<int32_t> tokens(140);
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % c.vocab_size);
    ASSERT_TRUE((*cpu)->kv().AddSequence(1).ok());
    std::vector<float> want;
    model::SequenceStep step{1, tokens, model::Logits::kAll};
    ASSERT_TRUE((*cpu)->Forward({&step, 1}, &want).ok());

    auto got = CpuReference(*m->file, tokens);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->logits.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got->logits.data(), want.data(), want.size() * sizeof(float)))
        << "recording changed the logits: layers " << k.layers << " window " << k.window;
    ASSERT_EQ(got->ids.size(), static_cast<size_t>(c.n_layers) * tokens.size() * K);
    // The recorded ids are the top-k of the recorded logits.
    for (size_t at = 0; at < got->ids.size() / K; ++at) {
      std::vector<int32_t> top(K);
      std::vector<float> w(K);
      model::cpu::RouterTopK(&got->router_logits[at * E], static_cast<int>(E), static_cast<int>(K), top.data(),
                             w.data());
      ASSERT_TRUE(std::equal(top.begin(), top.end(), got->ids.begin() + at * K)) << "layer-token " << at;
    }

    // Forcing the routing it chose itself changes nothing, in any rank order
    // (the experts' outputs are added in increasing expert id).
    std::vector<int32_t> reversed = got->ids;
    for (size_t at = 0; at < reversed.size() / K; ++at) {
      std::reverse(reversed.begin() + at * K, reversed.begin() + (at + 1) * K);
    }
    for (const std::vector<int32_t>* forced : {&got->ids, &reversed}) {
      auto same = CpuReference(*m->file, tokens, forced);
      ASSERT_TRUE(same.ok()) << same.status();
      EXPECT_EQ(0, std::memcmp(same->logits.data(), want.data(), want.size() * sizeof(float)));
      EXPECT_EQ(same->ids, *forced);
    }
    // Forcing another expert set changes the logits of that token (and of
    // later ones, through attention), not of earlier ones.
    std::vector<int32_t> other = got->ids;
    const size_t pos = 70;  // layer 0, token 70: swap its last expert for one it did not pick
    int32_t* ids = &other[pos * K];
    for (int e = 0; e < c.n_experts; ++e) {
      if (std::find(ids, ids + K, e) == ids + K) {
        ids[K - 1] = e;
        break;
      }
    }
    auto changed = CpuReference(*m->file, tokens, &other);
    ASSERT_TRUE(changed.ok()) << changed.status();
    EXPECT_EQ(0, std::memcmp(changed->logits.data(), want.data(), pos * V * sizeof(float)));
    EXPECT_NE(0, std::memcmp(changed->logits.data() + pos * V, want.data() + pos * V, V * sizeof(float)));
  }
}

TEST(CpuReference, RouterMarginIsTheGapAfterTheKthLargest) {
  const float l[6] = {0.5f, 3.0f, -1.0f, 2.0f, 2.75f, 0.0f};
  EXPECT_FLOAT_EQ(RouterMargin(l, 6, 2), 0.75f);  // 2.75 vs 2.0
  EXPECT_FLOAT_EQ(RouterMargin(l, 6, 3), 1.5f);   // 2.0 vs 0.5
}

}  // namespace
}  // namespace ossgate::testing
