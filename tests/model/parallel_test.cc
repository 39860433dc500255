// Tensor and expert parallelism on the CPU (issue 16): the layout plan, the
// weight slices, the in-process all-reduce, and the sharded CPU backend
// against the whole-model backend for several layouts.
#include "inference_worker/model/parallel.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "gtest/gtest.h"
#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/model/cpu_backend.h"
#include "inference_worker/model/sharded_cpu_backend.h"
#include "tests/model/parallel_script.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using model::CpuBackend;
using model::CpuBackendOptions;
using model::ParallelLayout;
using model::SequenceStep;
using model::Shard;

model::ModelConfig Preset(const std::string& name) {
  model::ModelConfig c;
  EXPECT_TRUE(tools::ApplyPreset(name, &c).ok()) << name;
  return c;
}

Shard Plan(const model::ModelConfig& c, int world, int groups, int rank, int64_t unit = 32) {
  auto s = model::PlanShard(c, ParallelLayout{world, groups}, rank, unit);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : Shard{};
}

TEST(PlanShardTest, SplitsTheHeadsExpertsAndIntermediateOf20b) {
  const model::ModelConfig c = Preset("20b");  // 64 query heads over 8 KV heads, 32 experts, d_ff 2880
  // Pure expert parallelism over 4 ranks: rank 2 owns KV heads 4-5, their
  // query heads 32-47, experts 16-23, each expert whole.
  Shard s = Plan(c, 4, 4, 2);
  EXPECT_EQ(s.kv_head_begin, 4);
  EXPECT_EQ(s.n_kv_heads, 2);
  EXPECT_EQ(s.q_head_begin, 32);
  EXPECT_EQ(s.n_q_heads, 16);
  EXPECT_EQ(s.expert_begin, 16);
  EXPECT_EQ(s.n_experts, 8);
  EXPECT_EQ(s.ff_begin, 0);
  EXPECT_EQ(s.ff_size, 2880);
  EXPECT_FALSE(s.attn_bias);
  EXPECT_TRUE(s.ffn_bias);
  // Two expert groups of 2 ranks: rank 3 owns experts 16-31, the second half
  // of each one's 90 MXFP4 blocks of intermediate, and adds no down bias.
  s = Plan(c, 4, 2, 3);
  EXPECT_EQ(s.expert_begin, 16);
  EXPECT_EQ(s.n_experts, 16);
  EXPECT_EQ(s.ff_begin, 45 * 32);
  EXPECT_EQ(s.ff_size, 45 * 32);
  EXPECT_FALSE(s.ffn_bias);
  // Pure tensor parallelism of the experts over 8 ranks: 90 blocks split
  // 11/11/12/...; every rank sees every expert.
  int covered = 0;
  for (int r = 0; r < 8; ++r) {
    s = Plan(c, 8, 1, r);
    EXPECT_EQ(s.n_experts, 32);
    EXPECT_EQ(s.ff_begin, covered) << r;
    EXPECT_EQ(s.ff_size % 32, 0);
    EXPECT_EQ(s.ffn_bias, r == 0);
    EXPECT_EQ(s.attn_bias, r == 0);
    covered += s.ff_size;
  }
  EXPECT_EQ(covered, 2880);
  // World of one: everything.
  s = Plan(c, 1, 0, 0);
  EXPECT_EQ(s.n_q_heads, 64);
  EXPECT_EQ(s.n_experts, 32);
  EXPECT_EQ(s.ff_size, 2880);
  // The dense families split their FFN over every rank.
  const model::ModelConfig q = Preset("qwen2.5-0.5b");  // 14 heads over 2 KV heads, d_ff 4864
  s = Plan(q, 2, 0, 1);
  EXPECT_EQ(s.q_head_begin, 7);
  EXPECT_EQ(s.n_q_heads, 7);
  EXPECT_EQ(s.n_experts, 0);
  EXPECT_EQ(s.ff_begin, 2432);
  EXPECT_EQ(s.ff_size, 2432);
}

