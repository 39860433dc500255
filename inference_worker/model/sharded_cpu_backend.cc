#include "inference_worker/model/sharded_cpu_backend.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ossgate::model {

absl::StatusOr<std::unique_ptr<ShardedCpuBackend>> ShardedCpuBackend::Create(const gguf::GgufFile& file,
                                                                              const CpuBackendOptions& options,
                                                                              const ParallelLayout& layout) {
  auto config = ReadModelConfig(file);
  if (!config.ok()) return config.status();
  auto full = BindWeights(file, *config);
  if (!full.ok()) return full.status();
  if (absl::Status s = CheckCpuBackendOptions(options); !s.ok()) return s;
  if (layout.world < 1) return absl::InvalidArgumentError("parallel layout: world size must be at least 1");
  // Every rank's plan and weights first, so a layout the model cannot take
  // is refused before anything is allocated.
  std::vector<Shard> shards;
  std::vector<ShardWeights> weights;
  for (int r = 0; r < layout.world; ++r) {
    auto shard = PlanShard(*config, layout, r, FfSplitUnit(*full));
    if (!shard.ok()) return shard.status();
    auto w = SliceWeights(*full, *config, *shard);
    if (!w.ok()) return w.status();
    shards.push_back(*shard);
    weights.push_back(*std::move(w));
  }
  const int max_context = std::min(options.max_context, config->context_length);
  auto kv = MakeCpuKvManager(options, max_context, config->sliding_window);
  std::unique_ptr<ShardedCpuBackend> b(new ShardedCpuBackend(*config, layout, max_context, std::move(kv)));
  const int total = options.n_threads > 0 ? options.n_threads : static_cast<int>(std::thread::hardware_concurrency());
  CpuBackendOptions rank_options = options;
  rank_options.n_threads = std::max(1, total / layout.world);
  b->threads_ = rank_options.n_threads * layout.world;
  for (int r = 0; r < layout.world; ++r) {
    b->ranks_.push_back(std::unique_ptr<CpuBackend>(
        new CpuBackend(ShardConfig(*config, shards[r]), std::move(weights[r]), rank_options, max_context, b->kv_.get(),
                       shards[r].expert_begin, &b->group_.rank(r))));
  }
  b->shards_ = std::move(shards);
  return b;
}

ShardedCpuBackend::ShardedCpuBackend(ModelConfig config, ParallelLayout layout, int max_context,
                                     std::unique_ptr<KvBlockManager> kv)
    : config_(std::move(config)),
      layout_(layout),
      max_context_(max_context),
      kv_(std::move(kv)),
      group_(layout.world) {}

ShardedCpuBackend::~ShardedCpuBackend() = default;

std::string ShardedCpuBackend::Description() const {
  return absl::StrCat("cpu (", threads_, " threads, ", layout_.ToString(), ")");
}

absl::Status ShardedCpuBackend::Forward(std::span<const SequenceStep> steps, std::vector<float>* logits) {
  if (absl::Status st = ValidateAndReserve(steps, config_.vocab_size, max_context_, *kv_); !st.ok()) return st;
  std::vector<std::thread> threads;
  for (size_t r = 1; r < ranks_.size(); ++r) {
    threads.emplace_back([&, r] { ranks_[r]->Run(steps, nullptr); });
  }
  ranks_[0]->Run(steps, logits);
  for (std::thread& t : threads) t.join();
  for (const SequenceStep& st : steps) kv_->Commit(st.seq, static_cast<int>(st.tokens.size()));
  return absl::OkStatus();
}

}  // namespace ossgate::model
