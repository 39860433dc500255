// BindWeights: every block scale of the quantized matrices and every value
// of the float tensors must be finite. A NaN scale (MXFP4 E8M0 0xFF, a Q8_0
// fp16 NaN or infinity) once loaded silently and turned generation into
// garbage; now the file is refused, naming the tensor and the block.
#include "inference_worker/model/weights.h"

#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/ggml_types.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

// A model file loaded (and removed), its config read and its weights bound.
struct BoundModel {
  std::unique_ptr<LoadedModel> model;
  std::optional<model::ModelConfig> config;
  std::optional<model::Weights> bound;  // views into model's bytes
};
void LoadAndBind(const std::string& path, BoundModel* out) {
  out->model = LoadModel(path);
  std::remove(path.c_str());
  ASSERT_NE(out->model, nullptr);
  auto config = model::ReadModelConfig(*out->model->file);
  ASSERT_TRUE(config.ok()) << config.status();
  out->config = *config;
  auto bound = model::BindWeights(*out->model->file, *config);
  ASSERT_TRUE(bound.ok()) << bound.status();
  out->bound = *std::move(bound);
}

using ::testing::HasSubstr;

class WeightsFiniteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = WriteTestModel("weights_finite", [](tools::RandomModelSpec& s) { s.config.n_layers = 2; });
    model_ = LoadModel(path_);
    ASSERT_NE(model_, nullptr);
    auto config = model::ReadModelConfig(*model_->file);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // Bytes of `tensor`, writable (the parsed views point into model_->bytes).
  uint8_t* TensorBytes(const std::string& tensor) {
    const gguf::TensorInfo* t = model_->file->FindTensor(tensor);
    EXPECT_NE(t, nullptr) << tensor;
    return const_cast<uint8_t*>(t->data);
  }

  std::string path_;
  std::unique_ptr<LoadedModel> model_;
  model::ModelConfig config_;
};

TEST_F(WeightsFiniteTest, TheGeneratedModelIsAccepted) {
  EXPECT_TRUE(model::BindWeights(*model_->file, config_).ok());
}

// Every matrix, each corrupted at one random block in the way its format
// can hold a non-finite number; the error names the tensor, row and block.
TEST_F(WeightsFiniteTest, ANonFiniteScaleOrValueInAnyMatrixIsRefused) {
  auto bound = model::BindWeights(*model_->file, config_);
  ASSERT_TRUE(bound.ok()) << bound.status();
  std::vector<model::Matrix> mats = {bound->token_embd, bound->output};
  for (const model::LayerWeights& L : bound->layers) {
    for (const model::Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.router, &L.gate_exps, &L.up_exps, &L.down_exps}) {
      mats.push_back(*m);
    }
  }
  std::mt19937 rng(5);
  std::set<gguf::GgmlType> types;
  for (const model::Matrix& m : mats) {
    types.insert(m.type);
    const auto traits = gguf::GetTypeTraits(static_cast<uint32_t>(m.type));
    ASSERT_TRUE(traits.has_value());
    const int64_t per_row = m.cols / traits->block_elems;
    const int64_t mat = static_cast<int64_t>(rng() % m.n_mats), row = static_cast<int64_t>(rng() % m.rows);
    const int64_t block = static_cast<int64_t>(rng() % per_row);
    uint8_t* p = TensorBytes(m.name) + ((mat * m.rows + row) * per_row + block) * traits->block_bytes;
    std::vector<uint8_t> saved(p, p + traits->block_bytes);
    const uint16_t f16_nan = 0x7E00, f16_inf = 0xFC00, bf16_nan = 0x7FC1;
    const uint32_t f32_inf = 0x7F800000u;
    switch (m.type) {
      case gguf::GgmlType::kMXFP4: p[0] = 0xFF; break;
      case gguf::GgmlType::kQ8_0: std::memcpy(p, row % 2 ? &f16_nan : &f16_inf, 2); break;
      case gguf::GgmlType::kF16: std::memcpy(p, &f16_nan, 2); break;
      case gguf::GgmlType::kBF16: std::memcpy(p, &bf16_nan, 2); break;
      case gguf::GgmlType::kF32: std::memcpy(p, &f32_inf, 4); break;
      default: FAIL() << m.name << ": this test has no non-finite block for its type";
    }
    auto got = model::BindWeights(*model_->file, config_);
    std::memcpy(p, saved.data(), saved.size());
    ASSERT_FALSE(got.ok()) << m.name << " with a non-finite block was accepted";
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string msg(got.status().message());
    EXPECT_THAT(msg, HasSubstr("tensor '" + m.name + "'"));
    EXPECT_THAT(msg, HasSubstr(absl::StrCat("row ", row, ", ")));
    const bool quantized = m.type == gguf::GgmlType::kQ8_0 || m.type == gguf::GgmlType::kMXFP4;
    EXPECT_THAT(msg, HasSubstr(absl::StrCat(quantized ? "block " : "column ", block)));
    if (m.n_mats > 1) {
      EXPECT_THAT(msg, HasSubstr(absl::StrCat("matrix ", mat, ", ")));
    }
  }
  // The model has MXFP4 experts and Q8_0 dense layers: both scale formats ran.
  EXPECT_TRUE(types.count(gguf::GgmlType::kMXFP4));
  EXPECT_TRUE(types.count(gguf::GgmlType::kQ8_0));
  EXPECT_TRUE(model::BindWeights(*model_->file, config_).ok());  // restored
}

