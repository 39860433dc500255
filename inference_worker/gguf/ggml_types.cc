#include "inference_worker/gguf/ggml_types.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace ossgate::gguf {

std::optional<TypeTraits> GetTypeTraits(uint32_t raw_type) {
  switch (raw_type) {
    case static_cast<uint32_t>(GgmlType::kF32): return TypeTraits{"F32", 1, 4};
    case static_cast<uint32_t>(GgmlType::kF16): return TypeTraits{"F16", 1, 2};
    case static_cast<uint32_t>(GgmlType::kQ5_0): return TypeTraits{"Q5_0", kQ5BlockElems, sizeof(BlockQ5_0)};
    case static_cast<uint32_t>(GgmlType::kQ5_1): return TypeTraits{"Q5_1", kQ5BlockElems, sizeof(BlockQ5_1)};
    case static_cast<uint32_t>(GgmlType::kQ8_0): return TypeTraits{"Q8_0", 32, 34};
    case static_cast<uint32_t>(GgmlType::kQ4_K): return TypeTraits{"Q4_K", kQK_K, sizeof(BlockQ4_K)};
    case static_cast<uint32_t>(GgmlType::kQ5_K): return TypeTraits{"Q5_K", kQK_K, sizeof(BlockQ5_K)};
    case static_cast<uint32_t>(GgmlType::kQ6_K): return TypeTraits{"Q6_K", kQK_K, sizeof(BlockQ6_K)};
    case static_cast<uint32_t>(GgmlType::kBF16): return TypeTraits{"BF16", 1, 2};
    case static_cast<uint32_t>(GgmlType::kMXFP4): return TypeTraits{"MXFP4", 32, 17};
    default: return std::nullopt;
  }
}

const char* GgmlTypeName(uint32_t raw_type) {
  // Names of ggml's type enum (ggml.h); removed ids have no name.
  static constexpr const char* kNames[] = {
      "F32",  "F16",  "Q4_0", "Q4_1", "",        "",        "Q5_0",    "Q5_1",    "Q8_0",   "Q8_1",   "Q2_K",
      "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",    "IQ2_XXS", "IQ2_XS",  "IQ3_XXS", "IQ1_S",  "IQ4_NL", "IQ3_S",
      "IQ2_S", "IQ4_XS", "I8", "I16", "I32",     "I64",     "F64",     "IQ1_M",   "BF16",   "",       "",
      "",     "TQ1_0", "TQ2_0", "",  "",         "",        "MXFP4",   "NVFP4",   "Q1_0",   "Q2_0"};
  if (raw_type < std::size(kNames) && kNames[raw_type][0] != 0) return kNames[raw_type];
  return "unknown";
}

int64_t RowBytes(GgmlType type, int64_t n) {
  const auto traits = GetTypeTraits(static_cast<uint32_t>(type));
  assert(traits && n % traits->block_elems == 0);
  return n / traits->block_elems * traits->block_bytes;
}

