// The CPU backend on the dense families (qwen2, phi3) against the naive
// float64 reference written from HF transformers' modeling code
// (dense_reference_model.cc): every position of a prompt of a few hundred
// tokens, on tiny random models covering tied and untied embeddings, q/k/v
// biases, the fused phi3 tensors split at bind time, grouped KV heads, a
// head size other than d_model / heads, and phi3's sliding window; then the
// KV cache (chunks, one token at a time, batching) against one-shot prefill.
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/model/cpu_backend.h"
#include "tests/model/reference_model.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using model::CpuBackend;
using model::CpuBackendOptions;
using model::SequenceStep;

constexpr int kPromptTokens = 300;

double RelErr(const float* got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

int Argmax(const float* v, int n) { return static_cast<int>(std::max_element(v, v + n) - v); }

std::vector<int32_t> RandomTokens(int n, int vocab, uint64_t seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) {
    t[i] = static_cast<int32_t>((tools::HashUniform(seed, 99, i) + 1.0f) * 0.5f * vocab) % vocab;
  }
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

// Logits of one sequence's prompt at every position, in one step.
std::vector<float> Prefill(CpuBackend& backend, model::SeqId seq, const std::vector<int32_t>& tokens) {
  EXPECT_TRUE(backend.kv().AddSequence(seq).ok());
  std::vector<float> logits;
  SequenceStep step{seq, tokens, model::Logits::kAll};
  EXPECT_TRUE(backend.Forward({&step, 1}, &logits).ok());
  return logits;
}

struct DenseCase {
  std::string name;
  std::string preset;
  bool tied;
  int n_kv_heads;
  int head_dim;       // 16 = d_model / heads; otherwise the file carries attention.key_length
  int window;         // phi3 only
  gguf::GgmlType dense;
};

std::string PrintCase(const ::testing::TestParamInfo<DenseCase>& info) { return info.param.name; }

class DenseBackendTest : public ::testing::TestWithParam<DenseCase> {
 protected:
  void SetUp() override {
    const DenseCase& p = GetParam();
    path_ = WritePresetModel("dense_" + p.name, p.preset, [&](tools::RandomModelSpec& s) {
      s.config.n_layers = 3;
      s.config.tied_embeddings = p.tied;
      s.config.n_kv_heads = p.n_kv_heads;
      s.config.head_dim = p.head_dim;
      if (s.config.family == model::Family::kPhi3) s.config.sliding_window = p.window;
      s.dense_type = p.dense;
    });
    model_ = LoadModel(path_);
    ASSERT_NE(model_, nullptr);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  std::string path_;
  std::unique_ptr<LoadedModel> model_;
};

TEST_P(DenseBackendTest, TheFileReadsAsTheCaseSays) {
  const DenseCase& p = GetParam();
  auto backend = MakeBackend(*model_->file);
  ASSERT_NE(backend, nullptr);
  const model::ModelConfig& c = backend->config();
  EXPECT_EQ(model::FamilyName(c.family), p.preset.substr(0, p.preset.find('-')));
  EXPECT_EQ(c.tied_embeddings, p.tied);
  EXPECT_EQ(model_->file->FindTensor("output.weight") == nullptr, p.tied);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, p.n_kv_heads);
  EXPECT_EQ(c.head_dim, p.head_dim);
  EXPECT_EQ(c.sliding_window, c.family == model::Family::kPhi3 ? p.window : 0);
}

TEST_P(DenseBackendTest, PrefillMatchesTheFloat64ReferenceAtEveryPosition) {
  auto backend = MakeBackend(*model_->file);
  ASSERT_NE(backend, nullptr);
  const model::ModelConfig& c = backend->config();
  const auto tokens = RandomTokens(kPromptTokens, c.vocab_size, 1);
  const std::vector<float> logits = Prefill(*backend, 1, tokens);
  const auto ref = DenseReferenceLogits(*model_->file, c, tokens);
  double worst = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const float* got = &logits[t * c.vocab_size];
    const double rel = RelErr(got, ref[t]);
    worst = std::max(worst, rel);
    EXPECT_LT(rel, 1e-4) << "position " << t;
    EXPECT_EQ(Argmax(got, c.vocab_size),
              static_cast<int>(std::max_element(ref[t].begin(), ref[t].end()) - ref[t].begin()))
        << "position " << t;
  }
  std::printf("%s: %d positions, max relative error %.3g\n", GetParam().name.c_str(), kPromptTokens, worst);
}

