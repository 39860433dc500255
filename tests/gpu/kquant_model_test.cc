// What the CUDA backend's re-quantization of k-quant matrices into Q8_0 tiles
// (every Q6_K, Q5_K, Q5_0 and Q5_1 matrix; Q4_K ones only where fused with
// another type, else
// they keep their own tiles) costs a whole model, measured on the CPU (kquant_convert.h): the CPU
// backend on a k-quant model against the same model with its tiled matrices
// converted as the upload converts them. The GPU tests compare the GPU with
// the converted model (bitwise for the GPU, at the Q8_0 tolerances against
// the CPU); this bounds the step from there to the exact k-quant model. CPU
// only: runs in CI.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inference_worker/model/cpu_backend.h"
#include "tests/gpu/kquant_convert.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

std::vector<float> CpuLogits(const gguf::GgufFile& file, const std::vector<int32_t>& tokens) {
  model::CpuBackendOptions o;
  o.n_threads = 2;
  o.kv.max_sequences = 1;
  o.max_context = static_cast<int>(tokens.size()) + 16;
  auto b = model::CpuBackend::Create(file, o);
  EXPECT_TRUE(b.ok()) << b.status();
  if (!b.ok()) return {};
  EXPECT_TRUE((*b)->kv().AddSequence(1).ok());
  std::vector<float> logits;
  const model::SequenceStep step{1, tokens, model::Logits::kAll};
  EXPECT_TRUE((*b)->Forward({&step, 1}, &logits).ok());
  return logits;
}

// The model written at `path` (removed once loaded) and its copy with the
// matrices the upload re-quantizes converted to Q8_0 (kquant_convert.h);
// either pointer null on failure (with a test failure).
struct ModelAndConverted {
  std::unique_ptr<LoadedModel> original, q8;
};
ModelAndConverted LoadWithConvertedCopy(const std::string& path, const std::string& q8_name) {
  ModelAndConverted r;
  r.original = LoadModel(path);
  std::remove(path.c_str());
  EXPECT_NE(r.original, nullptr);
  if (r.original == nullptr) return r;
  const std::string q8_path = TempPath(q8_name);
  EXPECT_TRUE(WriteRequantizedCopy(*r.original->file, q8_path).ok());
  r.q8 = LoadModel(q8_path);
  std::remove(q8_path.c_str());
  EXPECT_NE(r.q8, nullptr);
  return r;
}

// Per position of two [positions][V] logit arrays: the relative L2 error
// (sorted ascending) and how many positions have the same argmax.
struct LogitComparison {
  std::vector<double> rels;
  double mean = 0;
  int same_argmax = 0;
};
LogitComparison CompareLogits(const std::vector<float>& exact, const std::vector<float>& tiled, size_t positions,
                              size_t V) {
  LogitComparison c;
  double sum = 0;
  for (size_t t = 0; t < positions; ++t) {
    double num = 0, den = 0;
    size_t a = 0, b = 0;
    for (size_t v = 0; v < V; ++v) {
      const double e = exact[t * V + v], g = tiled[t * V + v];
      num += (g - e) * (g - e);
      den += e * e;
      if (e > exact[t * V + a]) a = v;
      if (g > tiled[t * V + b]) b = v;
    }
    c.rels.push_back(std::sqrt(num / den));
    sum += c.rels.back();
    c.same_argmax += a == b;
  }
  std::sort(c.rels.begin(), c.rels.end());
  c.mean = sum / static_cast<double>(std::max<size_t>(1, positions));
  return c;
}

// Both files' CPU logits at every position of a random prompt of n tokens
// (ids below 200, the test models' vocabulary), compared.
LogitComparison CompareOnRandomPrompt(const gguf::GgufFile& exact_file, const gguf::GgufFile& tiled_file, int n,
                                      uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> tokens(n);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % 200);
  const std::vector<float> exact = CpuLogits(exact_file, tokens), tiled = CpuLogits(tiled_file, tokens);
  EXPECT_EQ(exact.size(), tiled.size());
  if (exact.size() != tiled.size()) return {};
  return CompareLogits(exact, tiled, tokens.size(), 200);
}

