// The CUDA backend's device-memory arithmetic (memory_plan.h) on the CPU:
// the weight bytes against sums written here from the ggml block sizes (a
// Q8_0 block of 32 values is 34 bytes, an MXFP4 block 17; the tiled layout
// stores the same bytes, padded to 16-row tiles), the KV bytes of the 20b
// shape, and the pool that --gpu_memory_fraction leaves. The GPU test
// (cuda_backend_test.cc, VramTest) checks the weight bytes against what the
// backend actually allocates.
#include "inference_worker/cuda/memory_plan.h"

#include <cmath>
#include <map>
#include <limits>
#include <string>

#include "bench/gpu/bench_options.h"
#include "gtest/gtest.h"
#include "tools/make_model/random_model.h"
#include "inference_worker/model/weights.h"
#include "tests/gpu/kquant_convert.h"
#include "tests/model/test_models.h"

namespace ossgate::gpu {
namespace {

using testing::LoadModel;
using testing::WriteTestModel;

constexpr int64_t kQ8Row64 = 64 / 32 * 34;    // one Q8_0 row of 64 values
constexpr int64_t kMxfp4Row64 = 64 / 32 * 17;  // one MXFP4 row of 64 values

// The tiny preset: 2 layers, d_model 64, 4 heads and 2 KV heads of 16,
// 8 experts of d_ff 64; Q8_0 dense, MXFP4 experts, F32 norms/biases/router.
int64_t TinyLayerAttention() {
  const int64_t q = 64, kv = 32, d = 64;
  return (q + 2 * kv) * kQ8Row64  // fused q/k/v
         + d * kQ8Row64           // o (64 x 64)
         + (q + 2 * kv) * 4       // q/k/v biases, fp32
         + d * 4;                 // o bias
}
int64_t TinyLayerExperts() {
  const int64_t e = 8, f = 64, d = 64;
  return e * 2 * f * kMxfp4Row64  // gate and up rows of every expert
         + e * d * kMxfp4Row64    // down
         + 2 * e * f * 4 + e * d * 4;
}

TEST(PlanWeightBytesTest, TinyModelMatchesTheBlockSizesByCategory) {
  for (int vocab : {96, 100}) {  // 100: the unembedding is padded to 7 tiles of 16 rows
    const std::string path = WriteTestModel("memory_plan", [](tools::RandomModelSpec&) {}, vocab);
    auto m = LoadModel(path);
    ASSERT_NE(m, nullptr);
    auto config = model::ReadModelConfig(*m->file);
    ASSERT_TRUE(config.ok()) << config.status();
    auto weights = model::BindWeights(*m->file, *config);
    ASSERT_TRUE(weights.ok()) << weights.status();
    ASSERT_EQ(config->n_layers, 2);
    ASSERT_EQ(config->d_model, 64);
    ASSERT_EQ(config->head_dim, 16);
    const int max_context = 300;
    auto b = PlanWeightBytes(*config, *weights, max_context);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->attention, 2 * TinyLayerAttention()) << "vocab " << vocab;
    EXPECT_EQ(b->experts, 2 * TinyLayerExperts()) << "vocab " << vocab;
    EXPECT_EQ(b->router, 2 * (8 * 64 * 4 + 8 * 4)) << "vocab " << vocab;
    EXPECT_EQ(b->embedding, vocab * kQ8Row64) << "vocab " << vocab;
    const int64_t padded_rows = (vocab + 15) / 16 * 16;
    EXPECT_EQ(b->unembedding, padded_rows * kQ8Row64) << "vocab " << vocab;
    const int64_t norms_and_sinks = 2 * (64 * 4 + 64 * 4 + 4 * 4) + 64 * 4;
    const int64_t inv_freq = 8 * 8;
    const int64_t rope_table = int64_t{max_context} * 16 * 4;
    EXPECT_EQ(b->small, norms_and_sinks + inv_freq + rope_table) << "vocab " << vocab;
    EXPECT_EQ(b->total(), b->attention + b->experts + b->router + b->embedding + b->unembedding + b->small);
    std::remove(path.c_str());
  }
}

TEST(PlanWeightBytesTest, Bf16DenseIsTwoBytesAValue) {
  const std::string path = WriteTestModel("memory_plan_bf16", [](tools::RandomModelSpec& s) {
    s.dense_type = gguf::GgmlType::kBF16;
  });
  auto m = LoadModel(path);
  ASSERT_NE(m, nullptr);
  auto config = model::ReadModelConfig(*m->file);
  ASSERT_TRUE(config.ok());
  auto weights = model::BindWeights(*m->file, *config);
  ASSERT_TRUE(weights.ok());
  auto b = PlanWeightBytes(*config, *weights, 16);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->attention, 2 * ((128 + 64) * 64 * 2 + 128 * 4 + 64 * 4));
  EXPECT_EQ(b->embedding, 96 * 64 * 2);
  std::remove(path.c_str());
}

