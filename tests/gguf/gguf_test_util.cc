#include "tests/gguf/gguf_test_util.h"

#include <unistd.h>

#include <atomic>
#include <bit>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "gtest/gtest.h"

namespace ossgate::gguf::testing {

uint64_t SpecTensorBytes(uint32_t type, const std::vector<int64_t>& ne) {
  uint64_t block_elems = 0, block_bytes = 0;
  switch (type) {
    case kTypeF32: block_elems = 1, block_bytes = 4; break;
    case kTypeF16:
    case kTypeBF16: block_elems = 1, block_bytes = 2; break;
    case kTypeQ8_0: block_elems = 32, block_bytes = 34; break;
    case kTypeMXFP4: block_elems = 32, block_bytes = 17; break;
    // Blocks of 32 (ggml-common.h): Q5_0 fp16 d, 4 bytes of top bits, 16
    // nibble bytes; Q5_1 the same with an fp16 min after d.
    case kTypeQ5_0: block_elems = 32, block_bytes = 2 + 4 + 16; break;
    case kTypeQ5_1: block_elems = 32, block_bytes = 2 + 2 + 4 + 16; break;
    // k-quant super-blocks of 256 (ggml-common.h): Q4_K fp16 d, fp16 dmin,
    // 12 scale bytes, 128 quant bytes; Q6_K 128 + 64 quant bytes, 16 scales, fp16 d.
    case kTypeQ4_K: block_elems = 256, block_bytes = 2 + 2 + 12 + 128; break;
    case kTypeQ6_K: block_elems = 256, block_bytes = 128 + 64 + 16 + 2; break;
    // Q5_K: Q4_K's fields and 32 bytes of top bits before the 128 quant bytes.
    case kTypeQ5_K: block_elems = 256, block_bytes = 2 + 2 + 12 + 32 + 128; break;
    default: return 0;
  }
  uint64_t bytes = static_cast<uint64_t>(ne.at(0)) / block_elems * block_bytes;
  for (size_t i = 1; i < ne.size(); ++i) bytes *= static_cast<uint64_t>(ne[i]);
  return bytes;
}

void ByteWriter::F32(float v) { U32(std::bit_cast<uint32_t>(v)); }
void ByteWriter::F64(double v) { U64(std::bit_cast<uint64_t>(v)); }
void ByteWriter::Str(std::string_view s) {
  U64(s.size());
  b_.insert(b_.end(), s.begin(), s.end());
}

namespace enc {
namespace {
template <typename Fn>
std::vector<uint8_t> Typed(uint32_t type, Fn&& payload) {
  ByteWriter w;
  w.U32(type);
  payload(w);
  return std::move(w.bytes());
}
}  // namespace

std::vector<uint8_t> U8(uint8_t v) { return Typed(0, [&](ByteWriter& w) { w.U8(v); }); }
std::vector<uint8_t> I8(int8_t v) { return Typed(1, [&](ByteWriter& w) { w.U8(static_cast<uint8_t>(v)); }); }
std::vector<uint8_t> U16(uint16_t v) { return Typed(2, [&](ByteWriter& w) { w.U16(v); }); }
std::vector<uint8_t> I16(int16_t v) { return Typed(3, [&](ByteWriter& w) { w.U16(static_cast<uint16_t>(v)); }); }
std::vector<uint8_t> U32(uint32_t v) { return Typed(4, [&](ByteWriter& w) { w.U32(v); }); }
std::vector<uint8_t> I32(int32_t v) { return Typed(5, [&](ByteWriter& w) { w.U32(static_cast<uint32_t>(v)); }); }
std::vector<uint8_t> F32(float v) { return Typed(6, [&](ByteWriter& w) { w.F32(v); }); }
std::vector<uint8_t> Bool(uint8_t raw) { return Typed(7, [&](ByteWriter& w) { w.U8(raw); }); }
std::vector<uint8_t> Str(std::string_view s) { return Typed(8, [&](ByteWriter& w) { w.Str(s); }); }
std::vector<uint8_t> U64(uint64_t v) { return Typed(10, [&](ByteWriter& w) { w.U64(v); }); }
std::vector<uint8_t> I64(int64_t v) { return Typed(11, [&](ByteWriter& w) { w.I64(v); }); }
std::vector<uint8_t> F64(double v) { return Typed(12, [&](ByteWriter& w) { w.F64(v); }); }

std::vector<uint8_t> Array(uint32_t elem_type, uint64_t count, std::span<const uint8_t> elements) {
  return Typed(9, [&](ByteWriter& w) {
    w.U32(elem_type);
    w.U64(count);
    w.Raw(elements);
  });
}

std::vector<uint8_t> StrArray(const std::vector<std::string>& v) {
  ByteWriter e;
  for (const std::string& s : v) e.Str(s);
  return Array(8, v.size(), e.bytes());
}

std::vector<uint8_t> U32Array(const std::vector<uint32_t>& v) {
  ByteWriter e;
  for (uint32_t x : v) e.U32(x);
  return Array(4, v.size(), e.bytes());
}

std::vector<uint8_t> Raw(uint32_t type, std::span<const uint8_t> payload) {
  return Typed(type, [&](ByteWriter& w) { w.Raw(payload); });
}
}  // namespace enc

namespace {
uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
}  // namespace

void FileSpec::AddTensor(std::string name, uint32_t type, std::vector<int64_t> ne) {
  uint64_t offset = 0;
  if (!tensors.empty()) {
    const TensorSpec& last = tensors.back();
    offset = AlignUp(last.offset + SpecTensorBytes(last.type, last.ne), alignment);
  }
  tensors.push_back({std::move(name), type, std::move(ne), offset, std::nullopt});
}

Layout Build(const FileSpec& spec) {
  Layout l;
  ByteWriter w;
  w.U32(spec.magic);
  w.U32(spec.version);
  w.U64(spec.tensor_count.value_or(spec.tensors.size()));
  w.U64(spec.kv_count.value_or(spec.kv.size()));
  for (const KvSpec& kv : spec.kv) {
    l.key_at.push_back(w.size());
    w.Str(kv.key);
    l.value_at.push_back(w.size());
    w.Raw(kv.value);
  }
  uint64_t data_end = 0;
  for (const TensorSpec& t : spec.tensors) {
    l.info_at.push_back(w.size());
    w.Str(t.name);
    l.ndims_at.push_back(w.size());
    w.U32(t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())));
    l.ne_at.push_back(w.size());
    for (int64_t d : t.ne) w.I64(d);
    l.type_at.push_back(w.size());
    w.U32(t.type);
    l.offset_at.push_back(w.size());
    w.U64(t.offset);
    // Only sane tensors size the default data section (broken shapes and
    // offsets must not make the test allocate gigabytes).
    bool sane = !t.ne.empty() && t.offset < (1ull << 24);
    uint64_t elems = 1;
    for (int64_t d : t.ne) {
      sane = sane && d > 0 && d < (1ll << 24);
      if (sane) elems *= static_cast<uint64_t>(d);
      sane = sane && elems < (1ull << 24);
    }
    const uint64_t nbytes = sane ? SpecTensorBytes(t.type, t.ne) : 0;
    if (nbytes != 0) data_end = std::max(data_end, AlignUp(t.offset + nbytes, spec.alignment));
  }
  l.header_end = w.size();
  l.data_start = AlignUp(l.header_end, spec.alignment);
  l.bytes = std::move(w.bytes());
  l.bytes.resize(l.data_start, 0);
  const uint64_t data_bytes = spec.data_bytes.value_or(data_end);
  for (uint64_t i = 0; i < data_bytes; ++i) l.bytes.push_back(DataByte(i));
  return l;
}