// Chunks shorter and longer than the phi3 window, then single tokens, and a
// batch with other sequences: the cache (phi3: the window's ring) gives
// what one-shot prefill gives.
TEST_P(DenseBackendTest, ChunkedPrefillDecodeAndBatchingMatchOneShotPrefill) {
  auto backend = MakeBackend(*model_->file);
  ASSERT_NE(backend, nullptr);
  const int V = backend->config().vocab_size;
  const auto tokens = RandomTokens(kPromptTokens, V, 2);
  const std::vector<float> full = Prefill(*backend, 1, tokens);

  ASSERT_TRUE(backend->kv().AddSequence(2).ok());
  ASSERT_TRUE(backend->kv().AddSequence(3).ok());
  const auto other = RandomTokens(40, V, 3);
  std::vector<float> got;
  size_t pos = 0, other_pos = 0;
  for (size_t chunk : {7u, 40u, 1u, 1u, 1u, 100u, 1u, 149u}) {
    std::span<const int32_t> part(tokens.data() + pos, chunk);
    std::span<const int32_t> other_part(other.data() + other_pos % 35, 5);
    // Sequence 3 rides along in every step; its rows come first.
    std::vector<SequenceStep> batch = {{3, other_part, model::Logits::kLast}, {2, part, model::Logits::kAll}};
    std::vector<float> out;
    ASSERT_TRUE(backend->Forward(batch, &out).ok());
    got.insert(got.end(), out.begin() + V, out.end());
    pos += chunk;
    other_pos += 5;
  }
  ASSERT_EQ(pos, tokens.size());
  ASSERT_EQ(got.size(), full.size());
  double worst = 0;
  for (size_t i = 0; i < full.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - full[i]));
  EXPECT_LT(worst, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Families, DenseBackendTest,
    ::testing::Values(
        // Qwen2.5-0.5B's layout: tied, q/k/v biases, 2 query heads per KV head.
        DenseCase{"qwen2_tied_gqa", "qwen2-tiny", true, 2, 16, 0, gguf::GgmlType::kQ8_0},
        DenseCase{"qwen2_untied_bf16", "qwen2-tiny", false, 4, 16, 0, gguf::GgmlType::kBF16},
        // A head size other than d_model / heads: attention.key_length in the file.
        DenseCase{"qwen2_key_length", "qwen2-tiny", true, 2, 32, 0, gguf::GgmlType::kF16},
        // Phi-3-mini's layout (untied, no grouping, fused tensors) with a
        // window the prompt exceeds many times.
        DenseCase{"phi3_window", "phi3-tiny", false, 4, 16, 24, gguf::GgmlType::kQ8_0},
        // The real 2047-token window (wider than the prompt), grouped KV heads
        // through the fused attn_qkv, tied embeddings.
        DenseCase{"phi3_gqa_tied", "phi3-tiny", true, 2, 16, 2047, gguf::GgmlType::kF16},
        // No window (the converter's 0, Phi-4).
        DenseCase{"phi3_no_window", "phi3-tiny", false, 1, 16, 0, gguf::GgmlType::kBF16}),
    PrintCase);

// The window is not a no-op: a phi3 file that differs only in its window key
// gives other logits once the prompt is longer than the window, and the
// same before.
TEST(DensePhi3WindowTest, TheWindowChangesLogitsExactlyPastItsLength) {
  constexpr int kWindow = 24;
  auto write = [](const std::string& name, int window) {
    return WritePresetModel(name, "phi3-tiny", [&](tools::RandomModelSpec& s) { s.config.sliding_window = window; });
  };
  const std::string windowed = write("phi3_w24", kWindow), full = write("phi3_w0", 0);
  auto a = LoadModel(windowed), b = LoadModel(full);
  std::remove(windowed.c_str());
  std::remove(full.c_str());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto ba = MakeBackend(*a->file), bb = MakeBackend(*b->file);
  const int V = ba->config().vocab_size;
  const auto tokens = RandomTokens(80, V, 4);
  const std::vector<float> la = Prefill(*ba, 1, tokens), lb = Prefill(*bb, 1, tokens);
  for (int t = 0; t < 80; ++t) {
    const std::vector<float> row_a(la.begin() + t * V, la.begin() + (t + 1) * V);
    const std::vector<double> row_b(lb.begin() + t * V, lb.begin() + (t + 1) * V);
    if (t < kWindow) {
      EXPECT_EQ(RelErr(row_a.data(), row_b), 0.0) << "position " << t;
    } else {
      EXPECT_GT(RelErr(row_a.data(), row_b), 1e-3) << "position " << t;
    }
  }
}