TEST(PlanShardTest, RefusesLayoutsTheModelCannotTakeAndSaysWhich) {
  const model::ModelConfig c = Preset("20b");
  auto s = model::PlanShard(c, ParallelLayout{3, 0}, 0, 32);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("8 KV heads"), std::string::npos) << s.status();
  EXPECT_NE(s.status().message().find("1, 2, 4, 8"), std::string::npos) << s.status();
  s = model::PlanShard(c, ParallelLayout{4, 3}, 0, 32);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("3 expert groups do not divide 4 ranks"), std::string::npos) << s.status();
  model::ModelConfig odd = c;
  odd.n_experts = 6;
  s = model::PlanShard(odd, ParallelLayout{4, 4}, 0, 32);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("6 experts"), std::string::npos) << s.status();
  model::ModelConfig narrow = c;
  narrow.d_ff = 64;  // 2 blocks for 4 ranks
  s = model::PlanShard(narrow, ParallelLayout{4, 1}, 0, 32);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("fewer blocks"), std::string::npos) << s.status();
  s = model::PlanShard(Preset("qwen2-tiny"), ParallelLayout{2, 2}, 0, 32);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("no experts"), std::string::npos) << s.status();
  EXPECT_FALSE(model::PlanShard(c, ParallelLayout{0, 0}, 0, 32).ok());
  EXPECT_FALSE(model::PlanShard(c, ParallelLayout{2, 0}, 2, 32).ok());
}

