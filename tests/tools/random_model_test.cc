// The random-model generator's qwen2 and phi3 files: the tensor names and
// shapes of llama.cpp's convert_hf_to_gguf.py (gguf-py's tensor names: Qwen2
// with separate q/k/v and biases, Phi3 with the fused attn_qkv and ffn_up)
// at the real Qwen2.5-0.5B and Phi-3-mini-4k sizes, the metadata keys of a
// written file read back into the same config, and the refusals.
#include "tools/make_model/random_model.h"

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/model/weights.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

Shapes ShapesOf(const std::vector<tools::TensorSpec>& tensors) {
  Shapes out;
  for (const tools::TensorSpec& t : tensors) {
    EXPECT_TRUE(out.emplace(t.name, t.ne).second) << "duplicate " << t.name;
  }
  return out;
}

tools::RandomModelSpec Preset(const std::string& name) {
  tools::RandomModelSpec spec;
  EXPECT_TRUE(tools::ApplyPreset(name, &spec.config).ok()) << name;
  return spec;
}

TEST(RandomModelTensorsTest, Qwen25HalfBHasTheConvertersTensorsAndShapes) {
  tools::RandomModelSpec spec = Preset("qwen2.5-0.5b");
  const Shapes got = ShapesOf(tools::RandomModelTensors(spec, 151936));
  EXPECT_EQ(got.size(), 290u);
  EXPECT_EQ(got.size(), static_cast<size_t>(model::Qwen2TensorCount(24, true)));
  Shapes want = {{"token_embd.weight", {896, 151936}}, {"output_norm.weight", {896}}};
  for (int l = 0; l < 24; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    want[p + "attn_norm.weight"] = {896};
    want[p + "attn_q.weight"] = {896, 896};
    want[p + "attn_q.bias"] = {896};
    want[p + "attn_k.weight"] = {896, 128};
    want[p + "attn_k.bias"] = {128};
    want[p + "attn_v.weight"] = {896, 128};
    want[p + "attn_v.bias"] = {128};
    want[p + "attn_output.weight"] = {896, 896};
    want[p + "ffn_norm.weight"] = {896};
    want[p + "ffn_gate.weight"] = {896, 4864};
    want[p + "ffn_up.weight"] = {896, 4864};
    want[p + "ffn_down.weight"] = {4864, 896};
  }
  EXPECT_EQ(got, want);  // tied: no output.weight
  spec.config.tied_embeddings = false;
  const Shapes untied = ShapesOf(tools::RandomModelTensors(spec, 151936));
  EXPECT_EQ(untied.size(), 291u);
  EXPECT_EQ(untied.at("output.weight"), (std::vector<int64_t>{896, 151936}));
}

TEST(RandomModelTensorsTest, Phi3MiniHasTheConvertersFusedTensors) {
  const tools::RandomModelSpec spec = Preset("phi3-mini");
  const std::vector<tools::TensorSpec> tensors = tools::RandomModelTensors(spec, 32064);
  const Shapes got = ShapesOf(tensors);
  EXPECT_EQ(got.size(), 195u);
  EXPECT_EQ(got.size(), static_cast<size_t>(model::Phi3TensorCount(32, false)));
  Shapes want = {{"token_embd.weight", {3072, 32064}},
                 {"output_norm.weight", {3072}},
                 {"output.weight", {3072, 32064}}};
  for (int l = 0; l < 32; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    want[p + "attn_norm.weight"] = {3072};
    want[p + "attn_qkv.weight"] = {3072, 3 * 3072};  // q, k, v of 32 heads of 96
    want[p + "attn_output.weight"] = {3072, 3072};
    want[p + "ffn_norm.weight"] = {3072};
    want[p + "ffn_up.weight"] = {3072, 2 * 8192};  // gate then up
    want[p + "ffn_down.weight"] = {8192, 3072};
  }
  EXPECT_EQ(got, want);
  for (const tools::TensorSpec& t : tensors) {
    const bool matrix = t.ne.size() == 2;
    EXPECT_EQ(t.type, matrix ? gguf::GgmlType::kQ8_0 : gguf::GgmlType::kF32) << t.name;
  }
}

