// Valid GGUF files: writer -> reader round trips, layout and data pointers,
// typed getters, the writer's own checks, and every truncation of a valid file.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "tests/gguf/gguf_test_util.h"

namespace ossgate::gguf::testing {
namespace {

using ::testing::HasSubstr;

// Tensor bytes of the given length following the file's data pattern at `offset`.
std::vector<uint8_t> PatternBytes(uint64_t offset, uint64_t n) {
  std::vector<uint8_t> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = DataByte(offset + i);
  return v;
}

// --- The base file and the writer agree with the independent encoder -------------

TEST(GgufReaderTest, BaseFileParsesWithExactLayout) {
  const FileSpec spec = BaseSpec();
  const Layout l = Build(spec);
  ExactBuffer buf(l.bytes);
  auto f = GgufFile::Parse(buf.span());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->data_offset(), l.data_start);
  EXPECT_EQ(f->data_offset() % 32, 0u);
  EXPECT_EQ(f->file_size(), l.bytes.size());

  ASSERT_EQ(f->metadata().size(), 3u);
  EXPECT_EQ(f->metadata()[0].first, "general.architecture");  // file order kept
  EXPECT_EQ(f->metadata()[2].first, "tokenizer.ggml.tokens");
  EXPECT_EQ(*f->GetString("general.architecture"), "gpt-oss");
  EXPECT_EQ(*f->GetUint("gpt-oss.block_count"), 24u);
  EXPECT_THAT(**f->GetStringArray("tokenizer.ggml.tokens"), ::testing::ElementsAre("<|start|>", "hello", "world"));

  ASSERT_EQ(f->tensors().size(), 3u);
  struct Want {
    const char* name;
    GgmlType type;
    int n_dims;
    std::array<int64_t, 4> ne;
    uint64_t offset, nbytes;
  };
  const Want want[] = {
      {"a.weight", GgmlType::kF32, 2, {8, 2, 1, 1}, 0, 64},
      {"b.weight", GgmlType::kQ8_0, 2, {64, 2, 1, 1}, 64, 136},     // 2 blocks * 34 B * 2 rows
      {"c.weight", GgmlType::kMXFP4, 2, {32, 3, 1, 1}, 224, 51},    // 1 block * 17 B * 3 rows, offset 200 -> 224
  };
  for (size_t i = 0; i < 3; ++i) {
    const TensorInfo& t = f->tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, want[i].name);
    EXPECT_EQ(t.type, want[i].type);
    EXPECT_EQ(t.n_dims, want[i].n_dims);
    EXPECT_EQ(t.ne, want[i].ne);
    EXPECT_EQ(t.offset, want[i].offset);
    EXPECT_EQ(t.nbytes, want[i].nbytes);
    EXPECT_EQ(t.data, buf.span().data() + l.data_start + want[i].offset);
    EXPECT_EQ(t.data[0], DataByte(want[i].offset));
    EXPECT_EQ(t.data[t.nbytes - 1], DataByte(want[i].offset + t.nbytes - 1));
    EXPECT_EQ(f->FindTensor(want[i].name), &t);
  }
  EXPECT_EQ(f->tensors()[1].row_bytes(), 68u);
  EXPECT_EQ(f->tensors()[2].rows(), 3);
  EXPECT_EQ(f->tensors()[2].elements(), 96);
  EXPECT_EQ(f->tensors()[2].ShapeString(), "[32, 3]");
  EXPECT_EQ(f->FindTensor("missing"), nullptr);
  EXPECT_EQ(f->FindKey("missing"), nullptr);
}