// The largest finite scales are still accepted: E8M0 0xFE (2^127) and the
// largest fp16.
TEST_F(WeightsFiniteTest, TheLargestFiniteScalesAreAccepted) {
  auto bound = model::BindWeights(*model_->file, config_);
  ASSERT_TRUE(bound.ok());
  uint8_t* mx = TensorBytes(bound->layers[0].down_exps.name);
  ASSERT_EQ(bound->layers[0].down_exps.type, gguf::GgmlType::kMXFP4);
  const uint8_t saved_mx = mx[0];
  mx[0] = 0xFE;
  EXPECT_TRUE(model::BindWeights(*model_->file, config_).ok());
  mx[0] = saved_mx;
  ASSERT_EQ(bound->layers[0].wq.type, gguf::GgmlType::kQ8_0);
  uint8_t* q = TensorBytes(bound->layers[0].wq.name);
  uint16_t saved_q;
  std::memcpy(&saved_q, q, 2);
  const uint16_t f16_max = 0x7BFF;
  std::memcpy(q, &f16_max, 2);
  EXPECT_TRUE(model::BindWeights(*model_->file, config_).ok());
  std::memcpy(q, &saved_q, 2);
}

// The CUDA backend's streaming load binds a file whose data is in device
// memory: small tensors come through BindOptions::fetch, the matrices'
// scales are checked on the device and reported with NonFiniteBlockError.
TEST_F(WeightsFiniteTest, FetchedSmallTensorsBindLikeDirectOnes) {
  auto direct = model::BindWeights(*model_->file, config_);
  ASSERT_TRUE(direct.ok()) << direct.status();
  std::set<std::string> fetched;
  model::BindOptions o;
  o.fetch = [&](const gguf::TensorInfo& t, std::vector<uint8_t>* out) {
    fetched.insert(t.name);
    out->assign(t.data, t.data + t.nbytes);
    if (t.name == "blk.1.attn_sinks.weight") (*out)[0] ^= 0x01;  // visible in the result
    return absl::OkStatus();
  };
  auto via = model::BindWeights(*model_->file, config_, o);
  ASSERT_TRUE(via.ok()) << via.status();
  // 11 small tensors per layer (norms, biases, sinks) plus the output norm.
  EXPECT_EQ(fetched.size(), 11u * config_.n_layers + 1);
  EXPECT_TRUE(fetched.count("output_norm.weight"));
  EXPECT_EQ(via->layers[0].bq, direct->layers[0].bq);
  EXPECT_EQ(via->layers[1].down_b, direct->layers[1].down_b);
  EXPECT_NE(via->layers[1].sinks[0], direct->layers[1].sinks[0]);
  EXPECT_EQ(via->layers[1].gate_exps.data, direct->layers[1].gate_exps.data);

  o.fetch = [](const gguf::TensorInfo& t, std::vector<uint8_t>*) {
    return absl::UnavailableError("copy of " + t.name + " failed");
  };
  auto failed = model::BindWeights(*model_->file, config_, o);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  o.fetch = [](const gguf::TensorInfo& t, std::vector<uint8_t>* out) {
    out->assign(t.nbytes - 1, 0);
    return absl::OkStatus();
  };
  EXPECT_EQ(model::BindWeights(*model_->file, config_, o).status().code(), absl::StatusCode::kInternal);
}

