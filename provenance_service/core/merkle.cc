#include "provenance_service/core/merkle.h"

#include <openssl/evp.h>

#include <bit>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/token/encoding.h"

namespace ossgate::provenance {
namespace {

// Largest power of two strictly less than n (n >= 2).
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

}  // namespace

namespace {

// One reusable digest context per thread: the tree code hashes tiny inputs in
// tight loops, where allocating a context per hash would dominate.
Hash Digest2(const unsigned char prefix, const void* a, size_t a_len, const void* b, size_t b_len) {
  struct CtxDeleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  thread_local std::unique_ptr<EVP_MD_CTX, CtxDeleter> holder(EVP_MD_CTX_new());
  EVP_MD_CTX* ctx = holder.get();
  // Fetched once: OpenSSL 3 would otherwise look the algorithm up per Init.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  Hash out;
  unsigned int len = 0;
  if (ctx == nullptr || sha256 == nullptr || EVP_DigestInit_ex2(ctx, sha256, nullptr) != 1 ||
      EVP_DigestUpdate(ctx, &prefix, 1) != 1 || EVP_DigestUpdate(ctx, a, a_len) != 1 ||
      (b_len > 0 && EVP_DigestUpdate(ctx, b, b_len) != 1) ||
      EVP_DigestFinal_ex(ctx, out.data(), &len) != 1 || len != out.size()) {
    abort();  // a built-in digest failing is a broken invariant
  }
  return out;
}

}  // namespace

Hash LeafHash(std::string_view record) {
  return Digest2(0x00, record.data(), record.size(), nullptr, 0);
}

Hash NodeHash(const Hash& left, const Hash& right) {
  return Digest2(0x01, left.data(), left.size(), right.data(), right.size());
}

Hash EmptyTreeHash() {
  Hash out;
  unsigned int len = 0;
  if (EVP_Digest(nullptr, 0, out.data(), &len, EVP_sha256(), nullptr) != 1) abort();
  return out;
}

std::string HashBytes(const Hash& h) { return std::string(reinterpret_cast<const char*>(h.data()), h.size()); }

absl::StatusOr<Hash> HashFromBytes(std::string_view bytes) {
  if (bytes.size() != 32) {
    return absl::InvalidArgumentError(absl::StrCat("hash must be 32 bytes, got ", bytes.size()));
  }
  Hash h;
  std::memcpy(h.data(), bytes.data(), 32);
  return h;
}

std::string HashHex(const Hash& h) { return token::HexEncode(HashBytes(h)); }

// ---- CompactRange ----

std::vector<std::pair<int, uint64_t>> CompactRange::Tiling(uint64_t size) {
  std::vector<std::pair<int, uint64_t>> out;
  uint64_t begin = 0;
  for (int level = 63; level >= 0; --level) {
    uint64_t width = uint64_t{1} << level;
    if (size & width) {
      out.emplace_back(level, begin >> level);
      begin += width;
    }
  }
  return out;
}

absl::StatusOr<CompactRange> CompactRange::FromTiling(uint64_t size, std::vector<Hash> hashes) {
  if (hashes.size() != static_cast<size_t>(std::popcount(size))) {
    return absl::InvalidArgumentError("compact range: wrong number of hashes for size");
  }
  CompactRange r;
  r.size_ = size;
  r.hashes_ = std::move(hashes);
  return r;
}

void CompactRange::Append(
    const Hash& leaf,
    const std::function<void(int level, uint64_t index, const Hash& hash)>& on_node) {
  const uint64_t index = size_;
  hashes_.push_back(leaf);
  ++size_;
  // Appending leaf `index` completes one perfect subtree per trailing one bit
  // of `index`: merge the two rightmost hashes that many times.
  int merges = std::countr_one(index);
  for (int level = 1; level <= merges; ++level) {
    Hash right = hashes_.back();
    hashes_.pop_back();
    Hash merged = NodeHash(hashes_.back(), right);
    hashes_.back() = merged;
    if (on_node) on_node(level, index >> level, merged);
  }
}

Hash CompactRange::Root() const {
  if (hashes_.empty()) return EmptyTreeHash();
  Hash h = hashes_.back();
  for (size_t i = hashes_.size() - 1; i-- > 0;) h = NodeHash(hashes_[i], h);
  return h;
}

// ---- proofs ----

absl::StatusOr<Hash> RangeHash(NodeReader& nodes, uint64_t begin, uint64_t end) {
  if (begin >= end) return absl::InvalidArgumentError("empty range");
  // Greedy tiling into aligned perfect subtrees, then fold from the right.
  std::vector<Hash> pieces;
  uint64_t pos = begin;
  while (pos < end) {
    int level = pos == 0 ? 63 : std::countr_zero(pos);
    while (level > 0 && (level >= 64 || pos + (uint64_t{1} << level) > end)) --level;
    auto h = nodes.Node(level, pos >> level);
    if (!h.ok()) return h.status();
    pieces.push_back(*h);
    pos += uint64_t{1} << level;
  }
  Hash h = pieces.back();
  for (size_t i = pieces.size() - 1; i-- > 0;) h = NodeHash(pieces[i], h);
  return h;
}

namespace {

// PATH(m, D[begin:end]) from RFC 9162 §2.1.3.1, appended leaf-to-root.
absl::Status Path(NodeReader& nodes, uint64_t m, uint64_t begin, uint64_t end,
                  std::vector<Hash>* out) {
  uint64_t n = end - begin;
  if (n <= 1) return absl::OkStatus();
  uint64_t k = SplitPoint(n);
  absl::StatusOr<Hash> sibling;
  if (m < k) {
    if (auto s = Path(nodes, m, begin, begin + k, out); !s.ok()) return s;
    sibling = RangeHash(nodes, begin + k, end);
  } else {
    if (auto s = Path(nodes, m - k, begin + k, end, out); !s.ok()) return s;
    sibling = RangeHash(nodes, begin, begin + k);
  }
  if (!sibling.ok()) return sibling.status();
  out->push_back(*sibling);
  return absl::OkStatus();
}

// SUBPROOF(m, D[begin:end], b) from RFC 9162 §2.1.4.1.
absl::Status SubProof(NodeReader& nodes, uint64_t m, uint64_t begin, uint64_t end, bool b,
                      std::vector<Hash>* out) {
  uint64_t n = end - begin;
  if (m == n) {
    if (b) return absl::OkStatus();
    auto h = RangeHash(nodes, begin, end);
    if (!h.ok()) return h.status();
    out->push_back(*h);
    return absl::OkStatus();
  }
  uint64_t k = SplitPoint(n);
  absl::StatusOr<Hash> sibling;
  if (m <= k) {
    if (auto s = SubProof(nodes, m, begin, begin + k, b, out); !s.ok()) return s;
    sibling = RangeHash(nodes, begin + k, end);
  } else {
    if (auto s = SubProof(nodes, m - k, begin + k, end, false, out); !s.ok()) return s;
    sibling = RangeHash(nodes, begin, begin + k);
  }
  if (!sibling.ok()) return sibling.status();
  out->push_back(*sibling);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<Hash>> InclusionProof(NodeReader& nodes, uint64_t index, uint64_t size) {
  if (index >= size) {
    return absl::InvalidArgumentError(absl::StrCat("index ", index, " not below tree size ", size));
  }
  std::vector<Hash> out;
  if (auto s = Path(nodes, index, 0, size, &out); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<Hash>> ConsistencyProof(NodeReader& nodes, uint64_t size1,
                                                   uint64_t size2) {
  if (size1 == 0 || size1 > size2) {
    return absl::InvalidArgumentError(
        absl::StrCat("consistency proof needs 0 < from_size <= to_size, got ", size1, ", ", size2));
  }
  std::vector<Hash> out;
  if (size1 == size2) return out;
  if (auto s = SubProof(nodes, size1, 0, size2, true, &out); !s.ok()) return s;
  return out;
}

absl::Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf,
                             const std::vector<Hash>& proof, const Hash& root) {
  if (index >= size) return absl::InvalidArgumentError("inclusion: index not below tree size");
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf;
  for (const Hash& p : proof) {
    if (sn == 0) return absl::UnauthenticatedError("inclusion: proof too long");
    if ((fn & 1) == 1 || fn == sn) {
      r = NodeHash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::UnauthenticatedError("inclusion: proof too short");
  if (r != root) return absl::UnauthenticatedError("inclusion: root mismatch");
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t size1, uint64_t size2, const Hash& root1,
                               const Hash& root2, const std::vector<Hash>& proof) {
  if (size1 > size2) return absl::InvalidArgumentError("consistency: from_size > to_size");
  if (size1 == size2) {
    if (!proof.empty()) return absl::UnauthenticatedError("consistency: non-empty proof for equal sizes");
    if (root1 != root2) return absl::UnauthenticatedError("consistency: roots differ for equal sizes");
    return absl::OkStatus();
  }
  if (size1 == 0) {
    if (!proof.empty()) return absl::UnauthenticatedError("consistency: non-empty proof from size 0");
    return absl::OkStatus();
  }
  if (proof.empty()) return absl::UnauthenticatedError("consistency: empty proof");
  std::vector<Hash> path;
  path.reserve(proof.size() + 1);
  // If size1 is a power of two, its root is a node of the new tree and the
  // proof omits it.
  if (std::has_single_bit(size1)) path.push_back(root1);
  path.insert(path.end(), proof.begin(), proof.end());
  uint64_t fn = size1 - 1;
  uint64_t sn = size2 - 1;
  while ((fn & 1) == 1) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return absl::UnauthenticatedError("consistency: proof too long");
    if ((fn & 1) == 1 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::UnauthenticatedError("consistency: proof too short");
  if (fr != root1) return absl::UnauthenticatedError("consistency: first root mismatch");
  if (sr != root2) return absl::UnauthenticatedError("consistency: second root mismatch");
  return absl::OkStatus();
}

}  // namespace ossgate::provenance
