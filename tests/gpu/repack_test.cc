// The tiled device layout (kernels/layout.h) against the CPU dequantizer: every
// element the kernels would decode from the repacked bytes equals the ggml
// value (exactly for MXFP4, up to the fp16 rounding the kernels apply for the
// others), for every format, with
// padding rows and fused gate/up tiles. CPU only: runs in CI.
#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/gguf/ggml_types.h"
#include "kernels/repack.h"
#include "kernels/repack_tile.h"

namespace ossgate::kernels {
namespace {

using gguf::GgmlType;

struct HostMatrix {
  GgmlType type;
  int64_t rows, cols;
  int64_t row_bytes;
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // dequantized
  const uint8_t* Row(int64_t r) const { return bytes.data() + r * row_bytes; }
};

HostMatrix RandomMatrix(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  HostMatrix m{type, rows, cols, gguf::RowBytes(type, cols), {}, {}};
  m.bytes.resize(m.row_bytes * rows);
  m.values.resize(rows * cols);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = dist(rng) * (r % 7 == 3 ? 100.0f : 1.0f);  // some rows with large scales
    gguf::QuantizeRow(type, row.data(), m.bytes.data() + r * m.row_bytes, cols);
    gguf::DequantizeRow(type, m.bytes.data() + r * m.row_bytes, m.values.data() + r * cols, cols);
  }
  return m;
}

// What the kernels compute for a stored value: MXFP4 exactly (the block scale
// is applied to fp32 partial sums), the others rounded to fp16 (bf16 clamped
// to the fp16 range first).
float DeviceValue(GgmlType type, float v) {
  if (type == GgmlType::kMXFP4) return v;
  return gguf::Fp16ToFloat(gguf::FloatToFp16(std::clamp(v, -65504.0f, 65504.0f)));
}

class RepackTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(RepackTest, PlainMatrixDecodesToTheGgmlValues) {
  const GgmlType type = GetParam();
  auto fmt = FormatForType(type);
  ASSERT_TRUE(fmt.ok());
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{16, 32}, {37, 64}, {5, 96}, {50, 2880}}) {
    const HostMatrix m = RandomMatrix(type, rows, cols, static_cast<uint32_t>(rows * 131 + cols));
    const TiledBytes size = TiledSize(*fmt, rows, cols, false);
    std::vector<uint8_t> codes(size.codes), scales(size.scales);
    const int64_t rt = RowTilesFor(rows, false), kb = cols / kBlockK;
    RepackTiles(*fmt, kb, [&](int64_t r) { return r < rows ? m.Row(r) : nullptr; }, 0, rt, codes.data(),
                scales.empty() ? nullptr : scales.data());
    for (int64_t r = 0; r < rt * kTileRows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const float got = TiledValue(*fmt, kb, codes.data(), scales.empty() ? nullptr : scales.data(), r, c);
        const float want = r < rows ? DeviceValue(type, m.values[r * cols + c]) : 0.0f;
        ASSERT_EQ(got, want) << "row " << r << " col " << c << " of " << rows << "x" << cols;
      }
    }
  }
}

TEST_P(RepackTest, FusedGateUpInterleavesFeaturesByEight) {
  const GgmlType type = GetParam();
  auto fmt = FormatForType(type);
  ASSERT_TRUE(fmt.ok());
  const int64_t features = 20, cols = 64;  // 20 is not a multiple of 8: padded features
  const HostMatrix gate = RandomMatrix(type, features, cols, 1), up = RandomMatrix(type, features, cols, 2);
  const TiledBytes size = TiledSize(*fmt, features, cols, true);
  std::vector<uint8_t> codes(size.codes), scales(size.scales);
  const int64_t rt = RowTilesFor(features, true), kb = cols / kBlockK;
  EXPECT_EQ(rt, 3);
  RepackTiles(
      *fmt, kb,
      [&](int64_t dev_row) -> const uint8_t* {
        bool is_up = false;
        const int64_t f = GateUpSourceRow(dev_row, features, &is_up);
        return f < 0 ? nullptr : (is_up ? up.Row(f) : gate.Row(f));
      },
      0, rt, codes.data(), scales.empty() ? nullptr : scales.data());
  for (int64_t dev_row = 0; dev_row < rt * kTileRows; ++dev_row) {
    const int64_t f = (dev_row / 16) * 8 + dev_row % 8;
    const bool is_up = dev_row % 16 >= 8;
    for (int64_t c = 0; c < cols; ++c) {
      const float got = TiledValue(*fmt, kb, codes.data(), scales.empty() ? nullptr : scales.data(), dev_row, c);
      const float want = f < features ? DeviceValue(type, (is_up ? up : gate).values[f * cols + c]) : 0.0f;
      ASSERT_EQ(got, want) << "device row " << dev_row << " col " << c;
    }
  }
}