namespace {

// Written as fixed-length loops over contiguous bytes with the scales
// hoisted out, so the compiler vectorises them (a row of the CPU backend's
// matmul is decoded on the fly; see docs/perf.md for the throughput). Every
// product here is exact in float (an fp16 d times a 6-bit scale times a
// 4-bit quant needs 21 significant bits; Q6_K's d * int8 * 6-bit needs 23),
// so the only rounding is Q4_K's subtraction of the min.
//
// Q4_K and Q5_K share the 6-bit scales and mins per 32 elements and the
// nibble order; Q5_K (kFifthBit) adds each quant's fifth bit from qh: bit 2g
// (low nibbles) and 2g + 1 (high nibbles) of qh[l]; d * sc * q then needs 22
// significant bits, still exact.
template <bool kFifthBit>
void DequantizeScaleMinBlock(uint16_t d_bits, uint16_t dmin_bits, const uint8_t* scales, const uint8_t* qs,
                             const uint8_t* qh, float* out) {
  const float d = Fp16ToFloat(d_bits), dmin = Fp16ToFloat(dmin_bits);
  for (int g = 0; g < 4; ++g) {
    int sc0, m0, sc1, m1;
    Q4KScaleMin(scales, 2 * g, &sc0, &m0);
    Q4KScaleMin(scales, 2 * g + 1, &sc1, &m1);
    const float step0 = d * static_cast<float>(sc0), off0 = dmin * static_cast<float>(m0);
    const float step1 = d * static_cast<float>(sc1), off1 = dmin * static_cast<float>(m1);
    const uint8_t* q = qs + 32 * g;
    float* y = out + 64 * g;
    for (int l = 0; l < 32; ++l) {
      int v = q[l] & 0x0F;
      if constexpr (kFifthBit) v |= ((qh[l] >> (2 * g)) & 1) << 4;
      y[l] = step0 * static_cast<float>(v) - off0;
    }
    for (int l = 0; l < 32; ++l) {
      int v = q[l] >> 4;
      if constexpr (kFifthBit) v |= ((qh[l] >> (2 * g + 1)) & 1) << 4;
      y[32 + l] = step1 * static_cast<float>(v) - off1;
    }
  }
}
void DequantizeQ4K(const BlockQ4_K& b, float* out) {
  DequantizeScaleMinBlock<false>(b.d, b.dmin, b.scales, b.qs, nullptr, out);
}
void DequantizeQ5K(const BlockQ5_K& b, float* out) {
  DequantizeScaleMinBlock<true>(b.d, b.dmin, b.scales, b.qs, b.qh, out);
}

// Bit j and bit j + 16 of a Q5_0 / Q5_1 qh word: the fifth bits of elements
// j and j + 16. Testing against these constants instead of shifting by the
// element index keeps variable shifts, which SSE2 cannot vectorise, out of
// the loop (bench/model/dequant_bench).
struct Q5BitMasks {
  uint32_t lo[16], hi[16];
  constexpr Q5BitMasks() : lo(), hi() {
    for (int j = 0; j < 16; ++j) lo[j] = 1u << j, hi[j] = 1u << (j + 16);
  }
};
constexpr Q5BitMasks kQ5Bits;

// Q5_0 (kMin false: d * (q - 16)) and Q5_1 (kMin true: d * q + m), the top
// bits read from the uint32 qh (little-endian, as ggml stores it). The
// products are exact; Q5_1's added min is the one rounding.
template <bool kMin>
void DequantizeQ5(const uint8_t qh_bytes[4], const uint8_t qs[16], float d, float m, float* y) {
  const uint32_t qh = static_cast<uint32_t>(qh_bytes[0]) | (static_cast<uint32_t>(qh_bytes[1]) << 8) |
                      (static_cast<uint32_t>(qh_bytes[2]) << 16) | (static_cast<uint32_t>(qh_bytes[3]) << 24);
  constexpr int kOffset = kMin ? 0 : 16;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) + ((qh & kQ5Bits.lo[j]) != 0 ? 16 : 0) - kOffset;
    const int hi = (qs[j] >> 4) + ((qh & kQ5Bits.hi[j]) != 0 ? 16 : 0) - kOffset;
    if constexpr (kMin) {
      y[j] = d * static_cast<float>(lo) + m;
      y[j + 16] = d * static_cast<float>(hi) + m;
    } else {
      y[j] = d * static_cast<float>(lo);
      y[j + 16] = d * static_cast<float>(hi);
    }
  }
}