TEST_F(WeightsFiniteTest, WithoutTheHostScanANonFiniteScaleBindsAndIsReportedAlike) {
  auto bound = model::BindWeights(*model_->file, config_);
  ASSERT_TRUE(bound.ok());
  const model::Matrix& m = bound->layers[1].up_exps;
  ASSERT_EQ(m.type, gguf::GgmlType::kMXFP4);
  const int64_t per_row = m.cols / 32, block = (2 * m.rows + 5) * per_row + 1;  // matrix 2, row 5, block 1
  uint8_t* p = TensorBytes(m.name) + block * sizeof(gguf::BlockMxfp4);
  const uint8_t saved = p[0];
  p[0] = 0xFF;
  auto checked = model::BindWeights(*model_->file, config_);
  model::BindOptions o;
  o.check_matrices = false;
  auto unchecked = model::BindWeights(*model_->file, config_, o);
  p[0] = saved;
  ASSERT_FALSE(checked.ok());
  ASSERT_TRUE(unchecked.ok()) << unchecked.status();
  EXPECT_EQ(model::NonFiniteBlockError(m, block), checked.status());
  EXPECT_THAT(std::string(checked.status().message()), HasSubstr("matrix 2, row 5, block 1"));
  EXPECT_EQ(model::MatrixBlocks(m), m.n_mats * m.rows * per_row);
  EXPECT_EQ(model::AllMatrices(*bound).size(), 2u + 8u * config_.n_layers);
}

// The k-quants carry their fp16 scales per 256-element super-block: Q4_K d
// (byte 0) and dmin (byte 2) of 144, Q6_K d (byte 208) of 210. Each is
// scanned like a Q8_0 d; before, a NaN there bound silently.
TEST(WeightsKQuantTest, ANonFiniteSuperBlockScaleIsRefused) {
  const std::string path = WriteTestModel("weights_kquants", [](tools::RandomModelSpec& s) {
    s.config.n_layers = 1;
    SetKQuantShape(&s.config);
    s.dense_type = gguf::GgmlType::kQ4_K;
    s.expert_type = gguf::GgmlType::kQ6_K;
  });
  BoundModel loaded;
  ASSERT_NO_FATAL_FAILURE(LoadAndBind(path, &loaded));
  auto& [model, config, bound] = loaded;
  ASSERT_EQ(bound->layers[0].wo.type, gguf::GgmlType::kQ4_K);
  ASSERT_EQ(bound->layers[0].down_exps.type, gguf::GgmlType::kQ6_K);
  struct Case {
    const model::Matrix* m;
    int64_t mat, row, block;
    size_t at;        // byte of the fp16 scale in the block
    uint16_t value;   // NaN or infinity
  };
  const model::LayerWeights& L = bound->layers[0];
  for (const Case& c : {Case{&L.wo, 0, 7, 0, 0, 0x7E00}, Case{&L.wo, 0, 200, 0, 2, 0xFC00},
                        Case{&bound->output, 0, 95, 0, 2, 0x7C01}, Case{&L.down_exps, 3, 250, 0, 208, 0x7C00},
                        Case{&L.up_exps, 1, 17, 0, 208, 0xFE00}}) {
    const model::Matrix& m = *c.m;
    const auto traits = gguf::GetTypeTraits(static_cast<uint32_t>(m.type));
    ASSERT_TRUE(traits.has_value());
    const int64_t per_row = m.cols / traits->block_elems;
    uint8_t* p = const_cast<uint8_t*>(m.data) + ((c.mat * m.rows + c.row) * per_row + c.block) * traits->block_bytes;
    uint8_t saved[2] = {p[c.at], p[c.at + 1]};
    p[c.at] = static_cast<uint8_t>(c.value);
    p[c.at + 1] = static_cast<uint8_t>(c.value >> 8);
    auto got = model::BindWeights(*model->file, *config);
    p[c.at] = saved[0];
    p[c.at + 1] = saved[1];
    ASSERT_FALSE(got.ok()) << m.name << ": a non-finite scale at byte " << c.at << " was accepted";
    const std::string msg(got.status().message());
    EXPECT_THAT(msg, HasSubstr("tensor '" + m.name + "'"));
    EXPECT_THAT(msg, HasSubstr(absl::StrCat("row ", c.row, ", block ", c.block, " (a 256-element super-block")));
    if (m.n_mats > 1) {
      EXPECT_THAT(msg, HasSubstr(absl::StrCat("matrix ", c.mat, ", ")));
    }
  }
  // The largest finite scales are fine.
  uint8_t* p = const_cast<uint8_t*>(L.wo.data);
  const uint8_t saved[4] = {p[0], p[1], p[2], p[3]};
  p[0] = 0xFF, p[1] = 0x7B, p[2] = 0xFF, p[3] = 0x7B;
  EXPECT_TRUE(model::BindWeights(*model->file, *config).ok());
  std::memcpy(p, saved, 4);
}