// Q4_K and Q6_K tensors (ggml types 12 and 14) parse with their super-block
// sizes, from the independent encoder and from GgufWriter, and their bytes
// come back unchanged.
TEST(GgufReaderTest, KQuantTensorsParseWithTheirSuperBlockSizes) {
  FileSpec spec;
  spec.kv.push_back({"general.architecture", enc::Str("qwen2")});
  spec.AddTensor("blk.0.ffn_down.weight", kTypeQ4_K, {512, 3});  // 2 super-blocks x 144 B x 3 rows
  spec.AddTensor("output.weight", kTypeQ6_K, {256, 5, 2});       // 1 x 210 B x 10 rows
  const Layout l = Build(spec);
  ExactBuffer buf(l.bytes);
  auto f = GgufFile::Parse(buf.span());
  ASSERT_TRUE(f.ok()) << f.status();
  const TensorInfo& q4 = f->tensors()[0];
  const TensorInfo& q6 = f->tensors()[1];
  EXPECT_EQ(q4.type, GgmlType::kQ4_K);
  EXPECT_EQ(q4.nbytes, 864u);
  EXPECT_EQ(q4.row_bytes(), 288u);
  EXPECT_EQ(q6.type, GgmlType::kQ6_K);
  EXPECT_EQ(q6.offset, 864u);  // 864 = 27 * 32: already aligned
  EXPECT_EQ(q6.nbytes, 2100u);
  EXPECT_EQ(q6.row_bytes(), 210u);
  EXPECT_EQ(q6.data, buf.span().data() + l.data_start + 864);
  EXPECT_EQ(q6.data[q6.nbytes - 1], DataByte(864 + 2099));

  // The writer agrees, and quantized rows survive the trip.
  GgufWriter w;
  std::vector<float> x(512 * 3);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  std::vector<std::vector<uint8_t>> data(2);
  data[0].resize(864);
  data[1].resize(2100);
  QuantizeRow(GgmlType::kQ4_K, x.data(), data[0].data(), 512 * 3);
  QuantizeRow(GgmlType::kQ6_K, x.data(), data[1].data(), 256 * 5);
  QuantizeRow(GgmlType::kQ6_K, x.data(), data[1].data() + 1050, 256 * 5);
  ASSERT_EQ(*w.AddTensor("blk.0.ffn_down.weight", GgmlType::kQ4_K, {512, 3}), 864u);
  ASSERT_EQ(*w.AddTensor("output.weight", GgmlType::kQ6_K, {256, 5, 2}), 2100u);
  const auto bad = w.AddTensor("bad", GgmlType::kQ4_K, {64});
  ASSERT_FALSE(bad.ok()) << "a Q4_K row must hold whole super-blocks";
  EXPECT_THAT(std::string(bad.status().message()),
              ::testing::HasSubstr("ne[0]=64 is not a multiple of the Q4_K block size 256"));
  auto bytes = WriteToBytes(w, data);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto g = GgufFile::Parse(*bytes);
  ASSERT_TRUE(g.ok()) << g.status();
  std::vector<float> y(512 * 3);
  DequantizeRow(GgmlType::kQ4_K, g->tensors()[0].data, y.data(), 512 * 3);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], x[i], 0.1) << i;
  EXPECT_TRUE(std::equal(data[1].begin(), data[1].end(), g->tensors()[1].data));
}

TEST(GgufReaderTest, WriterOutputMatchesIndependentEncoding) {
  const FileSpec spec = BaseSpec();
  const Layout l = Build(spec);
  GgufWriter w;
  w.SetString("general.architecture", "gpt-oss");
  w.SetUint32("gpt-oss.block_count", 24);
  w.SetStringArray("tokenizer.ggml.tokens", {"<|start|>", "hello", "world"});
  std::vector<std::vector<uint8_t>> data;
  for (const TensorSpec& t : spec.tensors) {
    auto nbytes = w.AddTensor(t.name, static_cast<GgmlType>(t.type), t.ne);
    ASSERT_TRUE(nbytes.ok()) << nbytes.status();
    EXPECT_EQ(*nbytes, SpecTensorBytes(t.type, t.ne));
    data.push_back(PatternBytes(t.offset, *nbytes));
  }
  auto bytes = WriteToBytes(w, data);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_EQ(bytes->size(), l.bytes.size());
  // Header and padding identical; tensor bytes identical; the writer zeroes the gaps.
  EXPECT_TRUE(std::equal(bytes->begin(), bytes->begin() + l.data_start, l.bytes.begin()));
  for (const TensorSpec& t : spec.tensors) {
    const uint64_t at = l.data_start + t.offset, n = SpecTensorBytes(t.type, t.ne);
    EXPECT_TRUE(std::equal(bytes->begin() + at, bytes->begin() + at + n, l.bytes.begin() + at)) << t.name;
  }
  EXPECT_EQ((*bytes)[l.data_start + 64 + 136], 0) << "padding after b.weight must be zero";
}

// --- Round trips of every metadata value type --------------------------------------

MetadataValue Scalar(ValueType t, int64_t i = 0, double r = 0, std::string s = "") {
  MetadataValue v;
  v.type = t;
  v.integer = i;
  v.real = r;
  v.str = std::move(s);
  return v;
}

MetadataValue IntArray(ValueType et, std::vector<int64_t> xs) {
  MetadataValue v;
  v.type = ValueType::kArray;
  v.array_type = et;
  v.int_array = std::move(xs);
  return v;
}

MetadataValue RealArray(ValueType et, std::vector<double> xs) {
  MetadataValue v;
  v.type = ValueType::kArray;
  v.array_type = et;
  v.real_array = std::move(xs);
  return v;
}

MetadataValue StringArray(std::vector<std::string> xs) {
  MetadataValue v;
  v.type = ValueType::kArray;
  v.array_type = ValueType::kString;
  v.str_array = std::move(xs);
  return v;
}