TEST(RepackRangeTest, StagedRangesEqualOneShot) {
  const HostMatrix m = RandomMatrix(GgmlType::kMXFP4, 100, 96, 9);
  const TiledBytes size = TiledSize(WFormat::kMxfp4, 100, 96, false);
  const int64_t rt = RowTilesFor(100, false), kb = 3;
  auto src = [&](int64_t r) { return r < 100 ? m.Row(r) : nullptr; };
  std::vector<uint8_t> c1(size.codes), s1(size.scales), c2(size.codes), s2(size.scales);
  RepackTiles(WFormat::kMxfp4, kb, src, 0, rt, c1.data(), s1.data());
  for (int64_t a = 0; a < rt; a += 3) {
    const int64_t b = std::min(rt, a + 3);
    RepackTiles(WFormat::kMxfp4, kb, src, a, b, c2.data() + a * kb * TileCodeBytes(WFormat::kMxfp4),
                s2.data() + a * kb * TileScaleBytes(WFormat::kMxfp4));
  }
  EXPECT_EQ(c1, c2);
  EXPECT_EQ(s1, s2);
}

// Every E2M1 code at every column of a lane and every finite E8M0 scale
// (e = 0..254, subnormal results included): the tiled decode is exact.
TEST(RepackMxfp4Test, EveryCodeAndScaleDecodesExactly) {
  const int64_t rows = 16, cols = 32 * 255;  // block kb of every row has scale e = kb
  const int64_t row_bytes = gguf::RowBytes(GgmlType::kMXFP4, cols);
  std::vector<uint8_t> bytes(rows * row_bytes);
  for (int64_t r = 0; r < rows; ++r) {
    auto* blocks = reinterpret_cast<gguf::BlockMxfp4*>(bytes.data() + r * row_bytes);
    for (int64_t kb = 0; kb < 255; ++kb) {
      blocks[kb].e = static_cast<uint8_t>(kb);
      for (int j = 0; j < 16; ++j) {
        // codes cycle through all 16 values, shifted per row and block
        const int lo = (j + r + kb) % 16, hi = (j + 3 * r + 7) % 16;
        blocks[kb].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
      }
    }
  }
  std::vector<float> values(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    gguf::DequantizeRow(GgmlType::kMXFP4, bytes.data() + r * row_bytes, values.data() + r * cols, cols);
  }
  const TiledBytes size = TiledSize(WFormat::kMxfp4, rows, cols, false);
  std::vector<uint8_t> codes(size.codes), scales(size.scales);
  RepackTiles(WFormat::kMxfp4, cols / kBlockK, [&](int64_t r) { return bytes.data() + r * row_bytes; }, 0, 1,
              codes.data(), scales.data());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      ASSERT_EQ(TiledValue(WFormat::kMxfp4, cols / kBlockK, codes.data(), scales.data(), r, c), values[r * cols + c])
          << "row " << r << " col " << c << " (scale byte " << c / 32 << ")";
    }
  }
}