// Q4_K keeps its own tiles (296 bytes per 16 x 32 tile); a q/k/v matrix
// mixing Q4_K with Q6_K goes to Q8_0 tiles (544 bytes per tile); one mixing it
// with BF16 is refused, naming the layer, the tensors and their types, before
// any upload (the same message as the upload's: GPU test
// MixedKQuantAttentionTypesFuseAndIncompatibleOnesAreRefused).
TEST(PlanWeightBytesTest, Q4KTilesAndFusedMixes) {
  const std::string path = WriteTestModel("memory_plan_q4k", [](tools::RandomModelSpec& s) {
    s.config.n_layers = 2;
    testing::SetKQuantShape(&s.config);
    s.dense_type = gguf::GgmlType::kQ4_K;
    s.expert_type = gguf::GgmlType::kQ4_K;
  });
  auto m = LoadModel(path);
  ASSERT_NE(m, nullptr);
  auto plan = [](const gguf::GgufFile& file) -> absl::StatusOr<WeightBytes> {
    auto config = model::ReadModelConfig(file);
    if (!config.ok()) return config.status();
    auto weights = model::BindWeights(file, *config);
    if (!weights.ok()) return weights.status();
    return PlanWeightBytes(*config, *weights, 16);
  };
  const int64_t qkv_rows = 256 + 2 * 128, d = 256, blocks = 256 / 32;
  const int64_t q4k_qkv = qkv_rows / 16 * blocks * (256 + 40), q4k_o = d / 16 * blocks * (256 + 40);
  const int64_t q8_qkv = qkv_rows / 16 * blocks * (512 + 32);
  const int64_t biases = qkv_rows * 4 + d * 4;
  auto b = plan(*m->file);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->attention, 2 * (q4k_qkv + q4k_o + biases));

  // A copy of the model with some tensors retyped, loaded.
  auto retyped = [&](const std::string& tag, const std::map<std::string, gguf::GgmlType>& types) {
    const std::string copy = testing::TempPath(tag);
    EXPECT_TRUE(testing::WriteRetypedCopy(*m->file, types, copy).ok());
    auto loaded = LoadModel(copy);
    std::remove(copy.c_str());
    return loaded;
  };
  auto mm = retyped("memory_plan_q4k_mixed", {{"blk.0.attn_v.weight", gguf::GgmlType::kQ6_K}});
  ASSERT_NE(mm, nullptr);
  b = plan(*mm->file);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->attention, (q8_qkv + q4k_o + biases) + (q4k_qkv + q4k_o + biases));

  auto mb = retyped("memory_plan_q4k_bf16", {{"blk.1.attn_v.weight", gguf::GgmlType::kBF16}});
  ASSERT_NE(mb, nullptr);
  b = plan(*mb->file);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("layer 1: attn_q, attn_k and attn_v (Q4_K, Q4_K, BF16) are fused into one "
                                      "matrix and must share a device format"),
            std::string::npos)
      << b.status();
  std::remove(path.c_str());
}

