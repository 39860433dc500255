// The GPU against the CPU backend on the "medium" random model (4 layers at
// the real gpt-oss width: 2880, 64 heads of 64, 32 experts, MXFP4 experts,
// Q8_0 dense): logits at every position of a 1,000-token prompt, and the
// same prompt chunked on the GPU giving bitwise the same logits.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "gtest/gtest.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/model/cpu_backend.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using model::Logits;
using model::SequenceStep;

TEST(MediumModel, ThousandTokenPromptMatchesCpuAtEveryPosition) {
  const std::string path = TempPath("gpu_medium");
  {
    tools::RandomModelSpec spec;
    ASSERT_TRUE(tools::ApplyPreset("medium", &spec.config).ok());
    spec.seed = 21;
    spec.threads = 0;
    ASSERT_TRUE(tools::WriteRandomModel(spec, PlaceholderVocab(2048), path).ok());
  }
  auto m = LoadModel(path);
  ASSERT_NE(m, nullptr);
  std::remove(path.c_str());

  gpu::CudaBackendOptions go;
  go.kv.max_sequences = 2;
  go.max_context = 1024;
  auto gb = gpu::CreateCudaBackendImpl(*m->file, go);
  ASSERT_TRUE(gb.ok()) << gb.status();
  model::CpuBackendOptions co;
  co.kv.max_sequences = 1;
  co.max_context = 1024;
  auto cb = model::CpuBackend::Create(*m->file, co);
  ASSERT_TRUE(cb.ok()) << cb.status();
  auto& g = **gb;
  auto& c = **cb;
  const int V = c.config().vocab_size;
  std::mt19937 rng(FreshSeed());
  std::vector<int32_t> tokens(1000);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % V);

  std::vector<float> lg, lc;
  ASSERT_TRUE(g.kv().AddSequence(1).ok());
  ASSERT_TRUE(c.kv().AddSequence(1).ok());
  SequenceStep step{1, tokens, Logits::kAll};
  ASSERT_TRUE(g.Forward({&step, 1}, &lg).ok());
  ASSERT_TRUE(c.Forward({&step, 1}, &lc).ok());
  double worst = 0, sum = 0;
  int worst_pos = -1, same_argmax = 0, over = 0;
  for (int t = 0; t < 1000; ++t) {
    const float* a = &lg[static_cast<size_t>(t) * V];
    const float* b = &lc[static_cast<size_t>(t) * V];
    const double e = RelErr(a, b, V);
    sum += e;
    over += e >= 1e-2;
    if (e > worst) worst = e, worst_pos = t;
    same_argmax += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
  }
  std::printf("medium, 1000 positions: mean rel err %.3g, worst %.3g at %d, %d positions >= 1e-2, argmax equal %d/1000\n",
              sum / 1000, worst, worst_pos, over, same_argmax);
  EXPECT_LT(worst, 1e-2);
  EXPECT_GE(same_argmax, 990);

  // Chunked prefill (and single-token steps) give bitwise the same logits.
  ASSERT_TRUE(g.kv().AddSequence(2).ok());
  std::vector<float> chunked;
  size_t pos = 0;
  for (size_t n : {300u, 1u, 1u, 187u, 511u}) {
    SequenceStep s{2, {tokens.data() + pos, n}, Logits::kAll};
    std::vector<float> out;
    ASSERT_TRUE(g.Forward({&s, 1}, &out).ok());
    chunked.insert(chunked.end(), out.begin(), out.end());
    pos += n;
  }
  ASSERT_EQ(pos, tokens.size());
  ASSERT_EQ(0, std::memcmp(chunked.data(), lg.data(), lg.size() * sizeof(float)));
}

}  // namespace
}  // namespace ossgate::testing