// The source descriptor the device repack uses (repack_tile.h) maps device
// rows to ggml rows exactly as the host upload's row functions do: q, k and
// v stacked, gate and up interleaved by eight features, padding as nullptr.
TEST(RepackSourceTest, SourceRowMatchesTheHostRowMapping) {
  const int64_t row_bytes = 17 * 3;
  std::vector<uint8_t> q(3 * 40 * row_bytes), k(3 * 8 * row_bytes), v(3 * 8 * row_bytes);
  RepackSource qkv;
  qkv.part[0] = q.data();
  qkv.part[1] = k.data();
  qkv.part[2] = v.data();
  qkv.part_rows[0] = 40;
  qkv.part_rows[1] = qkv.part_rows[2] = 8;
  qkv.n_parts = 3;
  for (int p = 0; p < 3; ++p) qkv.part_row_bytes[p] = row_bytes;
  for (int64_t mat = 0; mat < 3; ++mat) {
    for (int64_t r = 0; r < RowTilesFor(56, false) * kTileRows; ++r) {
      const uint8_t* want = r < 40 ? q.data() + (mat * 40 + r) * row_bytes
                            : r < 48 ? k.data() + (mat * 8 + r - 40) * row_bytes
                            : r < 56 ? v.data() + (mat * 8 + r - 48) * row_bytes
                                     : nullptr;
      ASSERT_EQ(SourceRow(qkv, mat, r).data, want) << mat << " " << r;
    }
  }
  const int64_t features = 21;
  std::vector<uint8_t> gate(2 * features * row_bytes), up(2 * features * row_bytes);
  RepackSource gu;
  gu.part[0] = gate.data();
  gu.part[1] = up.data();
  gu.part_rows[0] = gu.part_rows[1] = features;
  gu.n_parts = 2;
  gu.gate_up = true;
  gu.part_row_bytes[0] = gu.part_row_bytes[1] = row_bytes;
  for (int64_t mat = 0; mat < 2; ++mat) {
    for (int64_t r = 0; r < RowTilesFor(features, true) * kTileRows; ++r) {
      bool is_up = false;
      const int64_t f = GateUpSourceRow(r, features, &is_up);
      const uint8_t* want = f < 0 ? nullptr : (is_up ? up.data() : gate.data()) + (mat * features + f) * row_bytes;
      ASSERT_EQ(SourceRow(gu, mat, r).data, want) << mat << " " << r;
    }
  }
}

// --- k-quants: re-quantized into Q8_0 tiles ------------------------------------

// The Q8_0 value the tiles must hold for element c of a k-quant row whose
// exact values are `v` (DequantizeRow), by the rule of RequantizeQ8Block
// restated: per 32-element block d = fp16(min(amax / 127, 515.5)), q = x / d
// rounded to nearest even and clamped to +-127; the kernels then decode
// fp16(d * q).
float RequantizedDeviceValue(const float* v, int64_t c) {
  const float* block = v + c / 32 * 32;
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(block[i]));
  const float d = gguf::Fp16ToFloat(gguf::FloatToFp16(std::min(amax / 127.0f, 515.5f)));
  const float q = d > 0.0f ? std::clamp(std::nearbyint(v[c] / d), -127.0f, 127.0f) : 0.0f;
  return gguf::Fp16ToFloat(gguf::FloatToFp16(d * q));
}

// A k-quant (or Q5_0 / Q5_1) matrix with rows of every kind the checks need:
// random rows of widely varying scale, an all-zero row, one row of tiny
// values (fp16 subnormal super-block scales) and, but for Q4_K, one beyond
// the fp16 range the kernels compute in (it saturates).
HostMatrix KQuantMatrix(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  HostMatrix m = RandomMatrix(type, rows, cols, seed);
  std::mt19937 rng(seed + 1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> row(cols);
  auto set_row = [&](int64_t r, float scale) {
    for (float& v : row) v = dist(rng) * scale;
    gguf::QuantizeRow(type, row.data(), m.bytes.data() + r * m.row_bytes, cols);
    gguf::DequantizeRow(type, m.bytes.data() + r * m.row_bytes, m.values.data() + r * cols, cols);
  };
  set_row(0, 0.0f);
  if (rows > 2) set_row(2, 1e-6f);
  if (rows > 4 && type != GgmlType::kQ4_K) set_row(4, 3e5f);
  return m;
}

class RepackKQuantTest : public ::testing::TestWithParam<GgmlType> {};

// The encoding each re-quantized type's rows are read in.
RowEncoding ExpectedEncoding(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_K: return RowEncoding::kQ4_K;
    case GgmlType::kQ5_0: return RowEncoding::kQ5_0;
    case GgmlType::kQ5_1: return RowEncoding::kQ5_1;
    case GgmlType::kQ5_K: return RowEncoding::kQ5_K;
    case GgmlType::kQ6_K: return RowEncoding::kQ6_K;
    default: return RowEncoding::kTileFormat;
  }
}

