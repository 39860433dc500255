#include "kernels/repack.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ossgate::kernels {

namespace {

using gguf::BlockMxfp4;
using gguf::BlockQ8_0;

// Code of element e (0..31) of a ggml MXFP4 block.
inline uint8_t Mxfp4Code(const BlockMxfp4& b, int e) { return e < 16 ? (b.qs[e] & 0x0F) : (b.qs[e - 16] >> 4); }

// Where the magnitude (3 bits) and the sign of the code of pair q, half h
// (h = 0: column 8c + 2q, h = 1: column 8c + 2q + 1) live in a row's uint32
// (layout.h): positions chosen so that DecodeMxfp4Raw moves each pair into
// fp16 bits 9..11 and 15 (+16 for the high half) with one or two shifts.
constexpr int kMxfp4MagBit[4] = {9, 1, 4, 12};
constexpr int kMxfp4SignBit[4] = {15, 7, 8, 0};

// Undoubled E2M1 magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6}.
constexpr float kE2m1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

inline float ClampHalfRange(float v) { return std::clamp(v, -65504.0f, 65504.0f); }

}  // namespace

absl::StatusOr<WFormat> FormatForType(gguf::GgmlType type) {
  switch (type) {
    case gguf::GgmlType::kQ8_0: return WFormat::kQ8_0;
    case gguf::GgmlType::kMXFP4: return WFormat::kMxfp4;
    case gguf::GgmlType::kF16: return WFormat::kF16;
    case gguf::GgmlType::kBF16: return WFormat::kBf16;
    case gguf::GgmlType::kF32: return WFormat::kF32;
  }
  return absl::InvalidArgumentError(absl::StrCat("no CUDA weight layout for ggml type ", static_cast<int>(type)));
}

void RepackTiles(WFormat fmt, int64_t k_blocks, const RowSource& src, int64_t rt_begin, int64_t rt_end,
                 uint8_t* codes, uint8_t* scales) {
  const int tile_bytes = TileCodeBytes(fmt), scale_bytes = TileScaleBytes(fmt);
  for (int64_t rt = rt_begin; rt < rt_end; ++rt) {
    const uint8_t* rows[kTileRows];
    for (int i = 0; i < kTileRows; ++i) rows[i] = src(rt * kTileRows + i);
    for (int64_t kb = 0; kb < k_blocks; ++kb) {
      const int64_t tile = (rt - rt_begin) * k_blocks + kb;
      uint8_t* tc = codes + tile * tile_bytes;
      uint8_t* ts = scales ? scales + tile * scale_bytes : nullptr;
      for (int lane = 0; lane < 32; ++lane) {
        const int r = lane / 4, c = lane % 4;
        uint8_t* dst = tc + lane * LaneCodeBytes(fmt);
        for (int h = 0; h < 2; ++h) {
          const uint8_t* row = rows[r + 8 * h];
          switch (fmt) {
            case WFormat::kQ8_0: {
              uint8_t* d = dst + 8 * h;
              if (!row) {
                std::memset(d, 0, 8);
              } else {
                const auto* b = reinterpret_cast<const BlockQ8_0*>(row) + kb;
                std::memcpy(d, b->qs + 8 * c, 8);
              }
              break;
            }
            case WFormat::kMxfp4: {
              uint32_t w = 0;
              if (row) {
                const auto* b = reinterpret_cast<const BlockMxfp4*>(row) + kb;
                for (int q = 0; q < 4; ++q) {
                  for (int half = 0; half < 2; ++half) {
                    const uint32_t code = Mxfp4Code(*b, 8 * c + 2 * q + half);
                    w |= (code & 7u) << (kMxfp4MagBit[q] + 16 * half);
                    w |= (code >> 3) << (kMxfp4SignBit[q] + 16 * half);
                  }
                }
              }
              std::memcpy(dst + 4 * h, &w, 4);
              break;
            }
            case WFormat::kF16:
            case WFormat::kBf16: {
              uint8_t* d = dst + 16 * h;
              if (!row) {
                std::memset(d, 0, 16);
              } else {
                std::memcpy(d, row + (kb * kBlockK + 8 * c) * 2, 16);
              }
              break;
            }
            case WFormat::kF32: break;
          }
        }
      }
      if (fmt == WFormat::kQ8_0) {
        for (int r = 0; r < 8; ++r) {
          uint16_t d[2] = {0, 0};
          for (int h = 0; h < 2; ++h) {
            if (rows[r + 8 * h]) d[h] = (reinterpret_cast<const BlockQ8_0*>(rows[r + 8 * h]) + kb)->d;
          }
          const uint32_t packed = d[0] | (static_cast<uint32_t>(d[1]) << 16);
          std::memcpy(ts + 4 * r, &packed, 4);
        }
      } else if (fmt == WFormat::kMxfp4) {
        for (int r = 0; r < 8; ++r) {
          uint8_t e[2] = {0, 0};
          for (int h = 0; h < 2; ++h) {
            if (rows[r + 8 * h]) e[h] = (reinterpret_cast<const BlockMxfp4*>(rows[r + 8 * h]) + kb)->e;
          }
          ts[2 * r] = e[0];
          ts[2 * r + 1] = e[1];
        }
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
      const float mag = kE2m1[(w >> (kMxfp4MagBit[q] + 16 * half)) & 7u];
      const bool negative = (w >> (kMxfp4SignBit[q] + 16 * half)) & 1u;
      // Exact: the device multiplies the block's partial sum by 2^(e - 127)
      // in fp32 (e = 255 is not a number in E8M0; the device gives inf).
      const int e = ts[2 * r + h];
      const float v = e == 255 ? INFINITY : std::ldexp(mag, e - 127);
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
    case WFormat::kF32: break;
  }
  return 0.0f;
}

}  // namespace ossgate::kernels
