// Tensor-parallel CUDA ranks (issue 16, docs/parallel.md) on one GPU: two
// ranks sharing the device through the host-staged all-reduce compute what
// one whole-model backend does (only the order of additions differs), a
// world of one is bitwise the whole model, over NCCL too (graphs on).
#include <cuda_runtime_api.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/cuda/device_collective.h"
#include "inference_worker/cuda/sharded_cuda_backend.h"
#include "tests/model/parallel_script.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using gpu::RankCollective;
using gpu::ShardedCudaBackend;

gpu::CudaBackendOptions Options(bool graphs) {
  gpu::CudaBackendOptions o;
  o.kv.max_sequences = 2;
  o.max_context = 256;
  o.upload_threads = 4;
  o.use_graphs = graphs;
  return o;
}

class ShardedCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = WriteTestModel("sharded_cuda", ShardableShape);
    model_ = LoadModel(path_);
    ASSERT_NE(model_, nullptr);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  ScriptRun Whole(bool graphs) {
    auto b = gpu::CreateCudaBackendImpl(*model_->file, Options(graphs));
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? RunScript(**b) : ScriptRun{};
  }
  ScriptRun Sharded(int world, bool graphs, RankCollective collective, std::vector<int> devices, int groups = 1) {
    auto b = ShardedCudaBackend::Create(*model_->file, Options(graphs), model::ParallelLayout{world, groups}, devices,
                                        collective);
    EXPECT_TRUE(b.ok()) << b.status();
    if (!b.ok()) return {};
    EXPECT_NE((*b)->Description().find("tensor-parallel"), std::string::npos) << (*b)->Description();
    return RunScript(**b);
  }

  std::string path_;
  std::unique_ptr<LoadedModel> model_;
};

// Tensor parallelism of the experts (1 expert group: each rank a slice of
// every expert), expert parallelism (2 groups: each rank half the experts,
// the router numbering the rank's from its first) and both (4 ranks in 2
// groups of 2).
TEST_F(ShardedCudaTest, RanksOnOneGpuComputeTheWholeModel) {
  const ScriptRun want = Whole(false);
  for (auto [world, groups] : std::vector<std::pair<int, int>>{{2, 1}, {2, 2}, {4, 2}}) {
    const ScriptRun got = Sharded(world, false, RankCollective::kHostStaged, std::vector<int>(world, 0), groups);
    const double worst = WorstRowError(got, want);
    std::printf("%d ranks in %d expert groups on one GPU vs the whole model: worst relative error of a logits row "
                "%.3g\n", world, groups, worst);
    EXPECT_LT(worst, 1e-2) << world << " ranks, " << groups << " groups";  // only the order of additions differs
    EXPECT_GT(worst, 0.0) << "the ranks did not split the arithmetic";
    EXPECT_EQ(got.greedy, want.greedy) << world << " ranks, " << groups << " groups";
  }
}

TEST_F(ShardedCudaTest, AWorldOfOneIsTheWholeModelBitwise) {
  const ScriptRun want = Whole(false);
  const ScriptRun got = Sharded(1, false, RankCollective::kHostStaged, {0});
  EXPECT_EQ(got.rows, want.rows);
  EXPECT_EQ(got.greedy, want.greedy);
}

TEST_F(ShardedCudaTest, AWorldOfOneOverNcclWithGraphsIsTheWholeModelBitwise) {
  auto nccl = gpu::LoadNccl();
  ASSERT_TRUE(nccl.ok()) << nccl.status() << " (gpu_run.sh points OSSGATE_NCCL_LIBRARY at pip's nvidia-nccl-cu13)";
  std::printf("NCCL %d from %s\n", nccl->code, nccl->library.c_str());
  const ScriptRun want = Whole(true);
  const ScriptRun got = Sharded(1, true, RankCollective::kNccl, {0});
  EXPECT_EQ(got.rows, want.rows);
  EXPECT_EQ(got.greedy, want.greedy);
}

// Several GPUs (gpu_run.sh multi; the one-GPU run filters it out): two ranks
// on GPUs 0 and 1 over NCCL, graphs on, against the whole model on GPU 0.
TEST_F(ShardedCudaTest, MultiGpuTwoRanksOverNcclComputeTheWholeModel) {
  int devices = 0;
  ASSERT_EQ(cudaGetDeviceCount(&devices), cudaSuccess);
  ASSERT_GE(devices, 2) << "this test needs 2 GPUs (gpu_run.sh multi on a machine with several)";
  const ScriptRun want = Whole(true);
  const ScriptRun got = Sharded(2, true, RankCollective::kNccl, {0, 1});
  const double worst = WorstRowError(got, want);
  std::printf("2 GPUs over NCCL vs the whole model: worst relative error of a logits row %.3g\n", worst);
  EXPECT_LT(worst, 1e-2);
  EXPECT_EQ(got.greedy, want.greedy);
  // The same layout twice: the same bits (NCCL's all-reduce is deterministic
  // for a fixed size and communicator).
  const ScriptRun again = Sharded(2, true, RankCollective::kNccl, {0, 1});
  EXPECT_EQ(again.rows, got.rows);
}

TEST_F(ShardedCudaTest, RefusesALayoutTheModelCannotTakeAndRepeatedNcclDevices) {
  auto three = ShardedCudaBackend::Create(*model_->file, Options(false), model::ParallelLayout{3, 1},
                                          std::vector<int>{0, 0, 0}, RankCollective::kHostStaged);
  ASSERT_FALSE(three.ok());
  EXPECT_NE(three.status().message().find("4 KV heads do not split evenly"), std::string::npos) << three.status();
  auto repeated = ShardedCudaBackend::Create(*model_->file, Options(false), model::ParallelLayout{2, 1},
                                             std::vector<int>{0, 0}, RankCollective::kNccl);
  ASSERT_FALSE(repeated.ok());
  EXPECT_NE(repeated.status().message().find("distinct GPUs"), std::string::npos) << repeated.status();
}

}  // namespace
}  // namespace ossgate::testing
