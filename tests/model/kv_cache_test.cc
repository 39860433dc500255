// KvBlockManager: block accounting of the full-attention pool, the
// sliding-window rings, and errors that leave the state unchanged.
#include "inference_worker/model/kv_cache.h"

#include <algorithm>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace ossgate::model {
namespace {

KvBlockManager Make(int block_size, int full_blocks, int max_seqs, int window) {
  KvCacheOptions o;
  o.block_size = block_size;
  o.num_full_blocks = full_blocks;
  o.max_sequences = max_seqs;
  return KvBlockManager(o, window);
}

// Everything observable about one sequence, to compare before/after.
struct SeqSnapshot {
  int length;
  std::vector<int32_t> full, ring;
  bool operator==(const SeqSnapshot&) const = default;
};
SeqSnapshot Snap(const KvBlockManager& kv, SeqId id) {
  return {kv.Length(id), kv.FullTable(id), kv.RingTable(id)};
}

// Appends n tokens the way a backend does: reserve, then commit.
void Append(KvBlockManager& kv, SeqId id, int n) {
  ASSERT_TRUE(kv.Reserve(id, n).ok());
  kv.Commit(id, n);
}

TEST(KvBlockManagerTest, GeometryFromOptions) {
  KvBlockManager kv = Make(16, 100, 4, 128);
  EXPECT_EQ(kv.block_size(), 16);
  EXPECT_EQ(kv.num_full_blocks(), 100);
  EXPECT_EQ(kv.free_full_blocks(), 100);
  EXPECT_EQ(kv.max_sequences(), 4);
  EXPECT_EQ(kv.ring_blocks(), 128 / 16 + 1);  // ceil(window / block) + 1
  EXPECT_EQ(kv.num_ring_blocks_total(), 9 * 4);
  EXPECT_EQ(Make(4, 10, 2, 5).ring_blocks(), 2 + 1);  // window not a multiple of the block
  EXPECT_EQ(Make(4, 10, 2, 0).ring_blocks(), 0);      // no sliding layers
  EXPECT_EQ(kv.FullBlocksFor(0), 0);
  EXPECT_EQ(kv.FullBlocksFor(1), 1);
  EXPECT_EQ(kv.FullBlocksFor(16), 1);
  EXPECT_EQ(kv.FullBlocksFor(17), 2);
}

TEST(KvBlockManagerTest, ReserveAllocatesWholeBlocksAndCommitGrowsTheLength) {
  KvBlockManager kv = Make(4, 10, 2, 0);
  ASSERT_TRUE(kv.AddSequence(7).ok());
  EXPECT_EQ(kv.Length(7), 0);
  EXPECT_TRUE(kv.FullTable(7).empty());
  ASSERT_TRUE(kv.Reserve(7, 5).ok());  // 5 tokens -> 2 blocks
  EXPECT_EQ(kv.FullTable(7).size(), 2u);
  EXPECT_EQ(kv.free_full_blocks(), 8);
  EXPECT_EQ(kv.Length(7), 0);  // reserved, not yet written
  kv.Commit(7, 5);
  EXPECT_EQ(kv.Length(7), 5);
  ASSERT_TRUE(kv.Reserve(7, 3).ok());  // 8 tokens still fit in 2 blocks
  EXPECT_EQ(kv.free_full_blocks(), 8);
  kv.Commit(7, 3);
  ASSERT_TRUE(kv.Reserve(7, 1).ok());  // token 9 needs a third block
  EXPECT_EQ(kv.free_full_blocks(), 7);
  kv.Commit(7, 1);
  EXPECT_EQ(kv.Length(7), 9);
}

TEST(KvBlockManagerTest, RandomAppendsKeepAccountingAndDisjointBlocks) {
  // Several sequences append random amounts and some are removed; at every
  // step the free count plus every table's size is the pool, no block is in
  // two tables, and each table holds exactly ceil(length / block) blocks.
  KvBlockManager kv = Make(8, 64, 5, 24);
  std::mt19937_64 rng(3);
  std::set<SeqId> live;
  for (int step = 0; step < 2000; ++step) {
    const SeqId id = static_cast<SeqId>(rng() % 8);
    const int action = static_cast<int>(rng() % 10);
    if (!kv.HasSequence(id)) {
      if (kv.AddSequence(id).ok()) live.insert(id);
    } else if (action == 0) {
      kv.RemoveSequence(id);
      live.erase(id);
    } else {
      const int n = 1 + static_cast<int>(rng() % 20);
      if (kv.Reserve(id, n).ok()) kv.Commit(id, n);
    }
    int used = 0;
    std::set<int32_t> full_ids, ring_ids;
    for (SeqId s : live) {
      const auto& full = kv.FullTable(s);
      EXPECT_EQ(static_cast<int>(full.size()), kv.FullBlocksFor(kv.Length(s)));
      used += static_cast<int>(full.size());
      for (int32_t b : full) {
        EXPECT_TRUE(b >= 0 && b < kv.num_full_blocks()) << b;
        EXPECT_TRUE(full_ids.insert(b).second) << "full block " << b << " in two tables";
      }
      EXPECT_EQ(static_cast<int>(kv.RingTable(s).size()), kv.ring_blocks());
      for (int32_t b : kv.RingTable(s)) {
        EXPECT_TRUE(b >= 0 && b < kv.num_ring_blocks_total()) << b;
        EXPECT_TRUE(ring_ids.insert(b).second) << "ring block " << b << " in two rings";
      }
    }
    ASSERT_EQ(used + kv.free_full_blocks(), kv.num_full_blocks()) << "step " << step;
    ASSERT_EQ(kv.num_sequences(), static_cast<int>(live.size()));
  }
}

TEST(KvBlockManagerTest, AMirrorFollowsTheManagerItCopies) {
  KvBlockManager a = Make(4, 20, 3, 6), mirror = Make(4, 20, 3, 6);
  ASSERT_TRUE(a.AddSequence(7).ok());
  ASSERT_TRUE(a.AddSequence(9).ok());
  ASSERT_TRUE(a.Reserve(7, 10).ok());
  a.Commit(7, 10);
  ASSERT_TRUE(a.Reserve(9, 3).ok());
  a.Commit(9, 3);
  a.RemoveSequence(7);
  ASSERT_TRUE(a.AddSequence(11).ok());
  ASSERT_TRUE(mirror.MirrorFrom(a).ok());
  EXPECT_EQ(mirror.num_sequences(), 2);
  EXPECT_EQ(mirror.free_full_blocks(), a.free_full_blocks());
  for (SeqId id : {9, 11}) {
    ASSERT_TRUE(mirror.HasSequence(id));
    EXPECT_EQ(mirror.Length(id), a.Length(id));
    EXPECT_EQ(mirror.FullTable(id), a.FullTable(id));
    EXPECT_EQ(mirror.RingTable(id), a.RingTable(id));
  }
  EXPECT_FALSE(mirror.HasSequence(7));
  // The same reservation then takes the same blocks on both.
  ASSERT_TRUE(a.Reserve(11, 9).ok());
  ASSERT_TRUE(mirror.Reserve(11, 9).ok());
  EXPECT_EQ(mirror.FullTable(11), a.FullTable(11));
  // Another geometry is refused and leaves the mirror as it was.
  KvBlockManager other = Make(8, 20, 3, 6);
  const absl::Status s = mirror.MirrorFrom(other);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("block size 4 / 8"), std::string::npos) << s;
  EXPECT_TRUE(mirror.HasSequence(11));
}

