// Device helpers shared by the kernel files: tensor-core mma, fp16/bf16
// conversions, the MXFP4, Q4_K and Q8_0 decoders, and warp reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <utility>

#include "kernels/cuda_check.h"
#include "kernels/layout.h"

namespace ossgate::kernels {

// ---- Programmatic dependent launch (sm_90+; no-ops elsewhere) ----
//
// Every kernel is launched with LaunchKernel (below), which on Hopper allows
// the next kernel of the stream to be scheduled while this one still runs.
// The contract that keeps this correct: every kernel calls
// GridDependencySync() before it reads anything an earlier kernel wrote (and
// before any early return, so a kernel never completes before its
// predecessor), and calls LaunchDependents() at its start. Work that needs no
// earlier result (loading weights) may go before the sync.
__device__ __forceinline__ void GridDependencySync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void LaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" :::);
#endif
}

// Asks for the 128-byte line holding `p` to be brought into L2 (no register
// result; used for weights before GridDependencySync).
__device__ __forceinline__ void PrefetchL2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}

// Whether launches carry the programmatic-serialization attribute (set by
// InitKernels from the device's compute capability).
bool ProgrammaticLaunchEnabled();

template <typename... Params, typename... Args>
void LaunchKernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                  Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = ProgrammaticLaunchEnabled() ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

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

// 8 MXFP4 codes of one row (the tiled bit order of layout.h) -> the 4 fp16
// pairs of its two k-steps, each value the E2M1 number times 2^-14: the
// three magnitude bits of a code land in fp16 bits 9..11 (exponent low bits
// and the top mantissa bit; the E2M1 subnormal 0.5 becomes the fp16
// subnormal 2^-15), the sign in bit 15. Exact; the scale 2^(e-127) and the
// 2^14 are applied to the fp32 partial sums (see gemm.cu).
__device__ __forceinline__ void DecodeMxfp4Raw(uint32_t w, uint32_t (&h)[4]) {
  constexpr uint32_t kMag = 0x0E000E00u, kSign = 0x80008000u;
  h[0] = w & (kMag | kSign);
  h[1] = (w << 8) & (kMag | kSign);
  h[2] = ((w << 5) & kMag) | ((w << 7) & kSign);
  h[3] = ((w >> 3) & kMag) | ((w << 15) & kSign);
}

// 8 Q4_K codes of one row (the tiled bit order of layout.h: the code of
// column 2q + h at bit 4q + 16h) times the sub-block scale sc (0..63) -> the 4
// fp16 pairs of its two k-steps, each value the fp16 subnormal
// q * sc * 2^-24. Exact: q * sc <= 945 fits the 10 mantissa bits, and one
// integer multiply scales both halves (no carry across them). d, dmin and
// the 2^24 are applied to the chunk's fp32 sums (see gemm.cu).
__device__ __forceinline__ void DecodeQ4K(uint32_t w, uint32_t sc, uint32_t (&h)[4]) {
  constexpr uint32_t kCodes = 0x000F000Fu;
  h[0] = (w & kCodes) * sc;
  h[1] = ((w >> 4) & kCodes) * sc;
  h[2] = ((w >> 8) & kCodes) * sc;
  h[3] = ((w >> 12) & kCodes) * sc;
}

// fp32 2^(e - 127) of an E8M0 byte held at bits [shift, shift + 8) of `bits`
// (e = 0 gives the fp32 subnormal 2^-127, e = 255 infinity).
template <int kShift>
__device__ __forceinline__ float E8m0ToFloat(uint32_t bits) {
  static_assert(kShift >= 0 && kShift <= 23, "byte below bit 31");
  const uint32_t f = (bits << (23 - kShift)) & 0x7F800000u;
  return __uint_as_float(max(f, 0x00400000u));
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