// One pass per 16-element column of each half: the four elements that share
// a ql/qh byte position (one per 32-element quarter) come out together, each
// with a scale that is constant over the loop. This shape vectorises best of
// those tried (1.6x the per-quarter loop; bench/model/dequant_bench).
void DequantizeQ6K(const BlockQ6_K& b, float* out) {
  const float d = Fp16ToFloat(b.d);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    const int8_t* sc = b.scales + 8 * h;
    float* y = out + 128 * h;
    for (int s = 0; s < 2; ++s) {  // elements 16s..16s+15 of each quarter k: sub-block 8h + 2k + s
      const float step0 = d * static_cast<float>(sc[s]), step1 = d * static_cast<float>(sc[2 + s]);
      const float step2 = d * static_cast<float>(sc[4 + s]), step3 = d * static_cast<float>(sc[6 + s]);
      for (int i = 0; i < 16; ++i) {
        const int l = 16 * s + i;
        const int lo = ql[l], hi = ql[32 + l], top = qh[l];
        y[l] = step0 * static_cast<float>(((lo & 0x0F) | ((top & 0x03) << 4)) - 32);
        y[32 + l] = step1 * static_cast<float>(((hi & 0x0F) | ((top & 0x0C) << 2)) - 32);
        y[64 + l] = step2 * static_cast<float>(((lo >> 4) | (top & 0x30)) - 32);
        y[96 + l] = step3 * static_cast<float>(((hi >> 4) | ((top & 0xC0) >> 2)) - 32);
      }
    }
  }
}

}  // namespace

void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16: {
      // Fp16ToFloat's branches keep the compiler from vectorising; this
      // branch-free form gives the same bits for every pattern (ggml_types_test
      // checks all 65536) at about 7x the speed (docs/perf.md). The half's
      // exponent and mantissa moved into float's fields read as 2^-112 times
      // its value (a subnormal half becomes a float subnormal), so an exact
      // product with 2^112 restores it; exponent 31 (infinity, NaN) lands on
      // float exponent 143 and is raised to 255 by the OR, mantissa kept.
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t bits = h[i];
        const uint32_t magnitude = (bits & 0x7FFFu) << 13;
        uint32_t out = std::bit_cast<uint32_t>(std::bit_cast<float>(magnitude) * 0x1p112f);
        out |= magnitude >= (0x7C00u << 13) ? 0x7F800000u : 0u;
        dst[i] = std::bit_cast<float>(((bits & 0x8000u) << 16) | out);
      }
      return;
    }
    case GgmlType::kBF16: {
      const auto* b = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(b[i]);
      return;
    }
    case GgmlType::kQ8_0: {
      const auto* blocks = static_cast<const BlockQ8_0*>(src);
      for (int64_t b = 0; b < n / kQ8_0BlockElems; ++b) {
        const float d = Fp16ToFloat(blocks[b].d);
        for (int j = 0; j < kQ8_0BlockElems; ++j) dst[b * kQ8_0BlockElems + j] = d * blocks[b].qs[j];
      }
      return;
    }
    case GgmlType::kQ4_K: {
      const auto* blocks = static_cast<const BlockQ4_K*>(src);
      for (int64_t b = 0; b < n / kQK_K; ++b) DequantizeQ4K(blocks[b], dst + b * kQK_K);
      return;
    }
    case GgmlType::kQ5_K: {
      const auto* blocks = static_cast<const BlockQ5_K*>(src);
      for (int64_t b = 0; b < n / kQK_K; ++b) DequantizeQ5K(blocks[b], dst + b * kQK_K);
      return;
    }
    case GgmlType::kQ6_K: {
      const auto* blocks = static_cast<const BlockQ6_K*>(src);
      for (int64_t b = 0; b < n / kQK_K; ++b) DequantizeQ6K(blocks[b], dst + b * kQK_K);
      return;
    }
    case GgmlType::kQ5_0: {
      const auto* blocks = static_cast<const BlockQ5_0*>(src);
      for (int64_t b = 0; b < n / kQ5BlockElems; ++b) {
        DequantizeQ5<false>(blocks[b].qh, blocks[b].qs, Fp16ToFloat(blocks[b].d), 0.0f, dst + b * kQ5BlockElems);
      }
      return;
    }
    case GgmlType::kQ5_1: {
      const auto* blocks = static_cast<const BlockQ5_1*>(src);
      for (int64_t b = 0; b < n / kQ5BlockElems; ++b) {
        DequantizeQ5<true>(blocks[b].qh, blocks[b].qs, Fp16ToFloat(blocks[b].d), Fp16ToFloat(blocks[b].m),
                           dst + b * kQ5BlockElems);
      }
      return;
    }
    case GgmlType::kMXFP4: {
      const auto* blocks = static_cast<const BlockMxfp4*>(src);
      for (int64_t b = 0; b < n / kMxfp4BlockElems; ++b) {
        const float d = E8m0ToFloatHalf(blocks[b].e);
        float* out = dst + b * kMxfp4BlockElems;
        for (int j = 0; j < 16; ++j) {
          out[j] = d * kMxfp4Values[blocks[b].qs[j] & 0x0F];
          out[j + 16] = d * kMxfp4Values[blocks[b].qs[j] >> 4];
        }
      }
      return;
    }
  }
  assert(false && "unsupported type");
}

