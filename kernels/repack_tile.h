// One lane of one tile of the tiled weight layout (layout.h), written from
// the ggml rows it covers. Shared by the host repacker (repack.cc) and the
// device repack kernel (repack.cu) that the streaming load uses, so both
// produce the same bytes by construction (tests/gpu/repack_test.cc checks it).
// No CUDA types: compiled by the host compiler and by nvcc.
//
// Q4_K has a tile format of its own (layout.h: its codes, 6-bit scales and
// mins and fp16 super-block scales, moved). Q6_K, Q5_K, Q5_0 and Q5_1 have
// none: each of their 32-element blocks is re-quantized into a Q8_0 block on
// the way into Q8_0 tiles (RequantizeQ8Block), as are Q4_K rows fused into
// one matrix with rows of those types or Q8_0 (a Q4_K_M file's attn_q/attn_k
// next to a Q6_K attn_v). The element decoders below are also the device
// embedding lookup's.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/layout.h"

#if defined(__CUDACC__)
#define OSSGATE_REPACK_HD __host__ __device__
#else
#define OSSGATE_REPACK_HD
#endif

namespace ossgate::kernels {

// ggml block layouts (ggml-common.h; spec §1.4; docs/quant-formats.md):
// Q8_0 = fp16 d + 32 int8, MXFP4 = E8M0 e + 16 bytes of nibbles (element j
// low, j + 16 high), Q5_0 and Q5_1 = blocks of 32, Q4_K, Q5_K and Q6_K =
// super-blocks of 256 elements (the element decoders below state their
// layouts).
inline constexpr int kQ8_0BlockBytes = 34;
inline constexpr int kMxfp4BlockBytes = 17;
inline constexpr int kQ5_0BlockBytes = 22;
inline constexpr int kQ5_1BlockBytes = 24;
inline constexpr int kKQuantBlockElems = 256;
inline constexpr int kQ4_KBlockBytes = 144;
inline constexpr int kQ5_KBlockBytes = 176;
inline constexpr int kQ6_KBlockBytes = 210;

// How the ggml rows of a matrix are encoded: in the blocks of the tile format
// itself (layout.h keeps their bits), or as a k-quant or 5-bit type, which is
// re-quantized into Q8_0 tiles (WFormat::kQ8_0) or, for Q4_K rows in
// WFormat::kQ4K tiles, moved as it is.
enum class RowEncoding : int32_t { kTileFormat = 0, kQ4_K = 1, kQ6_K = 2, kQ5_0 = 3, kQ5_1 = 4, kQ5_K = 5 };

// One ggml row and its encoding; a null row is padding (stored as zeros).
struct RowRef {
  const uint8_t* data = nullptr;
  RowEncoding enc = RowEncoding::kTileFormat;
  OSSGATE_REPACK_HD RowRef() {}
  OSSGATE_REPACK_HD RowRef(const uint8_t* d, RowEncoding e = RowEncoding::kTileFormat) : data(d), enc(e) {}
};

// Where the rows of a matrix being tiled come from: the ggml rows of one to
// three tensors stacked (q, k and v fused into one matrix), or of a gate and
// an up tensor interleaved per tile (gate_up). Pointers may be host or device
// memory, matching where the repack runs. The parts may differ in encoding
// (a Q4_K_M file has Q4_K attn_q and attn_k but often a Q6_K attn_v) as long
// as they share the tile format.
struct RepackSource {
  const uint8_t* part[3] = {nullptr, nullptr, nullptr};  // matrix 0 of each part
  int64_t part_rows[3] = {0, 0, 0};                      // rows per matrix of each part
  int64_t part_row_bytes[3] = {0, 0, 0};                 // ggml bytes of one row of each part
  RowEncoding part_enc[3] = {RowEncoding::kTileFormat, RowEncoding::kTileFormat, RowEncoding::kTileFormat};
  int32_t n_parts = 1;
  bool gate_up = false;  // part 0 = gate, part 1 = up; features = part_rows[0]
};

// The ggml row behind device row `dev_row` of matrix `mat` (null data for a
// padding row).
OSSGATE_REPACK_HD inline RowRef SourceRow(const RepackSource& s, int64_t mat, int64_t dev_row) {
  if (s.gate_up) {
    const int64_t rt = dev_row / kTileRows, i = dev_row % kTileRows;
    const int64_t f = rt * 8 + (i % 8), features = s.part_rows[0];
    if (f >= features) return RowRef();
    const int p = i >= 8 ? 1 : 0;
    return RowRef(s.part[p] + (mat * features + f) * s.part_row_bytes[p], s.part_enc[p]);
  }
  for (int p = 0; p < s.n_parts; ++p) {
    if (dev_row < s.part_rows[p]) {
      return RowRef(s.part[p] + (mat * s.part_rows[p] + dev_row) * s.part_row_bytes[p], s.part_enc[p]);
    }
    dev_row -= s.part_rows[p];
  }
  return RowRef();
}

// ---- k-quant decoding and the re-quantization into Q8_0 ----

// fp16 bits to float, exact, without CUDA types (finite inputs: the scales
// were checked finite at load).
OSSGATE_REPACK_HD inline float HalfBitsToFloat(uint16_t h) {
  const int exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  const float mag = exp == 0 ? static_cast<float>(mant) * 5.9604644775390625e-8f  // mant * 2^-24
                             : ldexpf(static_cast<float>(1024 + mant), exp - 25);
  return (h & 0x8000u) ? -mag : mag;
}

// Float in [0, 65504] to fp16 bits, rounded to nearest even (integer
// arithmetic and rintf only, so host and device agree bit for bit).
OSSGATE_REPACK_HD inline uint16_t NonNegativeFloatToHalfBits(float f) {
  if (f < 6.103515625e-05f) return static_cast<uint16_t>(rintf(f * 16777216.0f));  // subnormal: units of 2^-24
  uint32_t x;
  std::memcpy(&x, &f, 4);
  x += 0xFFFu + ((x >> 13) & 1u);  // round to nearest even on the 13 dropped bits
  return static_cast<uint16_t>((x - 0x38000000u) >> 13);
}

OSSGATE_REPACK_HD inline uint16_t LoadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Element e (0..255) of a Q4_K super-block (ggml-common.h block_q4_K,
// ggml-quants.c dequantize_row_q4_K): fp16 d at byte 0, fp16 dmin at byte
// 2, 12 bytes of 6-bit scales and mins at byte 4, 128 quant bytes at byte 16;
// element e = 64g + r is the low (r < 32) or high nibble of quant byte
// 32g + r % 32, in sub-block j = e / 32 with value d * sc_j * q - dmin * m_j.
// Both products are exact in float, so the one rounding (the subtraction) is
// the same whether or not the compiler fuses it: host, device and the CPU
// dequantizer agree bit for bit.
// The 6-bit scale and min of sub-block j (0..7) of a Q4_K super-block
// (ggml-quants.c get_scale_min_k4).
OSSGATE_REPACK_HD inline void Q4KScaleMin(const uint8_t* block, int j, int* sc, int* m) {
  const uint8_t* scales = block + 4;
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}
// The 4-bit code of element e.
OSSGATE_REPACK_HD inline int Q4KCode(const uint8_t* block, int e) {
  const int g = e / 64, r = e % 64;
  const uint8_t byte = block[16 + 32 * g + r % 32];
  return r < 32 ? (byte & 0x0F) : (byte >> 4);
}
OSSGATE_REPACK_HD inline float Q4KValue(const uint8_t* block, int e) {
  int sc, m;
  Q4KScaleMin(block, e / 32, &sc, &m);
  const float step = HalfBitsToFloat(LoadU16(block)) * static_cast<float>(sc);
  const float off = HalfBitsToFloat(LoadU16(block + 2)) * static_cast<float>(m);
  return step * static_cast<float>(Q4KCode(block, e)) - off;
}

// Element e of a Q6_K super-block (block_q6_K, dequantize_row_q6_K): 128
// bytes ql, 64 bytes qh, 16 int8 scales at byte 192, fp16 d at byte 208;
// element e = 128h + 32k + l has the low (k < 2) or high nibble of
// ql[64h + 32(k % 2) + l] and bits 2k, 2k+1 of qh[32h + l]; value
// d * scale_{e/16} * (q - 32), exact in float.
OSSGATE_REPACK_HD inline float Q6KValue(const uint8_t* block, int e) {
  const int h = e / 128, k = (e % 128) / 32, l = e % 32;
  const uint8_t low = block[64 * h + 32 * (k % 2) + l];
  const int q = ((k < 2 ? low : low >> 4) & 0x0F) | (((block[128 + 32 * h + l] >> (2 * k)) & 3) << 4);
  const int scale = static_cast<int8_t>(block[192 + e / 16]);
  return HalfBitsToFloat(LoadU16(block + 208)) * static_cast<float>(scale) * static_cast<float>(q - 32);
}

// The 5-bit quant of element j (0..31) of a Q5_0 block (qh at byte 2, qs at
// byte 6) or a Q5_1 block (qh at byte 4, qs at byte 8): the low (j < 16) or
// high nibble of qs[j % 16], and bit j of the little-endian uint32 qh as the
// fifth bit (ggml-common.h block_q5_0 / block_q5_1, dequantize_row_q5_0).
OSSGATE_REPACK_HD inline int Q5Code(const uint8_t* qh, int j) {
  const uint8_t* qs = qh + 4;
  const int low = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
  return low | (((qh[j / 8] >> (j % 8)) & 1) << 4);
}
// Element j of a Q5_0 block: d * (q - 16), exact in float.
OSSGATE_REPACK_HD inline float Q5_0Value(const uint8_t* block, int j) {
  return HalfBitsToFloat(LoadU16(block)) * static_cast<float>(Q5Code(block + 2, j) - 16);
}
// Element j of a Q5_1 block: d * q + m, the product exact, so a fused
// multiply-add rounds the same as the separate operations.
OSSGATE_REPACK_HD inline float Q5_1Value(const uint8_t* block, int j) {
  return HalfBitsToFloat(LoadU16(block)) * static_cast<float>(Q5Code(block + 4, j)) +
         HalfBitsToFloat(LoadU16(block + 2));
}

// Element e of a Q5_K super-block (block_q5_K, dequantize_row_q5_K): Q4_K's
// d, dmin and scales (bytes 0-15), 32 bytes qh at byte 16, 128 bytes qs at
// byte 48. Element e = 64g + r takes the low (r < 32) or high nibble of
// qs[32g + r % 32] and, as its fifth bit, bit 2g (r < 32) or 2g + 1 of
// qh[r % 32]; value d * sc_j * q - dmin * m_j (j = e / 32), the products
// exact as in Q4KValue.
OSSGATE_REPACK_HD inline float Q5KValue(const uint8_t* block, int e) {
  int sc, m;
  Q4KScaleMin(block, e / 32, &sc, &m);
  const int g = e / 64, r = e % 64;
  const uint8_t byte = block[48 + 32 * g + r % 32];
  const int q = (r < 32 ? (byte & 0x0F) : (byte >> 4)) | (((block[16 + r % 32] >> (2 * g + r / 32)) & 1) << 4);
  const float step = HalfBitsToFloat(LoadU16(block)) * static_cast<float>(sc);
  const float off = HalfBitsToFloat(LoadU16(block + 2)) * static_cast<float>(m);
  return step * static_cast<float>(q) - off;
}

// The largest Q8_0 scale whose products with +-127 stay finite in fp16, the
// precision the dense kernels decode Q8_0 tiles in (127 * 515.5 = 65468.5).
inline constexpr float kMaxQ8Scale = 515.5f;

// 32 values as a Q8_0 block (34 bytes at out: fp16 d, 32 int8): d = amax /
// 127 rounded to fp16 (at most kMaxQ8Scale, so values beyond the fp16 range
// saturate as BF16 tiles do), q = x / d rounded to nearest (even) and
// clamped to +-127. Every step is an IEEE operation without a fusable
// multiply-add, so host and device write the same bytes. The added error is
// at most d / 2 per element, about 0.4% of the block's largest magnitude;
// docs/quant-formats.md puts it next to the k-quants' own.
// Written with the round-to-nearest-even of adding and subtracting 1.5 * 2^23
// and integer clamps rather than library calls, so the host compiler
// vectorises the loop (the host upload re-quantizes whole models here).
OSSGATE_REPACK_HD inline void QuantizeQ8Block(const float* v, uint8_t* out) {
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i) {
    const float a = fabsf(v[i]);
    amax = a > amax ? a : amax;
  }
  const float scale = amax / 127.0f;
  const uint16_t d_bits = NonNegativeFloatToHalfBits(scale < kMaxQ8Scale ? scale : kMaxQ8Scale);
  const float d = HalfBitsToFloat(d_bits);
  out[0] = static_cast<uint8_t>(d_bits);
  out[1] = static_cast<uint8_t>(d_bits >> 8);
  if (!(d > 0.0f)) {
    for (int i = 0; i < 32; ++i) out[2 + i] = 0;
    return;
  }
  // x + kRound is x rounded to an integer (nearest even) for |x| < 2^22;
  // |v / d| stays far below (about 127, at most 5.2e5 where the scale
  // saturates), so rounding before clamping is exact.
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  for (int i = 0; i < 32; ++i) {
    int q = static_cast<int>((v[i] / d + kRound) - kRound);
    q = q > -127 ? q : -127;
    q = q < 127 ? q : 127;
    out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(q));
  }
}