// gpu_bench plans the KV cache for the sequences its run decodes at once:
// with --decode_only=1 on the Phi-3-mini shape (a 2,047-key ring on each of 32
// layers, 32 KV heads of 96) the rings fit an 80 GB card, where the 256
// sequences of the full benchmark would need ~190 GiB (the benchmark refused
// to load for --decode_only=1 on the H100 before: "the KV cache of
// --kv_blocks=4626 needs 193.50 GiB").
TEST(GpuBenchPlanTest, TheKvCacheHoldsTheSequencesTheRunDecodes) {
  EXPECT_EQ(bench::GpuBenchOptions(false, false, 1).kv.max_sequences, 1);
  EXPECT_EQ(bench::GpuBenchOptions(false, false, 128).kv.max_sequences, 128);
  EXPECT_EQ(bench::GpuBenchOptions(false, true, 64).kv.max_sequences, 64);  // --decode_only wins over --quick
  EXPECT_EQ(bench::GpuBenchOptions(false, true, 0).kv.max_sequences, 65);
  EXPECT_EQ(bench::GpuBenchOptions(false, false, 0).kv.max_sequences, 256);
  EXPECT_EQ(bench::GpuBenchOptions(true, false, 0).kv.max_sequences, 1);
  model::ModelConfig phi3;
  ASSERT_TRUE(tools::ApplyPreset("phi3-mini", &phi3).ok());
  const int ring_blocks = (phi3.sliding_window + 15) / 16 + 1;
  const KvBytes kv = PlanKvBytes(phi3, 16, ring_blocks, 256);
  const auto rings = [&](int seqs) { return static_cast<double>(kv.per_sequence) * seqs / 1073741824.0; };
  EXPECT_LT(rings(bench::GpuBenchOptions(false, false, 1).kv.max_sequences), 1.0);
  EXPECT_LT(rings(bench::GpuBenchOptions(false, true, 0).kv.max_sequences), 60.0);
  EXPECT_GT(rings(256), 150.0) << "the full benchmark's plan, for scale";
}

model::ModelConfig Shape20b() {
  model::ModelConfig c;
  c.n_layers = 24;
  c.n_heads = 64;
  c.n_kv_heads = 8;
  c.head_dim = 64;
  c.sliding_window = 128;
  return c;
}

TEST(PlanKvBytesTest, The20bShape) {
  // 12 full layers hold K and V of 8 heads x 64 bf16 per token; 12 sliding
  // layers a ring of 9 blocks (128 / 16 + 1) per sequence; every 256 pool
  // tokens one split state of 64 heads x 66 floats.
  const KvBytes k = PlanKvBytes(Shape20b(), 16, 9, 256);
  EXPECT_EQ(k.per_token, 12 * 2 * 8 * 64 * 2);
  EXPECT_EQ(k.per_pool_block, 24576 * 16 + 64 * 66 * 4 * 16 / 256);
  EXPECT_EQ(k.per_sequence, 12 * 2 * 8 * 64 * 2 * 16 * 9);
  model::ModelConfig no_window = Shape20b();
  no_window.sliding_window = 0;  // every layer full
  const KvBytes all_full = PlanKvBytes(no_window, 16, 0, 256);
  EXPECT_EQ(all_full.per_token, 24 * 2 * 8 * 64 * 2);
  EXPECT_EQ(all_full.per_sequence, 0);
}

constexpr int64_t kGiB = int64_t{1} << 30;

KvPoolRequest Request80GB() {
  KvPoolRequest r;
  r.device_total = 80 * kGiB;
  r.in_use = 13 * kGiB;  // the 20b weights and buffers, roughly
  r.fraction = 0.9;
  r.kv = PlanKvBytes(Shape20b(), 16, 9, 256);
  r.max_sequences = 64;
  r.max_context = 131072;
  return r;
}