// qwen2 and phi3: every matrix, phi3's row-range views of attn_qkv and
// ffn_up included, is scanned; the error names the file's tensor and its
// row in that tensor (a view's first row added).
TEST(DenseWeightsFiniteTest, ANonFiniteScaleInAnyMatrixOrViewIsRefusedWithTheTensorsRow) {
  for (const std::string preset : {"qwen2-tiny", "phi3-tiny"}) {
    SCOPED_TRACE(preset);
    const std::string path = WritePresetModel("dense_finite", preset, [](tools::RandomModelSpec& s) {
      s.config.n_kv_heads = 2;
      s.config.tied_embeddings = false;
    });
    BoundModel loaded;
    ASSERT_NO_FATAL_FAILURE(LoadAndBind(path, &loaded));
    auto& [model, config, bound] = loaded;
    const std::vector<const model::Matrix*> mats = model::AllMatrices(*bound);
    ASSERT_EQ(mats.size(), 2u + 7u * config->n_layers);
    int views = 0;
    std::mt19937 rng(11);
    for (const model::Matrix* m : mats) {
      ASSERT_EQ(m->type, gguf::GgmlType::kQ8_0) << m->name;
      views += m->first_row > 0;
      const int64_t per_row = m->cols / 32;
      const int64_t row = static_cast<int64_t>(rng() % m->rows), block = static_cast<int64_t>(rng() % per_row);
      const int64_t file_row = m->first_row + row;
      const gguf::TensorInfo* t = model->file->FindTensor(m->name);
      ASSERT_NE(t, nullptr) << m->name;
      uint8_t* p = const_cast<uint8_t*>(t->data) + (file_row * per_row + block) * sizeof(gguf::BlockQ8_0);
      uint16_t saved;
      std::memcpy(&saved, p, 2);
      const uint16_t f16_inf = 0x7C00;
      std::memcpy(p, &f16_inf, 2);
      auto got = model::BindWeights(*model->file, *config);
      std::memcpy(p, &saved, 2);
      ASSERT_FALSE(got.ok()) << m->name << " row " << file_row << " was accepted";
      const std::string msg(got.status().message());
      EXPECT_THAT(msg, HasSubstr("tensor '" + m->name + "'"));
      EXPECT_THAT(msg, HasSubstr(absl::StrCat("row ", file_row, ", block ", block)));
    }
    // phi3: k and v of attn_qkv, up of ffn_up start past row 0.
    EXPECT_EQ(views, preset == "phi3-tiny" ? 3 * config->n_layers : 0);
    EXPECT_TRUE(model::BindWeights(*model->file, *config).ok());  // restored
  }
}