bool SameValue(const MetadataValue& a, const MetadataValue& b) {
  if (a.type != b.type) return false;
  if (a.type == ValueType::kArray) {
    if (a.array_type != b.array_type || a.int_array != b.int_array || a.str_array != b.str_array) return false;
    if (a.real_array.size() != b.real_array.size()) return false;
    for (size_t i = 0; i < a.real_array.size(); ++i) {
      if (std::bit_cast<uint64_t>(a.real_array[i]) != std::bit_cast<uint64_t>(b.real_array[i])) return false;
    }
    return true;
  }
  if (a.is_float()) return std::bit_cast<uint64_t>(a.real) == std::bit_cast<uint64_t>(b.real);
  if (a.type == ValueType::kString) return a.str == b.str;
  return a.integer == b.integer;
}

TEST(GgufRoundTripTest, EveryValueTypeAndArrayTypeSurvivesWriterToReader) {
  constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
  const std::string binary("a\0b\xff\n\"'", 7);
  const std::vector<std::pair<std::string, MetadataValue>> values = {
      {"u8", Scalar(ValueType::kUint8, 255)},
      {"i8", Scalar(ValueType::kInt8, -128)},
      {"u16", Scalar(ValueType::kUint16, 65535)},
      {"i16", Scalar(ValueType::kInt16, -32768)},
      {"u32", Scalar(ValueType::kUint32, 4294967295)},
      {"i32", Scalar(ValueType::kInt32, -2147483648)},
      {"u64", Scalar(ValueType::kUint64, -1)},  // bit-cast 2^64 - 1
      {"i64", Scalar(ValueType::kInt64, kI64Min)},
      {"f32", Scalar(ValueType::kFloat32, 0, std::numeric_limits<float>::denorm_min())},
      {"f64", Scalar(ValueType::kFloat64, 0, -1.0 / 3.0)},
      {"f64.inf", Scalar(ValueType::kFloat64, 0, -std::numeric_limits<double>::infinity())},
      {"bool.true", Scalar(ValueType::kBool, 1)},
      {"bool.false", Scalar(ValueType::kBool, 0)},
      {"str", Scalar(ValueType::kString, 0, 0, "h\xc3\xa9llo \xf0\x9f\x98\x80")},
      {"str.binary", Scalar(ValueType::kString, 0, 0, binary)},
      {"str.empty", Scalar(ValueType::kString)},
      {"arr.u8", IntArray(ValueType::kUint8, {0, 1, 255})},
      {"arr.i8", IntArray(ValueType::kInt8, {-128, 127})},
      {"arr.u16", IntArray(ValueType::kUint16, {0, 65535})},
      {"arr.i16", IntArray(ValueType::kInt16, {-32768, 32767})},
      {"arr.u32", IntArray(ValueType::kUint32, {4294967295, 7})},
      {"arr.i32", IntArray(ValueType::kInt32, {-2147483648, 2147483647})},
      {"arr.u64", IntArray(ValueType::kUint64, {-1, 0, 1})},
      {"arr.i64", IntArray(ValueType::kInt64, {kI64Min, std::numeric_limits<int64_t>::max()})},
      {"arr.bool", IntArray(ValueType::kBool, {1, 0, 1})},
      {"arr.f32", RealArray(ValueType::kFloat32, {0.25, -std::numeric_limits<float>::max(), -0.0})},
      {"arr.f64", RealArray(ValueType::kFloat64, {1e-300, 1e300})},
      {"arr.str", StringArray({"", "a", binary, std::string(1000, 'z')})},
      {"arr.empty.u32", IntArray(ValueType::kUint32, {})},
      {"arr.empty.str", StringArray({})},
  };
  GgufWriter w;
  for (const auto& [k, v] : values) ASSERT_TRUE(w.SetValue(k, v).ok()) << k;
  auto bytes = WriteToBytes(w, {});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto f = GgufFile::Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->metadata().size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    SCOPED_TRACE(values[i].first);
    EXPECT_EQ(f->metadata()[i].first, values[i].first);
    EXPECT_TRUE(SameValue(f->metadata()[i].second, values[i].second));
  }
  EXPECT_EQ(f->FindKey("arr.str")->array_size(), 4u);
  EXPECT_EQ(f->FindKey("arr.empty.u32")->array_size(), 0u);
  EXPECT_EQ(f->FindKey("u64")->uint_value(), std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(f->tensors().empty());
}

