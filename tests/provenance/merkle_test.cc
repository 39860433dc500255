// RFC 6962 / RFC 9162 Merkle tree: hashing, incremental appends, proof
// generation and verification.
//
// Test vectors: the RFC 6962 reference tree of 8 leaves, its roots for sizes
// 1..8 and its inclusion/consistency proofs, as published in
// github.com/transparency-dev/merkle, proof/verify_test.go (carried over from
// google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc).
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "provenance_service/core/merkle.h"
#include "provenance_service/token/encoding.h"

namespace ossgate::provenance {
namespace {

Hash H(std::string_view hex) {
  auto bytes = token::HexDecode(hex);
  EXPECT_TRUE(bytes.has_value()) << hex;
  return *HashFromBytes(*bytes);
}

std::string Unhex(std::string_view hex) { return *token::HexDecode(hex); }

const std::vector<std::string>& Leaves() {
  static const auto* leaves = new std::vector<std::string>{
      "",
      Unhex("00"),
      Unhex("10"),
      Unhex("2021"),
      Unhex("3031"),
      Unhex("40414243"),
      Unhex("5051525354555657"),
      Unhex("606162636465666768696a6b6c6d6e6f"),
  };
  return *leaves;
}

const std::vector<Hash>& Roots() {
  static const auto* roots = new std::vector<Hash>{
      H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
      H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
      H("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
      H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
      H("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
      H("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
      H("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
      H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
  };
  return *roots;
}

struct InclusionVector {
  uint64_t leaf;  // 1-based, as in the source
  uint64_t size;
  std::vector<Hash> proof;
};

const std::vector<InclusionVector>& InclusionVectors() {
  static const auto* v = new std::vector<InclusionVector>{
      {1, 1, {}},
      {1, 8,
       {H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")}},
      {6, 8,
       {H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")}},
      {3, 3, {H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")}},
      {2, 5,
       {H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")}},
  };
  return *v;
}

struct ConsistencyVector {
  uint64_t size1, size2;
  std::vector<Hash> proof;
};

const std::vector<ConsistencyVector>& ConsistencyVectors() {
  static const auto* v = new std::vector<ConsistencyVector>{
      {1, 1, {}},
      {1, 8,
       {H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")}},
      {6, 8,
       {H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")}},
      {2, 5,
       {H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")}},
      {6, 7,
       {H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")}},
  };
  return *v;
}

// Node store filled through CompactRange::Append, i.e. exactly what the
// ledger persists.
class MemoryTree : public NodeReader {
 public:
  void Add(std::string_view record) {
    Hash leaf = LeafHash(record);
    nodes_[{0, range_.size()}] = leaf;
    range_.Append(leaf, [this](int level, uint64_t index, const Hash& h) { nodes_[{level, index}] = h; });
  }
  absl::StatusOr<Hash> Node(int level, uint64_t index) override {
    ++reads_;
    auto it = nodes_.find({level, index});
    if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("node ", level, "/", index));
    return it->second;
  }
  const CompactRange& range() const { return range_; }
  int reads_ = 0;

 private:
  CompactRange range_;
  std::map<std::pair<int, uint64_t>, Hash> nodes_;
};

// Reference MTH straight from the RFC definition.
Hash ReferenceRoot(const std::vector<std::string>& d, size_t begin, size_t end) {
  if (end - begin == 1) return LeafHash(d[begin]);
  size_t k = 1;
  while (k * 2 < end - begin) k *= 2;
  return NodeHash(ReferenceRoot(d, begin, begin + k), ReferenceRoot(d, begin + k, end));
}

TEST(MerkleTest, EmptyTreeHash) {
  EXPECT_EQ(HashHex(EmptyTreeHash()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(MerkleTest, IncrementalRootsMatchRfc6962Vectors) {
  MemoryTree tree;
  for (size_t i = 0; i < Leaves().size(); ++i) {
    tree.Add(Leaves()[i]);
    EXPECT_EQ(tree.range().Root(), Roots()[i]) << "size " << i + 1;
    auto r = RangeHash(tree, 0, i + 1);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, Roots()[i]);
  }
}

TEST(MerkleTest, InclusionProofsMatchRfc6962Vectors) {
  MemoryTree tree;
  for (const auto& leaf : Leaves()) tree.Add(leaf);
  for (const auto& v : InclusionVectors()) {
    SCOPED_TRACE(absl::StrCat("leaf ", v.leaf, " size ", v.size));
    auto proof = InclusionProof(tree, v.leaf - 1, v.size);
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_EQ(*proof, v.proof);
    Hash leaf = LeafHash(Leaves()[v.leaf - 1]);
    EXPECT_TRUE(VerifyInclusion(v.leaf - 1, v.size, leaf, v.proof, Roots()[v.size - 1]).ok());
  }
}

TEST(MerkleTest, CorruptedInclusionProofsFail) {
  for (const auto& v : InclusionVectors()) {
    if (v.proof.empty()) continue;
    SCOPED_TRACE(absl::StrCat("leaf ", v.leaf, " size ", v.size));
    const uint64_t i = v.leaf - 1;
    const Hash leaf = LeafHash(Leaves()[i]);
    const Hash& root = Roots()[v.size - 1];
    EXPECT_FALSE(VerifyInclusion(i + 1, v.size, leaf, v.proof, root).ok());
    if (i > 0) {
      EXPECT_FALSE(VerifyInclusion(i - 1, v.size, leaf, v.proof, root).ok());
    }
    EXPECT_FALSE(VerifyInclusion(i, v.size * 2, leaf, v.proof, root).ok());
    EXPECT_FALSE(VerifyInclusion(i, v.size, LeafHash("WrongLeaf"), v.proof, root).ok());
    EXPECT_FALSE(VerifyInclusion(i, v.size, leaf, v.proof, EmptyTreeHash()).ok());
    auto longer = v.proof;
    longer.push_back(root);
    EXPECT_FALSE(VerifyInclusion(i, v.size, leaf, longer, root).ok());
    auto shorter = v.proof;
    shorter.pop_back();
    EXPECT_FALSE(VerifyInclusion(i, v.size, leaf, shorter, root).ok());
    for (size_t k = 0; k < v.proof.size(); ++k) {
      auto bad = v.proof;
      bad[k][0] ^= 8;
      EXPECT_FALSE(VerifyInclusion(i, v.size, leaf, bad, root).ok()) << "bit flip in " << k;
    }
  }
}

TEST(MerkleTest, ConsistencyProofsMatchRfc6962Vectors) {
  MemoryTree tree;
  for (const auto& leaf : Leaves()) tree.Add(leaf);
  for (const auto& v : ConsistencyVectors()) {
    SCOPED_TRACE(absl::StrCat(v.size1, " -> ", v.size2));
    auto proof = ConsistencyProof(tree, v.size1, v.size2);
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_EQ(*proof, v.proof);
    const Hash& r1 = Roots()[v.size1 - 1];
    const Hash& r2 = Roots()[v.size2 - 1];
    EXPECT_TRUE(VerifyConsistency(v.size1, v.size2, r1, r2, v.proof).ok());
    if (v.proof.empty()) continue;
    EXPECT_FALSE(VerifyConsistency(v.size1, v.size2, r2, r1, v.proof).ok());
    EXPECT_FALSE(VerifyConsistency(v.size1, v.size2, r1, r2, {}).ok());
    EXPECT_FALSE(VerifyConsistency(v.size1 + 1, v.size2, r1, r2, v.proof).ok());
    EXPECT_FALSE(VerifyConsistency(v.size1, v.size2 * 2, r1, r2, v.proof).ok());
    auto longer = v.proof;
    longer.push_back(r2);
    EXPECT_FALSE(VerifyConsistency(v.size1, v.size2, r1, r2, longer).ok());
    auto shorter = v.proof;
    shorter.pop_back();
    EXPECT_FALSE(VerifyConsistency(v.size1, v.size2, r1, r2, shorter).ok());
    for (size_t k = 0; k < v.proof.size(); ++k) {
      auto bad = v.proof;
      bad[k][0] ^= 16;
      EXPECT_FALSE(VerifyConsistency(v.size1, v.size2, r1, r2, bad).ok()) << "bit flip in " << k;
    }
  }
}

TEST(MerkleTest, TrivialConsistencyCases) {
  Hash a = LeafHash("a"), b = LeafHash("b");
  EXPECT_TRUE(VerifyConsistency(0, 0, a, a, {}).ok());
  EXPECT_TRUE(VerifyConsistency(0, 5, a, b, {}).ok());
  EXPECT_FALSE(VerifyConsistency(0, 5, a, b, {a}).ok());
  EXPECT_FALSE(VerifyConsistency(3, 3, a, b, {}).ok());
  EXPECT_FALSE(VerifyConsistency(2, 1, a, b, {}).ok());
  EXPECT_FALSE(VerifyInclusion(0, 0, a, {}, a).ok());
}

TEST(MerkleTest, AllProofsUpTo70LeavesAgreeWithReference) {
  std::vector<std::string> data;
  MemoryTree tree;
  for (int i = 0; i < 70; ++i) {
    data.push_back(absl::StrCat("record-", i));
    tree.Add(data.back());
  }
  for (size_t n = 1; n <= data.size(); ++n) {
    Hash root = ReferenceRoot(data, 0, n);
    ASSERT_EQ(*RangeHash(tree, 0, n), root);
    for (size_t i = 0; i < n; ++i) {
      auto p = InclusionProof(tree, i, n);
      ASSERT_TRUE(p.ok());
      ASSERT_TRUE(VerifyInclusion(i, n, LeafHash(data[i]), *p, root).ok()) << i << "/" << n;
    }
    for (size_t m = 1; m <= n; ++m) {
      auto p = ConsistencyProof(tree, m, n);
      ASSERT_TRUE(p.ok());
      ASSERT_TRUE(VerifyConsistency(m, n, ReferenceRoot(data, 0, m), root, *p).ok()) << m << "->" << n;
    }
  }
}

TEST(MerkleTest, CompactRangeRoundTripsThroughTiling) {
  MemoryTree tree;
  for (int i = 0; i < 37; ++i) {
    tree.Add(absl::StrCat(i));
    uint64_t n = tree.range().size();
    std::vector<Hash> hashes;
    for (auto [level, index] : CompactRange::Tiling(n)) hashes.push_back(*tree.Node(level, index));
    auto rebuilt = CompactRange::FromTiling(n, hashes);
    ASSERT_TRUE(rebuilt.ok());
    EXPECT_EQ(rebuilt->Root(), tree.range().Root());
  }
  EXPECT_FALSE(CompactRange::FromTiling(5, {}).ok());
}

TEST(MerkleTest, ProofReadsAreLogarithmic) {
  MemoryTree tree;
  for (int i = 0; i < 5000; ++i) tree.Add(absl::StrCat(i));
  tree.reads_ = 0;
  ASSERT_TRUE(InclusionProof(tree, 1234, 4999).ok());
  EXPECT_LE(tree.reads_, 2 * 13 + 2);
  tree.reads_ = 0;
  ASSERT_TRUE(ConsistencyProof(tree, 1111, 4999).ok());
  EXPECT_LE(tree.reads_, 3 * 13 + 2);
}

TEST(MerkleTest, AppendIsIncremental) {
  // Every append hashes at most log2(n)+1 nodes: count on_node callbacks.
  CompactRange range;
  uint64_t callbacks = 0;
  for (int i = 0; i < 4096; ++i) {
    range.Append(LeafHash(absl::StrCat(i)), [&](int, uint64_t, const Hash&) { ++callbacks; });
  }
  EXPECT_EQ(callbacks, 4095u);  // one interior node per leaf, amortised
}

}  // namespace
}  // namespace ossgate::provenance
