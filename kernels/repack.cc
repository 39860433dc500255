#include "kernels/repack.h"

#include "kernels/repack_tile.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ossgate::kernels {

namespace {

static_assert(sizeof(gguf::BlockQ8_0) == kQ8_0BlockBytes, "repack_tile.h's Q8_0 block is ggml's");
static_assert(sizeof(gguf::BlockMxfp4) == kMxfp4BlockBytes, "repack_tile.h's MXFP4 block is ggml's");
static_assert(sizeof(gguf::BlockQ4_K) == kQ4_KBlockBytes && offsetof(gguf::BlockQ4_K, dmin) == 2 &&
                  offsetof(gguf::BlockQ4_K, scales) == 4 && offsetof(gguf::BlockQ4_K, qs) == 16,
              "repack_tile.h's Q4_K block is ggml's");
static_assert(sizeof(gguf::BlockQ6_K) == kQ6_KBlockBytes && offsetof(gguf::BlockQ6_K, qh) == 128 &&
                  offsetof(gguf::BlockQ6_K, scales) == 192 && offsetof(gguf::BlockQ6_K, d) == 208,
              "repack_tile.h's Q6_K block is ggml's");
static_assert(sizeof(gguf::BlockQ5_K) == kQ5_KBlockBytes && offsetof(gguf::BlockQ5_K, dmin) == 2 &&
                  offsetof(gguf::BlockQ5_K, scales) == 4 && offsetof(gguf::BlockQ5_K, qh) == 16 &&
                  offsetof(gguf::BlockQ5_K, qs) == 48,
              "repack_tile.h's Q5_K block is ggml's");
static_assert(sizeof(gguf::BlockQ5_0) == kQ5_0BlockBytes && offsetof(gguf::BlockQ5_0, qh) == 2 &&
                  offsetof(gguf::BlockQ5_0, qs) == 6,
              "repack_tile.h's Q5_0 block is ggml's");
static_assert(sizeof(gguf::BlockQ5_1) == kQ5_1BlockBytes && offsetof(gguf::BlockQ5_1, m) == 2 &&
                  offsetof(gguf::BlockQ5_1, qh) == 4 && offsetof(gguf::BlockQ5_1, qs) == 8,
              "repack_tile.h's Q5_1 block is ggml's");
static_assert(gguf::kQK_K == kKQuantBlockElems && kKQuantBlockElems % kBlockK == 0, "k-quant super-block");

// Undoubled E2M1 magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6}.
constexpr float kE2m1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

inline float ClampHalfRange(float v) { return std::clamp(v, -65504.0f, 65504.0f); }

}  // namespace

absl::StatusOr<WFormat> FormatForType(gguf::GgmlType type) {
  switch (type) {
    case gguf::GgmlType::kQ8_0:
    case gguf::GgmlType::kQ5_0:
    case gguf::GgmlType::kQ5_1:
    case gguf::GgmlType::kQ5_K:
    case gguf::GgmlType::kQ6_K: return WFormat::kQ8_0;
    case gguf::GgmlType::kQ4_K: return WFormat::kQ4K;
    case gguf::GgmlType::kMXFP4: return WFormat::kMxfp4;
    case gguf::GgmlType::kF16: return WFormat::kF16;
    case gguf::GgmlType::kBF16: return WFormat::kBf16;
    case gguf::GgmlType::kF32: return WFormat::kF32;
  }
  return absl::InvalidArgumentError(absl::StrCat("no CUDA weight layout for ggml type ", static_cast<int>(type)));
}

absl::StatusOr<WFormat> FusedFormatForTypes(const std::vector<gguf::GgmlType>& types) {
  WFormat fused = WFormat::kF32;
  bool first = true, k_quant_mix = false;
  for (gguf::GgmlType t : types) {
    absl::StatusOr<WFormat> f = FormatForType(t);
    if (!f.ok()) return f.status();
    if (first) {
      fused = *f;
      first = false;
    } else if (*f != fused) {
      // Q4_K next to Q8_0 or a type re-quantized into Q8_0 tiles (Q5_0,
      // Q5_1, Q5_K, Q6_K): every k-quant and 5-bit part re-quantized.
      const auto q8_family = [](WFormat x) { return x == WFormat::kQ8_0 || x == WFormat::kQ4K; };
      if (!q8_family(*f) || !q8_family(fused)) {
        return absl::InvalidArgumentError(absl::StrCat("tensors of types ", TypeList(types),
                                                       " are fused into one device matrix and must share a format: ",
                                                       kFusedFormatRule));
      }
      k_quant_mix = true;
    }
  }
  return k_quant_mix ? WFormat::kQ8_0 : fused;
}