TEST(RandomModelTensorsTest, GptOssKeepsItsTensorCount) {
  const tools::RandomModelSpec spec = Preset("20b");
  EXPECT_EQ(tools::RandomModelTensors(spec, 201088).size(), static_cast<size_t>(model::ExpectedTensorCount(24)));
}

class RandomModelFileTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& p : paths_) std::remove(p.c_str());
  }
  // Writes `spec` and parses it.
  std::unique_ptr<LoadedModel> Write(const tools::RandomModelSpec& spec, const std::string& name) {
    const std::string path = TempPath(name);
    paths_.push_back(path);
    const absl::Status s = tools::WriteRandomModel(spec, PlaceholderVocab(64), path);
    EXPECT_TRUE(s.ok()) << s;
    return s.ok() ? LoadModel(path) : nullptr;
  }
  std::vector<std::string> paths_;
};

TEST_F(RandomModelFileTest, Qwen2KeysReadBackIntoTheSpecsConfig) {
  tools::RandomModelSpec spec = Preset("qwen2-tiny");
  spec.dense_type = gguf::GgmlType::kBF16;
  auto m = Write(spec, "gen_qwen2");
  ASSERT_NE(m, nullptr);
  const gguf::GgufFile& f = *m->file;
  EXPECT_EQ(*f.GetString("general.architecture"), "qwen2");
  EXPECT_EQ(*f.GetUint("general.file_type"), 32u);  // MOSTLY_BF16
  EXPECT_EQ(*f.GetUint("qwen2.block_count"), 2u);
  EXPECT_EQ(*f.GetUint("qwen2.context_length"), 32768u);
  EXPECT_EQ(*f.GetUint("qwen2.embedding_length"), 64u);
  EXPECT_EQ(*f.GetUint("qwen2.feed_forward_length"), 128u);
  EXPECT_EQ(*f.GetUint("qwen2.attention.head_count"), 4u);
  EXPECT_EQ(*f.GetUint("qwen2.attention.head_count_kv"), 2u);
  EXPECT_FLOAT_EQ(static_cast<float>(*f.GetFloat("qwen2.rope.freq_base")), 1e6f);
  EXPECT_FLOAT_EQ(static_cast<float>(*f.GetFloat("qwen2.attention.layer_norm_rms_epsilon")), 1e-6f);
  // The converter writes neither for Qwen2.5 (no head_dim in its config, no window).
  EXPECT_EQ(f.FindKey("qwen2.attention.key_length"), nullptr);
  EXPECT_EQ(f.FindKey("qwen2.attention.sliding_window"), nullptr);
  EXPECT_EQ(f.FindTensor("output.weight"), nullptr);
  EXPECT_EQ(f.FindTensor("blk.1.attn_q.weight")->type, gguf::GgmlType::kBF16);
  EXPECT_EQ(f.FindTensor("blk.1.attn_q.bias")->type, gguf::GgmlType::kF32);
  auto c = model::ReadModelConfig(f);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->family, model::Family::kQwen2);
  EXPECT_EQ(c->DebugString(), [&] {
    model::ModelConfig want = spec.config;
    want.vocab_size = 64;
    return want.DebugString();
  }());
  EXPECT_TRUE(model::BindWeights(f, *c).ok());
}

