// A fixed pool of worker threads for the CPU backend's data-parallel loops.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ossgate::model {

class ThreadPool {
 public:
  // n_threads <= 0 means one per hardware thread. The calling thread works
  // too, so n_threads - 1 workers are started.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n), each at most
  // `grain` long, and returns when all are done. Which thread runs which
  // chunk varies, so fn must not depend on it. Not reentrant: fn must not
  // call ParallelFor. Only one thread may call ParallelFor at a time.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // A grain for n items of `work_per_item` units (e.g. multiply-adds): about
  // four chunks per thread, but never chunks under kMinChunkWork units,
  // since waking a thread costs about as much as that much arithmetic. Small
  // jobs thus run inline on the caller.
  static constexpr int64_t kMinChunkWork = int64_t{1} << 17;
  int64_t GrainFor(int64_t n, int64_t work_per_item) const;

 private:
  void WorkerLoop();
  void RunChunks();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;  // guarded by mu_
  int active_ = 0;           // workers still inside the current job; guarded by mu_
  bool stop_ = false;        // guarded by mu_
  // Current job; written by ParallelFor before the generation bump.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t grain_ = 1;
  std::atomic<int64_t> next_{0};
};

}  // namespace ossgate::model