// (Q6_K, Q5_K, Q5_0 and Q5_1 always go this way; Q4_K where it is fused with
// rows of those or Q8_0, as in MixedEncodingsFuseIntoOneQ8Matrix below, else
// into its own tiles.) Q5_0 and Q5_1 also at Qwen2.5-0.5B's width 896, 28
// blocks of 32, no whole super-block.
TEST_P(RepackKQuantTest, TilesHoldTheQ8RequantizationWithinHalfAStep) {
  const GgmlType type = GetParam();
  ASSERT_EQ(*FormatForType(type), type == GgmlType::kQ4_K ? WFormat::kQ4K : WFormat::kQ8_0);
  constexpr WFormat kFmt = WFormat::kQ8_0;
  ASSERT_EQ(EncodingForType(type), ExpectedEncoding(type));
  int saturated = 0;
  std::vector<std::pair<int64_t, int64_t>> shapes = {{16, 256}, {37, 512}, {50, 3072}};
  if (gguf::GetTypeTraits(static_cast<uint32_t>(type))->block_elems == 32) shapes.push_back({19, 896});
  for (auto [rows, cols] : shapes) {
    const HostMatrix m = KQuantMatrix(type, rows, cols, static_cast<uint32_t>(rows * 7 + cols));
    const TiledBytes size = TiledSize(kFmt, rows, cols, false);
    std::vector<uint8_t> codes(size.codes), scales(size.scales);
    const int64_t rt = RowTilesFor(rows, false), kb = cols / kBlockK;
    RepackTiles(
        kFmt, kb, [&](int64_t r) { return r < rows ? RowRef(m.Row(r), EncodingForType(type)) : RowRef(); }, 0, rt,
        codes.data(), scales.data());
    for (int64_t r = 0; r < rt * kTileRows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const float got = TiledValue(kFmt, kb, codes.data(), scales.data(), r, c);
        if (r >= rows) {
          ASSERT_EQ(got, 0.0f) << "padding row " << r;
          continue;
        }
        const float* v = &m.values[r * cols];
        ASSERT_EQ(got, RequantizedDeviceValue(v, c)) << "row " << r << " col " << c << " of " << rows << "x" << cols;
        // What that rule costs: with s = amax / 127 and ds the fp16
        // rounding of s (2^-11 relative, 2^-25 absolute below fp16's normal
        // range), half a step (s + ds) / 2, or for a clamped element 127 ds,
        // plus the fp16 rounding of the product; unless the value is beyond
        // what fp16 products of +-127 reach, where it saturates.
        double amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(static_cast<double>(v[c / 32 * 32 + i])));
        const double step = amax / 127;
        if (step > 515.5) {
          ASSERT_NEAR(std::fabs(got), std::min(std::fabs(static_cast<double>(v[c])), 65468.5), 1024.0);
          ++saturated;
          continue;
        }
        const double ds = std::max(step * std::ldexp(1.0, -11), std::ldexp(1.0, -25));
        const double bound = std::max((step + ds) / 2, 127 * ds) +
                             std::fabs(static_cast<double>(v[c])) * std::ldexp(1.0, -11) + std::ldexp(1.0, -25);
        ASSERT_LE(std::fabs(got - static_cast<double>(v[c])), bound) << "row " << r << " col " << c;
      }
    }
  }
  EXPECT_EQ(saturated > 0, type != GgmlType::kQ4_K) << "the test matrix holds values beyond the fp16 range";
}

