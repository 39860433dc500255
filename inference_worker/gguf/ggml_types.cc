#include "inference_worker/gguf/ggml_types.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace ossgate::gguf {

std::optional<TypeTraits> GetTypeTraits(uint32_t raw_type) {
  switch (raw_type) {
    case static_cast<uint32_t>(GgmlType::kF32): return TypeTraits{"F32", 1, 4};
    case static_cast<uint32_t>(GgmlType::kF16): return TypeTraits{"F16", 1, 2};
    case static_cast<uint32_t>(GgmlType::kQ8_0): return TypeTraits{"Q8_0", 32, 34};
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

void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFloat(h[i]);
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