TEST(PlanKvPoolTest, FillsWhatTheFractionLeavesInWholeBlocks) {
  const KvPoolRequest r = Request80GB();
  auto p = PlanKvPool(r);
  ASSERT_TRUE(p.ok()) << p.status();
  const int64_t budget = static_cast<int64_t>(0.9 * 80 * kGiB) - 13 * kGiB;
  EXPECT_EQ(p->budget, budget);
  const int64_t rings = 64 * r.kv.per_sequence;
  EXPECT_LE(p->blocks * r.kv.per_pool_block + rings, budget);
  EXPECT_GT((p->blocks + 1) * r.kv.per_pool_block + rings, budget);  // one block more would not fit
  EXPECT_FALSE(p->capped);
  EXPECT_EQ(p->max_tokens, p->blocks * 16);
  EXPECT_EQ(p->kv_bytes, p->blocks * r.kv.per_pool_block + rings);
  // 24 KiB per token: about 2.56 M tokens, 19 sequences of the full 131,072.
  EXPECT_GT(p->max_tokens, 2500000);
  EXPECT_LT(p->max_tokens, 2600000);
}

TEST(PlanKvPoolTest, NeverMoreThanTheSequencesCanUse) {
  KvPoolRequest r = Request80GB();
  r.max_sequences = 16;
  r.max_context = 4096;
  auto p = PlanKvPool(r);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->blocks, 16 * 4096 / 16);
  EXPECT_TRUE(p->capped);
  EXPECT_EQ(p->max_tokens, 16 * 4096);
  r.max_context = 4100;  // a partial last block still needs a whole one
  EXPECT_EQ(PlanKvPool(r)->blocks, 16 * 257);
}

TEST(PlanKvPoolTest, OneSequenceOfMaxContextIsTheLeastAccepted) {
  KvPoolRequest r = Request80GB();
  const int64_t one_sequence = 8192 * r.kv.per_pool_block;  // 131,072 tokens
  const int64_t rings = 64 * r.kv.per_sequence;
  const int64_t allowed = static_cast<int64_t>(0.9 * 80 * kGiB);
  r.in_use = allowed - rings - one_sequence;
  auto p = PlanKvPool(r);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->blocks, 8192);
  r.in_use += 1;
  p = PlanKvPool(r);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(PlanKvPoolTest, A120bOnA24GBCardIsRefusedNamingTheSizesAndWhatToDo) {
  KvPoolRequest r;
  r.device_total = 24 * kGiB;
  r.in_use = kGiB / 2;
  r.to_allocate = 63387329184;  // the 120b file's weights
  r.fraction = 0.9;
  model::ModelConfig c = Shape20b();
  c.n_layers = 36;
  r.kv = PlanKvBytes(c, 16, 9, 256);
  r.max_sequences = 16;
  r.max_context = 4096;
  auto p = PlanKvPool(r);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string msg(p.status().message());
  for (const std::string& want :
       {std::string("does not fit"), FormatGiB(63387329184), FormatGiB(24 * kGiB), FormatGiB(kGiB / 2),
        std::string("--gpu_memory_fraction=0.9"), std::string("--max_context"), std::string("--max_sequences"),
        std::string("more memory")}) {
    EXPECT_NE(msg.find(want), std::string::npos) << "missing '" << want << "' in: " << msg;
  }
}

TEST(PlanKvPoolTest, TheFractionScalesTheBudget) {
  KvPoolRequest r = Request80GB();
  r.fraction = 0.5;
  auto half = PlanKvPool(r);
  r.fraction = 1.0;
  auto all = PlanKvPool(r);
  ASSERT_TRUE(half.ok() && all.ok());
  EXPECT_EQ(all->budget - half->budget, static_cast<int64_t>(80 * kGiB) / 2);
  EXPECT_LT(half->blocks, all->blocks);
}

TEST(ValidateGpuMemoryFractionTest, OnlyZeroToOneExclusiveOfZero) {
  for (double ok : {1.0, 0.9, 0.05, 1e-6}) EXPECT_TRUE(ValidateGpuMemoryFraction(ok).ok()) << ok;
  for (double bad : {0.0, -0.5, 1.0000001, 2.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    const absl::Status s = ValidateGpuMemoryFraction(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("--gpu_memory_fraction must be in (0, 1]"), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace ossgate::gpu