// The cost of the re-quantization on what the kernels compute, y = W x:
// relative RMS against the exact k-quant matrix (measured 0.57% for Q4_K,
// 0.31% for Q6_K), small next to the k-quants' own error against the
// unquantized weights (8% and 2%: tests/gguf/kquants_test.cc).
TEST_P(RepackKQuantTest, RequantizationAddsLittleToAMatVec) {
  const GgmlType type = GetParam();
  const int64_t rows = 64, cols = 2048, kb = cols / kBlockK;
  const HostMatrix m = RandomMatrix(type, rows, cols, 77);
  const TiledBytes size = TiledSize(WFormat::kQ8_0, rows, cols, false);
  std::vector<uint8_t> codes(size.codes), scales(size.scales);
  RepackTiles(
      WFormat::kQ8_0, kb, [&](int64_t r) { return RowRef(m.Row(r), EncodingForType(type)); }, 0,
      RowTilesFor(rows, false), codes.data(), scales.data());
  std::mt19937 rng(78);
  std::normal_distribution<float> dist;
  std::vector<double> x(cols);
  for (double& v : x) v = dist(rng);
  double err = 0, ref = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double exact = 0, tiled = 0;
    for (int64_t c = 0; c < cols; ++c) {
      exact += m.values[r * cols + c] * x[c];
      tiled += TiledValue(WFormat::kQ8_0, kb, codes.data(), scales.data(), r, c) * x[c];
    }
    err += (tiled - exact) * (tiled - exact);
    ref += exact * exact;
  }
  const double rel = std::sqrt(err / ref);
  EXPECT_LT(rel, 1e-2) << gguf::GgmlTypeName(static_cast<uint32_t>(type));
  RecordProperty("requantization_rel_rms", std::to_string(rel));
}

INSTANTIATE_TEST_SUITE_P(KQuants, RepackKQuantTest,
                         ::testing::Values(GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ5_K, GgmlType::kQ5_0,
                                           GgmlType::kQ5_1),
                         [](const ::testing::TestParamInfo<GgmlType>& p) {
                           return std::string(gguf::GgmlTypeName(static_cast<uint32_t>(p.param)));
                         });

// The device repack kernel re-quantizes inside each lane (RepackLane with a
// k-quant row, RequantizeQ8Block's element decoders), the host repacker a row
// at a time (the CPU dequantizer); both must write the same bytes (the GPU
// test compares the kernel with the host; this runs the kernel's function on
// the host, in CI).
TEST(RepackKQuantTest, LaneRequantizationEqualsTheRowwiseOne) {
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ5_K, GgmlType::kQ5_0, GgmlType::kQ5_1}) {
    const bool blocks_of_32 = type == GgmlType::kQ5_0 || type == GgmlType::kQ5_1;
    const int64_t rows = 21, cols = blocks_of_32 ? 800 : 768, kb_count = cols / kBlockK,
                  rt_count = RowTilesFor(rows, false);
    const HostMatrix m = KQuantMatrix(type, rows, cols, 31);
    auto src = [&](int64_t r) { return r < rows ? RowRef(m.Row(r), EncodingForType(type)) : RowRef(); };
    const TiledBytes size = TiledSize(WFormat::kQ8_0, rows, cols, false);
    std::vector<uint8_t> codes(size.codes), scales(size.scales), lane_codes(size.codes, 0xAB),
        lane_scales(size.scales, 0xAB);
    RepackTiles(WFormat::kQ8_0, kb_count, src, 0, rt_count, codes.data(), scales.data());
    for (int64_t rt = 0; rt < rt_count; ++rt) {
      for (int64_t kb = 0; kb < kb_count; ++kb) {
        const int64_t tile = rt * kb_count + kb;
        for (int lane = 0; lane < 32; ++lane) {
          RepackLane(WFormat::kQ8_0, src(rt * kTileRows + lane / 4), src(rt * kTileRows + lane / 4 + 8), kb, lane,
                     lane_codes.data() + tile * TileCodeBytes(WFormat::kQ8_0),
                     lane_scales.data() + tile * TileScaleBytes(WFormat::kQ8_0));
        }
      }
    }
    EXPECT_EQ(lane_codes, codes) << gguf::GgmlTypeName(static_cast<uint32_t>(type));
    EXPECT_EQ(lane_scales, scales) << gguf::GgmlTypeName(static_cast<uint32_t>(type));
  }
}

