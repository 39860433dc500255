// RFC 6962 / RFC 9162 Merkle tree hashing, incremental appends, proof
// generation and proof verification.
//
//   leaf hash  = SHA-256(0x00 || record)
//   node hash  = SHA-256(0x01 || left || right)
//   MTH({})    = SHA-256("")
//
// Nodes are addressed as (level, index): level 0 holds leaf hashes, node
// (l, i) is the root of the perfect subtree over leaves [i*2^l, (i+1)*2^l).
// Only perfect subtrees are ever stored; the hash of any other range is
// folded from its perfect pieces.
//
// Thread-safety: free functions are pure; CompactRange is a value type with
// no internal locking.
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_MERKLE_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_MERKLE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ossgate::provenance {

using Hash = std::array<uint8_t, 32>;

Hash LeafHash(std::string_view record);
Hash NodeHash(const Hash& left, const Hash& right);
Hash EmptyTreeHash();

std::string HashBytes(const Hash& h);
// INVALID_ARGUMENT unless exactly 32 bytes.
absl::StatusOr<Hash> HashFromBytes(std::string_view bytes);
std::string HashHex(const Hash& h);

// The right edge of a tree built by appending leaves: the roots of the
// perfect subtrees that tile [0, size), largest first. O(log n) memory;
// Append is amortised O(1) hashes, Root O(log n).
class CompactRange {
 public:
  CompactRange() = default;

  // (level, index) of the perfect subtrees tiling [0, size), largest first.
  static std::vector<std::pair<int, uint64_t>> Tiling(uint64_t size);
  // Rebuilds the range for `size` from the hashes of Tiling(size), in order.
  static absl::StatusOr<CompactRange> FromTiling(uint64_t size, std::vector<Hash> hashes);

  uint64_t size() const { return size_; }

  // Appends one leaf hash. `on_node` (may be empty) is called for each perfect
  // subtree completed by this append at level >= 1, lowest level first, so the
  // caller can persist interior nodes.
  void Append(const Hash& leaf,
              const std::function<void(int level, uint64_t index, const Hash& hash)>& on_node);

  // MTH of the leaves appended so far.
  Hash Root() const;

 private:
  uint64_t size_ = 0;
  std::vector<Hash> hashes_;  // matches Tiling(size_)
};

// Read access to stored perfect-subtree hashes (level 0 = leaf hashes).
class NodeReader {
 public:
  virtual ~NodeReader() = default;
  virtual absl::StatusOr<Hash> Node(int level, uint64_t index) = 0;
};

// MTH of leaves [begin, end) where begin is a multiple of the smallest power
// of two >= end - begin (true for every range the RFC recursion visits, and
// for [0, n)).
absl::StatusOr<Hash> RangeHash(NodeReader& nodes, uint64_t begin, uint64_t end);

// RFC 9162 §2.1.3.1 inclusion path of leaf `index` in the tree of `size`.
absl::StatusOr<std::vector<Hash>> InclusionProof(NodeReader& nodes, uint64_t index, uint64_t size);
// RFC 9162 §2.1.4.1 consistency proof from `size1` to `size2`
// (0 < size1 <= size2).
absl::StatusOr<std::vector<Hash>> ConsistencyProof(NodeReader& nodes, uint64_t size1,
                                                   uint64_t size2);

// RFC 9162 §2.1.3.2. OK iff `proof` proves `leaf` at `index` in the tree of
// `size` with root `root`; otherwise UNAUTHENTICATED/INVALID_ARGUMENT.
absl::Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf,
                             const std::vector<Hash>& proof, const Hash& root);
// RFC 9162 §2.1.4.2, extended with the trivial cases size1 == 0 (empty
// proof, always consistent) and size1 == size2 (empty proof, equal roots).
absl::Status VerifyConsistency(uint64_t size1, uint64_t size2, const Hash& root1,
                               const Hash& root2, const std::vector<Hash>& proof);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_MERKLE_H_