// Block kb (elements 32kb .. 32kb + 31) of a k-quant or 5-bit row
// re-quantized as a Q8_0 block (QuantizeQ8Block of its exact values). The
// host repacker does the same a row at a time (repack.cc), with the CPU's
// vectorised dequantizer, whose floats are these decoders' bit for bit.
OSSGATE_REPACK_HD inline void RequantizeQ8Block(RowEncoding enc, const uint8_t* row, int64_t kb, uint8_t* out) {
  float v[32];
  const int e0 = 32 * static_cast<int>(kb % 8);  // within a k-quant super-block
  switch (enc) {
    case RowEncoding::kQ5_0:
      for (int i = 0; i < 32; ++i) v[i] = Q5_0Value(row + kb * kQ5_0BlockBytes, i);
      break;
    case RowEncoding::kQ5_1:
      for (int i = 0; i < 32; ++i) v[i] = Q5_1Value(row + kb * kQ5_1BlockBytes, i);
      break;
    case RowEncoding::kQ4_K:
      for (int i = 0; i < 32; ++i) v[i] = Q4KValue(row + (kb / 8) * kQ4_KBlockBytes, e0 + i);
      break;
    case RowEncoding::kQ5_K:
      for (int i = 0; i < 32; ++i) v[i] = Q5KValue(row + (kb / 8) * kQ5_KBlockBytes, e0 + i);
      break;
    case RowEncoding::kQ6_K:
    case RowEncoding::kTileFormat:  // not called for tile-format rows
      for (int i = 0; i < 32; ++i) v[i] = Q6KValue(row + (kb / 8) * kQ6_KBlockBytes, e0 + i);
      break;
  }
  QuantizeQ8Block(v, out);
}