// A fused q/k/v matrix whose parts differ in encoding (Q4_K, Q6_K, Q8_0, as
// in Q4_K_M files; Q5_0 q and k with a Q8_0 v, as in Qwen2.5-0.5B's; Q5_K
// and Q5_1 next to the others): the source descriptor carries each part's
// row size and encoding to the lanes.
TEST(RepackKQuantTest, MixedEncodingsFuseIntoOneQ8Matrix) {
  using G = GgmlType;
  const std::vector<std::vector<G>> mixes = {
      {G::kQ4_K, G::kQ6_K, G::kQ8_0}, {G::kQ5_0, G::kQ5_0, G::kQ8_0}, {G::kQ5_K, G::kQ5_1, G::kQ4_K}};
  for (const std::vector<G>& mix : mixes) {
    SCOPED_TRACE(TypeList(mix));
    ASSERT_EQ(*FusedFormatForTypes(mix), WFormat::kQ8_0);
    const int64_t cols = 512, kb = cols / kBlockK;
    const int64_t part_rows[3] = {24, 8, 8};
    std::vector<HostMatrix> parts;
    for (int p = 0; p < 3; ++p) {
      parts.push_back(mix[p] == G::kQ8_0 ? RandomMatrix(mix[p], part_rows[p], cols, 5 + p)
                                         : KQuantMatrix(mix[p], part_rows[p], cols, 5 + p));
    }
    RepackSource s;
    for (int p = 0; p < 3; ++p) {
      s.part[p] = parts[p].bytes.data();
      s.part_rows[p] = parts[p].rows;
      s.part_row_bytes[p] = parts[p].row_bytes;
      s.part_enc[p] = EncodingForType(parts[p].type);
    }
    s.n_parts = 3;
    const int64_t rows = 40;
    const TiledBytes size = TiledSize(WFormat::kQ8_0, rows, cols, false);
    std::vector<uint8_t> codes(size.codes), scales(size.scales);
    RepackTiles(
        WFormat::kQ8_0, kb, [&](int64_t r) { return SourceRow(s, 0, r); }, 0, RowTilesFor(rows, false),
        codes.data(), scales.data());
    for (int64_t r = 0; r < 48; ++r) {
      const int p = r < 24 ? 0 : r < 32 ? 1 : 2;
      const int64_t pr = r - (p == 0 ? 0 : p == 1 ? 24 : 32);
      for (int64_t c = 0; c < cols; ++c) {
        const float got = TiledValue(WFormat::kQ8_0, kb, codes.data(), scales.data(), r, c);
        if (r >= rows) {
          ASSERT_EQ(got, 0.0f);
          continue;
        }
        const float* vals = &parts[p].values[pr * cols];
        const float want = mix[p] == G::kQ8_0 ? DeviceValue(G::kQ8_0, vals[c]) : RequantizedDeviceValue(vals, c);
        ASSERT_EQ(got, want) << "row " << r << " (part " << p << ") col " << c;
      }
    }
  }
}

// --- Q4_K in its own tiles ---------------------------------------------------