TEST(GgufRoundTripTest, ConvenienceSettersSurviveWriterToReader) {
  GgufWriter w;
  w.SetUint32("u32", 4000000000u);
  w.SetInt32("i32", -7);
  w.SetUint64("u64", 1ull << 63);
  w.SetFloat32("f32", 150000.0f);
  w.SetBool("bool", true);
  w.SetString("str", "yarn");
  w.SetStringArray("strs", {"a", "", "c"});
  w.SetInt32Array("ints", {-1, 0, 2147483647});
  w.SetFloat32Array("floats", {1e-5f, -2.5f});
  auto bytes = WriteToBytes(w, {});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto f = GgufFile::Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->FindKey("u32")->type, ValueType::kUint32);
  EXPECT_EQ(*f->GetUint("u32"), 4000000000u);
  EXPECT_EQ(f->FindKey("i32")->type, ValueType::kInt32);
  EXPECT_EQ(f->FindKey("i32")->integer, -7);
  EXPECT_EQ(*f->GetUint("u64"), 1ull << 63);
  EXPECT_EQ(f->FindKey("f32")->type, ValueType::kFloat32);
  EXPECT_EQ(*f->GetFloat("f32"), 150000.0);
  EXPECT_EQ(f->FindKey("bool")->type, ValueType::kBool);
  EXPECT_EQ(f->FindKey("bool")->integer, 1);
  EXPECT_EQ(*f->GetString("str"), "yarn");
  EXPECT_THAT(**f->GetStringArray("strs"), ::testing::ElementsAre("a", "", "c"));
  EXPECT_THAT(**f->GetIntArray("ints"), ::testing::ElementsAre(-1, 0, 2147483647));
  EXPECT_EQ(f->FindKey("floats")->array_type, ValueType::kFloat32);
  EXPECT_THAT(f->FindKey("floats")->real_array, ::testing::ElementsAre(static_cast<double>(1e-5f), -2.5));
}

// --- Versions, alignment, data pointers --------------------------------------------

TEST(GgufReaderTest, Version2IsAcceptedWithTheSameContent) {
  Layout l = Build(BaseSpec());
  l.bytes[4] = 2;
  ExactBuffer buf(l.bytes);
  auto f = GgufFile::Parse(buf.span());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->tensors()[2].data, buf.span().data() + l.data_start + 224);
}

TEST(GgufReaderTest, GeneralAlignmentIsHonoured) {
  // Tensor sizes that are not multiples of 64, so 32-alignment would place them differently.
  GgufWriter w(64);
  w.SetString("general.architecture", "gpt-oss");
  const std::vector<std::tuple<std::string, GgmlType, std::vector<int64_t>>> tensors = {
      {"f16", GgmlType::kF16, {3, 5}},         // 30 bytes
      {"bf16", GgmlType::kBF16, {33}},         // 66 bytes
      {"q8", GgmlType::kQ8_0, {32, 3}},        // 102 bytes
      {"mx", GgmlType::kMXFP4, {64, 2, 3}},    // 204 bytes
      {"f32", GgmlType::kF32, {1, 1, 1, 1}},   // 4 bytes
  };
  std::vector<std::vector<uint8_t>> data;
  uint64_t expect_offset = 0;
  std::vector<uint64_t> offsets;
  for (const auto& [name, type, ne] : tensors) {
    auto n = w.AddTensor(name, type, ne);
    ASSERT_TRUE(n.ok()) << n.status();
    std::vector<uint8_t> d(*n);
    for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>(i * 7 + offsets.size() + 1);
    data.push_back(d);
    offsets.push_back(expect_offset);
    expect_offset += (*n + 63) / 64 * 64;
  }
  auto bytes = WriteToBytes(w, data);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto f = GgufFile::Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->FindKey("general.alignment")->type, ValueType::kUint32);
  EXPECT_EQ(*f->GetUint("general.alignment"), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  const uint64_t nbytes[] = {30, 66, 102, 204, 4};
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = f->tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.offset, offsets[i]);
    EXPECT_EQ(t.offset % 64, 0u);
    EXPECT_EQ(t.nbytes, nbytes[i]);
    EXPECT_EQ(t.data, bytes->data() + f->data_offset() + offsets[i]);
    EXPECT_TRUE(std::equal(data[i].begin(), data[i].end(), t.data));
  }
  EXPECT_EQ(bytes->size(), f->data_offset() + expect_offset);
}

TEST(GgufReaderTest, AlignmentKeyMovesTheDataSection) {
  // general.alignment = 256: the data section starts at the header end rounded
  // up to 256 (not 32) and data pointers follow.
  FileSpec spec = BaseSpec();
  spec.kv.push_back({"general.alignment", enc::U32(256)});
  spec.alignment = 256;
  for (size_t i = 0; i < spec.tensors.size(); ++i) spec.tensors[i].offset = 256 * i;
  const Layout l = Build(spec);
  ASSERT_EQ(l.data_start % 256, 0u);
  ASSERT_NE(l.data_start, (l.header_end + 31) / 32 * 32) << "the test needs the two alignments to differ";
  ExactBuffer buf(l.bytes);
  auto f = GgufFile::Parse(buf.span());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->alignment(), 256u);
  EXPECT_EQ(f->data_offset(), l.data_start);
  EXPECT_EQ(f->tensors()[2].data, buf.span().data() + l.data_start + 512);
  EXPECT_EQ(f->tensors()[2].data[0], DataByte(512));
}

