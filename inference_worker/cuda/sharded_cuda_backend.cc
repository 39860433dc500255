#include "inference_worker/cuda/sharded_cuda_backend.h"

#include <cuda_runtime_api.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ossgate::gpu {

// A host thread bound to one GPU (cudaSetDevice once) that runs one job at a
// time for its rank.
class ShardedCudaBackend::RankThread {
 public:
  explicit RankThread(int device) : thread_([this, device] { Loop(device); }) {}
  ~RankThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Post(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = std::move(job);
    done_ = false;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }

 private:
  void Loop(int device) {
    cudaSetDevice(device);
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || job_ != nullptr; });
      if (stop_) return;
      std::function<void()> job = std::move(job_);
      job_ = nullptr;
      lock.unlock();
      job();
      lock.lock();
      done_ = true;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;
  bool done_ = true;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

absl::StatusOr<std::unique_ptr<ShardedCudaBackend>> ShardedCudaBackend::Create(const gguf::GgufFile& file,
                                                                               const CudaBackendOptions& options,
                                                                               const model::ParallelLayout& layout,
                                                                               std::span<const int> devices,
                                                                               RankCollective collective) {
  if (layout.world < 1 || static_cast<size_t>(layout.world) != devices.size()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor parallelism over ", layout.world, " ranks needs as many GPUs; ",
                                                   devices.size(), " given"));
  }
  auto config = model::ReadModelConfig(file);
  if (!config.ok()) return config.status();
  auto full = model::BindWeights(file, *config);
  if (!full.ok()) return full.status();
  // Every rank's plan first (a layout the model cannot take is refused
  // before anything is allocated); each rank's slices are made just before
  // its upload and dropped after it, so the host holds the file plus one
  // rank's copied columns at a time.
  std::vector<model::Shard> shards;
  for (int r = 0; r < layout.world; ++r) {
    auto shard = model::PlanShard(*config, layout, r, model::FfSplitUnit(*full));
    if (!shard.ok()) return shard.status();
    shards.push_back(*shard);
  }
  std::unique_ptr<ShardedCudaBackend> b(new ShardedCudaBackend());
  b->config_ = *config;
  if (collective == RankCollective::kNccl) {
    auto group = MakeNcclGroup(devices);
    if (!group.ok()) return group.status();
    b->all_reduce_ = *std::move(group);
  } else {
    b->host_group_ = std::make_unique<model::InProcessGroup>(layout.world);
    for (int r = 0; r < layout.world; ++r) {
      b->all_reduce_.push_back(std::make_unique<HostStagedAllReduce>(b->host_group_->rank(r)));
    }
  }
  for (int r = 0; r < layout.world; ++r) {
    auto slices = model::SliceWeights(*full, *config, shards[r]);
    if (!slices.ok()) return slices.status();
    const model::ModelConfig rank_config = model::ShardConfig(*config, shards[r]);
    CudaBackendOptions o = options;
    o.device = devices[r];
    if (r > 0) o.kv.num_full_blocks = b->ranks_[0]->kv().num_full_blocks();
    auto rank = CreateCudaBackendRank(
        file, o, CudaRankSetup{&rank_config, &slices->weights, b->all_reduce_[r].get(), shards[r].expert_begin});
    if (!rank.ok()) {
      return absl::Status(rank.status().code(), absl::StrCat("rank ", r, " on GPU ", devices[r], ": ",
                                                             rank.status().message()));
    }
    b->ranks_.push_back(*std::move(rank));
    b->threads_.push_back(std::make_unique<RankThread>(devices[r]));
  }
  if (absl::Status s = b->CheckCollective(); !s.ok()) return s;
  b->description_ = absl::StrCat(b->ranks_[0]->Description(), " x ", layout.world, " tensor-parallel ranks (",
                                 b->all_reduce_[0]->Name(), ")");
  return b;
}

absl::StatusOr<std::unique_ptr<model::Backend>> CreateShardedCudaBackend(const gguf::GgufFile& file,
                                                                        const CudaBackendOptions& options,
                                                                        const model::ParallelLayout& layout,
                                                                        const std::vector<int>& devices) {
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess || visible == 0) {
    cudaGetLastError();
    return absl::UnimplementedError("CUDA backend: no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)");
  }
  for (int d : devices) {
    if (d < 0 || d >= visible) {
      return absl::InvalidArgumentError(absl::StrCat("tensor parallelism over ", devices.size(), " GPUs from device ",
                                                     devices.front(), ": device ", d, " does not exist (", visible,
                                                     " visible)"));
    }
  }
  auto b = ShardedCudaBackend::Create(file, options, layout, devices, RankCollective::kNccl);
  if (!b.ok()) return b.status();
  return std::unique_ptr<model::Backend>(std::move(*b));
}