// Where the magnitude (3 bits) and the sign of the MXFP4 code of pair q,
// half h live in a row's uint32 (layout.h): chosen so that DecodeMxfp4Raw
// moves each pair into fp16 bits 9..11 and 15 (+16 for h = 1) with one or
// two shifts.
OSSGATE_REPACK_HD constexpr int Mxfp4MagBit(int q) { return q == 0 ? 9 : q == 1 ? 1 : q == 2 ? 4 : 12; }
OSSGATE_REPACK_HD constexpr int Mxfp4SignBit(int q) { return q == 0 ? 15 : q == 1 ? 7 : q == 2 ? 8 : 0; }

// Code of element e (0..31) of a ggml MXFP4 block.
OSSGATE_REPACK_HD inline uint32_t Mxfp4BlockCode(const uint8_t* block, int e) {
  return e < 16 ? (block[1 + e] & 0x0Fu) : (block[1 + e - 16] >> 4);
}

// Lane `lane` of a Q4_K tile (layout.h) from Q4_K rows lo and hi (null:
// padding, zeros): the codes of columns 8c .. 8c + 7 of block kb of each row;
// lane c == 0 writes the rows' sc/m word, lanes c == 1 and c == 2 the d/dmin
// pair of row r and of row r + 8 when the tile (place kb % 8 in its chunk)
// is the one that carries it.
OSSGATE_REPACK_HD inline void RepackQ4KLane(const uint8_t* lo, const uint8_t* hi, int64_t kb, int lane,
                                            uint8_t* tile_codes, uint8_t* tile_scales) {
  const int r = lane / 4, c = lane % 4;
  const int64_t super = kb / 8;
  const int j = static_cast<int>(kb % 8);
  const uint8_t* blocks[2] = {lo ? lo + super * kQ4_KBlockBytes : nullptr,
                              hi ? hi + super * kQ4_KBlockBytes : nullptr};
  uint8_t* dst = tile_codes + lane * LaneCodeBytes(WFormat::kQ4K);
  for (int h = 0; h < 2; ++h) {
    uint32_t w = 0;
    if (blocks[h]) {
      for (int q = 0; q < 4; ++q) {
        for (int half = 0; half < 2; ++half) {
          w |= static_cast<uint32_t>(Q4KCode(blocks[h], 32 * j + 8 * c + 2 * q + half)) << (4 * q + 16 * half);
        }
      }
    }
    for (int b = 0; b < 4; ++b) dst[4 * h + b] = static_cast<uint8_t>(w >> (8 * b));
  }
  if (c == 0) {
    for (int h = 0; h < 2; ++h) {
      int sc = 0, m = 0;
      if (blocks[h]) Q4KScaleMin(blocks[h], j, &sc, &m);
      tile_scales[4 * r + h] = static_cast<uint8_t>(sc);
      tile_scales[4 * r + 2 + h] = static_cast<uint8_t>(m);
    }
  } else if (c <= 2) {
    const int row = c == 1 ? r : r + 8;  // the row whose d/dmin this lane may carry
    if (row / 2 == j) {
      const uint8_t* b = blocks[c - 1];
      uint8_t* out = tile_scales + kQ4KSuperScaleOffset + 4 * (row % 2);
      for (int i = 0; i < 4; ++i) out[i] = b ? b[i] : 0;  // fp16 d, fp16 dmin: the block's first 4 bytes
    }
  }
}