TEST(GgufReaderTest, MinimalAndEdgeFilesAreAccepted) {
  {  // header only: no keys, no tensors, and no padding after the header
    Layout l = Build(FileSpec{});
    l.bytes.resize(24);
    auto f = GgufFile::Parse(l.bytes);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_TRUE(f->metadata().empty());
    EXPECT_TRUE(f->tensors().empty());
  }
  {  // trailing bytes after the last tensor are ignored; unsorted offsets are fine
    FileSpec spec = BaseSpec();
    std::swap(spec.tensors[0].offset, spec.tensors[2].offset);
    spec.tensors[2].offset = 288;
    spec.data_bytes = 1000;
    auto f = GgufFile::Parse(Build(spec).bytes);
    EXPECT_TRUE(f.ok()) << f.status();
  }
  {  // 4-D tensor, name of exactly 63 bytes, tensors touching without padding
    FileSpec spec;
    spec.AddTensor(std::string(63, 'x'), kTypeF32, {8, 1, 2, 3});
    spec.AddTensor("y", kTypeF32, {8});
    spec.tensors[1].offset = 192;  // right after 192 bytes of x
    auto f = GgufFile::Parse(Build(spec).bytes);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->tensors()[0].n_dims, 4);
    EXPECT_EQ(f->tensors()[0].rows(), 6);
  }
}

TEST(GgufReaderTest, EveryTruncationOfAValidFileIsRejectedAsTruncated) {
  FileSpec spec = BaseSpec();
  const Layout l = Build(spec);
  const uint64_t data_end = l.data_start + 224 + 51;  // end of the last tensor's bytes
  for (uint64_t n = 0; n < data_end; ++n) {
    ExactBuffer buf(std::span(l.bytes).first(n));
    auto f = GgufFile::Parse(buf.span());
    ASSERT_FALSE(f.ok()) << "prefix of " << n << " bytes accepted";
    ASSERT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string msg(f.status().message());
    ASSERT_THAT(msg, HasSubstr("truncated")) << "prefix " << n;
    const auto at = ReportedOffset(msg);
    ASSERT_TRUE(at.has_value()) << msg;
    // Header fields point at where reading stopped; tensor data at the offset field.
    ASSERT_LE(*at, n) << msg;
  }
  for (uint64_t n = data_end; n <= l.bytes.size(); ++n) {
    EXPECT_TRUE(GgufFile::Parse(std::span(l.bytes).first(n)).ok()) << n;
  }
}

TEST(GgufReaderTest, HeaderPrefixesParseLikeTheWholeFileOrAskForMore) {
  // The streaming load parses the header from the first bytes kept on the
  // host, with the tensor data elsewhere (device memory): every prefix that
  // ends inside the header asks for more (OutOfRange, never a verdict about
  // the file), every longer one gives exactly what Parse gives, with the data
  // pointers at the base given.
  const Layout l = Build(BaseSpec());
  auto whole = GgufFile::Parse(l.bytes);
  ASSERT_TRUE(whole.ok()) << whole.status();
  const uint8_t* elsewhere = reinterpret_cast<const uint8_t*>(uintptr_t{1} << 40);
  uint64_t header_end = 0;
  for (uint64_t n = 0; n <= l.bytes.size(); ++n) {
    ExactBuffer buf(std::span(l.bytes).first(n));
    auto f = GgufFile::ParseHeader(buf.span(), l.bytes.size(), elsewhere);
    if (!f.ok()) {
      ASSERT_EQ(f.status().code(), absl::StatusCode::kOutOfRange) << n << ": " << f.status();
      ASSERT_THAT(std::string(f.status().message()), HasSubstr(absl::StrCat("first ", n, " bytes"))) << f.status();
      ASSERT_EQ(header_end, 0u) << "prefix " << n << " failed after a shorter one parsed";
      continue;
    }
    if (header_end == 0) header_end = n;
    ASSERT_EQ(f->data_offset(), whole->data_offset());
    ASSERT_EQ(f->file_size(), whole->file_size());
    ASSERT_EQ(f->metadata().size(), whole->metadata().size());
    ASSERT_EQ(f->tensors().size(), whole->tensors().size());
    for (size_t i = 0; i < f->tensors().size(); ++i) {
      ASSERT_EQ(f->tensors()[i].name, whole->tensors()[i].name);
      ASSERT_EQ(f->tensors()[i].data - elsewhere, whole->tensors()[i].data - l.bytes.data());
    }
  }
  EXPECT_GT(header_end, 24u);
  EXPECT_LE(header_end, l.data_start);
  // A file truncated in its data section stays a file error, prefix or not.
  auto cut = GgufFile::ParseHeader(std::span(l.bytes).first(header_end), l.data_start + 10, elsewhere);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(cut.status().message()), HasSubstr("truncated"));
}