TEST(KQuantRequantization, ConvertedModelKeepsTheKQuantModelsLogits) {
  const std::pair<gguf::GgmlType, gguf::GgmlType> mixes[] = {{gguf::GgmlType::kQ4_K, gguf::GgmlType::kQ6_K},
                                                             {gguf::GgmlType::kQ6_K, gguf::GgmlType::kQ4_K}};
  for (const auto& [dense, experts] : mixes) {
    const std::string label = absl::StrCat("dense ", gguf::GgmlTypeName(static_cast<uint32_t>(dense)), ", experts ",
                                           gguf::GgmlTypeName(static_cast<uint32_t>(experts)));
    SCOPED_TRACE(label);
    const std::string path = WriteTestModel(
        "kquant_requant",
        [&](tools::RandomModelSpec& s) {
          s.config.n_layers = 3;
          SetKQuantShape(&s.config);
          s.config.sliding_window = 8;
          s.residual_scale = 1.0f / std::sqrt(6.0f);
          s.dense_type = dense;
          s.expert_type = experts;
        },
        200);
    const ModelAndConverted mc = LoadWithConvertedCopy(path, "kquant_requant_q8");
    ASSERT_TRUE(mc.original && mc.q8);
    const LoadedModel* m = mc.original.get();
    const LoadedModel* q8 = mc.q8.get();
    // Q6_K matrices become Q8_0; Q4_K ones keep their own tiles (no q/k/v or
    // gate/up part of another type here).
    int converted = 0, kept_q4k = 0;
    for (const gguf::TensorInfo& t : q8->file->tensors()) {
      if (t.name == "token_embd.weight") continue;
      converted += t.type == gguf::GgmlType::kQ8_0;
      kept_q4k += t.type == gguf::GgmlType::kQ4_K;
      EXPECT_NE(t.type, gguf::GgmlType::kQ6_K) << t.name;
    }
    if (dense == gguf::GgmlType::kQ6_K) {
      EXPECT_EQ(converted, 3 * 4 + 1) << "q, k, v, o per layer, and the unembedding";
      EXPECT_EQ(kept_q4k, 3 * 3) << "the experts' gate, up, down per layer";
    } else {
      EXPECT_EQ(converted, 3 * 3) << "the experts' gate, up, down per layer";
      EXPECT_EQ(kept_q4k, 3 * 4 + 1) << "q, k, v, o per layer, and the unembedding";
    }

    const LogitComparison c = CompareOnRandomPrompt(*m->file, *q8->file, 200, 5);
    ASSERT_EQ(c.rels.size(), 200u);
    const std::vector<double>& rels = c.rels;
    const int same_argmax = c.same_argmax;
    const double mean = c.mean, median = rels[rels.size() / 2], p90 = rels[rels.size() * 9 / 10],
                 worst = rels.back();
    std::printf("%s: logits of the device-tiled model vs the k-quant model: relative error mean %.2e, median %.2e, "
                "p90 %.2e, worst %.2e; same argmax %d/%zu\n",
                label.c_str(), mean, median, p90, worst, same_argmax, c.rels.size());
    // The worst positions are those where a router near a tie picked
    // another expert (a swapped expert moves a token's logits by 2-60%,
    // docs/cuda.md "Precision"); the bulk is the rounding itself.
    EXPECT_LT(median, 1.5e-2);
    EXPECT_LT(p90, 3e-2);
    EXPECT_LT(mean, 2.5e-2);
    EXPECT_GE(same_argmax, static_cast<int>(c.rels.size()) * 95 / 100);
  }
}

// The dense families' Q4_K_M files (tools::LlamaQ4KMType; test_models.h
// shapes): a qwen2 with Q5_0 fallbacks, a phi3 with a Q5_K attn_qkv. On the
// GPU every Q5_0, Q5_K and Q6_K matrix (and Q4_K one fused with such parts)
// becomes Q8_0 tiles; the CPU on the converted file stays close to the CPU
// on the original.
TEST(KQuantRequantization, ConvertedQ4KMDenseModelsKeepTheirLogits) {
  struct Case {
    const char* name;
    const char* preset;
    void (*shape)(model::ModelConfig*);
    int converted;  // matrices the converted copy holds as Q8_0 that were not
  };
  // qwen2: per layer q, k, o, gate, up (Q5_0), v (Q5_0 / already Q8_0), down
  // layer 1 (Q6_K); the embedding stays (gathered raw). phi3: per layer
  // attn_qkv (Q5_K), down layer 1 and output (Q6_K).
  const Case cases[] = {{"qwen2_q4km", "qwen2-tiny", SetQwen2Q4KMShape, 11 + 1},
                        {"phi3_q4km", "phi3-tiny", SetPhi3Q4KMShape, 2 + 2}};
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    const std::string path = WritePresetModel(
        k.name, k.preset,
        [&](tools::RandomModelSpec& s) {
          k.shape(&s.config);
          s.llama_q4_k_m = true;
        },
        200);
    const ModelAndConverted mc = LoadWithConvertedCopy(path, "kquant_requant_dense_q8");
    ASSERT_TRUE(mc.original && mc.q8);
    const LoadedModel* m = mc.original.get();
    const LoadedModel* q8 = mc.q8.get();
    int converted = 0;
    for (size_t i = 0; i < q8->file->tensors().size(); ++i) {
      const gguf::TensorInfo& a = m->file->tensors()[i];
      const gguf::TensorInfo& b = q8->file->tensors()[i];
      ASSERT_EQ(a.name, b.name);
      if (a.type != b.type) {
        EXPECT_EQ(b.type, gguf::GgmlType::kQ8_0) << b.name;
        ++converted;
      }
      const bool requantized_type = b.type == gguf::GgmlType::kQ5_0 || b.type == gguf::GgmlType::kQ5_1 ||
                                    b.type == gguf::GgmlType::kQ5_K || b.type == gguf::GgmlType::kQ6_K;
      EXPECT_TRUE(!requantized_type || b.name == "token_embd.weight") << b.name << " was left unconverted";
    }
    EXPECT_EQ(converted, k.converted);
    const LogitComparison c = CompareOnRandomPrompt(*m->file, *q8->file, 150, 7);
    ASSERT_EQ(c.rels.size(), 150u);
    const std::vector<double>& rels = c.rels;
    const int same_argmax = c.same_argmax;
    std::printf("%s: converted vs Q4_K_M logits: median relative error %.2e, worst %.2e; same argmax %d/%zu\n",
                k.name, rels[rels.size() / 2], rels.back(), same_argmax, c.rels.size());
    EXPECT_LT(rels[rels.size() / 2], 1.5e-2);
    EXPECT_LT(rels.back(), 5e-2);
    EXPECT_GE(same_argmax, static_cast<int>(c.rels.size()) * 95 / 100);
  }
}

}  // namespace
}  // namespace ossgate::testing