// Q5_0 (fp16 d at byte 0 of 22), Q5_1 (d and the fp16 min m at bytes 0 and
// 2 of 24) and Q5_K (d and dmin at bytes 0 and 2 of 176), in the Q4_K_M
// files of qwen2-tiny (Q5_0 fallbacks), phi3-tiny (a Q5_1 attn_qkv: Q5_K
// falls back on its 64-wide rows) and the phi3 shape with a Q5_K attn_qkv:
// each scale of each matrix is scanned and the error names the tensor's row
// and block.
TEST(WeightsQ5Test, ANonFiniteScaleOrMinIsRefused) {
  std::set<gguf::GgmlType> seen;
  for (const std::string preset : {"qwen2-tiny", "phi3-tiny", "phi3-q5k"}) {
    SCOPED_TRACE(preset);
    const std::string path = WritePresetModel("weights_q5", preset == "phi3-q5k" ? "phi3-tiny" : preset,
                                              [&](tools::RandomModelSpec& s) {
                                                if (preset == "phi3-q5k") SetPhi3Q4KMShape(&s.config);
                                                s.llama_q4_k_m = true;
                                              });
    BoundModel loaded;
    ASSERT_NO_FATAL_FAILURE(LoadAndBind(path, &loaded));
    auto& [model, config, bound] = loaded;
    std::mt19937 rng(13);
    for (const model::Matrix* m : model::AllMatrices(*bound)) {
      std::vector<size_t> scale_at;
      if (m->type == gguf::GgmlType::kQ5_0) scale_at = {0};
      if (m->type == gguf::GgmlType::kQ5_1 || m->type == gguf::GgmlType::kQ5_K) scale_at = {0, 2};
      if (scale_at.empty()) continue;
      seen.insert(m->type);
      const auto traits = gguf::GetTypeTraits(static_cast<uint32_t>(m->type));
      ASSERT_TRUE(traits.has_value());
      const int64_t per_row = m->cols / traits->block_elems;
      for (size_t at : scale_at) {
        for (const uint16_t bad : {static_cast<uint16_t>(0x7C00), static_cast<uint16_t>(0xFE00)}) {
          const int64_t row = static_cast<int64_t>(rng() % m->rows), block = static_cast<int64_t>(rng() % per_row);
          const int64_t file_row = m->first_row + row;
          const gguf::TensorInfo* t = model->file->FindTensor(m->name);
          ASSERT_NE(t, nullptr) << m->name;
          uint8_t* p = const_cast<uint8_t*>(t->data) + (file_row * per_row + block) * traits->block_bytes + at;
          uint8_t saved[2] = {p[0], p[1]};
          p[0] = static_cast<uint8_t>(bad), p[1] = static_cast<uint8_t>(bad >> 8);
          auto got = model::BindWeights(*model->file, *config);
          p[0] = saved[0], p[1] = saved[1];
          ASSERT_FALSE(got.ok()) << m->name << ": a non-finite scale at byte " << at << " was accepted";
          const std::string msg(got.status().message());
          EXPECT_THAT(msg, HasSubstr("tensor '" + m->name + "'"));
          EXPECT_THAT(msg, HasSubstr(absl::StrCat("row ", file_row, ", block ", block)));
          EXPECT_THAT(msg, HasSubstr("non-finite block scale"));
          if (m->type == gguf::GgmlType::kQ5_K) {
            EXPECT_THAT(msg, HasSubstr("(a 256-element super-block"));
          }
        }
      }
    }
    // The largest finite scales and mins are fine.
    for (const model::Matrix* m : model::AllMatrices(*bound)) {
      if (m->type != gguf::GgmlType::kQ5_1 && m->type != gguf::GgmlType::kQ5_K) continue;
      uint8_t* p = const_cast<uint8_t*>(model->file->FindTensor(m->name)->data);
      const uint8_t saved[4] = {p[0], p[1], p[2], p[3]};
      p[0] = 0xFF, p[1] = 0x7B, p[2] = 0xFF, p[3] = 0xFB;
      EXPECT_TRUE(model::BindWeights(*model->file, *config).ok()) << m->name;
      std::memcpy(p, saved, 4);
    }
    EXPECT_TRUE(model::BindWeights(*model->file, *config).ok());  // restored
  }
  EXPECT_EQ(seen, (std::set<gguf::GgmlType>{gguf::GgmlType::kQ5_0, gguf::GgmlType::kQ5_1, gguf::GgmlType::kQ5_K}));
}

}  // namespace
}  // namespace ossgate::testing