// --- Typed getters ---------------------------------------------------------------

class GgufGetterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FileSpec spec;
    spec.kv = {
        {"str", enc::Str("abc")},
        {"u8", enc::U8(200)},
        {"i8.neg", enc::I8(-3)},
        {"u16", enc::U16(65535)},
        {"i16", enc::I16(1234)},
        {"u32", enc::U32(4294967295u)},
        {"i32.neg", enc::I32(-1)},
        {"u64.max", enc::U64(std::numeric_limits<uint64_t>::max())},
        {"i64", enc::I64(1ll << 40)},
        {"i64.neg", enc::I64(-5)},
        {"f32", enc::F32(0.5f)},
        {"f64", enc::F64(-2.25)},
        {"bool", enc::Bool(1)},
        {"strs", enc::StrArray({"x", "y"})},
        {"u32s", enc::U32Array({1, 2, 3})},
        {"bools", enc::Array(7, 2, std::vector<uint8_t>{1, 0})},
        {"f32s", enc::Array(6, 1, std::vector<uint8_t>{0, 0, 0x80, 0x3f})},
        {"u8s", enc::Array(0, 3, std::vector<uint8_t>{0, 128, 255})},
        {"i16s", enc::Array(3, 2, std::vector<uint8_t>{0xff, 0xff, 0x00, 0x80})},
    };
    bytes_ = Build(spec).bytes;
    auto f = GgufFile::Parse(bytes_);
    ASSERT_TRUE(f.ok()) << f.status();
    file_ = std::make_unique<GgufFile>(*std::move(f));
  }
  std::vector<uint8_t> bytes_;
  std::unique_ptr<GgufFile> file_;
};