namespace {

// Index of the doubled-E2M1 table entry nearest to v (v already divided by the
// half scale). Ties go to the first entry in table order, i.e. toward the
// smaller magnitude (0.5 -> 0, 1.5 -> 1, 5 -> 4, 10 -> 8; -0.5 -> +0), exactly
// as ggml's best_index_mxfp4 does; values beyond the table go to +-12. v must
// be finite. Kept branch-free: any test on v in here makes quantization ~5x
// slower.
uint8_t NearestMxfp4Code(float v) {
  uint8_t best = 0;
  float best_err = std::fabs(v - kMxfp4Values[0]);
  for (uint8_t c = 1; c < 16; ++c) {
    const float err = std::fabs(v - kMxfp4Values[c]);
    if (err < best_err) {
      best_err = err;
      best = c;
    }
  }
  return best;
}

// Largest |x| over the finite elements (non-finite ones must not decide the
// scale; they saturate or become 0 when quantized).
float FiniteAbsMax(const float* x, int n, bool* all_finite) {
  float amax = 0.0f;
  bool finite = true;
  for (int j = 0; j < n; ++j) {
    if (std::isfinite(x[j])) {
      amax = std::max(amax, std::fabs(x[j]));
    } else {
      finite = false;
    }
  }
  *all_finite = finite;
  return amax;
}

// The fp16 value nearest at or above x (x >= 0), saturated at the largest
// fp16: a k-quant super-block scale must not round below the scale its
// sub-blocks need, or their largest 6-bit (8-bit) scale would not suffice.
uint16_t Fp16AtLeast(float x) {
  uint16_t h = FloatToFp16(x);
  if (h >= 0x7C00u) return 0x7BFFu;  // beyond the fp16 range (or NaN): the largest finite
  if (Fp16ToFloat(h) < x) ++h;       // the next fp16 up; 0x7BFF + 1 would be infinity
  return h >= 0x7C00u ? static_cast<uint16_t>(0x7BFFu) : h;
}

// ceil(x / unit) as an integer in [0, top]; 0 when unit is 0. x >= 0.
int CeilSteps(float x, float unit, int top) {
  if (!(unit > 0.0f)) return 0;
  return static_cast<int>(std::min(static_cast<float>(top), std::ceil(x / unit)));
}

// round(x) clamped to [lo, hi] (in float first: x may be infinite).
int RoundClamped(float x, int lo, int hi) {
  return static_cast<int>(std::clamp(std::round(x), static_cast<float>(lo), static_cast<float>(hi)));
}

// The quantizer documented at QuantizeRow (header) for the k-quants with a
// 6-bit scale and min per 32 elements, Q4_K (top = 15) and Q5_K (top = 31):
// the fp16 d and dmin, the packed scales and mins (the packing Q4KScaleMin
// reads), and each element's quant in 0..top.
void QuantizeScaleMinBlock(const float* x, int top, uint16_t* d_bits, uint16_t* dmin_bits, uint8_t scales[12],
                           uint8_t q[kQK_K]) {
  float lo[8], hi[8];
  float max_off = 0.0f;
  for (int j = 0; j < 8; ++j) {
    lo[j] = hi[j] = 0.0f;  // 0 is always representable: NaN encodes as the value nearest it
    for (int i = 0; i < 32; ++i) {
      const float v = x[32 * j + i];
      if (!std::isfinite(v)) continue;
      lo[j] = std::min(lo[j], v);
      hi[j] = std::max(hi[j], v);
    }
    max_off = std::max(max_off, -lo[j]);
  }
  *dmin_bits = Fp16AtLeast(max_off / 63.0f);
  const float dmin = Fp16ToFloat(*dmin_bits);
  int m[8], sc[8];
  float need[8], max_need = 0.0f;
  for (int j = 0; j < 8; ++j) {
    m[j] = CeilSteps(-lo[j], dmin, 63);
    // The step that reaches hi from the (rounded up) bottom -dmin * m.
    need[j] = (hi[j] + dmin * static_cast<float>(m[j])) / static_cast<float>(top);
    max_need = std::max(max_need, need[j]);
  }
  *d_bits = Fp16AtLeast(max_need / 63.0f);
  const float d = Fp16ToFloat(*d_bits);
  for (int j = 0; j < 8; ++j) sc[j] = CeilSteps(need[j], d, 63);
  std::memset(scales, 0, 12);
  for (int j = 0; j < 4; ++j) {  // the packing Q4KScaleMin reads
    scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
  }
  for (int e = 0; e < kQK_K; ++e) {
    const int j = e / 32;
    const float step = d * static_cast<float>(sc[j]), off = dmin * static_cast<float>(m[j]);
    const float v = std::isnan(x[e]) ? 0.0f : x[e];
    q[e] = step > 0.0f ? static_cast<uint8_t>(RoundClamped((v + off) / step, 0, top)) : 0;
  }
}

void QuantizeQ4K(const float* x, BlockQ4_K* b) {
  uint8_t q[kQK_K];
  QuantizeScaleMinBlock(x, 15, &b->d, &b->dmin, b->scales, q);
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l) {
      b->qs[32 * g + l] = static_cast<uint8_t>(q[64 * g + l] | (q[64 * g + 32 + l] << 4));
    }
  }
}

