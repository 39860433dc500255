// qwen2 and phi3 files as ReadModelConfig and BindWeights read them, on
// hand-built GGUFs (one per test, each bent in one way): the real
// Qwen2.5-0.5B and Phi-3-mini-4k headers read field by field, and malformed
// files (a missing tensor, a wrong shape, an extra tensor, an unknown
// architecture, inconsistent heads, LongRoPE, missing keys) refused with an
// InvalidArgument that names the problem.
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/model/weights.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using ::testing::HasSubstr;
using model::Family;
using model::ModelConfig;
using Value = std::variant<uint32_t, float, std::string>;

// A GGUF described by its metadata and its F32 tensors (values from a
// fixed pattern, small enough to stay finite through any product).
struct FileSpec {
  std::map<std::string, Value> keys;
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;

  void Remove(const std::string& name) {
    std::erase_if(tensors, [&](const auto& t) { return t.first == name; });
  }
  std::vector<int64_t>* Shape(const std::string& name) {
    for (auto& t : tensors) {
      if (t.first == name) return &t.second;
    }
    return nullptr;
  }
};

// Qwen2.5-0.5B's keys as the converter writes them, with the sizes given.
FileSpec Qwen2Spec(int layers, int d, int heads, int kv_heads, int ff, int vocab, bool tied) {
  FileSpec s;
  s.keys = {{"general.architecture", std::string("qwen2")},
            {"qwen2.block_count", static_cast<uint32_t>(layers)},
            {"qwen2.context_length", 32768u},
            {"qwen2.embedding_length", static_cast<uint32_t>(d)},
            {"qwen2.feed_forward_length", static_cast<uint32_t>(ff)},
            {"qwen2.attention.head_count", static_cast<uint32_t>(heads)},
            {"qwen2.attention.head_count_kv", static_cast<uint32_t>(kv_heads)},
            {"qwen2.rope.freq_base", 1000000.0f},
            {"qwen2.attention.layer_norm_rms_epsilon", 1e-6f},
            {"general.file_type", 0u}};
  const int64_t hd = d / heads, Q = heads * hd, KV = kv_heads * hd;
  s.tensors.push_back({"token_embd.weight", {d, vocab}});
  for (int l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    s.tensors.push_back({p + "attn_norm.weight", {d}});
    s.tensors.push_back({p + "attn_q.weight", {d, Q}});
    s.tensors.push_back({p + "attn_q.bias", {Q}});
    s.tensors.push_back({p + "attn_k.weight", {d, KV}});
    s.tensors.push_back({p + "attn_k.bias", {KV}});
    s.tensors.push_back({p + "attn_v.weight", {d, KV}});
    s.tensors.push_back({p + "attn_v.bias", {KV}});
    s.tensors.push_back({p + "attn_output.weight", {Q, d}});
    s.tensors.push_back({p + "ffn_norm.weight", {d}});
    s.tensors.push_back({p + "ffn_gate.weight", {d, ff}});
    s.tensors.push_back({p + "ffn_up.weight", {d, ff}});
    s.tensors.push_back({p + "ffn_down.weight", {ff, d}});
  }
  s.tensors.push_back({"output_norm.weight", {d}});
  if (!tied) s.tensors.push_back({"output.weight", {d, vocab}});
  return s;
}

// Phi-3-mini-4k's keys as the converter writes them (Phi3MiniModel).
FileSpec Phi3Spec(int layers, int d, int heads, int kv_heads, int ff, int vocab) {
  FileSpec s;
  const int64_t hd = d / heads, Q = heads * hd, KV = kv_heads * hd;
  s.keys = {{"general.architecture", std::string("phi3")},
            {"phi3.context_length", 4096u},
            {"phi3.rope.scaling.original_context_length", 4096u},
            {"phi3.embedding_length", static_cast<uint32_t>(d)},
            {"phi3.feed_forward_length", static_cast<uint32_t>(ff)},
            {"phi3.block_count", static_cast<uint32_t>(layers)},
            {"phi3.attention.head_count", static_cast<uint32_t>(heads)},
            {"phi3.attention.head_count_kv", static_cast<uint32_t>(kv_heads)},
            {"phi3.attention.layer_norm_rms_epsilon", 1e-5f},
            {"phi3.rope.dimension_count", static_cast<uint32_t>(hd)},
            {"phi3.rope.freq_base", 10000.0f},
            {"general.file_type", 0u},
            {"phi3.attention.sliding_window", 2047u}};
  s.tensors.push_back({"token_embd.weight", {d, vocab}});
  for (int l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    s.tensors.push_back({p + "attn_norm.weight", {d}});
    s.tensors.push_back({p + "attn_qkv.weight", {d, Q + 2 * KV}});
    s.tensors.push_back({p + "attn_output.weight", {Q, d}});
    s.tensors.push_back({p + "ffn_norm.weight", {d}});
    s.tensors.push_back({p + "ffn_up.weight", {d, 2 * ff}});
    s.tensors.push_back({p + "ffn_down.weight", {ff, d}});
  }
  s.tensors.push_back({"output_norm.weight", {d}});
  s.tensors.push_back({"output.weight", {d, vocab}});
  return s;
}

class DenseFileTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& p : paths_) std::remove(p.c_str());
  }

  // Writes `spec`, parses it (kept in model_) and reads its config.
  absl::StatusOr<ModelConfig> ReadConfig(const FileSpec& spec) {
    gguf::GgufWriter w;
    for (const auto& [key, value] : spec.keys) {
      if (const auto* u = std::get_if<uint32_t>(&value)) w.SetUint32(key, *u);
      if (const auto* f = std::get_if<float>(&value)) w.SetFloat32(key, *f);
      if (const auto* s = std::get_if<std::string>(&value)) w.SetString(key, *s);
    }
    std::vector<std::vector<float>> data;
    for (const auto& [name, ne] : spec.tensors) {
      auto added = w.AddTensor(name, gguf::GgmlType::kF32, ne);
      if (!added.ok()) return added.status();
      int64_t n = 1;
      for (int64_t d : ne) n *= d;
      data.emplace_back(n);
      for (int64_t i = 0; i < n; ++i) data.back()[i] = 0.01f * static_cast<float>((i * 7 + data.size()) % 13) - 0.06f;
    }
    const std::string path = TempPath("dense_file_" + std::to_string(paths_.size()));
    paths_.push_back(path);
    if (absl::Status s = w.Begin(path); !s.ok()) return s;
    for (const std::vector<float>& d : data) {
      const auto* p = reinterpret_cast<const uint8_t*>(d.data());
      if (absl::Status s = w.WriteTensorData({p, d.size() * sizeof(float)}); !s.ok()) return s;
    }
    if (absl::Status s = w.Finish(); !s.ok()) return s;
    model_ = LoadModel(path);
    if (!model_) return absl::InternalError("could not load " + path);
    return model::ReadModelConfig(*model_->file);
  }

  // Config, then weights.
  absl::StatusOr<model::Weights> Bind(const FileSpec& spec) {
    auto config = ReadConfig(spec);
    if (!config.ok()) return config.status();
    config_ = *config;
    return model::BindWeights(*model_->file, *config);
  }

  // InvalidArgument whose message contains every one of `parts`.
  template <typename T>
  void ExpectRefused(const absl::StatusOr<T>& got, const std::vector<std::string>& parts) {
    ASSERT_FALSE(got.ok()) << "accepted";
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
    for (const std::string& part : parts) EXPECT_THAT(std::string(got.status().message()), HasSubstr(part));
  }

  std::vector<std::string> paths_;
  std::unique_ptr<LoadedModel> model_;
  ModelConfig config_;
};

// ---------------------------------------------------------------------------
// The real headers (a one-row vocabulary keeps the files small).

TEST_F(DenseFileTest, TheQwen25HalfBHeaderReadsEveryField) {
  FileSpec s = Qwen2Spec(24, 896, 14, 2, 4864, 8, /*tied=*/true);
  s.tensors = {{"token_embd.weight", {896, 8}}};
  auto c = ReadConfig(s);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->family, Family::kQwen2);
  EXPECT_EQ(c->n_layers, 24);
  EXPECT_EQ(c->d_model, 896);
  EXPECT_EQ(c->n_heads, 14);
  EXPECT_EQ(c->n_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 64);  // 896 / 14: the file has no key_length
  EXPECT_EQ(c->kv_dim(), 128);
  EXPECT_EQ(c->d_ff, 4864);
  EXPECT_EQ(c->context_length, 32768);
  EXPECT_FLOAT_EQ(c->rope_theta, 1e6f);
  EXPECT_FLOAT_EQ(c->rms_eps, 1e-6f);
  EXPECT_FLOAT_EQ(c->rope_scaling_factor, 1.0f);
  EXPECT_TRUE(c->tied_embeddings);  // no output.weight
  EXPECT_EQ(c->sliding_window, 0);
  EXPECT_EQ(c->n_experts, 0);
  for (int l = 0; l < 24; ++l) EXPECT_FALSE(c->IsSlidingLayer(l));
  EXPECT_THAT(c->DebugString(), HasSubstr("arch=qwen2"));
}