// Writes lane `lane` (r = lane / 4, c = lane % 4) of tile k-block `kb` whose
// rows r and r + 8 are `lo` and `hi` (null data: padding): its code bytes at
// tile_codes + lane * LaneCodeBytes, and for c == 0 the scale entry of row
// pair r in tile_scales (Q8_0, MXFP4; Q4_K: RepackQ4KLane). A k-quant row's
// block is first re-quantized into a Q8_0 block, which is then tiled like a
// Q8_0 row's, unless the tile format is Q4_K and the rows are Q4_K.
OSSGATE_REPACK_HD inline void RepackLane(WFormat fmt, RowRef lo_ref, RowRef hi_ref, int64_t kb_in, int lane,
                                         uint8_t* tile_codes, uint8_t* tile_scales) {
  if (fmt == WFormat::kQ4K) return RepackQ4KLane(lo_ref.data, hi_ref.data, kb_in, lane, tile_codes, tile_scales);
  const int r = lane / 4, c = lane % 4;
  uint8_t* dst = tile_codes + lane * LaneCodeBytes(fmt);
  uint8_t requantized[2][kQ8_0BlockBytes];
  const uint8_t* rows[2] = {lo_ref.data, hi_ref.data};
  int64_t kbs[2] = {kb_in, kb_in};  // the block's index in rows[h]
  for (int h = 0; h < 2; ++h) {
    const RowRef& ref = h ? hi_ref : lo_ref;
    if (ref.data != nullptr && ref.enc != RowEncoding::kTileFormat) {
      RequantizeQ8Block(ref.enc, ref.data, kb_in, requantized[h]);
      rows[h] = requantized[h];
      kbs[h] = 0;
    }
  }
  const uint8_t* lo = rows[0];
  const uint8_t* hi = rows[1];
  for (int h = 0; h < 2; ++h) {
    const uint8_t* row = rows[h];
    const int64_t kb = kbs[h];
    switch (fmt) {
      case WFormat::kQ8_0: {
        const uint8_t* qs = row ? row + kb * kQ8_0BlockBytes + 2 + 8 * c : nullptr;
        for (int j = 0; j < 8; ++j) dst[8 * h + j] = qs ? qs[j] : 0;
        break;
      }
      case WFormat::kMxfp4: {
        uint32_t w = 0;
        if (row) {
          const uint8_t* b = row + kb * kMxfp4BlockBytes;
          for (int q = 0; q < 4; ++q) {
            for (int half = 0; half < 2; ++half) {
              const uint32_t code = Mxfp4BlockCode(b, 8 * c + 2 * q + half);
              w |= (code & 7u) << (Mxfp4MagBit(q) + 16 * half);
              w |= (code >> 3) << (Mxfp4SignBit(q) + 16 * half);
            }
          }
        }
        for (int j = 0; j < 4; ++j) dst[4 * h + j] = static_cast<uint8_t>(w >> (8 * j));
        break;
      }
      case WFormat::kF16:
      case WFormat::kBf16: {
        const uint8_t* v = row ? row + (kb * kBlockK + 8 * c) * 2 : nullptr;
        for (int j = 0; j < 16; ++j) dst[16 * h + j] = v ? v[j] : 0;
        break;
      }
      case WFormat::kF32:
      case WFormat::kQ4K: break;
    }
  }
  if (c != 0) return;
  if (fmt == WFormat::kQ8_0) {
    // uint32 per r: fp16 d(row r) | fp16 d(row r + 8) << 16, little-endian.
    for (int h = 0; h < 2; ++h) {
      const uint8_t* row = rows[h];
      const uint8_t* d = row ? row + kbs[h] * kQ8_0BlockBytes : nullptr;
      tile_scales[4 * r + 2 * h] = d ? d[0] : 0;
      tile_scales[4 * r + 2 * h + 1] = d ? d[1] : 0;
    }
  } else if (fmt == WFormat::kMxfp4) {
    tile_scales[2 * r] = lo ? lo[kb_in * kMxfp4BlockBytes] : 0;
    tile_scales[2 * r + 1] = hi ? hi[kb_in * kMxfp4BlockBytes] : 0;
  }
}

}  // namespace ossgate::kernels