std::string TypeList(const std::vector<gguf::GgmlType>& types) {
  std::string names;
  for (gguf::GgmlType t : types) {
    absl::StrAppend(&names, names.empty() ? "" : ", ", gguf::GgmlTypeName(static_cast<uint32_t>(t)));
  }
  return names;
}

RowEncoding EncodingForType(gguf::GgmlType type) {
  switch (type) {
    case gguf::GgmlType::kQ4_K: return RowEncoding::kQ4_K;
    case gguf::GgmlType::kQ6_K: return RowEncoding::kQ6_K;
    case gguf::GgmlType::kQ5_0: return RowEncoding::kQ5_0;
    case gguf::GgmlType::kQ5_1: return RowEncoding::kQ5_1;
    case gguf::GgmlType::kQ5_K: return RowEncoding::kQ5_K;
    default: return RowEncoding::kTileFormat;
  }
}

namespace {

// The ggml type whose rows are encoded as `enc` (a re-quantized encoding).
gguf::GgmlType TypeOfEncoding(RowEncoding enc) {
  switch (enc) {
    case RowEncoding::kQ4_K: return gguf::GgmlType::kQ4_K;
    case RowEncoding::kQ5_0: return gguf::GgmlType::kQ5_0;
    case RowEncoding::kQ5_1: return gguf::GgmlType::kQ5_1;
    case RowEncoding::kQ5_K: return gguf::GgmlType::kQ5_K;
    case RowEncoding::kQ6_K:
    case RowEncoding::kTileFormat: break;
  }
  return gguf::GgmlType::kQ6_K;
}

// A k-quant or 5-bit row re-quantized into Q8_0 blocks at out, a row at a time: the
// bytes RepackLane would write from the row (QuantizeQ8Block of the same
// floats), at the CPU dequantizer's speed. Left to the lanes, every block
// would be decoded element by element by each of the 4 lanes that read it.
void RequantizeRow(RowEncoding enc, const uint8_t* row, int64_t k_blocks, std::vector<float>* values, uint8_t* out) {
  values->resize(static_cast<size_t>(k_blocks * kBlockK));
  gguf::DequantizeRow(TypeOfEncoding(enc), row, values->data(), k_blocks * kBlockK);
  for (int64_t kb = 0; kb < k_blocks; ++kb) QuantizeQ8Block(values->data() + kb * kBlockK, out + kb * kQ8_0BlockBytes);
}

}  // namespace

void RepackTiles(WFormat fmt, int64_t k_blocks, const RowSource& src, int64_t rt_begin, int64_t rt_end,
                 uint8_t* codes, uint8_t* scales) {
  const int tile_bytes = TileCodeBytes(fmt), scale_bytes = TileScaleBytes(fmt);
  std::vector<uint8_t> requantized;
  std::vector<float> values;
  for (int64_t rt = rt_begin; rt < rt_end; ++rt) {
    RowRef rows[kTileRows];
    for (int i = 0; i < kTileRows; ++i) {
      rows[i] = src(rt * kTileRows + i);
      if (rows[i].data == nullptr || rows[i].enc == RowEncoding::kTileFormat) continue;
      if (fmt == WFormat::kQ4K) {
        assert(rows[i].enc == RowEncoding::kQ4_K);
        continue;  // moved as it is (RepackQ4KLane)
      }
      assert(fmt == WFormat::kQ8_0);
      const int64_t q8_row = k_blocks * kQ8_0BlockBytes;
      requantized.resize(static_cast<size_t>(kTileRows * q8_row));
      RequantizeRow(rows[i].enc, rows[i].data, k_blocks, &values, requantized.data() + i * q8_row);
      rows[i] = RowRef(requantized.data() + i * q8_row);
    }
    for (int64_t kb = 0; kb < k_blocks; ++kb) {
      const int64_t tile = (rt - rt_begin) * k_blocks + kb;
      uint8_t* ts = scales ? scales + tile * scale_bytes : nullptr;
      for (int lane = 0; lane < 32; ++lane) {
        RepackLane(fmt, rows[lane / 4], rows[lane / 4 + 8], kb, lane, codes + tile * tile_bytes, ts);
      }
    }
  }
}