TEST_F(DenseFileTest, ThePhi3Mini4kHeaderReadsEveryField) {
  FileSpec s = Phi3Spec(32, 3072, 32, 32, 8192, 8);
  s.tensors = {{"token_embd.weight", {3072, 8}}, {"output.weight", {3072, 8}}};
  auto c = ReadConfig(s);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->family, Family::kPhi3);
  EXPECT_EQ(c->n_layers, 32);
  EXPECT_EQ(c->d_model, 3072);
  EXPECT_EQ(c->n_heads, 32);
  EXPECT_EQ(c->n_kv_heads, 32);
  EXPECT_EQ(c->head_dim, 96);
  EXPECT_EQ(c->d_ff, 8192);
  EXPECT_EQ(c->context_length, 4096);
  EXPECT_FLOAT_EQ(c->rope_theta, 10000.0f);
  EXPECT_FLOAT_EQ(c->rms_eps, 1e-5f);
  EXPECT_FALSE(c->tied_embeddings);
  EXPECT_EQ(c->sliding_window, 2047);
  // HF's Phi3Model masks every layer with the window.
  for (int l = 0; l < 32; ++l) EXPECT_TRUE(c->IsSlidingLayer(l)) << l;
}

// ---------------------------------------------------------------------------
// Small complete files.

TEST_F(DenseFileTest, CompleteFilesBindWithTheFusedTensorsSplitInPlace) {
  for (bool tied : {true, false}) {
    auto w = Bind(Qwen2Spec(2, 32, 2, 1, 64, 8, tied));
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(config_.tied_embeddings, tied);
    EXPECT_EQ(w->dense_layers.size(), 2u);
    EXPECT_TRUE(w->layers.empty());
    EXPECT_EQ(w->dense_layers[1].bk.size(), 16u);
    EXPECT_EQ(w->output.data == w->token_embd.data, tied);
    EXPECT_EQ(model::AllMatrices(*w).size(), (tied ? 1u : 2u) + 7u * 2);
  }
  auto w = Bind(Phi3Spec(1, 32, 2, 1, 64, 8));
  ASSERT_TRUE(w.ok()) << w.status();
  const model::DenseLayerWeights& L = w->dense_layers[0];
  const gguf::TensorInfo* qkv = model_->file->FindTensor("blk.0.attn_qkv.weight");
  const gguf::TensorInfo* up = model_->file->FindTensor("blk.0.ffn_up.weight");
  const uint64_t row = 32 * sizeof(float);
  // q: rows 0..31, k: 32..47, v: 48..63 of attn_qkv; gate: rows 0..63, up: 64..127 of ffn_up.
  EXPECT_EQ(L.wq.data, qkv->data);
  EXPECT_EQ(L.wk.data, qkv->data + 32 * row);
  EXPECT_EQ(L.wv.data, qkv->data + 48 * row);
  EXPECT_EQ(L.wq.rows, 32);
  EXPECT_EQ(L.wk.rows, 16);
  EXPECT_EQ(L.wv.rows, 16);
  EXPECT_EQ(L.wv.first_row, 48);
  EXPECT_EQ(L.gate.data, up->data);
  EXPECT_EQ(L.up.data, up->data + 64 * row);
  EXPECT_EQ(L.gate.rows, 64);
  EXPECT_EQ(L.up.rows, 64);
  EXPECT_EQ(L.up.name, "blk.0.ffn_up.weight");
  EXPECT_TRUE(L.bq.empty());  // phi3 has no biases
}

TEST_F(DenseFileTest, EachMissingTensorIsRefusedNamingIt) {
  for (const FileSpec& full : {Qwen2Spec(2, 32, 2, 1, 64, 8, false), Phi3Spec(2, 32, 2, 1, 64, 8)}) {
    for (const auto& [name, ne] : full.tensors) {
      SCOPED_TRACE(name);
      FileSpec s = full;
      s.Remove(name);
      if (name == "output.weight") {
        // Not missing: the embeddings are then tied.
        auto w = Bind(s);
        ASSERT_TRUE(w.ok()) << w.status();
        EXPECT_TRUE(config_.tied_embeddings);
        continue;
      }
      ExpectRefused(Bind(s), {"tensor '" + name + "'", "missing"});
    }
  }
}