// Every element of Q4_K tiles decodes to the ggml value exactly (the codes, the
// 6-bit scales and mins and the super-block d and dmin are moved, not
// re-quantized), for plain matrices with padding rows, a fused gate/up matrix,
// and rows with zero and fp16-subnormal super-block scales.
TEST(RepackQ4KTest, TilesHoldTheGgmlValuesExactly) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{16, 256}, {37, 512}, {50, 3072}}) {
    const HostMatrix m = KQuantMatrix(GgmlType::kQ4_K, rows, cols, static_cast<uint32_t>(rows * 3 + cols));
    const TiledBytes size = TiledSize(WFormat::kQ4K, rows, cols, false);
    ASSERT_EQ(size.codes + size.scales, RowTilesFor(rows, false) * (cols / kBlockK) * (256 + 40));
    std::vector<uint8_t> codes(size.codes, 0xA5), scales(size.scales, 0xA5);  // no byte left unwritten
    const int64_t rt = RowTilesFor(rows, false), kb = cols / kBlockK;
    RepackTiles(
        WFormat::kQ4K, kb, [&](int64_t r) { return r < rows ? RowRef(m.Row(r), RowEncoding::kQ4_K) : RowRef(); },
        0, rt, codes.data(), scales.data());
    for (int64_t r = 0; r < rt * kTileRows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const float got = TiledValue(WFormat::kQ4K, kb, codes.data(), scales.data(), r, c);
        const float want = r < rows ? m.values[r * cols + c] : 0.0f;
        ASSERT_EQ(got, want) << "row " << r << " col " << c << " of " << rows << "x" << cols;
      }
    }
  }
  const int64_t features = 20, cols = 512, kb = cols / kBlockK;
  const HostMatrix gate = KQuantMatrix(GgmlType::kQ4_K, features, cols, 11);
  const HostMatrix up = KQuantMatrix(GgmlType::kQ4_K, features, cols, 12);
  const TiledBytes size = TiledSize(WFormat::kQ4K, features, cols, true);
  std::vector<uint8_t> codes(size.codes, 0x5A), scales(size.scales, 0x5A);
  const int64_t rt = RowTilesFor(features, true);
  RepackTiles(
      WFormat::kQ4K, kb,
      [&](int64_t dev_row) {
        bool is_up = false;
        const int64_t f = GateUpSourceRow(dev_row, features, &is_up);
        return f < 0 ? RowRef() : RowRef((is_up ? up : gate).Row(f), RowEncoding::kQ4_K);
      },
      0, rt, codes.data(), scales.data());
  for (int64_t dev_row = 0; dev_row < rt * kTileRows; ++dev_row) {
    const int64_t f = (dev_row / 16) * 8 + dev_row % 8;
    const bool is_up = dev_row % 16 >= 8;
    for (int64_t c = 0; c < cols; ++c) {
      const float want = f < features ? (is_up ? up : gate).values[f * cols + c] : 0.0f;
      ASSERT_EQ(TiledValue(WFormat::kQ4K, kb, codes.data(), scales.data(), dev_row, c), want)
          << "device row " << dev_row << " col " << c;
    }
  }
}

// The format of a fused matrix: Q4_K alone keeps its tiles; mixed with Q6_K or
// Q8_0 (a Q4_K_M layer), every part goes to Q8_0; other mixes are refused
// with the types named.
TEST(RepackQ4KTest, FusedFormatFollowsTheMix) {
  using G = GgmlType;
  EXPECT_EQ(*FusedFormatForTypes({G::kQ4_K, G::kQ4_K, G::kQ4_K}), WFormat::kQ4K);
  EXPECT_EQ(*FusedFormatForTypes({G::kQ4_K, G::kQ4_K, G::kQ6_K}), WFormat::kQ8_0);
  EXPECT_EQ(*FusedFormatForTypes({G::kQ4_K, G::kQ8_0}), WFormat::kQ8_0);
  EXPECT_EQ(*FusedFormatForTypes({G::kQ6_K, G::kQ6_K}), WFormat::kQ8_0);
  EXPECT_EQ(*FusedFormatForTypes({G::kMXFP4, G::kMXFP4}), WFormat::kMxfp4);
  const absl::StatusOr<WFormat> bad = FusedFormatForTypes({G::kQ4_K, G::kF16});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("Q4_K, F16"), std::string::npos) << bad.status();
  // Q5_0, Q5_1 and Q5_K go the Q6_K way: Q8_0 tiles, alone or with any of
  // Q8_0, Q4_K, Q6_K and each other (Qwen2.5-0.5B's Q4_K_M layers hold Q5_0
  // q/k next to a Q8_0 or Q5_0 v; Phi-3's one Q5_K attn_qkv).
  for (G t : {G::kQ5_0, G::kQ5_1, G::kQ5_K}) {
    SCOPED_TRACE(gguf::GgmlTypeName(static_cast<uint32_t>(t)));
    EXPECT_EQ(*FormatForType(t), WFormat::kQ8_0);
    EXPECT_EQ(*FusedFormatForTypes({t, t, t}), WFormat::kQ8_0);
    EXPECT_EQ(*FusedFormatForTypes({t, t, G::kQ8_0}), WFormat::kQ8_0);
    EXPECT_EQ(*FusedFormatForTypes({t, G::kQ4_K, G::kQ6_K}), WFormat::kQ8_0);
    EXPECT_EQ(*FusedFormatForTypes({G::kQ4_K, t}), WFormat::kQ8_0);
    for (G other : {G::kBF16, G::kF16, G::kMXFP4, G::kF32}) {
      const absl::StatusOr<WFormat> refused = FusedFormatForTypes({t, other});
      ASSERT_FALSE(refused.ok()) << gguf::GgmlTypeName(static_cast<uint32_t>(other));
      EXPECT_NE(refused.status().message().find(TypeList({t, other})), std::string::npos) << refused.status();
      EXPECT_NE(refused.status().message().find(kFusedFormatRule), std::string::npos) << refused.status();
    }
  }
  EXPECT_EQ(*FusedFormatForTypes({G::kQ5_0, G::kQ5_1, G::kQ5_K}), WFormat::kQ8_0);
  EXPECT_NE(std::string(kFusedFormatRule).find("Q8_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K go together"),
            std::string::npos);
}