float TiledValue(WFormat fmt, int64_t k_blocks, const uint8_t* codes, const uint8_t* scales, int64_t dev_row,
                 int64_t col) {
  const int64_t rt = dev_row / kTileRows, i = dev_row % kTileRows, kb = col / kBlockK, e = col % kBlockK;
  const int r = static_cast<int>(i % 8), h = static_cast<int>(i / 8), c = static_cast<int>(e / 8),
            j = static_cast<int>(e % 8);
  const int64_t tile = rt * k_blocks + kb;
  const uint8_t* lane = codes + tile * TileCodeBytes(fmt) + (r * 4 + c) * LaneCodeBytes(fmt);
  const uint8_t* ts = scales ? scales + tile * TileScaleBytes(fmt) : nullptr;
  switch (fmt) {
    case WFormat::kQ8_0: {
      const int8_t q = static_cast<int8_t>(lane[8 * h + j]);
      uint32_t packed;
      std::memcpy(&packed, ts + 4 * r, 4);
      const float d = gguf::Fp16ToFloat(static_cast<uint16_t>(h ? packed >> 16 : packed & 0xFFFF));
      return gguf::Fp16ToFloat(gguf::FloatToFp16(d * q));
    }
    case WFormat::kMxfp4: {
      uint32_t w;
      std::memcpy(&w, lane + 4 * h, 4);
      const int q = j / 2, half = j % 2;
      const float mag = kE2m1[(w >> (Mxfp4MagBit(q) + 16 * half)) & 7u];
      const bool negative = (w >> (Mxfp4SignBit(q) + 16 * half)) & 1u;
      // Exact: the device multiplies the block's partial sum by 2^(e - 127)
      // in fp32 (e = 255 is not a number in E8M0; the device gives inf).
      const int scale = ts[2 * r + h];
      const float v = scale == 255 ? INFINITY : std::ldexp(mag, scale - 127);
      return negative ? -v : v;
    }
    case WFormat::kF16: {
      uint16_t b;
      std::memcpy(&b, lane + 16 * h + 2 * j, 2);
      return gguf::Fp16ToFloat(b);
    }
    case WFormat::kBf16: {
      uint16_t b;
      std::memcpy(&b, lane + 16 * h + 2 * j, 2);
      return gguf::Fp16ToFloat(gguf::FloatToFp16(ClampHalfRange(gguf::Bf16ToFloat(b))));
    }
    case WFormat::kQ4K: {
      uint32_t w, sw;
      std::memcpy(&w, lane + 4 * h, 4);
      std::memcpy(&sw, ts + 4 * r, 4);
      const int q = static_cast<int>((w >> (4 * (j / 2) + 16 * (j % 2))) & 0xFu);
      const int sc = static_cast<int>((sw >> (8 * h)) & 0xFFu), m = static_cast<int>((sw >> (16 + 8 * h)) & 0xFFu);
      // d and dmin of tile row i: in tile i / 2 of the chunk, pair i % 2.
      const int64_t chunk_tile = rt * k_blocks + kb / kChunkBlocks * kChunkBlocks + i / 2;
      const uint8_t* chunk_scales = scales + chunk_tile * TileScaleBytes(WFormat::kQ4K);
      uint16_t d, dmin;
      std::memcpy(&d, chunk_scales + kQ4KSuperScaleOffset + 4 * (i % 2), 2);
      std::memcpy(&dmin, chunk_scales + kQ4KSuperScaleOffset + 4 * (i % 2) + 2, 2);
      // The ggml value, exactly as Q4KValue (the device works on the codes
      // times sc and m with d and dmin applied per chunk: see gemm.cu).
      const float step = gguf::Fp16ToFloat(d) * static_cast<float>(sc);
      const float off = gguf::Fp16ToFloat(dmin) * static_cast<float>(m);
      return step * static_cast<float>(q) - off;
    }
    case WFormat::kF32: break;
  }
  return 0.0f;
}

}  // namespace ossgate::kernels
