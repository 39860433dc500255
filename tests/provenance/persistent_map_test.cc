// PersistentMap: the same answers as std::map under random inserts and
// replacements, copies that do not see later changes, and an AVL height.
#include "provenance_service/core/persistent_map.h"

#include <cmath>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ossgate::provenance {
namespace {

using Map = PersistentMap<int, std::string>;

void ExpectSame(const Map& m, const std::map<int, std::string>& ref) {
  ASSERT_EQ(m.size(), ref.size());
  EXPECT_EQ(m.empty(), ref.empty());
  auto it = m.begin();
  for (const auto& [k, v] : ref) {
    ASSERT_TRUE(it != m.end());
    EXPECT_EQ(it->first, k);
    EXPECT_EQ(it->second, v);
    ++it;
  }
  EXPECT_TRUE(it == m.end());
}

TEST(PersistentMapTest, MatchesStdMap) {
  std::mt19937 rng(7);
  Map m;
  std::map<int, std::string> ref;
  for (int i = 0; i < 3000; ++i) {
    const int k = static_cast<int>(rng() % 1000);
    const std::string v = std::to_string(rng());
    m.Put(k, v);
    ref[k] = v;
    if (i % 500 == 0) ExpectSame(m, ref);
  }
  ExpectSame(m, ref);
  for (int k = -2; k < 1003; ++k) {
    auto lb = m.lower_bound(k), ub = m.upper_bound(k), f = m.find(k);
    auto rlb = ref.lower_bound(k), rub = ref.upper_bound(k), rf = ref.find(k);
    EXPECT_EQ(lb == m.end(), rlb == ref.end()) << k;
    if (rlb != ref.end() && lb != m.end()) {
      EXPECT_EQ(lb->first, rlb->first) << k;
    }
    EXPECT_EQ(ub == m.end(), rub == ref.end()) << k;
    if (rub != ref.end() && ub != m.end()) {
      EXPECT_EQ(ub->first, rub->first) << k;
    }
    EXPECT_EQ(f == m.end(), rf == ref.end()) << k;
    if (rf != ref.end() && f != m.end()) {
      EXPECT_EQ(f->second, rf->second) << k;
    }
    EXPECT_EQ(m.count(k), ref.count(k)) << k;
    // Iterating from a bound visits the rest in order.
    size_t rest = 0;
    for (auto it = lb; it != m.end(); ++it) ++rest;
    EXPECT_EQ(rest, static_cast<size_t>(std::distance(rlb, ref.end()))) << k;
  }
}

TEST(PersistentMapTest, CopiesDoNotSeeLaterChanges) {
  Map m;
  for (int i = 0; i < 100; ++i) m.Put(i, absl::StrCat("v", i));
  const Map snapshot = m;
  m.Put(50, "changed");
  m.Put(1000, "new");
  EXPECT_EQ(snapshot.size(), 100u);
  EXPECT_EQ(snapshot.find(50)->second, "v50");
  EXPECT_TRUE(snapshot.find(1000) == snapshot.end());
  EXPECT_EQ(m.find(50)->second, "changed");
  EXPECT_EQ(m.size(), 101u);
  Map other = snapshot;
  other.Put(50, "other");
  EXPECT_EQ(m.find(50)->second, "changed");
  EXPECT_EQ(snapshot.find(50)->second, "v50");
}

TEST(PersistentMapTest, SnapshotsAreReadableWhileTheWriterContinues) {
  Map m;
  std::vector<Map> snapshots;
  for (int i = 0; i < 64; ++i) {
    m.Put(i, std::to_string(i));
    snapshots.push_back(m);
  }
  std::thread writer([&m] {
    for (int i = 64; i < 20000; ++i) m.Put(i % 5000, std::to_string(-i));
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&snapshots] {
      for (int round = 0; round < 50; ++round) {
        for (size_t s = 0; s < snapshots.size(); ++s) {
          size_t n = 0;
          for (auto it = snapshots[s].begin(); it != snapshots[s].end(); ++it) {
            EXPECT_EQ(it->second, std::to_string(it->first));
            ++n;
          }
          EXPECT_EQ(n, s + 1);
        }
      }
    });
  }
  writer.join();
  for (auto& r : readers) r.join();
  EXPECT_EQ(m.size(), 5000u);
}

TEST(PersistentMapTest, StaysBalanced) {
  Map ascending;
  for (int i = 0; i < 100000; ++i) ascending.Put(i, "");
  // AVL: height < 1.4405 log2(n + 2).
  EXPECT_LE(ascending.height(), static_cast<int>(1.4405 * std::log2(100002.0)));
  Map descending;
  for (int i = 100000; i > 0; --i) descending.Put(i, "");
  EXPECT_LE(descending.height(), static_cast<int>(1.4405 * std::log2(100002.0)));
  EXPECT_EQ(Map().height(), 0);
}

}  // namespace
}  // namespace ossgate::provenance
