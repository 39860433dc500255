// ggml tensor element types and their on-disk block layouts, shared by the
// GGUF reader/writer, the CPU reference backend and (as plain structs) the
// CUDA kernels. Layouts follow ggml's ggml-common.h; see docs/gpt-oss-spec.md
// §1-§2 of the project spec for the sources, and docs/quant-formats.md for
// the k-quants (Q4_K, Q5_K, Q6_K) and the 5-bit legacy types (Q5_0, Q5_1).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include "absl/strings/string_view.h"

namespace ossgate::gguf {

// ggml type ids as stored in GGUF tensor infos (ggml.h enum ggml_type). The
// types gpt-oss files use, and the types of the official Q4_K_M / Q6_K
// releases of other models: the k-quants Q4_K, Q5_K and Q6_K and the 5-bit
// types Q5_0 and Q5_1 llama.cpp falls back to where a matrix's width is not
// a multiple of 256; every other id is rejected by the reader.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kBF16 = 30,
  kMXFP4 = 39,
};

struct TypeTraits {
  const char* name;
  int64_t block_elems;  // elements per block along ne[0]
  int64_t block_bytes;  // bytes per block
};

// Traits of a supported type id, or nullopt for any other id.
std::optional<TypeTraits> GetTypeTraits(uint32_t raw_type);
// Name of any ggml type id known to ggml (for error messages), "unknown" otherwise.
const char* GgmlTypeName(uint32_t raw_type);

inline constexpr int kQ8_0BlockElems = 32;
inline constexpr int kQ5BlockElems = 32;  // Q5_0, Q5_1
inline constexpr int kMxfp4BlockElems = 32;
inline constexpr int kQK_K = 256;  // elements of a k-quant super-block

// Q8_0: fp16 scale d, then 32 int8 quants; value = d * q.
struct BlockQ8_0 {
  uint16_t d;     // fp16 bits
  int8_t qs[32];  // quants
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must be 34 bytes");

// Q5_0 (ggml type 6; ggml-common.h block_q5_0, ggml-quants.c
// dequantize_row_q5_0): 32 elements, value = d * (q - 16) with q the 5-bit
// quant. Element j (0..15) has its low 4 bits in the low nibble of qs[j],
// element j + 16 in the high nibble; bit j of the little-endian uint32 qh
// (j = 0..31) is the fifth (top) bit of element j.
struct BlockQ5_0 {
  uint16_t d;      // fp16 bits
  uint8_t qh[4];   // top bits, little-endian uint32
  uint8_t qs[16];  // low nibbles
};
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block must be 22 bytes (5.5 bits per element)");

// Q5_1 (ggml type 7; block_q5_1, dequantize_row_q5_1): Q5_0's quants with an
// fp16 min; value = d * q + m, q in 0..31 (no offset).
struct BlockQ5_1 {
  uint16_t d;      // fp16 scale
  uint16_t m;      // fp16 min (added)
  uint8_t qh[4];   // top bits, little-endian uint32
  uint8_t qs[16];  // low nibbles
};
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block must be 24 bytes (6 bits per element)");

// MXFP4 (ggml type 39): E8M0 shared exponent, then 16 bytes of E2M1 codes.
// qs[j] & 0x0F is element j, qs[j] >> 4 is element j + 16 (ggml order).
struct BlockMxfp4 {
  uint8_t e;       // E8M0 exponent byte
  uint8_t qs[16];  // 32 packed 4-bit codes
};
static_assert(sizeof(BlockMxfp4) == 17, "MXFP4 block must be 17 bytes");

// Q4_K (ggml type 12; ggml-common.h block_q4_K, ggml-quants.c
// dequantize_row_q4_K): a super-block of 256 elements in 8 sub-blocks of 32.
// Sub-block j has a 6-bit scale sc_j and a 6-bit min m_j (packed in scales[],
// see Q4KScaleMin); element i of sub-block j is
//   d * sc_j * q - dmin * m_j,  q the 4-bit quant.
// Quants: qs[32g + l] holds element 64g + l in its low nibble and element
// 64g + 32 + l in its high nibble (g = 0..3, l = 0..31), so sub-blocks 2g and
// 2g + 1 share the 32 bytes of group g.
struct BlockQ4_K {
  uint16_t d;           // fp16 scale of the sub-block scales
  uint16_t dmin;        // fp16 scale of the sub-block mins
  uint8_t scales[12];   // 8 scales and 8 mins, 6 bits each
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block must be 144 bytes (4.5 bits per element)");

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K block. Sub-blocks
// 0..3 keep theirs in the low 6 bits of scales[j] (scale) and scales[j + 4]
// (min); sub-blocks 4..7 keep the low 4 bits in scales[j + 4] (scale in the
// low nibble, min in the high one) and the top 2 bits in the spare top bits
// of scales[j - 4] (scale) and scales[j] (min).
inline void Q4KScaleMin(const uint8_t* scales, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// Q5_K (ggml type 13; ggml-common.h block_q5_K, ggml-quants.c
// dequantize_row_q5_K): Q4_K with a fifth bit per quant. The same d, dmin
// and 12 bytes of 6-bit scales and mins (Q4KScaleMin), element i of
// sub-block j is d * sc_j * q - dmin * m_j with q the 5-bit quant. Element
// 64g + l (g = 0..3, l = 0..31) has its low 4 bits in the low nibble of
// qs[32g + l] and its top bit in bit 2g of qh[l]; element 64g + 32 + l the
// high nibble of qs[32g + l] and bit 2g + 1 of qh[l].
struct BlockQ5_K {
  uint16_t d;             // fp16 scale of the sub-block scales
  uint16_t dmin;          // fp16 scale of the sub-block mins
  uint8_t scales[12];     // 8 scales and 8 mins, 6 bits each (as Q4_K)
  uint8_t qh[kQK_K / 8];  // top bits
  uint8_t qs[kQK_K / 2];  // low 4 bits
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block must be 176 bytes (5.5 bits per element)");

// Q6_K (ggml type 14; ggml-common.h block_q6_K, ggml-quants.c
// dequantize_row_q6_K): a super-block of 256 elements in 16 sub-blocks of 16
// with an int8 scale each; element e is d * scales[e / 16] * (q - 32), q the
// 6-bit quant. Element e = 128h + 32k + l (h = 0..1, k = 0..3, l = 0..31)
// keeps its low 4 bits in ql[64h + 32(k % 2) + l] (low nibble for k < 2,
// high nibble for k >= 2) and its top 2 bits in bits 2k, 2k + 1 of
// qh[32h + l].
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];    // low 4 bits of the quants
  uint8_t qh[kQK_K / 4];    // top 2 bits of the quants
  int8_t scales[kQK_K / 16];
  uint16_t d;               // fp16 super-block scale
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block must be 210 bytes (6.5625 bits per element)");

// E2M1 values doubled so they fit int8 (ggml's kvalues_mxfp4); compensated by
// the half scale 2^(e-128) below.
inline constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// 2^(e-128): the scale that goes with the doubled table. Exact for every e
// (e = 0 and 1 give the denormals 2^-128 and 2^-127).
inline float E8m0ToFloatHalf(uint8_t e) { return std::ldexp(1.0f, static_cast<int>(e) - 128); }

inline float Fp16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: value = mant * 2^-24
      const float f = static_cast<float>(mant) * 5.9604644775390625e-8f;
      return (h & 0x8000u) ? -f : f;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

// Round to nearest even, with overflow to infinity and subnormal support.
inline uint16_t FloatToFp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u | (ax > 0x7F800000u ? 0x200u : 0u));
  if (ax >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to >= 65520
  if (ax < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    const float a = std::bit_cast<float>(ax);
    const float scaled = a * 16777216.0f;  // in units of 2^-24
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(scaled)));
  }
  const uint32_t mant_odd = (ax >> 13) & 1u;
  uint32_t r = ax + 0xFFFu + mant_odd;  // round to nearest even on the 13 dropped bits
  r -= 0x38000000u;                    // rebias exponent 127 -> 15
  return static_cast<uint16_t>(sign | (r >> 13));
}

