// KV-cache bookkeeping: a pool of fixed-size blocks and a block table per
// sequence. Host-only (no CUDA), shared by the CPU and CUDA backends, which
// own the storage the block ids index.
//
// Full-attention layers need every position, so a sequence's full table grows
// by one block every block_size tokens. Sliding-window layers need only the
// last `window` positions, so each sequence gets a fixed ring of
// ceil(window / block_size) + 1 blocks from a second pool, reused cyclically:
// position p lives in ring block (p / block_size) % ring_size.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/status.h"

namespace ossgate::model {

using SeqId = int64_t;

struct KvCacheOptions {
  int block_size = 16;       // tokens per block
  int num_full_blocks = 0;   // pool for full-attention layers
  int max_sequences = 0;     // ring pool for sliding layers is sized for this many
};

// Where a position's K/V live: block id and slot inside the block.
struct KvSlot {
  int32_t block = 0;
  int32_t offset = 0;
};

class KvBlockManager {
 public:
  // window = 0 means the model has no sliding layers.
  KvBlockManager(const KvCacheOptions& options, int window);

  int block_size() const { return block_size_; }
  int ring_blocks() const { return ring_blocks_; }
  int num_full_blocks() const { return num_full_blocks_; }
  int num_ring_blocks_total() const { return ring_blocks_ * max_sequences_; }
  int free_full_blocks() const { return static_cast<int>(free_full_.size()); }
  int num_sequences() const { return static_cast<int>(seqs_.size()); }
  int max_sequences() const { return max_sequences_; }

  // Full blocks a sequence of `length` tokens occupies.
  int FullBlocksFor(int length) const { return (length + block_size_ - 1) / block_size_; }

  // Registers an empty sequence and gives it its sliding-window ring.
  // ResourceExhausted when max_sequences are live; AlreadyExists on reuse.
  absl::Status AddSequence(SeqId id);
  // Frees every block of the sequence; no-op for an unknown id.
  void RemoveSequence(SeqId id);
  bool HasSequence(SeqId id) const { return seqs_.count(id) != 0; }

  // Makes room for `n` more tokens (allocating full blocks). ResourceExhausted
  // (nothing allocated) when the pool is short.
  absl::Status Reserve(SeqId id, int n);
  // Marks `n` reserved tokens as written: the sequence length grows by n.
  void Commit(SeqId id, int n);

  int Length(SeqId id) const;
  KvSlot FullSlot(SeqId id, int pos) const;
  KvSlot WindowSlot(SeqId id, int pos) const;
  // Makes this manager's sequences, tables and free lists those of `other`
  // (a replica per GPU rank kept in step with the one the scheduler uses).
  // InvalidArgument if the two differ in block size, pool sizes or ring
  // length.
  absl::Status MirrorFrom(const KvBlockManager& other);
  const std::vector<int32_t>& FullTable(SeqId id) const { return seqs_.at(id).full; }
  const std::vector<int32_t>& RingTable(SeqId id) const { return seqs_.at(id).ring; }

 private:
  struct Seq {
    int length = 0;
    std::vector<int32_t> full;
    std::vector<int32_t> ring;
  };
  const int block_size_;
  const int num_full_blocks_;
  const int max_sequences_;
  const int ring_blocks_;
  std::vector<int32_t> free_full_;
  std::vector<int32_t> free_ring_;
  std::map<SeqId, Seq> seqs_;
};

}  // namespace ossgate::model