ShardedCudaBackend::~ShardedCudaBackend() {
  // Each rank is destroyed on its own thread, where its device is current
  // (its streams, graphs and memory belong to that device); then the threads
  // are joined.
  for (size_t r = 0; r < threads_.size() && r < ranks_.size(); ++r) {
    threads_[r]->Post([this, r] { ranks_[r].reset(); });
    threads_[r]->Wait();
  }
  ranks_.clear();
  threads_.clear();
}

absl::Status ShardedCudaBackend::OnEveryRank(const std::function<absl::Status(int)>& fn) {
  for (size_t r = 1; r < ranks_.size(); ++r) {
    if (absl::Status s = ranks_[r]->kv().MirrorFrom(ranks_[0]->kv()); !s.ok()) return s;
  }
  std::vector<absl::Status> status(ranks_.size());
  for (size_t r = 0; r < ranks_.size(); ++r) {
    threads_[r]->Post([&, r] { status[r] = fn(static_cast<int>(r)); });
  }
  for (auto& t : threads_) t->Wait();
  for (size_t r = 1; r < ranks_.size(); ++r) {
    if (status[r].code() != status[0].code()) {
      return absl::InternalError(absl::StrCat("tensor-parallel ranks disagree: rank 0 ", status[0].ToString(),
                                              ", rank ", r, " ", status[r].ToString()));
    }
  }
  return status[0];
}

absl::Status ShardedCudaBackend::CheckCollective() {
  constexpr int kN = 1000;
  const int world = static_cast<int>(ranks_.size());
  return OnEveryRank([&](int r) -> absl::Status {
    std::vector<float> host(kN);
    for (int i = 0; i < kN; ++i) host[i] = static_cast<float>((r + 1) * (i % 7));
    float* d = nullptr;
    if (cudaMalloc(&d, kN * sizeof(float)) != cudaSuccess) {
      cudaGetLastError();
      return absl::ResourceExhaustedError("tensor-parallel check: no device memory for 4 KB");
    }
    cudaStream_t s = nullptr;
    cudaMemcpy(d, host.data(), kN * sizeof(float), cudaMemcpyHostToDevice);
    all_reduce_[r]->AllReduceSum(d, kN, s);
    cudaMemcpyAsync(host.data(), d, kN * sizeof(float), cudaMemcpyDeviceToHost, s);
    const cudaError_t e = cudaStreamSynchronize(s);
    cudaFree(d);
    if (e != cudaSuccess) return absl::InternalError(absl::StrCat("tensor-parallel check: ", cudaGetErrorString(e)));
    for (int i = 0; i < kN; ++i) {
      const float want = static_cast<float>(world * (world + 1) / 2 * (i % 7));
      if (host[i] != want) {
        return absl::InternalError(absl::StrCat("tensor-parallel check: ", all_reduce_[r]->Name(), " all-reduce on rank ",
                                                r, " gave ", host[i], " at element ", i, " instead of ", want));
      }
    }
    return absl::OkStatus();
  });
}

void ShardedCudaBackend::SetSkipPhases(uint32_t mask) {
  for (size_t r = 0; r < ranks_.size(); ++r) threads_[r]->Post([this, r, mask] { ranks_[r]->SetSkipPhases(mask); });
  for (auto& t : threads_) t->Wait();
}

absl::Status ShardedCudaBackend::Forward(std::span<const model::SequenceStep> steps, std::vector<float>* logits) {
  std::vector<std::vector<float>> other(ranks_.size());
  return OnEveryRank([&](int r) { return ranks_[r]->Forward(steps, r == 0 ? logits : &other[r]); });
}

absl::Status ShardedCudaBackend::ForwardSample(std::span<const model::SequenceStep> steps,
                                               std::span<const model::StepSampling> sampling,
                                               std::vector<int32_t>* tokens) {
  std::vector<std::vector<int32_t>> other(ranks_.size());
  absl::Status s =
      OnEveryRank([&](int r) { return ranks_[r]->ForwardSample(steps, sampling, r == 0 ? tokens : &other[r]); });
  if (!s.ok()) return s;
  // Every rank sampled from the same logits (the unembedding is replicated
  // and the residual stream the same bits): a difference is a defect.
  for (size_t r = 1; r < ranks_.size(); ++r) {
    if (other[r] != *tokens) {
      return absl::InternalError(absl::StrCat("tensor-parallel rank ", r, " sampled other tokens than rank 0"));
    }
  }
  return s;
}

}  // namespace ossgate::gpu
