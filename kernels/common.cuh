// Device helpers shared by the kernel files: tensor-core mma, fp16/bf16
// conversions, the MXFP4 and Q8_0 decoders, and warp reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "kernels/cuda_check.h"
#include "kernels/layout.h"

namespace ossgate::kernels {

inline constexpr float kLog2e = 1.4426950408889634f;

// D = A (16x16 fp16, row) * B (16x8 fp16, col) + D, fp32 accumulation.
__device__ __forceinline__ void MmaF16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                       uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t Prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

__device__ __forceinline__ uint32_t HMul2(uint32_t a, uint32_t b) {
  uint32_t r;
  asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
__device__ __forceinline__ uint32_t HSub2(uint32_t a, uint32_t b) {
  uint32_t r;
  asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

// fp16 bits of 2^(e - 127) (see repack.cc: E8m0ToHalfBits).
__device__ __forceinline__ uint32_t E8m0ToHalfBits(uint32_t e) {
  const int x = static_cast<int>(e) - 127;
  if (x > 15) return 0x7800u;
  if (x >= -14) return static_cast<uint32_t>(x + 15) << 10;
  if (x >= -24) return 1u << (x + 24);
  return 0u;
}

// 8 MXFP4 codes (tiled nibble order) times a fp16 scale -> 4 fp16 pairs.
// Magnitudes come from a byte table of fp16 high bytes (all E2M1 magnitudes
// have a zero low byte), the sign bit is moved into place by a shift.
__device__ __forceinline__ void DecodeMxfp4(uint32_t w, uint32_t scale_bits, uint32_t (&h)[4]) {
  constexpr uint32_t kT0 = 0x3E3C3800u;  // 1.5, 1, 0.5, 0
  constexpr uint32_t kT1 = 0x46444240u;  // 6, 4, 3, 2
  const uint32_t lo = Prmt(kT0, kT1, w & 0x7777u);          // magnitudes of nibbles 0..3
  const uint32_t hi = Prmt(kT0, kT1, (w >> 16) & 0x7777u);  // nibbles 4..7
  const uint32_t s2 = scale_bits | (scale_bits << 16);
  // pair q = (nibble q, nibble q + 4): bytes [x, lo.q, x, hi.q], low bytes cleared.
  h[0] = (Prmt(lo, hi, 0x4000u) & 0xFF00FF00u) | ((w << 12) & 0x80008000u);
  h[1] = (Prmt(lo, hi, 0x5010u) & 0xFF00FF00u) | ((w << 8) & 0x80008000u);
  h[2] = (Prmt(lo, hi, 0x6020u) & 0xFF00FF00u) | ((w << 4) & 0x80008000u);
  h[3] = (Prmt(lo, hi, 0x7030u) & 0xFF00FF00u) | (w & 0x80008000u);
#pragma unroll
  for (int q = 0; q < 4; ++q) h[q] = HMul2(h[q], s2);
}

// 4 int8 codes times a fp16 scale -> 2 fp16 pairs (exact int -> fp16 via the
// 1024 + 128 bias trick, then one rounding of d * q).
__device__ __forceinline__ void DecodeQ8(uint32_t w, uint32_t d_bits, uint32_t& h0, uint32_t& h1) {
  const uint32_t u = w ^ 0x80808080u;  // int8 q -> q + 128 as unsigned
  constexpr uint32_t kMagic = 0x64646464u;
  constexpr uint32_t kBias = 0x64806480u;  // 1152 = 1024 + 128 in both halves
  const uint32_t d2 = d_bits | (d_bits << 16);
  h0 = HMul2(HSub2(Prmt(u, kMagic, 0x4140u), kBias), d2);
  h1 = HMul2(HSub2(Prmt(u, kMagic, 0x4342u), kBias), d2);
}

// bf16 pair -> fp16 pair (values clamped to the fp16 range).
__device__ __forceinline__ uint32_t Bf16PairToHalf(uint32_t w) {
  const float lo = fminf(fmaxf(__uint_as_float(w << 16), -65504.0f), 65504.0f);
  const float hi = fminf(fmaxf(__uint_as_float(w & 0xFFFF0000u), -65504.0f), 65504.0f);
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ uint32_t PackHalf2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, bool valid) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace ossgate::kernels