void QuantizeQ5K(const float* x, BlockQ5_K* b) {
  uint8_t q[kQK_K];
  QuantizeScaleMinBlock(x, 31, &b->d, &b->dmin, b->scales, q);
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l) {
      const int lo = q[64 * g + l], hi = q[64 * g + 32 + l];
      b->qs[32 * g + l] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
      b->qh[l] = static_cast<uint8_t>(b->qh[l] | ((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1)));
    }
  }
}

// The fp16 value nearest at or below x (finite x), saturated at -65504.
uint16_t Fp16AtMost(float x) {
  if (x < 0.0f) return static_cast<uint16_t>(0x8000u | Fp16AtLeast(-x));
  uint16_t h = FloatToFp16(x);
  if (h >= 0x7C00u) return 0x7BFFu;
  if (Fp16ToFloat(h) > x) --h;  // h > 0 here: the value above x >= 0 is positive
  return h;
}

// Q5_0 / Q5_1 quants of one block into ggml's packing.
void PackQ5(const int q[32], uint8_t qh[4], uint8_t qs[16]) {
  uint32_t bits = 0;
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
  for (int j = 0; j < 32; ++j) bits |= static_cast<uint32_t>(q[j] >> 4) << j;
  for (int i = 0; i < 4; ++i) qh[i] = static_cast<uint8_t>(bits >> (8 * i));
}