TEST(InProcessGroupTest, EveryRankGetsTheRankOrderSumBitForBit) {
  constexpr int kWorld = 4;
  model::InProcessGroup group(kWorld);
  // Sizes not divisible by the world, smaller than it, and empty; values of
  // mixed magnitudes so that the order of the additions shows in the bits.
  const std::vector<size_t> sizes = {1000, 3, 0, 4097};
  auto value = [](int rank, size_t call, size_t i) {
    return tools::HashUniform(rank, call, i) * std::ldexp(1.0f, static_cast<int>((i + rank) % 40) - 20);
  };
  std::vector<std::vector<std::vector<float>>> got(kWorld);
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r) {
    threads.emplace_back([&, r] {
      for (size_t call = 0; call < sizes.size(); ++call) {
        std::vector<float> v(sizes[call]);
        for (size_t i = 0; i < v.size(); ++i) v[i] = value(r, call, i);
        group.rank(r).AllReduceSum(v);
        got[r].push_back(v);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t call = 0; call < sizes.size(); ++call) {
    for (size_t i = 0; i < sizes[call]; ++i) {
      float want = value(0, call, i);
      for (int r = 1; r < kWorld; ++r) want += value(r, call, i);
      for (int r = 0; r < kWorld; ++r) {
        ASSERT_EQ(std::bit_cast<uint32_t>(got[r][call][i]), std::bit_cast<uint32_t>(want))
            << "rank " << r << " call " << call << " element " << i;
      }
    }
  }
  EXPECT_EQ(group.rank(2).rank(), 2);
  EXPECT_EQ(group.rank(2).size(), kWorld);
}

std::vector<float> DequantRow(const model::Matrix& m, int64_t mat, int64_t r) {
  std::vector<float> out(m.cols);
  gguf::DequantizeRow(m.type, m.Row(mat, r), out.data(), m.cols);
  return out;
}

TEST(SliceWeightsTest, SlicesHoldTheWholeModelsRowsColumnsAndBiases) {
  const std::string path = WriteTestModel("parallel_slices", ShardableShape);
  auto model = LoadModel(path);
  ASSERT_NE(model, nullptr);
  auto config = model::ReadModelConfig(*model->file);
  ASSERT_TRUE(config.ok());
  auto full = model::BindWeights(*model->file, *config);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(model::FfSplitUnit(*full), 32);  // MXFP4 down projection
  // 4 ranks in 2 expert groups: rank 3 = heads 6-7 (KV head 3), experts
  // 4-7, intermediate rows 64-127 of each.
  const Shard s = Plan(*config, 4, 2, 3);
  auto sliced = model::SliceWeights(*full, *config, s);
  ASSERT_TRUE(sliced.ok()) << sliced.status();
  const model::LayerWeights& F = full->layers[1];
  const model::LayerWeights& L = sliced->weights.layers[1];
  EXPECT_EQ(L.wq.rows, 2 * 32);
  EXPECT_EQ(DequantRow(L.wq, 0, 5), DequantRow(F.wq, 0, 6 * 32 + 5));
  EXPECT_EQ(DequantRow(L.wk, 0, 31), DequantRow(F.wk, 0, 3 * 32 + 31));
  ASSERT_EQ(L.wo.cols, 64);
  for (int r : {0, 17, 63}) {
    const auto whole = DequantRow(F.wo, 0, r);
    EXPECT_EQ(DequantRow(L.wo, 0, r), std::vector<float>(whole.begin() + 6 * 32, whole.begin() + 8 * 32)) << r;
  }
  EXPECT_TRUE(L.bo.empty());  // rank 0 adds it
  EXPECT_EQ(L.sinks, std::vector<float>(F.sinks.begin() + 6, F.sinks.end()));
  EXPECT_EQ(L.bq, std::vector<float>(F.bq.begin() + 6 * 32, F.bq.end()));
  ASSERT_EQ(L.gate_exps.n_mats, 4);
  ASSERT_EQ(L.gate_exps.rows, 64);
  EXPECT_EQ(DequantRow(L.gate_exps, 1, 3), DequantRow(F.gate_exps, 5, 64 + 3));
  EXPECT_EQ(DequantRow(L.up_exps, 3, 63), DequantRow(F.up_exps, 7, 127));
  EXPECT_EQ(L.gate_b[1 * 64 + 3], F.gate_b[5 * 128 + 64 + 3]);
  ASSERT_EQ(L.down_exps.cols, 64);
  const auto down = DequantRow(F.down_exps, 6, 9);
  EXPECT_EQ(DequantRow(L.down_exps, 2, 9), std::vector<float>(down.begin() + 64, down.end()));
  // The second intermediate slice adds no down bias: the first one does.
  EXPECT_EQ(L.down_b, std::vector<float>(4 * 64, 0.0f));
  const Shard first = Plan(*config, 4, 2, 2);
  auto sliced2 = model::SliceWeights(*full, *config, first);
  ASSERT_TRUE(sliced2.ok());
  EXPECT_EQ(sliced2->weights.layers[0].down_b,
            std::vector<float>(full->layers[0].down_b.begin() + 4 * 64, full->layers[0].down_b.end()));
  // Whole experts (pure expert parallelism) stay views into the model's
  // bytes: a 120b rank must not copy its experts.
  const Shard ep = Plan(*config, 4, 4, 3);  // experts 6-7, whole
  auto ep_sliced = model::SliceWeights(*full, *config, ep);
  ASSERT_TRUE(ep_sliced.ok());
  const model::LayerWeights& E = ep_sliced->weights.layers[0];
  EXPECT_EQ(E.gate_exps.data, full->layers[0].gate_exps.Row(6, 0));
  EXPECT_EQ(E.down_exps.data, full->layers[0].down_exps.Row(6, 0));
  EXPECT_EQ(E.down_exps.n_mats, 2);
  EXPECT_EQ(ep_sliced->storage.size(), full->layers.size());  // only each layer's o_proj columns are copied
  // A head narrower than a block of the output projection's type is refused.
  model::ModelConfig one_head = *config;
  Shard bad = Plan(*config, 4, 4, 1);
  bad.q_head_begin = 1, bad.n_q_heads = 1;  // 32 columns: fine for Q8_0...
  EXPECT_TRUE(model::SliceWeights(*full, one_head, bad).ok());
  one_head.head_dim = 16;  // ...16 columns are half a block
  bad.kv_head_begin = 0, bad.n_kv_heads = 1;
  auto refused = model::SliceWeights(*full, one_head, bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("do not fall on its blocks of 32"), std::string::npos)
      << refused.status();
  std::remove(path.c_str());
}

CpuBackendOptions Options() {
  CpuBackendOptions o;
  o.n_threads = 4;
  o.kv.max_sequences = 2;
  o.max_context = 256;
  return o;
}

class ShardedCpuBackendTest : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(ShardedCpuBackendTest, MatchesTheWholeModel) {
  const auto [world, groups] = GetParam();
  const std::string path = WriteTestModel(absl::StrCat("parallel_", world, "_", groups), ShardableShape);
  auto model = LoadModel(path);
  ASSERT_NE(model, nullptr);
  auto whole = CpuBackend::Create(*model->file, Options());
  ASSERT_TRUE(whole.ok()) << whole.status();
  auto sharded = model::ShardedCpuBackend::Create(*model->file, Options(), ParallelLayout{world, groups});
  ASSERT_TRUE(sharded.ok()) << sharded.status();
  EXPECT_NE((*sharded)->Description().find(absl::StrCat(world == 1 ? "1 rank" : absl::StrCat(world, " ranks"))),
            std::string::npos)
      << (*sharded)->Description();
  const ScriptRun want = RunScript(**whole), got = RunScript(**sharded);
  if (world == 1) {  // nothing is split: the same arithmetic
    EXPECT_EQ(got.rows, want.rows);
  }
  const double worst = WorstRowError(got, want);
  // Only the order of the additions differs (partial sums of heads, experts
  // and intermediate slices added by the all-reduce).
  EXPECT_LT(worst, 1e-5) << "worst relative error of a logits row";
  std::printf("world %d, %d expert groups: worst relative error of a logits row %.3g\n", world,
              groups ? groups : world, worst);
  EXPECT_EQ(got.greedy, want.greedy);
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Layouts, ShardedCpuBackendTest,
                         ::testing::Values(std::pair{1, 0}, std::pair{2, 2}, std::pair{2, 1}, std::pair{4, 4},
                                           std::pair{4, 2}, std::pair{4, 1}),
                         [](const ::testing::TestParamInfo<std::pair<int, int>>& p) {
                           return absl::StrCat("world", p.param.first, "_groups",
                                               p.param.second ? p.param.second : p.param.first);
                         });

// For a fixed layout a sequence's logits do not depend on what else is in the
// step (the all-reduce sums elementwise in rank order): sequence 1 decoding
// alone and decoding beside another sequence's prompt and decode steps give
// the same bits.
TEST(ShardedCpuBackendTest, ASequencesLogitsDoNotDependOnTheBatch) {
  const std::string path = WriteTestModel("parallel_invariance", ShardableShape);
  auto model = LoadModel(path);
  ASSERT_NE(model, nullptr);
  std::vector<std::vector<float>> alone, batched;
  for (bool with_other : {false, true}) {
    auto b = model::ShardedCpuBackend::Create(*model->file, Options(), ParallelLayout{4, 2});
    ASSERT_TRUE(b.ok()) << b.status();
    model::Backend& backend = **b;
    const int V = backend.config().vocab_size;
    ASSERT_TRUE(backend.kv().AddSequence(1).ok());
    ASSERT_TRUE(backend.kv().AddSequence(2).ok());
    const auto prompt = Tokens(24, V, 3), other = Tokens(17, V, 4);
    std::vector<float> logits;
    SequenceStep first{1, prompt, model::Logits::kLast};
    ASSERT_TRUE(backend.Forward({&first, 1}, &logits).ok());
    std::vector<int32_t> tok = {7, 11, 13, 17, 19, 23};
    int32_t other_next = 5;
    auto& out = with_other ? batched : alone;
    for (size_t i = 0; i < tok.size(); ++i) {
      std::vector<SequenceStep> steps = {{1, {&tok[i], 1}, model::Logits::kLast}};
      if (with_other) {
        steps.push_back(i == 0 ? SequenceStep{2, other, model::Logits::kLast}
                               : SequenceStep{2, {&other_next, 1}, model::Logits::kLast});
      }
      ASSERT_TRUE(backend.Forward(steps, &logits).ok());
      out.emplace_back(logits.begin(), logits.begin() + V);
    }
  }
  EXPECT_EQ(alone, batched);
  std::remove(path.c_str());
}

TEST(ShardedCpuBackendDenseTest, Qwen2AndPhi3SplitTheirHeadsAndFfn) {
  for (const char* preset : {"qwen2-tiny", "phi3-tiny"}) {
    SCOPED_TRACE(preset);
    const std::string path = WritePresetModel(absl::StrCat("parallel_", preset), preset, [](tools::RandomModelSpec& s) {
      s.config.head_dim = 32;  // a Q8_0 block of o_proj columns per head
      s.config.n_kv_heads = s.config.n_heads = 4;
      s.config.d_model = 128;
      s.config.sliding_window = std::min(s.config.sliding_window, 8);
    });
    auto model = LoadModel(path);
    ASSERT_NE(model, nullptr);
    auto whole = CpuBackend::Create(*model->file, Options());
    ASSERT_TRUE(whole.ok()) << whole.status();
    auto sharded = model::ShardedCpuBackend::Create(*model->file, Options(), ParallelLayout{2, 0});
    ASSERT_TRUE(sharded.ok()) << sharded.status();
    const ScriptRun want = RunScript(**whole), got = RunScript(**sharded);
    EXPECT_LT(WorstRowError(got, want), 1e-5);
    EXPECT_EQ(got.greedy, want.greedy);
    std::remove(path.c_str());
  }
}

TEST(ShardedCpuBackendTest, RefusesALayoutBeforeAllocatingAnything) {
  const std::string path = WriteTestModel("parallel_refused", ShardableShape);
  auto model = LoadModel(path);
  ASSERT_NE(model, nullptr);
  auto b = model::ShardedCpuBackend::Create(*model->file, Options(), ParallelLayout{8, 0});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("4 KV heads"), std::string::npos) << b.status();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ossgate::testing
