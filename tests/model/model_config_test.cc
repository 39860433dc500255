// ReadModelConfig: the fields of a generated model, head_dim from
// key_length, and one rejection per malformed-metadata case, each with the
// message a user needs (spec §3).
#include "inference_worker/model/model_config.h"

#include <cstdio>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using ::testing::HasSubstr;
using model::ModelConfig;

// ---------------------------------------------------------------------------
// Files written by the random-model generator.

class ReadModelConfigFromGeneratedModelTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& p : paths_) std::remove(p.c_str());
  }
  absl::StatusOr<ModelConfig> Write(const std::string& name, const tools::RandomModelSpec& spec, int vocab) {
    const std::string path = TempPath(name);
    paths_.push_back(path);
    const absl::Status s = tools::WriteRandomModel(spec, PlaceholderVocab(vocab), path);
    if (!s.ok()) return s;
    model_ = LoadModel(path);
    if (!model_) return absl::InternalError("could not load " + path);
    return model::ReadModelConfig(*model_->file);
  }
  std::vector<std::string> paths_;
  std::unique_ptr<LoadedModel> model_;
};

TEST_F(ReadModelConfigFromGeneratedModelTest, HappyPathReadsEveryField) {
  tools::RandomModelSpec spec;
  ASSERT_TRUE(tools::ApplyPreset("tiny", &spec.config).ok());
  ModelConfig& want = spec.config;
  want.n_layers = 3;
  want.n_experts = 6;
  want.n_experts_used = 3;
  want.sliding_window = 9;
  want.context_length = 2048;
  want.rms_eps = 2e-5f;
  want.rope_theta = 10000.0f;
  want.rope_scaling_factor = 8.0f;
  want.rope_original_context = 512;
  spec.threads = 2;
  auto got = Write("config_happy", spec, 77);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->n_layers, 3);
  EXPECT_EQ(got->d_model, want.d_model);
  EXPECT_EQ(got->n_heads, want.n_heads);
  EXPECT_EQ(got->n_kv_heads, want.n_kv_heads);
  EXPECT_EQ(got->head_dim, want.head_dim);
  EXPECT_EQ(got->n_experts, 6);
  EXPECT_EQ(got->n_experts_used, 3);
  EXPECT_EQ(got->d_ff, want.d_ff);
  EXPECT_EQ(got->vocab_size, 77);  // rows of token_embd.weight
  EXPECT_EQ(got->context_length, 2048);
  EXPECT_EQ(got->sliding_window, 9);
  EXPECT_FLOAT_EQ(got->rms_eps, 2e-5f);
  EXPECT_FLOAT_EQ(got->rope_theta, 10000.0f);
  EXPECT_FLOAT_EQ(got->rope_scaling_factor, 8.0f);
  EXPECT_EQ(got->rope_original_context, 512);
  // Not in the file: llama.cpp's YaRN defaults and the fixed SwiGLU constants.
  EXPECT_FLOAT_EQ(got->yarn_beta_fast, 32.0f);
  EXPECT_FLOAT_EQ(got->yarn_beta_slow, 1.0f);
  EXPECT_FLOAT_EQ(got->swiglu_alpha, 1.702f);
  EXPECT_FLOAT_EQ(got->swiglu_limit, 7.0f);
  EXPECT_EQ(got->q_dim(), want.n_heads * want.head_dim);
  EXPECT_EQ(got->kv_dim(), want.n_kv_heads * want.head_dim);
  EXPECT_TRUE(got->IsSlidingLayer(0));
  EXPECT_FALSE(got->IsSlidingLayer(1));
  EXPECT_TRUE(got->IsSlidingLayer(2));
}

TEST_F(ReadModelConfigFromGeneratedModelTest, HeadDimComesFromKeyLengthNotDModelOverHeads) {
  tools::RandomModelSpec spec;
  ASSERT_TRUE(tools::ApplyPreset("tiny", &spec.config).ok());
  spec.config.d_model = 96;
  spec.config.n_heads = 4;
  spec.config.n_kv_heads = 2;
  spec.config.head_dim = 32;  // d_model / heads would be 24
  spec.threads = 2;
  auto got = Write("config_head_dim", spec, 40);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->d_model, 96);
  EXPECT_EQ(got->head_dim, 32);
  EXPECT_EQ(got->q_dim(), 128);
  EXPECT_EQ(got->kv_dim(), 64);
}

// ---------------------------------------------------------------------------
// Hand-built files: a minimal valid gpt-oss header that each test breaks in
// one way.

using Value = std::variant<uint32_t, float, std::string>;

class ReadModelConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The 20b hyperparameters (spec §3) with a tiny vocabulary.
    keys_ = {
        {"general.architecture", std::string("gpt-oss")},
        {"gpt-oss.block_count", 24u},
        {"gpt-oss.context_length", 131072u},
        {"gpt-oss.embedding_length", 2880u},
        {"gpt-oss.feed_forward_length", 2880u},
        {"gpt-oss.expert_feed_forward_length", 2880u},
        {"gpt-oss.attention.head_count", 64u},
        {"gpt-oss.attention.head_count_kv", 8u},
        {"gpt-oss.attention.key_length", 64u},
        {"gpt-oss.attention.value_length", 64u},
        {"gpt-oss.attention.layer_norm_rms_epsilon", 1e-5f},
        {"gpt-oss.attention.sliding_window", 128u},
        {"gpt-oss.expert_count", 32u},
        {"gpt-oss.expert_used_count", 4u},
        {"gpt-oss.rope.freq_base", 150000.0f},
        {"gpt-oss.rope.scaling.type", std::string("yarn")},
        {"gpt-oss.rope.scaling.factor", 32.0f},
        {"gpt-oss.rope.scaling.original_context_length", 4096u},
    };
  }
  void TearDown() override {
    for (const std::string& p : paths_) std::remove(p.c_str());
  }

  absl::StatusOr<ModelConfig> Read() {
    gguf::GgufWriter w;
    for (const auto& [key, value] : keys_) {
      if (const auto* u = std::get_if<uint32_t>(&value)) w.SetUint32(key, *u);
      if (const auto* f = std::get_if<float>(&value)) w.SetFloat32(key, *f);
      if (const auto* s = std::get_if<std::string>(&value)) w.SetString(key, *s);
    }
    if (!tokens_.empty()) w.SetStringArray("tokenizer.ggml.tokens", tokens_);
    if (!token_types_.empty()) w.SetInt32Array("tokenizer.ggml.token_type", token_types_);
    std::vector<float> embd;
    if (with_embedding_) {
      embd.assign(static_cast<size_t>(embd_cols_) * vocab_, 0.25f);
      auto added = w.AddTensor("token_embd.weight", gguf::GgmlType::kF32, {embd_cols_, vocab_});
      if (!added.ok()) return added.status();
    }
    const std::string path = TempPath("config_" + std::to_string(paths_.size()));
    paths_.push_back(path);
    if (absl::Status s = w.Begin(path); !s.ok()) return s;
    if (with_embedding_) {
      const auto* p = reinterpret_cast<const uint8_t*>(embd.data());
      if (absl::Status s = w.WriteTensorData({p, embd.size() * sizeof(float)}); !s.ok()) return s;
    }
    if (absl::Status s = w.Finish(); !s.ok()) return s;
    model_ = LoadModel(path);
    if (!model_) return absl::InternalError("could not load " + path);
    return model::ReadModelConfig(*model_->file);
  }

  // Expects InvalidArgument whose message contains every one of `parts`.
  void ExpectRejected(const std::vector<std::string>& parts) {
    auto got = Read();
    ASSERT_FALSE(got.ok()) << "accepted: " << got->DebugString();
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
    for (const std::string& part : parts) EXPECT_THAT(std::string(got.status().message()), HasSubstr(part));
  }

  std::map<std::string, Value> keys_;
  bool with_embedding_ = true;
  int64_t embd_cols_ = 2880;
  int64_t vocab_ = 8;
  std::vector<std::string> tokens_;     // tokenizer.ggml.tokens (absent when empty)
  std::vector<int32_t> token_types_;    // tokenizer.ggml.token_type (absent when empty)
  std::vector<std::string> paths_;
  std::unique_ptr<LoadedModel> model_;
};

TEST_F(ReadModelConfigTest, The20bHeaderIsAcceptedWithHeadDim64) {
  auto got = Read();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->n_layers, 24);
  EXPECT_EQ(got->d_model, 2880);
  EXPECT_EQ(got->n_heads, 64);
  EXPECT_EQ(got->n_kv_heads, 8);
  EXPECT_EQ(got->head_dim, 64);  // not 2880 / 64 = 45
  EXPECT_EQ(got->q_dim(), 4096);
  EXPECT_EQ(got->kv_dim(), 512);
  EXPECT_EQ(got->n_experts, 32);
  EXPECT_EQ(got->n_experts_used, 4);
  EXPECT_EQ(got->d_ff, 2880);
  EXPECT_EQ(got->vocab_size, 8);
  EXPECT_EQ(got->context_length, 131072);
  EXPECT_EQ(got->sliding_window, 128);
  EXPECT_FLOAT_EQ(got->rope_theta, 150000.0f);
  EXPECT_FLOAT_EQ(got->rope_scaling_factor, 32.0f);
  EXPECT_EQ(got->rope_original_context, 4096);
}

// Every embedding row needs a token and every token a row: a tokenizer of
// 201,000 tokens over an embedding of 201,088 rows once loaded silently.
TEST_F(ReadModelConfigTest, RejectsATokenizerShorterOrLongerThanTheEmbedding) {
  for (int n : {7, 9}) {
    tokens_.assign(n, "t");
    ExpectRejected({"the tokenizer has " + std::to_string(n) + " tokens", "token_embd.weight has 8 rows"});
  }
  tokens_.assign(8, "t");
  token_types_.assign(7, 1);
  ExpectRejected({"tokenizer.ggml.token_type has 7 entries", "8 rows"});
}