FileSpec BaseSpec() {
  FileSpec s;
  s.kv.push_back({"general.architecture", enc::Str("gpt-oss")});
  s.kv.push_back({"gpt-oss.block_count", enc::U32(24)});
  s.kv.push_back({"tokenizer.ggml.tokens", enc::StrArray({"<|start|>", "hello", "world"})});
  s.AddTensor("a.weight", kTypeF32, {8, 2});
  s.AddTensor("b.weight", kTypeQ8_0, {64, 2});
  s.AddTensor("c.weight", kTypeMXFP4, {32, 3});
  return s;
}

ExactBuffer::ExactBuffer(std::span<const uint8_t> bytes)
    : data_(new uint8_t[bytes.size() + (bytes.empty() ? 1 : 0)]), size_(bytes.size()) {
  if (!bytes.empty()) std::memcpy(data_.get(), bytes.data(), bytes.size());
}

absl::StatusOr<std::vector<uint8_t>> WriteToBytes(GgufWriter& writer,
                                                  const std::vector<std::vector<uint8_t>>& tensor_data) {
  static std::atomic<int> counter{0};
  const std::string path = ::testing::TempDir() + "/ossgate_gguf_test_" + std::to_string(::getpid()) + "_" +
                           std::to_string(counter++) + ".gguf";
  if (auto s = writer.Begin(path); !s.ok()) {
    std::remove(path.c_str());
    return s;
  }
  for (const std::vector<uint8_t>& d : tensor_data) {
    if (auto s = writer.WriteTensorData(d); !s.ok()) {
      std::remove(path.c_str());
      return s;
    }
  }
  if (auto s = writer.Finish(); !s.ok()) {
    std::remove(path.c_str());
    return s;
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(path.c_str());
  return bytes;
}

std::optional<uint64_t> ReportedOffset(std::string_view message) {
  constexpr std::string_view kTag = " at byte offset ";
  const size_t at = message.find(kTag);
  if (at == std::string_view::npos) return std::nullopt;
  uint64_t v = 0;
  size_t i = at + kTag.size();
  if (i >= message.size() || message[i] < '0' || message[i] > '9') return std::nullopt;
  for (; i < message.size() && message[i] >= '0' && message[i] <= '9'; ++i) v = v * 10 + (message[i] - '0');
  return v;
}

}  // namespace ossgate::gguf::testing
