// ThreadPool::ParallelFor: every index exactly once, chunks within the grain,
// any thread count, many calls on one pool.
#include "inference_worker/model/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace ossgate::model {
namespace {

// Runs ParallelFor(n, grain) and checks coverage and chunk shapes.
void CheckCoverage(ThreadPool& pool, int64_t n, int64_t grain) {
  const size_t size = static_cast<size_t>(std::max<int64_t>(n, 0));
  std::unique_ptr<std::atomic<int>[]> hits(new std::atomic<int>[size + 1]);
  for (size_t i = 0; i <= size; ++i) hits[i] = 0;
  std::atomic<int> bad_chunks{0};
  const int64_t max_chunk = std::max<int64_t>(grain, 1);
  pool.ParallelFor(n, grain, [&](int64_t begin, int64_t end) {
    if (!(0 <= begin && begin < end && end <= n && end - begin <= max_chunk)) ++bad_chunks;
    for (int64_t i = std::max<int64_t>(begin, 0); i < std::min(end, n); ++i) hits[i].fetch_add(1);
  });
  EXPECT_EQ(bad_chunks.load(), 0) << "n=" << n << " grain=" << grain;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(hits[i].load(), 1) << "index " << i << " n=" << n << " grain=" << grain << " threads=" << pool.size();
  }
}

TEST(ThreadPoolTest, EveryIndexExactlyOnceForManyShapes) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {1, 2, 3, 7, 16, 17, 100, 1000, 4097}) {
      for (int64_t grain : {1, 2, 3, 5, 16, 64, 1000, 5000}) CheckCoverage(pool, n, grain);
    }
  }
}

TEST(ThreadPoolTest, NonPositiveGrainIsTreatedAsOne) {
  ThreadPool pool(3);
  CheckCoverage(pool, 50, 0);
  CheckCoverage(pool, 50, -4);
}

TEST(ThreadPoolTest, EmptyRangeCallsNothing) {
  ThreadPool pool(2);
  int calls = 0;
  pool.ParallelFor(0, 4, [&](int64_t, int64_t) { ++calls; });
  pool.ParallelFor(-5, 4, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPoolTest, OneThreadRunsOnTheCaller) {
  ThreadPool pool(1);
  EXPECT_EQ(pool.size(), 1);
  const std::thread::id me = std::this_thread::get_id();
  bool other_thread = false;
  int64_t covered = 0;
  pool.ParallelFor(100, 7, [&](int64_t b, int64_t e) {
    if (std::this_thread::get_id() != me) other_thread = true;
    covered += e - b;  // single-threaded: no race
  });
  EXPECT_FALSE(other_thread);
  EXPECT_EQ(covered, 100);
}

TEST(ThreadPoolTest, DefaultSizeIsAtLeastOne) {
  ThreadPool pool;
  EXPECT_GE(pool.size(), 1);
  CheckCoverage(pool, 333, 4);
}

TEST(ThreadPoolTest, RepeatedCallsOnOnePool) {
  // Catches a lost wake-up or a worker still in the previous job: each call
  // must see exactly its own indices, thousands of times in a row.
  ThreadPool pool(4);
  std::vector<int64_t> sums;
  for (int iter = 0; iter < 3000; ++iter) {
    const int64_t n = 1 + iter % 97;
    const int64_t grain = 1 + iter % 5;
    std::atomic<int64_t> sum{0};
    std::atomic<int64_t> count{0};
    pool.ParallelFor(n, grain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        sum.fetch_add(i + iter);
        count.fetch_add(1);
      }
    });
    ASSERT_EQ(count.load(), n) << "iter " << iter;
    ASSERT_EQ(sum.load(), n * (n - 1) / 2 + n * iter) << "iter " << iter;
  }
}

TEST(ThreadPoolTest, WorkIsSpreadOverThreadsWhenChunksBlock) {
  // With 4 threads and 4 chunks that each wait until all 4 have started,
  // the call only returns if every thread (the caller included) takes one.
  ThreadPool pool(4);
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  std::vector<std::thread::id> ids;
  pool.ParallelFor(4, 1, [&](int64_t, int64_t) {
    std::unique_lock<std::mutex> lock(mu);
    ++started;
    ids.push_back(std::this_thread::get_id());
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return started == 4; });
  });
  EXPECT_EQ(started, 4);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::unique(ids.begin(), ids.end()) - ids.begin(), 4) << "chunks ran on fewer than 4 threads";
}

TEST(ThreadPoolTest, DestroyWithoutWorkAndAfterWork) {
  { ThreadPool idle(4); }
  {
    ThreadPool used(4);
    CheckCoverage(used, 100, 3);
  }
  SUCCEED();
}

}  // namespace
}  // namespace ossgate::model