TEST(KvBlockManagerTest, FullSlotsAreDistinctAndOrdered) {
  KvBlockManager kv = Make(4, 20, 3, 0);
  ASSERT_TRUE(kv.AddSequence(1).ok());
  ASSERT_TRUE(kv.AddSequence(2).ok());
  // Interleaved appends so the two tables' blocks interleave in the pool.
  for (int i = 0; i < 6; ++i) {
    Append(kv, 1, 3);
    Append(kv, 2, 2);
  }
  std::set<std::pair<int32_t, int32_t>> all;
  for (SeqId id : {1, 2}) {
    for (int p = 0; p < kv.Length(id); ++p) {
      const KvSlot s = kv.FullSlot(id, p);
      EXPECT_EQ(s.offset, p % 4);
      EXPECT_EQ(s.block, kv.FullTable(id)[p / 4]);
      EXPECT_TRUE(all.insert({s.block, s.offset}).second) << "seq " << id << " pos " << p;
    }
  }
}

TEST(KvBlockManagerTest, WindowSlotsOfTheLastWindowPositionsNeverCollide) {
  // The ring property the sliding layers rely on: for any position p, the
  // window positions p - window + 1 .. p live in distinct slots.
  for (auto [block, window] : std::vector<std::pair<int, int>>{{16, 128}, {4, 5}, {4, 8}, {3, 7}, {1, 1}, {8, 3}}) {
    KvBlockManager kv = Make(block, 4, 1, window);
    ASSERT_TRUE(kv.AddSequence(0).ok());
    const int ring_tokens = kv.ring_blocks() * block;
    ASSERT_GE(ring_tokens, window + block - 1) << "ring too small to hold a window that spans a partial block";
    for (int p = 0; p < 4 * ring_tokens; ++p) {
      std::set<std::pair<int32_t, int32_t>> slots;
      for (int q = std::max(0, p - window + 1); q <= p; ++q) {
        const KvSlot s = kv.WindowSlot(0, q);
        EXPECT_EQ(s.offset, q % block);
        EXPECT_TRUE(slots.insert({s.block, s.offset}).second)
            << "block " << block << " window " << window << ": pos " << q << " collides within the window of " << p;
      }
    }
  }
}