TEST_F(DenseFileTest, EachWrongShapeIsRefusedNamingTheTensorAndTheExpectedShape) {
  for (const FileSpec& full : {Qwen2Spec(1, 32, 2, 1, 64, 8, false), Phi3Spec(1, 32, 2, 1, 64, 8)}) {
    for (const auto& [name, ne] : full.tensors) {
      SCOPED_TRACE(name);
      FileSpec s = full;
      (*s.Shape(name))[0] += 32;
      if (name == "token_embd.weight") {
        ExpectRefused(Bind(s), {"tensor 'token_embd.weight' has shape [64, 8], expected [32, 8]"});
        continue;
      }
      std::vector<int64_t> bad = ne;
      bad[0] += 32;
      std::string got = "[", want = "[";
      for (size_t i = 0; i < ne.size(); ++i) {
        absl::StrAppend(&got, i ? ", " : "", bad[i]);
        absl::StrAppend(&want, i ? ", " : "", ne[i]);
      }
      ExpectRefused(Bind(s), {"tensor '" + name + "' has shape " + got + "], expected " + want + "]"});
    }
  }
  // The fused tensors' row counts follow the heads and the FFN width.
  FileSpec phi3 = Phi3Spec(1, 32, 2, 1, 64, 8);
  *phi3.Shape("blk.0.attn_qkv.weight") = {32, 96};  // q + k + v of 2 KV heads, the file says 1
  ExpectRefused(Bind(phi3), {"'blk.0.attn_qkv.weight' has shape [32, 96], expected [32, 64]"});
  phi3 = Phi3Spec(1, 32, 2, 1, 64, 8);
  *phi3.Shape("blk.0.ffn_up.weight") = {32, 64};  // up alone, no gate half
  ExpectRefused(Bind(phi3), {"'blk.0.ffn_up.weight' has shape [32, 64], expected [32, 128]"});
}

TEST_F(DenseFileTest, AnExtraTensorIsRefusedWithBothCounts) {
  FileSpec qwen2 = Qwen2Spec(1, 32, 2, 1, 64, 8, /*tied=*/true);
  qwen2.tensors.push_back({"blk.0.attn_output.bias", {32}});  // Qwen2's o_proj has no bias
  ExpectRefused(Bind(qwen2), {"holds 15 tensors", "1-layer qwen2 model with tied embeddings has 14"});
  FileSpec phi3 = Phi3Spec(1, 32, 2, 2, 64, 8);
  phi3.tensors.push_back({"blk.0.attn_q.weight", {32, 32}});  // separate q beside the fused attn_qkv
  ExpectRefused(Bind(phi3), {"holds 10 tensors", "1-layer phi3 model with an output.weight has 9"});
}

TEST_F(DenseFileTest, AnUnknownArchitectureIsRefusedListingTheSupportedOnes) {
  FileSpec s = Qwen2Spec(1, 32, 2, 1, 64, 8, true);
  s.keys["general.architecture"] = std::string("llama");
  ExpectRefused(ReadConfig(s), {"unsupported model architecture 'llama'", "gpt-oss", "qwen2", "phi3"});
  s.keys["general.architecture"] = std::string("qwen3");
  ExpectRefused(ReadConfig(s), {"'qwen3'"});
}

TEST_F(DenseFileTest, InconsistentHeadsAreRefused) {
  FileSpec s = Qwen2Spec(1, 32, 2, 1, 64, 8, true);
  s.keys["qwen2.attention.head_count_kv"] = 3u;
  ExpectRefused(ReadConfig(s),
                {"qwen2.attention.head_count (2) must be a multiple of qwen2.attention.head_count_kv (3)"});
  s = Qwen2Spec(1, 32, 2, 1, 64, 8, true);
  s.keys["qwen2.attention.head_count"] = 3u;  // 32 / 3 is no head size
  ExpectRefused(ReadConfig(s), {"qwen2.embedding_length (32) is not a multiple of qwen2.attention.head_count (3)",
                                "attention.key_length"});
  s.keys["qwen2.attention.key_length"] = 16u;  // ... unless the file says it
  s.keys["qwen2.attention.head_count_kv"] = 1u;
  auto c = ReadConfig(s);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 16);
  s.keys["qwen2.attention.value_length"] = 8u;
  ExpectRefused(ReadConfig(s), {"qwen2.attention.value_length (8)", "16"});
  FileSpec p = Phi3Spec(1, 32, 2, 2, 64, 8);
  p.keys["phi3.rope.dimension_count"] = 12u;  // Phi-4-mini's partial rotary
  ExpectRefused(ReadConfig(p), {"phi3.rope.dimension_count = 12", "partial rotary"});
}