// The element decoders of repack_tile.h (also the device embedding lookup's)
// give the CPU dequantizer's floats bit for bit, on random blocks with any
// finite scales; the fp16 helpers match gguf's conversions.
TEST(RepackKQuantTest, ElementDecodersMatchTheCpuDequantizer) {
  std::mt19937 rng(21);
  struct Decoder {
    GgmlType type;
    int block_bytes, block_elems;
    std::vector<int> scale_at;
    float (*value)(const uint8_t*, int);
  };
  const Decoder decoders[] = {{GgmlType::kQ4_K, kQ4_KBlockBytes, 256, {0, 2}, Q4KValue},
                              {GgmlType::kQ6_K, kQ6_KBlockBytes, 256, {208}, Q6KValue},
                              {GgmlType::kQ5_K, kQ5_KBlockBytes, 256, {0, 2}, Q5KValue},
                              {GgmlType::kQ5_0, kQ5_0BlockBytes, 32, {0}, Q5_0Value},
                              {GgmlType::kQ5_1, kQ5_1BlockBytes, 32, {0, 2}, Q5_1Value}};
  for (const Decoder& dec : decoders) {
    const int blocks = 400 * 256 / dec.block_elems;
    std::vector<uint8_t> bytes(blocks * dec.block_bytes);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    for (int b = 0; b < blocks; ++b) {
      for (int at : dec.scale_at) bytes[b * dec.block_bytes + at + 1] &= 0xBF;  // exponent below 31: finite
    }
    std::vector<float> want(400 * 256);
    gguf::DequantizeRow(dec.type, bytes.data(), want.data(), 400 * 256);
    for (int b = 0; b < blocks; ++b) {
      for (int e = 0; e < dec.block_elems; ++e) {
        const float got = dec.value(bytes.data() + b * dec.block_bytes, e);
        ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want[b * dec.block_elems + e]))
            << gguf::GgmlTypeName(static_cast<uint32_t>(dec.type)) << " block " << b << " element " << e;
      }
    }
  }
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;
    ASSERT_EQ(std::bit_cast<uint32_t>(HalfBitsToFloat(static_cast<uint16_t>(h))),
              std::bit_cast<uint32_t>(gguf::Fp16ToFloat(static_cast<uint16_t>(h))))
        << std::hex << h;
  }
  std::uniform_real_distribution<float> scale(-30.0f, 10.0f);
  for (int i = 0; i < 200000; ++i) {
    const float f = std::min(65504.0f, std::exp2(scale(rng)));
    ASSERT_EQ(NonNegativeFloatToHalfBits(f), gguf::FloatToFp16(f)) << std::hexfloat << f;
  }
  for (uint32_t h = 0; h < 0x7C00; ++h) {  // every finite half and the midpoints above it
    const float v = gguf::Fp16ToFloat(static_cast<uint16_t>(h));
    const float mid = h + 1 < 0x7C00 ? (v + gguf::Fp16ToFloat(static_cast<uint16_t>(h + 1))) / 2 : v;
    ASSERT_EQ(NonNegativeFloatToHalfBits(v), h);
    ASSERT_EQ(NonNegativeFloatToHalfBits(mid), gguf::FloatToFp16(mid)) << std::hex << h;
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, RepackTest,
                         ::testing::Values(GgmlType::kQ8_0, GgmlType::kMXFP4, GgmlType::kF16, GgmlType::kBF16),
                         [](const ::testing::TestParamInfo<GgmlType>& p) { return std::string(gguf::GetTypeTraits(static_cast<uint32_t>(p.param))->name); });

}  // namespace
}  // namespace ossgate::kernels