inline float Bf16ToFloat(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

inline uint16_t FloatToBf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

// Bytes of one row of n elements of `type`; n must be a multiple of the block size.
int64_t RowBytes(GgmlType type, int64_t n);

// Decodes n elements (n a multiple of the block size) of a row into dst.
void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n);

// Quantizes n floats into `type` (n a multiple of the block size). amax is
// the largest |x| over a block's finite elements. MXFP4: e = floor(log2(amax))
// - 2 + 127 as ggml picks it (floor taken exactly; clamped to 0..254; 0 for an
// all-zero block), each value rounds to the nearest E2M1 value times
// 2^(e-127), ties toward the smaller magnitude as in ggml, beyond the largest
// value it saturates. Q8_0: d = amax / 127 (stored as fp16), q = round(x / d)
// clamped to +-127. Infinities saturate, NaN encodes as 0.
//
// The k-quants use a simple deterministic quantizer (not ggml's weighted
// search; any valid block decodes the same everywhere), built so that every
// finite element lies in its sub-block's representable range and so errs by
// at most half a quantization step (plus float rounding):
//   Q4_K: sub-block j covers [lo, hi] = [min(0, min x), max(0, max x)] with
//         min m_j = ceil(-lo / dmin) and scale sc_j = ceil((hi + dmin m_j) /
//         15 / d), where dmin and d are the fp16 values at or just above
//         max_j(-lo) / 63 and max_j((hi + dmin m_j) / 15) / 63;
//         q = round((x + dmin m_j) / (d sc_j)) in 0..15.
//   Q5_K: as Q4_K with 31 in place of 15 (q in 0..31).
//   Q5_0: d is the fp16 value at or just above amax / 15.5, q - 16 =
//         round(x / d) in -16..15.
//   Q5_1: m is the fp16 value at or just below min x, d the fp16 value at or
//         just above (max x - m) / 31, q = round((x - m) / d) in 0..31.
//   Q6_K: sub-block s needs a step a_s = amax_s / 31.5; d is the fp16 value at
//         or just above max_s(a_s) / 127, scale_s = ceil(a_s / d) in 0..127,
//         q - 32 = round(x / (d scale_s)) in -32..31.
// Only finite elements decide the ranges; infinities saturate to their
// sub-block's extremes and NaN encodes as the value nearest 0. Scales
// saturate at the largest fp16, so finite values beyond about 6.2e7 (Q4_K),
// 1.3e8 (Q5_K), 2.6e8 (Q6_K) or 1.0e6 (Q5_0) clip, as do Q5_1 values below
// about -6.5e4 or more than 2.0e6 above their block's min.
void QuantizeRow(GgmlType type, const float* src, void* dst, int64_t n);

}  // namespace ossgate::gguf