// Q4_K_M files as llama.cpp writes them for Qwen2.5-0.5B and Phi-3-mini
// (tools::LlamaQ4KMType): a qwen2 whose 384-wide matrices fall back to Q5_0
// (Q8_0 where Q6_K was picked, and for the tied embedding) next to Q4_K /
// Q6_K ffn_down; a phi3 with Q5_K attn_qkv; a phi3 of width 64 where even
// attn_qkv falls back (Q5_1). Each loads with the types the rules give,
// matches the float64 reference at every prompt position, and generates:
// greedy decoding one token at a time gives the reference's logits for the
// grown sequence.
TEST(DenseQ4KMTest, LlamaCppQ4KMFilesLoadAndGenerate) {
  using G = gguf::GgmlType;
  struct Case {
    std::string name, preset;
    void (*shape)(model::ModelConfig*);
    std::map<G, int> matrices;  // tensors of two or more dimensions per type
  };
  const Case cases[] = {
      {"qwen2_q4km", "qwen2-tiny", SetQwen2Q4KMShape,
       // token_embd (tied: the unembedding's Q6_K, 384 wide: Q8_0); per layer
       // q, k, o, gate, up Q5_0; v Q5_0 (layer 0) / Q8_0 (layer 1, Q6_K
       // picked); ffn_down (512 wide) Q4_K / Q6_K.
       {{G::kQ8_0, 2}, {G::kQ5_0, 11}, {G::kQ4_K, 1}, {G::kQ6_K, 1}}},
      {"phi3_q4km", "phi3-tiny", SetPhi3Q4KMShape,
       // attn_qkv Q5_K; token_embd, attn_output, ffn_up, ffn_down (layer 0)
       // Q4_K; ffn_down (layer 1) and output Q6_K.
       {{G::kQ5_K, 2}, {G::kQ4_K, 6}, {G::kQ6_K, 2}}},
      {"phi3_64_q4km", "phi3-tiny", [](model::ModelConfig* c) { c->tied_embeddings = false; },
       // 64 wide: attn_qkv Q5_K -> Q5_1; token_embd, attn_output, ffn_up Q4_K
       // -> Q5_0; ffn_down (128 wide) Q4_K -> Q5_0 / Q6_K -> Q8_0; output Q8_0.
       {{G::kQ5_1, 2}, {G::kQ5_0, 6}, {G::kQ8_0, 2}}},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    const std::string path = WritePresetModel(k.name, k.preset, [&](tools::RandomModelSpec& s) {
      k.shape(&s.config);
      s.llama_q4_k_m = true;
    });
    auto m = LoadModel(path);
    std::remove(path.c_str());
    ASSERT_NE(m, nullptr);
    std::map<G, int> counts;
    for (const gguf::TensorInfo& t : m->file->tensors()) {
      if (t.n_dims >= 2) ++counts[t.type];
    }
    EXPECT_EQ(counts, k.matrices);
    auto backend = MakeBackend(*m->file);
    ASSERT_NE(backend, nullptr);
    const model::ModelConfig& c = backend->config();
    const int V = c.vocab_size, prompt = 40, generated = 8;
    std::vector<int32_t> tokens = RandomTokens(prompt, V, 3);
    std::vector<float> logits = Prefill(*backend, 1, tokens);
    std::vector<std::vector<float>> rows;
    for (int t = 0; t < prompt; ++t) rows.emplace_back(&logits[t * V], &logits[(t + 1) * V]);
    for (int i = 0; i < generated; ++i) {
      tokens.push_back(Argmax(rows.back().data(), V));
      std::vector<float> next;
      const std::vector<int32_t> last = {tokens.back()};
      SequenceStep step{1, last, model::Logits::kAll};
      ASSERT_TRUE(backend->Forward({&step, 1}, &next).ok());
      ASSERT_EQ(next.size(), static_cast<size_t>(V));
      rows.push_back(next);
    }
    const auto ref = DenseReferenceLogits(*m->file, c, tokens);
    for (size_t t = 0; t < rows.size(); ++t) {
      EXPECT_LT(RelErr(rows[t].data(), ref[t]), 1e-4) << "position " << t;
      EXPECT_EQ(Argmax(rows[t].data(), V),
                static_cast<int>(std::max_element(ref[t].begin(), ref[t].end()) - ref[t].begin()))
          << "position " << t;
    }
  }
}

}  // namespace
}  // namespace ossgate::testing
