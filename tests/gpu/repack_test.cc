// The tiled device layout (kernels/layout.h) against the CPU dequantizer: every
// element the kernels would decode from the repacked bytes equals the ggml
// value (exactly for MXFP4, up to the fp16 rounding the kernels apply for the
// others), for every format, with
// padding rows and fused gate/up tiles. CPU only: runs in CI.
#include <cmath>
#include <random>
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
  qkv.row_bytes = row_bytes;
  for (int64_t mat = 0; mat < 3; ++mat) {
    for (int64_t r = 0; r < RowTilesFor(56, false) * kTileRows; ++r) {
      const uint8_t* want = r < 40 ? q.data() + (mat * 40 + r) * row_bytes
                            : r < 48 ? k.data() + (mat * 8 + r - 40) * row_bytes
                            : r < 56 ? v.data() + (mat * 8 + r - 48) * row_bytes
                                     : nullptr;
      ASSERT_EQ(SourceRow(qkv, mat, r), want) << mat << " " << r;
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
  gu.row_bytes = row_bytes;
  for (int64_t mat = 0; mat < 2; ++mat) {
    for (int64_t r = 0; r < RowTilesFor(features, true) * kTileRows; ++r) {
      bool is_up = false;
      const int64_t f = GateUpSourceRow(r, features, &is_up);
      const uint8_t* want = f < 0 ? nullptr : (is_up ? up.data() : gate.data()) + (mat * features + f) * row_bytes;
      ASSERT_EQ(SourceRow(gu, mat, r), want) << mat << " " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, RepackTest,
                         ::testing::Values(GgmlType::kQ8_0, GgmlType::kMXFP4, GgmlType::kF16, GgmlType::kBF16),
                         [](const ::testing::TestParamInfo<GgmlType>& p) { return std::string(gguf::GetTypeTraits(static_cast<uint32_t>(p.param))->name); });

}  // namespace
}  // namespace ossgate::kernels