TEST_F(GgufGetterTest, MissingKeysAreNotFoundForEveryGetter) {
  EXPECT_EQ(file_->GetString("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(file_->GetUint("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(file_->GetFloat("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(file_->GetStringArray("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(file_->GetIntArray("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(file_->GetUint("nope").status().message()), HasSubstr("'nope' is missing"));
}

TEST_F(GgufGetterTest, GetStringAcceptsOnlyStrings) {
  EXPECT_EQ(*file_->GetString("str"), "abc");
  for (const char* k : {"u32", "f32", "bool", "strs"}) {
    const auto s = file_->GetString(k).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k;
    EXPECT_THAT(std::string(s.message()), HasSubstr("must be a string")) << k;
  }
}

TEST_F(GgufGetterTest, GetUintAcceptsNonNegativeIntegersOfAnyWidth) {
  EXPECT_EQ(*file_->GetUint("u8"), 200u);
  EXPECT_EQ(*file_->GetUint("u16"), 65535u);
  EXPECT_EQ(*file_->GetUint("i16"), 1234u);
  EXPECT_EQ(*file_->GetUint("u32"), 4294967295u);
  EXPECT_EQ(*file_->GetUint("u64.max"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(*file_->GetUint("i64"), 1ull << 40);
  for (const char* k : {"i8.neg", "i32.neg", "i64.neg"}) {
    const auto s = file_->GetUint(k).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k;
    EXPECT_THAT(std::string(s.message()), HasSubstr("is negative")) << k;
  }
  for (const char* k : {"str", "f32", "f64", "bool", "u32s"}) {
    const auto s = file_->GetUint(k).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k;
    EXPECT_THAT(std::string(s.message()), HasSubstr("must be an integer")) << k;
  }
}

TEST_F(GgufGetterTest, GetFloatAcceptsFloatsAndIntegers) {
  EXPECT_EQ(*file_->GetFloat("f32"), 0.5);
  EXPECT_EQ(*file_->GetFloat("f64"), -2.25);
  EXPECT_EQ(*file_->GetFloat("i8.neg"), -3.0);
  EXPECT_EQ(*file_->GetFloat("u32"), 4294967295.0);
  // uint64 values above INT64_MAX are stored bit-cast; they must not come back negative.
  EXPECT_EQ(*file_->GetFloat("u64.max"), 18446744073709551615.0);
  for (const char* k : {"str", "bool", "f32s"}) {
    const auto s = file_->GetFloat(k).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k;
    EXPECT_THAT(std::string(s.message()), HasSubstr("must be a number")) << k;
  }
}

TEST_F(GgufGetterTest, GetStringArrayAcceptsOnlyArraysOfStrings) {
  EXPECT_THAT(**file_->GetStringArray("strs"), ::testing::ElementsAre("x", "y"));
  for (const char* k : {"str", "u32s", "f32s"}) {
    const auto s = file_->GetStringArray(k).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k;
    EXPECT_THAT(std::string(s.message()), HasSubstr("must be an array of strings")) << k;
  }
}

TEST_F(GgufGetterTest, GetIntArrayAcceptsOnlyArraysOfIntegers) {
  EXPECT_THAT(**file_->GetIntArray("u32s"), ::testing::ElementsAre(1, 2, 3));
  EXPECT_THAT(**file_->GetIntArray("u8s"), ::testing::ElementsAre(0, 128, 255));
  EXPECT_THAT(**file_->GetIntArray("i16s"), ::testing::ElementsAre(-1, -32768));
  for (const char* k : {"u32", "strs", "f32s", "bools"}) {
    const auto s = file_->GetIntArray(k).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k;
    EXPECT_THAT(std::string(s.message()), HasSubstr("must be an array of integers")) << k;
  }
}

TEST_F(GgufGetterTest, ArraysKeepTheirElementTypes) {
  EXPECT_EQ(file_->FindKey("bools")->array_type, ValueType::kBool);
  EXPECT_THAT(file_->FindKey("bools")->int_array, ::testing::ElementsAre(1, 0));
  EXPECT_THAT(file_->FindKey("f32s")->real_array, ::testing::ElementsAre(1.0));
}

// --- Writer checks: what the writer accepts, the reader must accept ------------------

TEST(GgufWriterTest, RejectsTensorsTheReaderWouldReject) {
  GgufWriter w;
  EXPECT_TRUE(w.AddTensor("ok", GgmlType::kF32, {4}).ok());
  EXPECT_FALSE(w.AddTensor("ok", GgmlType::kF32, {4}).ok()) << "duplicate name";
  EXPECT_FALSE(w.AddTensor("", GgmlType::kF32, {4}).ok()) << "empty name";
  EXPECT_FALSE(w.AddTensor(std::string(64, 'n'), GgmlType::kF32, {4}).ok()) << "name too long";
  EXPECT_TRUE(w.AddTensor(std::string(63, 'n'), GgmlType::kF32, {4}).ok());
  EXPECT_FALSE(w.AddTensor("d0", GgmlType::kF32, {}).ok());
  EXPECT_FALSE(w.AddTensor("d5", GgmlType::kF32, {1, 1, 1, 1, 1}).ok());
  EXPECT_FALSE(w.AddTensor("zero", GgmlType::kF32, {4, 0}).ok());
  EXPECT_FALSE(w.AddTensor("neg", GgmlType::kF32, {-4}).ok());
  EXPECT_FALSE(w.AddTensor("q8", GgmlType::kQ8_0, {48}).ok());
  EXPECT_FALSE(w.AddTensor("mx", GgmlType::kMXFP4, {16, 2}).ok());
  EXPECT_FALSE(w.AddTensor("type", static_cast<GgmlType>(2), {32}).ok());
  EXPECT_FALSE(w.AddTensor("elems", GgmlType::kF32, {1ll << 32, 1ll << 32}).ok());
  EXPECT_FALSE(w.AddTensor("bytes", GgmlType::kF32, {1ll << 62}).ok());
  auto bytes = WriteToBytes(w, {std::vector<uint8_t>(16), std::vector<uint8_t>(16)});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto f = GgufFile::Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->tensors().size(), 2u);

  // The running data size is bounded too (never written: 2^62 bytes).
  GgufWriter big;
  EXPECT_TRUE(big.AddTensor("a", GgmlType::kF32, {1ll << 59}).ok());
  EXPECT_TRUE(big.AddTensor("b", GgmlType::kF32, {1ll << 59}).ok());
  EXPECT_FALSE(big.AddTensor("c", GgmlType::kF32, {8}).ok());
}

TEST(GgufWriterTest, RejectsAlignmentsTheReaderWouldReject) {
  for (uint64_t a : {0ull, 1ull, 4ull, 48ull, 1ull << 17}) {
    GgufWriter w(a);
    EXPECT_EQ(w.AddTensor("t", GgmlType::kF32, {4}).status().code(), absl::StatusCode::kInvalidArgument) << a;
    EXPECT_EQ(WriteToBytes(w, {}).status().code(), absl::StatusCode::kInvalidArgument) << a;
  }
  for (uint64_t a : {8ull, 16ull, 65536ull}) {
    GgufWriter w(a);
    ASSERT_TRUE(w.AddTensor("t", GgmlType::kF32, {4}).ok());
    auto bytes = WriteToBytes(w, {std::vector<uint8_t>(16, 1)});
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto f = GgufFile::Parse(*bytes);
    ASSERT_TRUE(f.ok()) << a << ": " << f.status();
    EXPECT_EQ(f->alignment(), a);
  }
}

TEST(GgufWriterTest, SettingAKeyTwiceKeepsOneKeyWithTheLastValue) {
  GgufWriter w;
  w.SetUint32("a", 1);
  w.SetString("b", "x");
  w.SetString("a", "replaced");
  auto bytes = WriteToBytes(w, {});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto f = GgufFile::Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata()[0].first, "a");
  EXPECT_EQ(*f->GetString("a"), "replaced");
}

TEST(GgufWriterTest, ExplicitAlignmentKeyMustAgreeWithTheLayout) {
  {
    GgufWriter w(64);
    w.SetUint32("general.alignment", 64);
    auto bytes = WriteToBytes(w, {});
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto f = GgufFile::Parse(*bytes);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->metadata().size(), 1u);
    EXPECT_EQ(f->alignment(), 64u);
  }
  {
    GgufWriter w(32);
    w.SetUint32("general.alignment", 64);
    EXPECT_EQ(WriteToBytes(w, {}).status().code(), absl::StatusCode::kInvalidArgument);
  }
  {
    GgufWriter w(64);
    w.SetUint64("general.alignment", 64);
    EXPECT_EQ(WriteToBytes(w, {}).status().code(), absl::StatusCode::kInvalidArgument);
  }
  {
    GgufWriter w;
    w.SetUint32("", 1);
    EXPECT_EQ(WriteToBytes(w, {}).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(GgufWriterTest, SetValueRejectsValuesThatDoNotFitTheirType) {
  GgufWriter w;
  EXPECT_FALSE(w.SetValue("k", Scalar(ValueType::kUint8, 256)).ok());
  EXPECT_FALSE(w.SetValue("k", Scalar(ValueType::kInt8, -129)).ok());
  EXPECT_FALSE(w.SetValue("k", Scalar(ValueType::kUint32, -1)).ok());
  EXPECT_FALSE(w.SetValue("k", Scalar(ValueType::kBool, 2)).ok());
  EXPECT_FALSE(w.SetValue("k", Scalar(ValueType::kFloat32, 0, 1e39)).ok());
  EXPECT_FALSE(w.SetValue("k", IntArray(ValueType::kUint16, {1, 70000})).ok());
  EXPECT_FALSE(w.SetValue("k", IntArray(ValueType::kArray, {})).ok());
  EXPECT_FALSE(w.SetValue("k", IntArray(ValueType::kString, {1})).ok()) << "elements in the wrong vector";
  EXPECT_FALSE(w.SetValue("k", RealArray(ValueType::kInt32, {1.0})).ok()) << "elements in the wrong vector";
  EXPECT_TRUE(w.SetValue("k", Scalar(ValueType::kFloat32, 0, std::numeric_limits<double>::infinity())).ok());
  auto bytes = WriteToBytes(w, {});
  ASSERT_TRUE(bytes.ok());
  auto f = GgufFile::Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->metadata().size(), 1u) << "failed SetValue calls must not add keys";
  EXPECT_TRUE(std::isinf(*f->GetFloat("k")));
}

TEST(GgufWriterTest, StreamingChecksDataAmounts) {
  GgufWriter w;
  ASSERT_TRUE(w.AddTensor("a", GgmlType::kF32, {4}).ok());
  ASSERT_TRUE(w.AddTensor("b", GgmlType::kF16, {4}).ok());
  {
    // Too little data: Finish names the incomplete tensor.
    auto r = WriteToBytes(w, {std::vector<uint8_t>(16), std::vector<uint8_t>(7)});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("'b'"));
  }
  {
    GgufWriter w2;
    ASSERT_TRUE(w2.AddTensor("a", GgmlType::kF32, {4}).ok());
    auto r = WriteToBytes(w2, {std::vector<uint8_t>(17)});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << "more data than declared";
  }
  {
    // Data split across calls in odd pieces lands where the reader looks.
    GgufWriter w3;
    ASSERT_TRUE(w3.AddTensor("a", GgmlType::kF32, {3}).ok());
    ASSERT_TRUE(w3.AddTensor("b", GgmlType::kBF16, {5}).ok());
    std::vector<uint8_t> all(22);
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint8_t>(i + 1);
    auto r = WriteToBytes(w3, {std::vector<uint8_t>(all.begin(), all.begin() + 5),
                               std::vector<uint8_t>(all.begin() + 5, all.end())});
    ASSERT_TRUE(r.ok()) << r.status();
    auto f = GgufFile::Parse(*r);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_TRUE(std::equal(all.begin(), all.begin() + 12, f->tensors()[0].data));
    EXPECT_TRUE(std::equal(all.begin() + 12, all.end(), f->tensors()[1].data));
    EXPECT_EQ(f->tensors()[1].offset, 32u);
  }
}

}  // namespace
}  // namespace ossgate::gguf::testing
