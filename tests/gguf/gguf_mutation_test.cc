// Seeded mutation test: valid files with bytes flipped, overwritten with
// boundary values, inserted, deleted or truncated. Parse must return OK or
// InvalidArgument and nothing else; a file it accepts must satisfy every
// invariant the rest of the engine relies on, checked by touching each
// tensor's bytes (ASan/UBSan build: any read outside the buffer aborts).
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/gguf/gguf.h"
#include "tests/gguf/gguf_test_util.h"

namespace ossgate::gguf::testing {
namespace {

constexpr int kMutationsPerSeedFile = 1200;

std::vector<std::vector<uint8_t>> SeedFiles() {
  std::vector<std::vector<uint8_t>> files;
  files.push_back(Build(BaseSpec()).bytes);
  {  // every value type, v2, alignment 64, all tensor types, 4-D shape
    FileSpec s;
    s.version = 2;
    s.alignment = 64;
    s.kv = {{"general.alignment", enc::U32(64)},
            {"u8", enc::U8(1)},
            {"i16", enc::I16(-2)},
            {"f64", enc::F64(0.5)},
            {"bool", enc::Bool(1)},
            {"i64", enc::I64(-9)},
            {"bools", enc::Array(7, 3, std::vector<uint8_t>{1, 0, 1})},
            {"u32s", enc::U32Array({1, 2, 3, 4})},
            {"strs", enc::StrArray({"a", "bc", ""})}};
    s.AddTensor("f16", kTypeF16, {4, 3});
    s.AddTensor("bf16", kTypeBF16, {2, 2, 2, 2});
    s.AddTensor("q8", kTypeQ8_0, {32, 2});
    s.AddTensor("mx", kTypeMXFP4, {64, 1, 2});
    s.AddTensor("f32", kTypeF32, {3});
    files.push_back(Build(s).bytes);
  }
  {  // metadata only
    FileSpec s;
    s.kv = {{"k", enc::Str("value")}, {"n", enc::U64(7)}};
    files.push_back(Build(s).bytes);
  }
  return files;
}

// Values chosen to hit limits and overflow paths when written over a field.
constexpr uint64_t kInteresting[] = {0,          1,          2,          3,           4,          5,
                                     7,          8,          31,         32,          33,         63,
                                     64,         0x7F,       0x80,       0xFF,        0x100,      0xFFFF,
                                     0x10000,    0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,  1ull << 32, 1ull << 40,
                                     1ull << 62, 1ull << 63, ~0ull,      ~0ull - 31,  ~0ull >> 1};

std::vector<uint8_t> Mutate(const std::vector<uint8_t>& in, std::mt19937_64& rng) {
  std::vector<uint8_t> b = in;
  auto pick = [&](uint64_t n) { return n == 0 ? 0 : std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
  // Most fields live in the header, so aim there more often than at tensor data.
  auto pos = [&] { return pick(2) == 0 ? pick(std::min<uint64_t>(b.size(), 400)) : pick(b.size()); };
  const int n_edits = 1 + static_cast<int>(pick(3));
  for (int e = 0; e < n_edits && !b.empty(); ++e) {
    switch (pick(7)) {
      case 0:  // flip one bit
        b[pos()] ^= static_cast<uint8_t>(1u << pick(8));
        break;
      case 1:  // random byte
        b[pos()] = static_cast<uint8_t>(pick(256));
        break;
      case 2:  // interesting value over 1, 2, 4 or 8 bytes
      case 3: {
        const uint64_t v = kInteresting[pick(std::size(kInteresting))];
        const int width = 1 << pick(4);
        const uint64_t at = pos();
        for (int i = 0; i < width && at + i < b.size(); ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
        break;
      }
      case 4:  // truncate
        b.resize(pick(b.size()));
        break;
      case 5: {  // delete a short run
        const uint64_t at = pos();
        const uint64_t n = std::min<uint64_t>(1 + pick(16), b.size() - at);
        b.erase(b.begin() + at, b.begin() + at + n);
        break;
      }
      case 6: {  // insert a short run of random bytes
        const uint64_t at = pick(b.size() + 1);
        const uint64_t n = 1 + pick(16);
        std::vector<uint8_t> ins(n);
        for (auto& x : ins) x = static_cast<uint8_t>(pick(256));
        b.insert(b.begin() + at, ins.begin(), ins.end());
        break;
      }
    }
  }
  return b;
}

// Invariants of an accepted file. Returns a checksum of everything touched so
// the reads cannot be optimised away.
double CheckAccepted(const GgufFile& f, std::span<const uint8_t> bytes) {
  double sum = 0;
  EXPECT_TRUE(f.version() == 2 || f.version() == 3);
  EXPECT_EQ(f.alignment() & (f.alignment() - 1), 0u);
  EXPECT_EQ(f.file_size(), bytes.size());
  for (const auto& [key, value] : f.metadata()) {
    EXPECT_FALSE(key.empty());
    EXPECT_EQ(f.FindKey(key), &value);
    if (value.type == ValueType::kArray) {
      EXPECT_NE(value.array_type, ValueType::kArray);
    }
  }
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<float> row;
  for (const TensorInfo& t : f.tensors()) {
    EXPECT_FALSE(t.name.empty());
    EXPECT_LE(t.name.size(), 63u);
    EXPECT_EQ(f.FindTensor(t.name), &t);
    EXPECT_TRUE(t.n_dims >= 1 && t.n_dims <= 4);
    const auto traits = GetTypeTraits(static_cast<uint32_t>(t.type));
    EXPECT_TRUE(traits.has_value());
    if (!traits) continue;
    EXPECT_EQ(t.ne[0] % traits->block_elems, 0);
    EXPECT_EQ(static_cast<int64_t>(t.nbytes), RowBytes(t.type, t.ne[0]) * t.rows());
    EXPECT_EQ(t.offset % f.alignment(), 0u);
    EXPECT_GE(t.data, bytes.data());
    EXPECT_LE(t.data + t.nbytes, bytes.data() + bytes.size());
    EXPECT_EQ(t.data, bytes.data() + f.data_offset() + t.offset);
    ranges.emplace_back(t.offset, t.offset + t.nbytes);
    // Decode every row: reads exactly the bytes the tensor claims.
    row.resize(static_cast<size_t>(t.ne[0]));
    for (int64_t r = 0; r < t.rows(); ++r) {
      DequantizeRow(t.type, t.data + r * t.row_bytes(), row.data(), t.ne[0]);
      for (float x : row) sum += x == x ? 0.0 : 1.0;
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) EXPECT_LE(ranges[i - 1].second, ranges[i].first) << "overlap";
  return sum;
}

TEST(GgufMutationTest, MutatedFilesAreAcceptedConsistentlyOrRejectedCleanly) {
  std::mt19937_64 rng(0x6775756620u);  // fixed seed: failures reproduce
  int accepted = 0, rejected = 0;
  double checksum = 0;
  const auto seeds = SeedFiles();
  for (size_t s = 0; s < seeds.size(); ++s) {
    ASSERT_TRUE(GgufFile::Parse(seeds[s]).ok()) << "seed file " << s << " must be valid";
    for (int i = 0; i < kMutationsPerSeedFile; ++i) {
      const std::vector<uint8_t> mutated = Mutate(seeds[s], rng);
      ExactBuffer buf(mutated);
      const auto f = GgufFile::Parse(buf.span());
      if (f.ok()) {
        ++accepted;
        checksum += CheckAccepted(*f, buf.span());
      } else {
        ++rejected;
        ASSERT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument)
            << "seed " << s << " mutation " << i << ": " << f.status();
        const auto at = ReportedOffset(std::string(f.status().message()));
        ASSERT_TRUE(at.has_value()) << f.status();
        ASSERT_LE(*at, mutated.size()) << f.status();
      }
      if (::testing::Test::HasFailure()) {
        FAIL() << "seed " << s << " mutation " << i;
      }
    }
  }
  // Both outcomes must be exercised or the test proves little.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 1000);
  RecordProperty("accepted", accepted);
  RecordProperty("rejected", rejected);
  EXPECT_GE(checksum, 0.0);
}

TEST(GgufMutationTest, EverySingleByteOverwriteOfTheHeaderIsHandled) {
  // Exhaustive over the base file's header: each byte set to each of a few
  // values (including ones that make lengths and counts huge).
  const Layout l = Build(BaseSpec());
  for (uint64_t at = 0; at < l.data_start; ++at) {
    for (uint8_t v : {uint8_t{0x00}, uint8_t{0x01}, uint8_t{0x7F}, uint8_t{0x80}, uint8_t{0xFF}}) {
      std::vector<uint8_t> b = l.bytes;
      b[at] = v;
      ExactBuffer buf(b);
      const auto f = GgufFile::Parse(buf.span());
      if (f.ok()) {
        CheckAccepted(*f, buf.span());
      } else {
        ASSERT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << at << ": " << f.status();
      }
    }
  }
}

}  // namespace
}  // namespace ossgate::gguf::testing