TEST_F(RandomModelFileTest, Phi3KeysReadBackIntoTheSpecsConfig) {
  tools::RandomModelSpec spec = Preset("phi3-tiny");
  spec.config.sliding_window = 40;
  auto m = Write(spec, "gen_phi3");
  ASSERT_NE(m, nullptr);
  const gguf::GgufFile& f = *m->file;
  EXPECT_EQ(*f.GetString("general.architecture"), "phi3");
  EXPECT_EQ(*f.GetUint("general.file_type"), 7u);  // MOSTLY_Q8_0
  EXPECT_EQ(*f.GetUint("phi3.rope.dimension_count"), 16u);
  EXPECT_EQ(*f.GetUint("phi3.rope.scaling.original_context_length"), 4096u);
  EXPECT_EQ(*f.GetUint("phi3.context_length"), 4096u);
  EXPECT_EQ(*f.GetUint("phi3.attention.sliding_window"), 40u);
  EXPECT_FLOAT_EQ(static_cast<float>(*f.GetFloat("phi3.rope.freq_base")), 10000.0f);
  EXPECT_NE(f.FindTensor("output.weight"), nullptr);
  EXPECT_EQ(f.FindTensor("rope_factors_long.weight"), nullptr);
  auto c = model::ReadModelConfig(f);
  ASSERT_TRUE(c.ok()) << c.status();
  model::ModelConfig want = spec.config;
  want.vocab_size = 64;
  EXPECT_EQ(c->DebugString(), want.DebugString());
  EXPECT_TRUE(model::BindWeights(f, *c).ok());
}

TEST_F(RandomModelFileTest, AHeadSizeOtherThanDOverHIsWrittenAsKeyLength) {
  tools::RandomModelSpec spec = Preset("qwen2-tiny");
  spec.config.head_dim = 32;  // 4 heads of 32 over d_model 64
  auto m = Write(spec, "gen_key_length");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(*m->file->GetUint("qwen2.attention.key_length"), 32u);
  EXPECT_EQ(*m->file->GetUint("qwen2.attention.value_length"), 32u);
  auto c = model::ReadModelConfig(*m->file);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_EQ(m->file->FindTensor("blk.0.attn_q.weight")->ne[1], 128);
}

TEST_F(RandomModelFileTest, SizesThatSplitABlockOrTheHeadsAreRefused) {
  tools::RandomModelSpec spec = Preset("phi3-tiny");
  spec.config.d_ff = 100;  // ffn_down rows of 100 elements: no whole Q8_0 blocks
  const std::string path = TempPath("gen_refused");
  paths_.push_back(path);
  absl::Status s = tools::WriteRandomModel(spec, PlaceholderVocab(64), path);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'blk.0.ffn_down.weight' has rows of 100 elements, not a multiple of the Q8_0 block (32)"),
            std::string::npos)
      << s;
  spec = Preset("qwen2-tiny");
  spec.config.n_kv_heads = 3;
  s = tools::WriteRandomModel(spec, PlaceholderVocab(64), path);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("heads (4) must be a multiple of kv_heads (3)"), std::string::npos) << s;
}

TEST(RandomModelPresetsTest, EachPresetNamesItsFamily) {
  const std::map<std::string, model::Family> presets = {
      {"tiny", model::Family::kGptOss},        {"small", model::Family::kGptOss},
      {"medium", model::Family::kGptOss},      {"20b", model::Family::kGptOss},
      {"120b", model::Family::kGptOss},        {"qwen2-tiny", model::Family::kQwen2},
      {"qwen2.5-0.5b", model::Family::kQwen2}, {"phi3-tiny", model::Family::kPhi3},
      {"phi3-mini", model::Family::kPhi3}};
  for (const auto& [name, family] : presets) {
    model::ModelConfig c;
    c.family = model::Family::kPhi3;  // overwritten
    ASSERT_TRUE(tools::ApplyPreset(name, &c).ok()) << name;
    EXPECT_EQ(c.family, family) << name;
  }
  model::ModelConfig c;
  const absl::Status unknown = tools::ApplyPreset("qwen3-tiny", &c);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(unknown.message().find("qwen2.5-0.5b"), std::string::npos) << unknown;
}

}  // namespace
}  // namespace ossgate::testing