TEST(KvBlockManagerTest, WindowSlotsAreReusedAfterTheRing) {
  KvBlockManager kv = Make(4, 4, 2, 8);  // ring of 3 blocks = 12 slots
  ASSERT_TRUE(kv.AddSequence(0).ok());
  ASSERT_EQ(kv.ring_blocks(), 3);
  const std::vector<int32_t>& ring = kv.RingTable(0);
  for (int p = 0; p < 12; ++p) {
    const KvSlot s = kv.WindowSlot(0, p);
    EXPECT_EQ(s.block, ring[p / 4]);
    EXPECT_EQ(s.offset, p % 4);
    // 12 positions later the same slot comes round again.
    const KvSlot later = kv.WindowSlot(0, p + 12);
    EXPECT_EQ(later.block, s.block);
    EXPECT_EQ(later.offset, s.offset);
  }
}

TEST(KvBlockManagerTest, RingsAreGivenOnAddAndReturnedOnRemove) {
  KvBlockManager kv = Make(4, 4, 2, 8);
  ASSERT_TRUE(kv.AddSequence(0).ok());
  ASSERT_TRUE(kv.AddSequence(1).ok());
  std::set<int32_t> r0(kv.RingTable(0).begin(), kv.RingTable(0).end());
  for (int32_t b : kv.RingTable(1)) EXPECT_EQ(r0.count(b), 0u);
  kv.RemoveSequence(0);
  ASSERT_TRUE(kv.AddSequence(2).ok());  // gets the freed ring
  std::set<int32_t> r2(kv.RingTable(2).begin(), kv.RingTable(2).end());
  EXPECT_EQ(r2, r0);
}