TEST_F(ReadModelConfigTest, UnusedTokensAreNeverSampled) {
  tokens_.assign(8, "t");
  token_types_ = {1, 3, 1, 5, 1, 1, 5, 5};  // NORMAL, CONTROL, ..., UNUSED (5)
  auto got = Read();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->unsampled_tokens, (std::vector<int32_t>{3, 6, 7}));
  token_types_.assign(8, 5);
  ExpectRejected({"every token", "UNUSED"});
}

TEST_F(ReadModelConfigTest, OptionalKeysMayBeAbsent) {
  keys_.erase("gpt-oss.attention.value_length");
  keys_.erase("gpt-oss.attention.sliding_window");
  keys_.erase("gpt-oss.attention.layer_norm_rms_epsilon");
  keys_.erase("gpt-oss.rope.scaling.type");
  keys_.erase("gpt-oss.rope.scaling.factor");
  keys_.erase("gpt-oss.rope.scaling.original_context_length");
  auto got = Read();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->sliding_window, 0);
  EXPECT_FALSE(got->IsSlidingLayer(0));
  EXPECT_FLOAT_EQ(got->rms_eps, 1e-5f);
  EXPECT_FLOAT_EQ(got->rope_scaling_factor, 1.0f);  // no scaling: plain RoPE
}

TEST_F(ReadModelConfigTest, RejectsAnotherArchitecture) {
  keys_["general.architecture"] = std::string("llama");
  ExpectRejected({"llama", "gpt-oss", "general.architecture"});
}

TEST_F(ReadModelConfigTest, RejectsTheLegacyOllamaArchitectureName) {
  keys_["general.architecture"] = std::string("gptoss");  // spec §4: first Ollama GGUFs
  ExpectRejected({"gptoss"});
}

TEST_F(ReadModelConfigTest, RejectsAMissingArchitecture) {
  keys_.erase("general.architecture");
  ExpectRejected({"general.architecture"});
}

TEST_F(ReadModelConfigTest, RejectsEachMissingRequiredKeyNamingIt) {
  for (const char* key :
       {"gpt-oss.block_count", "gpt-oss.embedding_length", "gpt-oss.attention.head_count",
        "gpt-oss.attention.head_count_kv", "gpt-oss.attention.key_length", "gpt-oss.expert_count",
        "gpt-oss.expert_used_count", "gpt-oss.expert_feed_forward_length", "gpt-oss.context_length",
        "gpt-oss.rope.freq_base"}) {
    SCOPED_TRACE(key);
    SetUp();
    keys_.erase(key);
    ExpectRejected({key});
  }
}

TEST_F(ReadModelConfigTest, RejectsAZeroSize) {
  keys_["gpt-oss.expert_count"] = 0u;
  ExpectRejected({"gpt-oss.expert_count"});
}

TEST_F(ReadModelConfigTest, RejectsHeadsNotAMultipleOfKvHeads) {
  keys_["gpt-oss.attention.head_count"] = 12u;
  keys_["gpt-oss.attention.head_count_kv"] = 8u;
  ExpectRejected({"head_count", "multiple", "head_count_kv"});
}

TEST_F(ReadModelConfigTest, RejectsMoreExpertsUsedThanExist) {
  keys_["gpt-oss.expert_used_count"] = 33u;
  ExpectRejected({"expert_used_count", "33", "expert_count", "32"});
}

TEST_F(ReadModelConfigTest, AcceptsAllExpertsUsed) {
  keys_["gpt-oss.expert_used_count"] = 32u;
  auto got = Read();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->n_experts_used, 32);
}

TEST_F(ReadModelConfigTest, RejectsAnUnsupportedRopeScalingType) {
  keys_["gpt-oss.rope.scaling.type"] = std::string("linear");
  ExpectRejected({"rope.scaling.type", "linear", "yarn"});
}

TEST_F(ReadModelConfigTest, RejectsYarnWithoutOriginalContext) {
  keys_.erase("gpt-oss.rope.scaling.original_context_length");
  ExpectRejected({"rope.scaling.original_context_length"});
}

TEST_F(ReadModelConfigTest, RejectsValueLengthDifferentFromKeyLength) {
  keys_["gpt-oss.attention.value_length"] = 32u;
  ExpectRejected({"value_length", "32", "key_length", "64"});
}

TEST_F(ReadModelConfigTest, RejectsAnOddHeadDim) {
  keys_["gpt-oss.attention.key_length"] = 63u;
  keys_["gpt-oss.attention.value_length"] = 63u;
  ExpectRejected({"key_length"});
}

TEST_F(ReadModelConfigTest, RejectsARopeDimensionCountOtherThanTheHead) {
  keys_["gpt-oss.rope.dimension_count"] = 32u;
  ExpectRejected({"rope.dimension_count"});
}

TEST_F(ReadModelConfigTest, RejectsAMissingEmbeddingTensor) {
  with_embedding_ = false;
  ExpectRejected({"token_embd.weight"});
}

TEST_F(ReadModelConfigTest, RejectsANonFiniteOrTinyRopeBase) {
  keys_["gpt-oss.rope.freq_base"] = 1.0f;
  ExpectRejected({"rope.freq_base"});
}

}  // namespace
}  // namespace ossgate::testing