// Optional keys default as llama.cpp reads them: no grouping, RoPE base
// 10,000 (early Phi-3 conversions lack rope.freq_base).
TEST_F(DenseFileTest, OptionalKeysDefaultAsLlamaCppReadsThem) {
  FileSpec s = Qwen2Spec(1, 32, 2, 2, 64, 8, true);
  s.keys.erase("qwen2.attention.head_count_kv");
  auto c = ReadConfig(s);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->n_kv_heads, 2);
  FileSpec p = Phi3Spec(1, 32, 2, 2, 64, 8);
  p.keys["phi3.rope.freq_base"] = 500.0f;
  c = ReadConfig(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FLOAT_EQ(c->rope_theta, 500.0f);
  p.keys.erase("phi3.rope.freq_base");
  c = ReadConfig(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FLOAT_EQ(c->rope_theta, 10000.0f);
  p.keys["phi3.rope.freq_base"] = 1.0f;
  ExpectRefused(ReadConfig(p), {"phi3.rope.freq_base must be > 1"});
}

TEST_F(DenseFileTest, EachMissingRequiredKeyIsRefusedNamingIt) {
  for (const char* key : {"qwen2.block_count", "qwen2.context_length", "qwen2.embedding_length",
                          "qwen2.feed_forward_length", "qwen2.attention.head_count",
                          "qwen2.attention.layer_norm_rms_epsilon"}) {
    SCOPED_TRACE(key);
    FileSpec s = Qwen2Spec(1, 32, 2, 1, 64, 8, true);
    s.keys.erase(key);
    ExpectRefused(ReadConfig(s), {key, "qwen2"});
  }
  // A qwen2 file carrying another family's keys is still missing its own.
  FileSpec s = Qwen2Spec(1, 32, 2, 1, 64, 8, true);
  s.keys.erase("qwen2.block_count");
  s.keys["phi3.block_count"] = 1u;
  ExpectRefused(ReadConfig(s), {"qwen2.block_count"});
}

TEST_F(DenseFileTest, LongRopeAndRopeScalingAreRefusedNamingWhatIsUnsupported) {
  FileSpec s = Phi3Spec(1, 32, 2, 2, 64, 8);
  s.tensors.push_back({"rope_factors_long.weight", {8}});
  s.tensors.push_back({"rope_factors_short.weight", {8}});
  ExpectRefused(ReadConfig(s), {"rope_factors_long.weight", "LongRoPE", "Phi-3-mini-4k"});
  s = Phi3Spec(1, 32, 2, 2, 64, 8);
  s.keys["phi3.rope.scaling.attn_factor"] = 1.19f;
  ExpectRefused(ReadConfig(s), {"phi3.rope.scaling.attn_factor", "LongRoPE"});
  s = Phi3Spec(1, 32, 2, 2, 64, 8);
  s.keys["phi3.context_length"] = 131072u;  // the 128k model's context over a 4k original
  ExpectRefused(ReadConfig(s), {"phi3.context_length (131072)", "original_context_length (4096)", "LongRoPE"});
  FileSpec q = Qwen2Spec(1, 32, 2, 1, 64, 8, true);
  q.keys["qwen2.rope.scaling.type"] = std::string("yarn");
  ExpectRefused(ReadConfig(q), {"qwen2.rope.scaling.type 'yarn'", "not supported"});
}

TEST_F(DenseFileTest, Phi3WindowZeroMeansNone) {
  FileSpec s = Phi3Spec(1, 32, 2, 2, 64, 8);
  s.keys["phi3.attention.sliding_window"] = 0u;  // what the converter writes for Phi-4
  auto c = ReadConfig(s);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 0);
  EXPECT_FALSE(c->IsSlidingLayer(0));
  s.keys.erase("phi3.attention.sliding_window");
  c = ReadConfig(s);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 0);
}

}  // namespace
}  // namespace ossgate::testing