TEST(KvBlockManagerTest, ReserveExhaustionChangesNothing) {
  KvBlockManager kv = Make(4, 5, 2, 8);
  ASSERT_TRUE(kv.AddSequence(1).ok());
  ASSERT_TRUE(kv.AddSequence(2).ok());
  Append(kv, 1, 10);  // 3 blocks
  Append(kv, 2, 2);   // 1 block
  const SeqSnapshot before1 = Snap(kv, 1), before2 = Snap(kv, 2);
  const int free_before = kv.free_full_blocks();
  ASSERT_EQ(free_before, 1);
  // 2 more tokens fit block 3 of seq 1; 7 need two new blocks: only one is free.
  const absl::Status s = kv.Reserve(1, 7);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(kv.free_full_blocks(), free_before);
  EXPECT_TRUE(Snap(kv, 1) == before1);
  EXPECT_TRUE(Snap(kv, 2) == before2);
  // The one free block is still usable.
  EXPECT_TRUE(kv.Reserve(1, 6).ok());
  EXPECT_EQ(kv.free_full_blocks(), 0);
}

TEST(KvBlockManagerTest, SequenceSlotExhaustionChangesNothing) {
  KvBlockManager kv = Make(4, 8, 2, 8);
  ASSERT_TRUE(kv.AddSequence(1).ok());
  ASSERT_TRUE(kv.AddSequence(2).ok());
  const SeqSnapshot before1 = Snap(kv, 1), before2 = Snap(kv, 2);
  const absl::Status s = kv.AddSequence(3);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_FALSE(kv.HasSequence(3));
  EXPECT_EQ(kv.num_sequences(), 2);
  EXPECT_TRUE(Snap(kv, 1) == before1);
  EXPECT_TRUE(Snap(kv, 2) == before2);
  kv.RemoveSequence(1);
  EXPECT_TRUE(kv.AddSequence(3).ok());  // the slot came back
}

TEST(KvBlockManagerTest, DuplicateAddIsAlreadyExistsAndKeepsTheSequence) {
  KvBlockManager kv = Make(4, 8, 3, 8);
  ASSERT_TRUE(kv.AddSequence(1).ok());
  Append(kv, 1, 6);
  const SeqSnapshot before = Snap(kv, 1);
  const int free_before = kv.free_full_blocks();
  EXPECT_EQ(kv.AddSequence(1).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(Snap(kv, 1) == before);
  EXPECT_EQ(kv.free_full_blocks(), free_before);
  EXPECT_EQ(kv.num_sequences(), 1);
}

TEST(KvBlockManagerTest, UnknownSequences) {
  KvBlockManager kv = Make(4, 8, 2, 8);
  EXPECT_EQ(kv.Reserve(42, 1).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(kv.Length(42), 0);
  kv.RemoveSequence(42);  // no-op
  EXPECT_EQ(kv.free_full_blocks(), 8);
  EXPECT_EQ(kv.num_sequences(), 0);
}

TEST(KvBlockManagerTest, RemoveReturnsEveryBlockForReuse) {
  KvBlockManager kv = Make(4, 6, 2, 4);
  ASSERT_TRUE(kv.AddSequence(1).ok());
  Append(kv, 1, 24);  // the whole pool
  EXPECT_EQ(kv.free_full_blocks(), 0);
  ASSERT_TRUE(kv.AddSequence(2).ok());
  EXPECT_EQ(kv.Reserve(2, 1).code(), absl::StatusCode::kResourceExhausted);
  kv.RemoveSequence(1);
  EXPECT_EQ(kv.free_full_blocks(), 6);
  EXPECT_FALSE(kv.HasSequence(1));
  Append(kv, 2, 24);
  EXPECT_EQ(kv.free_full_blocks(), 0);
  EXPECT_EQ(kv.Length(2), 24);
}

TEST(KvBlockManagerTest, ReserveZeroIsANoOp) {
  KvBlockManager kv = Make(4, 2, 1, 0);
  ASSERT_TRUE(kv.AddSequence(1).ok());
  EXPECT_TRUE(kv.Reserve(1, 0).ok());
  EXPECT_EQ(kv.free_full_blocks(), 2);
}

}  // namespace
}  // namespace ossgate::model
