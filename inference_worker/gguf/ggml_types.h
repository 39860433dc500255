// ggml tensor element types and their on-disk block layouts, shared by the
// GGUF reader/writer, the CPU reference backend and (as plain structs) the
// CUDA kernels. Layouts follow ggml's ggml-common.h; see docs/gpt-oss-spec.md
// §1-§2 of the project spec for the sources.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include "absl/strings/string_view.h"

namespace ossgate::gguf {

// ggml type ids as stored in GGUF tensor infos. Only the types gpt-oss files
// use are supported; every other id is rejected by the reader.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ8_0 = 8,
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
inline constexpr int kMxfp4BlockElems = 32;

// Q8_0: fp16 scale d, then 32 int8 quants; value = d * q.
struct BlockQ8_0 {
  uint16_t d;     // fp16 bits
  int8_t qs[32];  // quants
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must be 34 bytes");

// MXFP4 (ggml type 39): E8M0 shared exponent, then 16 bytes of E2M1 codes.
// qs[j] & 0x0F is element j, qs[j] >> 4 is element j + 16 (ggml order).
struct BlockMxfp4 {
  uint8_t e;       // E8M0 exponent byte
  uint8_t qs[16];  // 32 packed 4-bit codes
};
static_assert(sizeof(BlockMxfp4) == 17, "MXFP4 block must be 17 bytes");

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
void QuantizeRow(GgmlType type, const float* src, void* dst, int64_t n);

}  // namespace ossgate::gguf