// The quantizers documented at QuantizeRow (header). Q5_0: the step amax /
// 15.5 puts +amax at 15.5 steps, which rounds to 16 and clamps to 15: still
// within half a step.
void QuantizeQ5_0(const float* x, BlockQ5_0* b) {
  bool all_finite = true;
  const float amax = FiniteAbsMax(x, kQ5BlockElems, &all_finite);
  b->d = Fp16AtLeast(amax / 15.5f);
  const float d = Fp16ToFloat(b->d);
  int q[32];
  for (int j = 0; j < 32; ++j) {
    const float v = std::isnan(x[j]) ? 0.0f : x[j];
    q[j] = (d > 0.0f ? RoundClamped(v / d, -16, 15) : 0) + 16;
  }
  PackQ5(q, b->qh, b->qs);
}

void QuantizeQ5_1(const float* x, BlockQ5_1* b) {
  float lo = 0.0f, hi = 0.0f;
  bool any = false;
  for (int j = 0; j < 32; ++j) {
    if (!std::isfinite(x[j])) continue;
    lo = any ? std::min(lo, x[j]) : x[j];
    hi = any ? std::max(hi, x[j]) : x[j];
    any = true;
  }
  b->m = Fp16AtMost(lo);
  const float m = Fp16ToFloat(b->m);
  b->d = Fp16AtLeast((hi - m) / 31.0f);
  const float d = Fp16ToFloat(b->d);
  int q[32];
  for (int j = 0; j < 32; ++j) {
    // NaN encodes as the code nearest 0 (or the block's min, if 0 is below it).
    const float v = std::isnan(x[j]) ? 0.0f : x[j];
    q[j] = d > 0.0f ? RoundClamped((v - m) / d, 0, 31) : 0;
  }
  PackQ5(q, b->qh, b->qs);
}

// The quantizer documented at QuantizeRow (header). The step a_s = amax /
// 31.5 puts +amax at 31.5 steps, which rounds to 32 and clamps to 31: still
// within half a step, and 1.6% finer than amax / 31.
void QuantizeQ6K(const float* x, BlockQ6_K* b) {
  float step_needed[16], max_step = 0.0f;
  for (int s = 0; s < 16; ++s) {
    bool all_finite = true;
    step_needed[s] = FiniteAbsMax(x + 16 * s, 16, &all_finite) / 31.5f;
    max_step = std::max(max_step, step_needed[s]);
  }
  b->d = Fp16AtLeast(max_step / 127.0f);
  const float d = Fp16ToFloat(b->d);
  for (int s = 0; s < 16; ++s) b->scales[s] = static_cast<int8_t>(CeilSteps(step_needed[s], d, 127));
  uint8_t q[kQK_K];  // q + 32, 0..63
  for (int e = 0; e < kQK_K; ++e) {
    const float step = d * static_cast<float>(b->scales[e / 16]);
    const float v = std::isnan(x[e]) ? 0.0f : x[e];
    q[e] = static_cast<uint8_t>((step > 0.0f ? RoundClamped(v / step, -32, 31) : 0) + 32);
  }
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int e = 0; e < kQK_K; ++e) {  // e = 128h + 32k + l
    const int h = e / 128, k = (e / 32) % 4, l = e % 32;
    uint8_t& low = b->ql[64 * h + 32 * (k % 2) + l];
    low = static_cast<uint8_t>(k < 2 ? (q[e] & 0x0F) : (low | ((q[e] & 0x0F) << 4)));
    b->qh[32 * h + l] = static_cast<uint8_t>(b->qh[32 * h + l] | ((q[e] >> 4) << (2 * k)));
  }
}

}  // namespace

void QuantizeRow(GgmlType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = FloatToFp16(src[i]);
      return;
    }
    case GgmlType::kBF16: {
      auto* b = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) b[i] = FloatToBf16(src[i]);
      return;
    }
    case GgmlType::kQ8_0: {
      auto* blocks = static_cast<BlockQ8_0*>(dst);
      for (int64_t b = 0; b < n / kQ8_0BlockElems; ++b) {
        const float* x = src + b * kQ8_0BlockElems;
        bool all_finite = true;
        const float amax = FiniteAbsMax(x, kQ8_0BlockElems, &all_finite);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        blocks[b].d = FloatToFp16(d);
        for (int j = 0; j < kQ8_0BlockElems; ++j) {
          // Clamp before rounding: lround of inf or NaN is unspecified.
          const float q = x[j] * id;
          blocks[b].qs[j] = std::isnan(q) ? 0 : static_cast<int8_t>(std::lround(std::clamp(q, -127.0f, 127.0f)));
        }
      }
      return;
    }
    case GgmlType::kQ4_K: {
      auto* blocks = static_cast<BlockQ4_K*>(dst);
      for (int64_t b = 0; b < n / kQK_K; ++b) QuantizeQ4K(src + b * kQK_K, &blocks[b]);
      return;
    }
    case GgmlType::kQ5_K: {
      auto* blocks = static_cast<BlockQ5_K*>(dst);
      for (int64_t b = 0; b < n / kQK_K; ++b) QuantizeQ5K(src + b * kQK_K, &blocks[b]);
      return;
    }
    case GgmlType::kQ6_K: {
      auto* blocks = static_cast<BlockQ6_K*>(dst);
      for (int64_t b = 0; b < n / kQK_K; ++b) QuantizeQ6K(src + b * kQK_K, &blocks[b]);
      return;
    }
    case GgmlType::kQ5_0: {
      auto* blocks = static_cast<BlockQ5_0*>(dst);
      for (int64_t b = 0; b < n / kQ5BlockElems; ++b) QuantizeQ5_0(src + b * kQ5BlockElems, &blocks[b]);
      return;
    }
    case GgmlType::kQ5_1: {
      auto* blocks = static_cast<BlockQ5_1*>(dst);
      for (int64_t b = 0; b < n / kQ5BlockElems; ++b) QuantizeQ5_1(src + b * kQ5BlockElems, &blocks[b]);
      return;
    }
    case GgmlType::kMXFP4: {
      auto* blocks = static_cast<BlockMxfp4*>(dst);
      for (int64_t b = 0; b < n / kMxfp4BlockElems; ++b) {
        const float* x = src + b * kMxfp4BlockElems;
        bool all_finite = true;
        const float amax = FiniteAbsMax(x, kMxfp4BlockElems, &all_finite);
        // e = floor(log2(amax)) - 2 + 127 (spec §2.1), with floor(log2) taken
        // exactly by ilogb: log2f rounds up to the next integer for amax just
        // below a power of two, which would pick a scale twice too large.
        int e = 0;
        if (amax > 0.0f) e = std::clamp(std::ilogb(amax) - 2 + 127, 0, 254);
        blocks[b].e = static_cast<uint8_t>(e);
        // Divide by the half scale 2^(e-128) by multiplying with 2^(128-e),
        // split in two power-of-two factors because 2^128 (e = 0) is not a
        // float. Exact: |x| * 2^(128-e) < 16 for every finite element.
        const float inv_a = std::ldexp(1.0f, std::min(127, 128 - e));
        const float inv_b = e == 0 ? 2.0f : 1.0f;
        float clean[kMxfp4BlockElems];
        if (!all_finite) {  // rare: infinities become +-12 (the largest code), NaN 0
          const float top = std::ldexp(12.0f, e - 128);
          for (int j = 0; j < kMxfp4BlockElems; ++j) {
            clean[j] = std::isnan(x[j]) ? 0.0f : std::isinf(x[j]) ? std::copysign(top, x[j]) : x[j];
          }
          x = clean;
        }
        for (int j = 0; j < 16; ++j) {
          const uint8_t lo = NearestMxfp4Code(x[j] * inv_a * inv_b);
          const uint8_t hi = NearestMxfp4Code(x[j + 16] * inv_a * inv_b);
          blocks[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
        }
      }
      return;
    }
  }
  assert(false && "unsupported type");
}

}  // namespace ossgate::gguf
