// Block-scaled GEMM on tensor cores: y = W x with W in its file format
// (Q8_0, MXFP4, Q4_K, F16, BF16; tiled by layout.h) and x in fp16. The weights are
// the mma A operand (16 output rows per tile), the tokens the B operand (8 per
// n-tile), so a single token still uses tensor cores and the result of every
// output element depends only on its row and its token.
//
// Each weight element is decoded in registers and never stored expanded:
// Q8_0 to fp16 d * q (one rounding), F16 as is, BF16 to fp16; MXFP4 codes to
// their exact E2M1 values (times 2^-14, see DecodeMxfp4Raw) with the block
// scale applied to the fp32 partial sum of the block instead of to every
// element (exact, and half the decode instructions). Accumulation follows
// the canonical order of layout.h: per chunk of 8 blocks an mma chain from
// zero (MXFP4: per block a 2-mma chain from zero, then acc = fma(partial,
// 2^(e-127), acc) in block order, and the chunk sum times 2^14; Q4_K, whose
// chunk is one super-block: the codes times sc as exact fp16 subnormals
// q * sc * 2^-24 in one chain, the mins m * 2^-24 against the same
// activations in a second, and the chunk sum d * 2^24 * codes - dmin * 2^24 *
// mins), chunk sums added in order, then the bias. Both kernels below follow it exactly, so
// they are interchangeable bit for bit:
//   - small batch: one CTA of 1, 2, 4 or 8 warps per row tile, the chunks
//     split among the warps (split-K), each warp streaming its chunks through
//     a ring of 3, 4 or 6 shared-memory stages filled by cp.async (warps and
//     depth picked per launch, see LaunchTyped), chunk sums reduced through
//     shared memory in order; reads each weight once per 8 tokens (decode);
//   - large batch: 8 (or 4) row tiles x 64 tokens per CTA (MoE with MXFP4
//     experts: x the routing's tile of 8-64 slots), the token tile staged in
//     shared memory by cp.async (double buffered) and shared by the row
//     tiles, weights streamed from global memory straight into registers.
// F32 weights (only in test models) use a CUDA-core kernel.
#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <cstdio>
#include <cstdlib>

#include "kernels/common.cuh"
#include "kernels/ops.h"

namespace ossgate::kernels {

namespace {

constexpr int kLargeTokens = 64;      // tokens per large-batch CTA (MoE: tile_slots, 8 to 64)
constexpr int kLargeWarps = 8;        // row tiles per large-batch CTA
// Small batch: 2, 4 or 8 warps per CTA (each streams its chunks of the row
// tile), picked per launch so that the CTAs fit in one wave when they can
// (few row tiles: more warps split K) and stream long otherwise.
constexpr int kSmallMaxWarps = 8;
constexpr int kSmallTokens = 8;       // tokens per n-tile; a small-batch pass takes 1 or 2 n-tiles
template <WFormat F>
inline constexpr int kChunkCodeBytes = kChunkBlocks * TileCodeBytes(F);
template <WFormat F>
inline constexpr int kChunkScaleBytes = kChunkBlocks * TileScaleBytes(F);
template <WFormat F>
inline constexpr int kStageBytes = kChunkCodeBytes<F> + kChunkScaleBytes<F>;
static_assert(kStageBytes<WFormat::kMxfp4> % 16 == 0 && kStageBytes<WFormat::kQ8_0> % 16 == 0 &&
                  kStageBytes<WFormat::kQ4K> % 16 == 0 && kChunkScaleBytes<WFormat::kQ4K> % 16 == 0,
              "stage alignment");
// Floats of a chunk accumulator (C fragment: [0..1] row r, [2..3] row r + 8):
// Q4_K keeps a second chain for the mins.
template <WFormat F>
inline constexpr int kAccN = F == WFormat::kQ4K ? 8 : 4;
constexpr int SmallPartBytes(int nchunks, int n_tiles) { return nchunks * kTileRows * kSmallTokens * n_tiles * 4; }
// One stage of B (8 blocks of kt tokens), in 16-byte units; two per CTA.
constexpr int LargeStageUint4(int kt) { return kChunkBlocks * kt * 4; }
constexpr int LargeSmemBytes(int kt) { return 2 * LargeStageUint4(kt) * 16; }

// One lane's share of one tile (16 rows x 32 columns) and its scales.
template <WFormat F>
struct TileRaw;
template <>
struct TileRaw<WFormat::kQ8_0> {
  uint4 q;
  uint32_t d;
};
template <>
struct TileRaw<WFormat::kMxfp4> {
  uint2 q;
  uint32_t e;
};
template <>
struct TileRaw<WFormat::kQ4K> {
  uint2 q;
  uint32_t s;  // sc(r) | sc(r + 8) << 8 | m(r) << 16 | m(r + 8) << 24
};
template <>
struct TileRaw<WFormat::kF16> {
  uint4 r0, r1;
};
template <>
struct TileRaw<WFormat::kBf16> {
  uint4 r0, r1;
};

template <WFormat F>
__device__ __forceinline__ void LoadTile(const TiledMatrix& w, int mat, int rt, int kb, int lane, TileRaw<F>& t) {
  const int64_t tile = static_cast<int64_t>(rt) * w.k_blocks + kb;
  const uint8_t* codes = w.codes + mat * w.mat_code_bytes + tile * TileCodeBytes(F) + lane * LaneCodeBytes(F);
  if constexpr (F == WFormat::kQ8_0) {
    t.q = __ldg(reinterpret_cast<const uint4*>(codes));
    t.d = __ldg(reinterpret_cast<const uint32_t*>(w.scales + mat * w.mat_scale_bytes + tile * 32 + (lane >> 2) * 4));
  } else if constexpr (F == WFormat::kMxfp4) {
    t.q = __ldg(reinterpret_cast<const uint2*>(codes));
    t.e = __ldg(reinterpret_cast<const uint16_t*>(w.scales + mat * w.mat_scale_bytes + tile * 16 + (lane >> 2) * 2));
  } else if constexpr (F == WFormat::kQ4K) {
    t.q = __ldg(reinterpret_cast<const uint2*>(codes));
    t.s = __ldg(reinterpret_cast<const uint32_t*>(w.scales + mat * w.mat_scale_bytes + tile * TileScaleBytes(F) +
                                                  (lane >> 2) * 4));
  } else {
    t.r0 = __ldg(reinterpret_cast<const uint4*>(codes));
    t.r1 = __ldg(reinterpret_cast<const uint4*>(codes + 16));
  }
}

// A fragments of the tile's two k-steps: a[0..3] step 0, a[4..7] step 1.
template <WFormat F>
__device__ __forceinline__ void DecodeTile(const TileRaw<F>& t, uint32_t (&a)[8]) {
  uint32_t p0[4], p1[4];  // fp16 pairs of row r and row r + 8
  if constexpr (F == WFormat::kQ8_0) {
    const uint32_t d0 = t.d & 0xFFFFu, d1 = t.d >> 16;
    DecodeQ8(t.q.x, d0, p0[0], p0[1]);
    DecodeQ8(t.q.y, d0, p0[2], p0[3]);
    DecodeQ8(t.q.z, d1, p1[0], p1[1]);
    DecodeQ8(t.q.w, d1, p1[2], p1[3]);
  } else if constexpr (F == WFormat::kMxfp4) {
    DecodeMxfp4Raw(t.q.x, p0);  // unscaled: see MmaBlock
    DecodeMxfp4Raw(t.q.y, p1);
  } else if constexpr (F == WFormat::kQ4K) {
    DecodeQ4K(t.q.x, t.s & 0xFFu, p0);  // times sc; d and dmin per chunk: ChunkValue
    DecodeQ4K(t.q.y, (t.s >> 8) & 0xFFu, p1);
  } else if constexpr (F == WFormat::kF16) {
    p0[0] = t.r0.x, p0[1] = t.r0.y, p0[2] = t.r0.z, p0[3] = t.r0.w;
    p1[0] = t.r1.x, p1[1] = t.r1.y, p1[2] = t.r1.z, p1[3] = t.r1.w;
  } else {
    p0[0] = Bf16PairToHalf(t.r0.x), p0[1] = Bf16PairToHalf(t.r0.y);
    p0[2] = Bf16PairToHalf(t.r0.z), p0[3] = Bf16PairToHalf(t.r0.w);
    p1[0] = Bf16PairToHalf(t.r1.x), p1[1] = Bf16PairToHalf(t.r1.y);
    p1[2] = Bf16PairToHalf(t.r1.z), p1[3] = Bf16PairToHalf(t.r1.w);
  }
  a[0] = p0[0], a[1] = p1[0], a[2] = p0[1], a[3] = p1[1];
  a[4] = p0[2], a[5] = p1[2], a[6] = p0[3], a[7] = p1[3];
}

// One block's products added to a chunk accumulator (C fragment: acc[0..1]
// row r, acc[2..3] row r + 8). MXFP4: the block's 2-mma chain starts from
// zero and its fp32 partial is scaled by the rows' 2^(e-127) in one FMA each;
// Q4_K: the codes times sc chain into acc[0..3] and the block's min m (an A
// operand of m * 2^-24 in every column, so the mma sums m * x over the
// block) into acc[4..7]; other formats chain the mma straight into the
// accumulator.
template <WFormat F>
__device__ __forceinline__ void MmaBlock(float (&acc)[kAccN<F>], const uint32_t (&a)[8], const TileRaw<F>& t,
                                         uint4 b) {
  if constexpr (F == WFormat::kQ4K) {
    float codes[4] = {acc[0], acc[1], acc[2], acc[3]};
    float mins[4] = {acc[4], acc[5], acc[6], acc[7]};
    MmaF16(codes, a[0], a[1], a[2], a[3], b.x, b.y);
    MmaF16(codes, a[4], a[5], a[6], a[7], b.z, b.w);
    const uint32_t m0 = ((t.s >> 16) & 0xFFu) * 0x00010001u, m1 = (t.s >> 24) * 0x00010001u;
    MmaF16(mins, m0, m1, m0, m1, b.x, b.y);
    MmaF16(mins, m0, m1, m0, m1, b.z, b.w);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      acc[e] = codes[e];
      acc[4 + e] = mins[e];
    }
  } else if constexpr (F == WFormat::kMxfp4) {
    float p[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    MmaF16(p, a[0], a[1], a[2], a[3], b.x, b.y);
    MmaF16(p, a[4], a[5], a[6], a[7], b.z, b.w);
    const float s0 = E8m0ToFloat<0>(t.e), s1 = E8m0ToFloat<8>(t.e);
    acc[0] = fmaf(p[0], s0, acc[0]);
    acc[1] = fmaf(p[1], s0, acc[1]);
    acc[2] = fmaf(p[2], s1, acc[2]);
    acc[3] = fmaf(p[3], s1, acc[3]);
  } else {
    MmaF16(acc, a[0], a[1], a[2], a[3], b.x, b.y);
    MmaF16(acc, a[4], a[5], a[6], a[7], b.z, b.w);
  }
}
// Factor of a chunk sum: MXFP4 values were decoded as E2M1 * 2^-14.
template <WFormat F>
inline constexpr float kChunkScale = F == WFormat::kMxfp4 ? 16384.0f : 1.0f;

// What a chunk's sums need besides its tiles: for Q4_K the fp16 d and dmin
// of rows r and r + 8 (low and high half of each word), which tiles r / 2 and
// r / 2 + 4 of the chunk carry (layout.h); nothing for the other formats.
template <WFormat F>
struct ChunkScales {};
template <>
struct ChunkScales<WFormat::kQ4K> {
  uint32_t lo = 0, hi = 0;
};
// `first_tile_scales` points at the scales of the chunk's first tile (global
// or shared memory).
template <WFormat F>
__device__ __forceinline__ void LoadChunkScales(const uint8_t* first_tile_scales, int lane, ChunkScales<F>& cs) {
  if constexpr (F == WFormat::kQ4K) {
    const int r = lane >> 2;
    const uint8_t* p = first_tile_scales + (r >> 1) * TileScaleBytes(F) + kQ4KSuperScaleOffset + (r & 1) * 4;
    cs.lo = *reinterpret_cast<const uint32_t*>(p);
    cs.hi = *reinterpret_cast<const uint32_t*>(p + 4 * TileScaleBytes(F));
  }
}
__device__ __forceinline__ float HalfBitsToFloatDev(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}
// Element e of the C fragment of a finished chunk accumulator: the canonical
// chunk sum. Q4_K: d * codes - dmin * mins, both chains times 2^24 (the
// subnormal decoding), each product and the difference rounded once.
template <WFormat F>
__device__ __forceinline__ float ChunkValue(const float (&acc)[kAccN<F>], int e, const ChunkScales<F>& cs) {
  if constexpr (F == WFormat::kQ4K) {
    const uint32_t dd = e < 2 ? cs.lo : cs.hi;
    const float d = HalfBitsToFloatDev(dd & 0xFFFFu) * 16777216.0f;
    const float dmin = HalfBitsToFloatDev(dd >> 16) * 16777216.0f;
    return __fsub_rn(__fmul_rn(acc[e], d), __fmul_rn(acc[4 + e], dmin));
  } else {
    return acc[e] * kChunkScale<F>;
  }
}

__device__ __forceinline__ float SwiGlu(float g, float u, float alpha, float limit) {
  g = fminf(g, limit);
  u = fminf(fmaxf(u, -limit), limit);
  return g / (1.0f + expf(-alpha * g)) * (u + 1.0f);
}

// The gate/up epilogue's activation: gpt-oss's clamped SwiGLU, or the
// dense families' silu(gate) * up; a null bias adds nothing.
__device__ __forceinline__ float GatedUnit(const GemmParams& p, float g, float u, int64_t bi) {
  if (p.bias_gate) g = __fadd_rn(g, p.bias_gate[bi]);
  if (p.bias_up) u = __fadd_rn(u, p.bias_up[bi]);
  if (p.silu_glu) return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
  return SwiGlu(g, u, p.swiglu_alpha, p.swiglu_limit);
}

__device__ __forceinline__ half_t ToHalfBits(float v) {
  const __half h = __float2half_rn(v);
  return *reinterpret_cast<const half_t*>(&h);
}

// ---------------------------------------------------------------- kernels --

// Small batch: each warp streams its chunks (warp, warp + nwarps, ...) of
// the CTA's row tile through a ring of kSmallStages shared-memory stages
// filled by 16-byte cp.async (kSmallStages - 1 chunks in flight per warp
// without holding them in registers), decodes each tile from shared memory
// and runs the canonical per-chunk arithmetic; chunk sums are reduced through
// shared memory in order.
template <WFormat F>
__device__ __forceinline__ void IssueChunk(const TiledMatrix& w, int mat, int rt, int ch, int nb, uint8_t* stage,
                                           int lane) {
  const int64_t tile0 = static_cast<int64_t>(rt) * w.k_blocks + ch * kChunkBlocks;
  const uint8_t* codes = w.codes + mat * w.mat_code_bytes + tile0 * TileCodeBytes(F);
  const int n_code = nb * TileCodeBytes(F) / 16;
#pragma unroll
  for (int q = lane; q < kChunkCodeBytes<F> / 16; q += 32) {
    if (q < n_code) CpAsync16(stage + q * 16, codes + q * 16, true);
  }
  if constexpr (TileScaleBytes(F) > 0) {
    const uint8_t* scales = w.scales + mat * w.mat_scale_bytes + tile0 * TileScaleBytes(F);
    const int n_scale = nb * TileScaleBytes(F) / 16;
    for (int q = lane; q < kChunkScaleBytes<F> / 16; q += 32) {
      if (q < n_scale) CpAsync16(stage + kChunkCodeBytes<F> + q * 16, scales + q * 16, true);
    }
  }
}

// Lane `lane`'s share of tile i of a staged chunk (the same bytes LoadTile
// reads from global memory).
template <WFormat F>
__device__ __forceinline__ void TileFromStage(const uint8_t* stage, int i, int lane, TileRaw<F>& t) {
  const uint8_t* codes = stage + i * TileCodeBytes(F) + lane * LaneCodeBytes(F);
  const uint8_t* scales = stage + kChunkCodeBytes<F> + i * TileScaleBytes(F);
  if constexpr (F == WFormat::kQ8_0) {
    t.q = *reinterpret_cast<const uint4*>(codes);
    t.d = *reinterpret_cast<const uint32_t*>(scales + (lane >> 2) * 4);
  } else if constexpr (F == WFormat::kMxfp4) {
    t.q = *reinterpret_cast<const uint2*>(codes);
    t.e = *reinterpret_cast<const uint16_t*>(scales + (lane >> 2) * 2);
  } else if constexpr (F == WFormat::kQ4K) {
    t.q = *reinterpret_cast<const uint2*>(codes);
    t.s = *reinterpret_cast<const uint32_t*>(scales + (lane >> 2) * 4);
  } else {
    t.r0 = *reinterpret_cast<const uint4*>(codes);
    t.r1 = *reinterpret_cast<const uint4*>(codes + 16);
  }
}

template <WFormat F, GemmEpilogue EPI, int kSmallStages, int kNT>
__global__ void __launch_bounds__(kSmallMaxWarps * 32, 1) GemmSmallBatchKernel(const GemmParams p) {
  extern __shared__ __align__(16) uint8_t smem_small[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const int r = lane >> 2, c = lane & 3;
  const int rt = blockIdx.x;
  const int kb_total = p.w.k_blocks;
  const int nchunks = (kb_total + kChunkBlocks - 1) / kChunkBlocks;
  constexpr int kPass = kSmallTokens * kNT;  // tokens per pass over the weights
  float* part = reinterpret_cast<float*>(smem_small);  // [nchunks][16 rows][kPass tokens]
  uint8_t* ring = smem_small + SmallPartBytes(nchunks, kNT) + warp * kSmallStages * kStageBytes<F>;
  auto blocks_in = [&](int ch) { return min(kChunkBlocks, kb_total - ch * kChunkBlocks); };
  // This warp's chunks: warp + j * nwarps for j < n_mine.
  const int n_mine = warp < nchunks ? (nchunks - warp + nwarps - 1) / nwarps : 0;
  int mat = 0, b_begin = 0, b_end = p.n_b;
  // Weights do not depend on earlier kernels: the first chunks' tiles are
  // requested before waiting for the previous kernel (programmatic launch).
  // MoE needs the routing first: after the wait, unless routing_ready (it
  // was complete when the previous kernel started). A MoE launch that waits
  // for its routing lets the next kernel start only after that wait, so the
  // next one may read the same routing early.
  const bool early_routing = p.moe && p.routing_ready;
  bool synced = p.moe && !early_routing;
  if (!synced) LaunchDependents();
  if (p.moe) {
    if (synced) GridDependencySync();
    const int n_active = *p.groups.n_active;
    const int active = p.groups.active[blockIdx.y];  // requested together
    if (synced) LaunchDependents();
    if (static_cast<int>(blockIdx.y) >= n_active) {
      if (!synced) GridDependencySync();
      return;
    }
    mat = active;
    b_begin = p.groups.offsets[mat];
    b_end = p.groups.offsets[mat + 1];
  }
  auto issue = [&](int j) {  // chunk j of this warp into its stage; one commit group per call
    if (j < n_mine) {
      const int ch = warp + j * nwarps;
      IssueChunk<F>(p.w, mat, rt, ch, blocks_in(ch), ring + (j % kSmallStages) * kStageBytes<F>, lane);
    }
    CpAsyncCommit();
  };

  for (int b0 = b_begin; b0 < b_end; b0 += kPass) {
#pragma unroll
    for (int j = 0; j < kSmallStages - 1; ++j) issue(j);
    if (!synced) {
      GridDependencySync();
      synced = true;
    }
    // Lane (r, c) feeds token r of each n-tile (columns 8c .. 8c+7 of a block).
    bool b_valid[kNT];
    const half_t* xrow[kNT];
#pragma unroll
    for (int t = 0; t < kNT; ++t) {
      const int b = b0 + t * kSmallTokens + r;
      b_valid[t] = b < b_end;
      xrow[t] = p.x + static_cast<int64_t>(b_valid[t] ? (p.gather ? p.gather[b] : b) : 0) * p.ldx + c * 8;
    }
    for (int j = 0; j < n_mine; ++j) {
      const int ch = warp + j * nwarps;
      const int kb0 = ch * kChunkBlocks;
      const int nb = blocks_in(ch);
      // The chunk's activations (L1/L2 hits: every CTA reads the same rows),
      // all requested before the first use. Blocks past the chunk's end
      // re-read its last block (a valid address; never used).
      uint4 xb[kNT][kChunkBlocks];
#pragma unroll
      for (int t = 0; t < kNT; ++t) {
        const uint4* xch = reinterpret_cast<const uint4*>(xrow[t] + kb0 * kBlockK);
#pragma unroll
        for (int i = 0; i < kChunkBlocks; ++i) xb[t][i] = __ldg(xch + min(i, nb - 1) * (kBlockK / 8));
        if (!b_valid[t]) {
#pragma unroll
          for (int i = 0; i < kChunkBlocks; ++i) xb[t][i] = make_uint4(0, 0, 0, 0);
        }
      }
      CpAsyncWait<kSmallStages - 2>();  // chunk j has landed (this lane's copies)
      __syncwarp();                     // ... and every lane's; stage (j - 1) is free
      issue(j + kSmallStages - 1);
      const uint8_t* stage = ring + (j % kSmallStages) * kStageBytes<F>;
      // Each tile is decoded once for all n-tiles of the pass.
      float acc[kNT][kAccN<F>];
#pragma unroll
      for (int t = 0; t < kNT; ++t) {
#pragma unroll
        for (int e = 0; e < kAccN<F>; ++e) acc[t][e] = 0.0f;
      }
#pragma unroll
      for (int i = 0; i < kChunkBlocks; ++i) {
        if (i < nb) {
          TileRaw<F> tl;
          TileFromStage<F>(stage, i, lane, tl);
          uint32_t a[8];
          DecodeTile<F>(tl, a);
#pragma unroll
          for (int t = 0; t < kNT; ++t) MmaBlock<F>(acc[t], a, tl, xb[t][i]);
        }
      }
      ChunkScales<F> cs;
      LoadChunkScales<F>(stage + kChunkCodeBytes<F>, lane, cs);
      float* dst = part + ch * (kTileRows * kPass);
#pragma unroll
      for (int t = 0; t < kNT; ++t) {
        const int col = t * kSmallTokens + 2 * c;
        dst[r * kPass + col] = ChunkValue<F>(acc[t], 0, cs);
        dst[r * kPass + col + 1] = ChunkValue<F>(acc[t], 1, cs);
        dst[(r + 8) * kPass + col] = ChunkValue<F>(acc[t], 2, cs);
        dst[(r + 8) * kPass + col + 1] = ChunkValue<F>(acc[t], 3, cs);
      }
    }
    CpAsyncWait<0>();  // (only empty groups remain) no copy outlives the pass
    __syncthreads();
    auto chunk_sum = [&](int row, int tok) {
      float v = part[row * kPass + tok];
      for (int ch = 1; ch < nchunks; ++ch) v = __fadd_rn(v, part[(ch * kTileRows + row) * kPass + tok]);
      return v;
    };
    if constexpr (EPI == GemmEpilogue::kStoreF32) {
      for (int idx = threadIdx.x; idx < kTileRows * kPass; idx += blockDim.x) {
        const int row = idx / kPass, tok = idx % kPass;
        const int out_row = rt * kTileRows + row, bb = b0 + tok;
        if (bb < b_end && out_row < p.w.rows) {
          float v = chunk_sum(row, tok);
          if (p.bias) v = __fadd_rn(v, p.bias[static_cast<int64_t>(mat) * p.w.rows + out_row]);
          p.out_f32[static_cast<int64_t>(bb) * p.ldo + out_row] = v;
        }
      }
    } else {
      for (int idx = threadIdx.x; idx < 8 * kPass; idx += blockDim.x) {
        const int i = idx / kPass, tok = idx % kPass;
        const int f = rt * 8 + i, bb = b0 + tok;
        if (bb < b_end && f < p.w.rows) {
          const int64_t bi = static_cast<int64_t>(mat) * p.w.rows + f;
          p.out_f16[static_cast<int64_t>(bb) * p.ldo + f] =
              ToHalfBits(GatedUnit(p, chunk_sum(i, tok), chunk_sum(i + 8, tok), bi));
        }
      }
    }
    __syncthreads();
  }
  if (!synced) GridDependencySync();  // (no rows: never complete before the previous kernel)
}

// Large batch: kW row tiles x kT tokens per CTA. kT = 64 for dense GEMMs;
// MoE routings of few pairs per expert use tiles of 8-32 slots (MXFP4), so a
// CTA still shares its staged activations among kW row tiles without doing
// the work of 64 tokens. With kT < 64 a chunk has little work per weight
// tile, so the next chunk's weights are requested into registers before the
// current one is computed (one chunk's loads in flight were the exposed
// latency); kT = 64 keeps its registers for the 8 n-tiles instead.
template <WFormat F, GemmEpilogue EPI, int kW, int kT>
__global__ void __launch_bounds__(kW * 32, 1) GemmLargeBatchKernel(const GemmParams p) {
  static_assert(kT == 8 || kT == 16 || kT == 32 || kT == 64, "tokens per CTA");
  constexpr int kNT = kT / 8;                // n-tiles of 8 tokens
  constexpr bool kPrefetch = kT < 64;
  constexpr int kStage = LargeStageUint4(kT);
  // (MoE: the next kernel may read the routing early, see the small kernel.)
  if (!p.moe) LaunchDependents();
  GridDependencySync();
  if (p.moe) LaunchDependents();
  extern __shared__ uint4 sb[];  // [2 stages][8 blocks][kT tokens][4 x 16 B]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int r = lane >> 2, c = lane & 3;
  const int rt = blockIdx.x * kW + warp;
  const bool has_rows = rt < p.w.row_tiles;
  int mat = 0, b_begin, b_end;
  if (p.moe) {
    if (static_cast<int>(blockIdx.y) >= *p.groups.n_tiles) return;
    const int32_t* t = p.groups.tiles + 3 * blockIdx.y;
    mat = t[0];
    b_begin = t[1];
    b_end = t[2];
  } else {
    b_begin = blockIdx.y * kT;
    b_end = min(p.n_b, b_begin + kT);
  }
  const int kb_total = p.w.k_blocks;
  const int nchunks = (kb_total + kChunkBlocks - 1) / kChunkBlocks;

  // Each thread copies kPieces of the 16-byte pieces of a stage; piece idx
  // is (block * kT + token) * 4 + c, so a warp reading 8 tokens x 4 c of one
  // block touches 512 contiguous bytes.
  constexpr int kPieces = kStage / (kW * 32);
  static_assert(kPieces * kW * 32 == kStage, "stage pieces per thread");
  int64_t src_row[kPieces];
  bool tok_ok[kPieces];
#pragma unroll
  for (int i = 0; i < kPieces; ++i) {
    const int idx = threadIdx.x + i * kW * 32;
    const int bb = b_begin + ((idx >> 2) & (kT - 1));
    tok_ok[i] = bb < b_end;
    src_row[i] = tok_ok[i] ? (p.gather ? p.gather[bb] : bb) : 0;
  }
  auto load_stage = [&](int ch, int stage) {
    uint4* dst = sb + stage * kStage;
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      const int idx = threadIdx.x + i * kW * 32;
      const int kb = ch * kChunkBlocks + idx / (kT * 4);
      const bool valid = tok_ok[i] && kb < kb_total;
      const half_t* src = p.x + src_row[i] * p.ldx + (valid ? kb : 0) * kBlockK + (idx & 3) * 8;
      CpAsync16(dst + idx, src, valid);
    }
    CpAsyncCommit();
  };
  auto load_weights = [&](int ch, TileRaw<F>(&raw)[kChunkBlocks], ChunkScales<F>& cs) {
    if (!has_rows) return;
    const int kb0 = ch * kChunkBlocks;
    const int nb = min(kChunkBlocks, kb_total - kb0);
#pragma unroll
    for (int i = 0; i < kChunkBlocks; ++i) {
      if (i < nb) LoadTile<F>(p.w, mat, rt, kb0 + i, lane, raw[i]);
    }
    if constexpr (F == WFormat::kQ4K) {
      const int64_t tile0 = static_cast<int64_t>(rt) * p.w.k_blocks + kb0;
      LoadChunkScales<F>(p.w.scales + mat * p.w.mat_scale_bytes + tile0 * TileScaleBytes(F), lane, cs);
    }
  };

  float acc[kNT][4];
  float part[kNT][kAccN<F>];
#pragma unroll
  for (int j = 0; j < kNT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
  TileRaw<F> raw[kChunkBlocks];
  ChunkScales<F> cs;
  if constexpr (kPrefetch) load_weights(0, raw, cs);
  load_stage(0, 0);
  for (int ch = 0; ch < nchunks; ++ch) {
    if (ch + 1 < nchunks) load_stage(ch + 1, (ch + 1) & 1);
    const int nb = min(kChunkBlocks, kb_total - ch * kChunkBlocks);
    TileRaw<F> next[kChunkBlocks];
    ChunkScales<F> next_cs;
    if constexpr (kPrefetch) {
      if (ch + 1 < nchunks) load_weights(ch + 1, next, next_cs);
    } else {
      load_weights(ch, raw, cs);
    }
    if (ch + 1 < nchunks) {
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    if (has_rows) {
      const uint4* st = sb + (ch & 1) * kStage;
#pragma unroll
      for (int j = 0; j < kNT; ++j) {
#pragma unroll
        for (int e = 0; e < kAccN<F>; ++e) part[j][e] = 0.0f;
      }
#pragma unroll
      for (int i = 0; i < kChunkBlocks; ++i) {
        if (i < nb) {
          uint32_t a[8];
          DecodeTile<F>(raw[i], a);
#pragma unroll
          for (int j = 0; j < kNT; ++j) {
            MmaBlock<F>(part[j], a, raw[i], st[(i * kT + j * 8 + r) * 4 + c]);
          }
        }
      }
      if (ch == 0) {
#pragma unroll
        for (int j = 0; j < kNT; ++j) {
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[j][e] = ChunkValue<F>(part[j], e, cs);
        }
      } else {
#pragma unroll
        for (int j = 0; j < kNT; ++j) {
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[j][e] = __fadd_rn(acc[j][e], ChunkValue<F>(part[j], e, cs));
        }
      }
    }
    if constexpr (kPrefetch) {
#pragma unroll
      for (int i = 0; i < kChunkBlocks; ++i) raw[i] = next[i];
      cs = next_cs;
    }
    __syncthreads();
  }
  if (!has_rows) return;
#pragma unroll
  for (int j = 0; j < kNT; ++j) {
    const int tok = b_begin + j * 8 + 2 * c;
    if constexpr (EPI == GemmEpilogue::kStoreF32) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int out_row = rt * kTileRows + r + (e >= 2 ? 8 : 0);
        const int bb = tok + (e & 1);
        if (bb < b_end && out_row < p.w.rows) {
          float v = acc[j][e];
          if (p.bias) v = __fadd_rn(v, p.bias[static_cast<int64_t>(mat) * p.w.rows + out_row]);
          p.out_f32[static_cast<int64_t>(bb) * p.ldo + out_row] = v;
        }
      }
    } else {
      const int f = rt * 8 + r;
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int bb = tok + e;
        if (bb < b_end && f < p.w.rows) {
          const int64_t bi = static_cast<int64_t>(mat) * p.w.rows + f;
          p.out_f16[static_cast<int64_t>(bb) * p.ldo + f] = ToHalfBits(GatedUnit(p, acc[j][e], acc[j][2 + e], bi));
        }
      }
    }
  }
}

// F32 weights (test models): one warp per output row, one block row per token.
__global__ void __launch_bounds__(256) GemvF32Kernel(const GemmParams p) {
  LaunchDependents();
  GridDependencySync();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row = blockIdx.x * 8 + warp;
  const int b = blockIdx.y;
  if (row >= p.w.rows || b >= p.n_b) return;
  const float* wr = p.w.f32 + static_cast<int64_t>(row) * p.w.cols;
  const __half* xr =
      reinterpret_cast<const __half*>(p.x) + static_cast<int64_t>(p.gather ? p.gather[b] : b) * p.ldx;
  float s = 0.0f;
  for (int k = lane; k < p.w.cols; k += 32) s = fmaf(wr[k], __half2float(xr[k]), s);
  s = WarpSum(s);
  if (lane == 0) {
    if (p.bias) s = __fadd_rn(s, p.bias[row]);
    p.out_f32[static_cast<int64_t>(b) * p.ldo + row] = s;
  }
}

// --------------------------------------------------------------- launchers --

int g_sm_count = 0;  // set by InitGemmKernels
int SmCount() { return g_sm_count > 0 ? g_sm_count : 132; }
int g_smem_optin = 48 * 1024;  // largest dynamic shared memory per block (set by InitGemmKernels)

// Resident CTAs per SM of a small-batch kernel configuration (0: does not
// fit), from the occupancy calculator, cached.
int SmallCtasPerSm(const void* kernel, int warps, size_t smem) {
  if (smem > static_cast<size_t>(g_smem_optin)) return 0;
  static std::mutex mu;
  static std::map<std::tuple<const void*, int, size_t>, int> cache;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(kernel, warps, smem);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int n = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, warps * 32, smem));
  cache.emplace(key, n);
  return n;
}

// A small-batch launch configuration with S stages per warp: as many warps
// per CTA (split-K) as keep all CTAs resident in one wave (few row tiles:
// short per-warp streams); 2 when no choice does (one_wave false).
struct SmallConfig {
  int warps = 0;
  size_t smem = 0;
  bool one_wave = false;
};
template <WFormat F, GemmEpilogue EPI, int S, int NT = 1>
SmallConfig ChooseSmall(const GemmParams& p) {
  const int nchunks = (p.w.k_blocks + kChunkBlocks - 1) / kChunkBlocks;
  const int64_t ctas = static_cast<int64_t>(p.w.row_tiles) * (p.moe ? p.groups.max_active : 1);
  SmallConfig fallback;
  for (int w : {8, 4, 2, 1}) {
    const int ww = std::min(nchunks, w);
    const size_t bytes = SmallPartBytes(nchunks, NT) + static_cast<size_t>(ww) * S * kStageBytes<F>;
    void (*kernel)(GemmParams) = GemmSmallBatchKernel<F, EPI, S, NT>;
    const int per_sm = SmallCtasPerSm(reinterpret_cast<const void*>(kernel), ww, bytes);
    if (per_sm == 0) continue;
    if (ctas <= static_cast<int64_t>(SmCount()) * per_sm) return {ww, bytes, true};
    if (fallback.warps == 0 || w == 2) fallback = {ww, bytes, false};
  }
  return fallback;
}

template <WFormat F, GemmEpilogue EPI, int S, int NT = 1>
void LaunchSmall(const GemmParams& p, const SmallConfig& cfg, cudaStream_t stream) {
  if (cfg.warps == 0) {
    std::fprintf(stderr, "LaunchGemm: a row tile of %d blocks does not fit in shared memory\n", p.w.k_blocks);
    std::abort();
  }
  const dim3 grid(p.w.row_tiles, p.moe ? p.groups.max_active : 1);
  LaunchKernel(GemmSmallBatchKernel<F, EPI, S, NT>, grid, cfg.warps * 32, cfg.smem, stream, p);
}

// The stage count of the small-batch kernel: for MXFP4 and Q8_0 with at most
// 8 B rows, the deepest ring (6, 4, 3 stages) that still fits every CTA in
// one wave (batch-1 decode: more bytes in flight per warp), else 3.
// OSSGATE_GEMM_STAGES = 3, 4 or 6 forces one (a tuning knob).
int StagesOverride() {
  static const int v = [] {
    const char* e = std::getenv("OSSGATE_GEMM_STAGES");
    const int n = e ? std::atoi(e) : 0;
    return n == 3 || n == 4 || n == 6 ? n : 0;
  }();
  return v;
}

bool SmallPass16(const GemmParams& p);
extern GemmTuning g_tuning;

// 8 row tiles per CTA, or 4 when that leaves fewer than two CTAs per SM
// (dense projections of a few hundred row tiles at 64-128 tokens).
template <WFormat F, GemmEpilogue EPI, int kT>
void LaunchLarge(const GemmParams& p, cudaStream_t stream) {
  if (p.moe && p.groups.tile_slots > kT) {
    std::fprintf(stderr, "LaunchGemm: MoE tiles of %d slots on CTAs of %d tokens\n", p.groups.tile_slots, kT);
    std::abort();
  }
  const int grid_y = p.moe ? p.groups.max_tiles : (p.n_b + kT - 1) / kT;
  const int ctas8 = (p.w.row_tiles + kLargeWarps - 1) / kLargeWarps * grid_y;
  if (ctas8 < 2 * SmCount() && g_tuning.large_narrow) {
    const dim3 grid((p.w.row_tiles + 3) / 4, grid_y);
    LaunchKernel(GemmLargeBatchKernel<F, EPI, 4, kT>, grid, 4 * 32, LargeSmemBytes(kT), stream, p);
  } else {
    const dim3 grid((p.w.row_tiles + kLargeWarps - 1) / kLargeWarps, grid_y);
    LaunchKernel(GemmLargeBatchKernel<F, EPI, kLargeWarps, kT>, grid, kLargeWarps * 32, LargeSmemBytes(kT), stream,
                 p);
  }
}

template <WFormat F, GemmEpilogue EPI>
void LaunchTyped(const GemmParams& p, GemmPath path, cudaStream_t stream) {
  if (path == GemmPath::kSmallBatch && SmallPass16(p)) {
    // 16 tokens per pass: each weight tile decoded once for two n-tiles.
    LaunchSmall<F, EPI, 3, 2>(p, ChooseSmall<F, EPI, 3, 2>(p), stream);
  } else if (path == GemmPath::kSmallBatch) {
    // Deeper rings only for one pass over the tokens (decode of a few
    // sequences); passes over more tokens keep more CTAs resident instead.
    if constexpr (F == WFormat::kMxfp4 || F == WFormat::kQ8_0 || F == WFormat::kQ4K) {
      const int forced = StagesOverride() ? StagesOverride() : (p.n_b <= kSmallTokens ? 0 : 3);
      if (forced == 6 || forced == 0) {
        const SmallConfig c6 = ChooseSmall<F, EPI, 6>(p);
        if (forced == 6 || c6.one_wave) return LaunchSmall<F, EPI, 6>(p, c6, stream);
      }
      if (forced == 4 || forced == 0) {
        const SmallConfig c4 = ChooseSmall<F, EPI, 4>(p);
        if (forced == 4 || c4.one_wave) return LaunchSmall<F, EPI, 4>(p, c4, stream);
      }
    }
    LaunchSmall<F, EPI, 3>(p, ChooseSmall<F, EPI, 3>(p), stream);
  } else if constexpr (F == WFormat::kMxfp4) {
    // MoE tiles of fewer slots get CTAs of as many tokens (the experts of
    // gpt-oss are MXFP4); other formats run 64-token CTAs over any tile.
    switch (p.moe ? p.groups.tile_slots : kLargeTokens) {
      case 8: LaunchLarge<F, EPI, 8>(p, stream); break;
      case 16: LaunchLarge<F, EPI, 16>(p, stream); break;
      case 32: LaunchLarge<F, EPI, 32>(p, stream); break;
      case 64: LaunchLarge<F, EPI, 64>(p, stream); break;
      default:
        std::fprintf(stderr, "LaunchGemm: MoE tiles of %d slots (8, 16, 32 or 64)\n", p.groups.tile_slots);
        std::abort();
    }
  } else {
    LaunchLarge<F, EPI, kLargeTokens>(p, stream);
  }
  CUDA_CHECK_LAUNCH();
}

template <GemmEpilogue EPI>
void LaunchEpi(const GemmParams& p, GemmPath path, cudaStream_t stream) {
  switch (p.w.fmt) {
    case WFormat::kQ8_0: return LaunchTyped<WFormat::kQ8_0, EPI>(p, path, stream);
    case WFormat::kMxfp4: return LaunchTyped<WFormat::kMxfp4, EPI>(p, path, stream);
    case WFormat::kQ4K: return LaunchTyped<WFormat::kQ4K, EPI>(p, path, stream);
    case WFormat::kF16: return LaunchTyped<WFormat::kF16, EPI>(p, path, stream);
    case WFormat::kBf16: return LaunchTyped<WFormat::kBf16, EPI>(p, path, stream);
    case WFormat::kF32: break;
  }
  std::fprintf(stderr, "LaunchGemm: no tensor-core path for format %d\n", static_cast<int>(p.w.fmt));
  std::abort();
}

template <WFormat F, GemmEpilogue EPI>
void SetLargeSmem() {
  CUDA_CHECK(cudaFuncSetAttribute(GemmLargeBatchKernel<F, EPI, kLargeWarps, kLargeTokens>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, LargeSmemBytes(kLargeTokens)));
  CUDA_CHECK(cudaFuncSetAttribute(GemmLargeBatchKernel<F, EPI, 4, kLargeTokens>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, LargeSmemBytes(kLargeTokens)));
  CUDA_CHECK(cudaFuncSetAttribute(GemmSmallBatchKernel<F, EPI, 3, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  g_smem_optin));
  CUDA_CHECK(cudaFuncSetAttribute(GemmSmallBatchKernel<F, EPI, 3, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  g_smem_optin));
  if constexpr (F == WFormat::kMxfp4 || F == WFormat::kQ8_0 || F == WFormat::kQ4K) {
    CUDA_CHECK(cudaFuncSetAttribute(GemmSmallBatchKernel<F, EPI, 4, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    g_smem_optin));
    CUDA_CHECK(cudaFuncSetAttribute(GemmSmallBatchKernel<F, EPI, 6, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    g_smem_optin));
  }
}

int EnvInt(const char* name, int fallback) {
  const char* e = std::getenv(name);
  return e && *e ? std::atoi(e) : fallback;
}
// Defaults from the H100 sweeps in docs/perf.md; the environment overrides
// them (OSSGATE_GEMM_DENSE_SMALL_MAX, _MOE_SMALL_AVG, _PASS16_MIN_AVG,
// _LARGE_NARROW), as SetGemmTuning does.
GemmTuning g_tuning = {
    .dense_small_max = EnvInt("OSSGATE_GEMM_DENSE_SMALL_MAX", 32),
    .moe_small_avg = EnvInt("OSSGATE_GEMM_MOE_SMALL_AVG", 4),
    .pass16_min_avg = EnvInt("OSSGATE_GEMM_PASS16_MIN_AVG", 8),
    .large_narrow = EnvInt("OSSGATE_GEMM_LARGE_NARROW", 1) != 0,
    .moe_tile_slots = EnvInt("OSSGATE_GEMM_MOE_TILE_SLOTS", 0),
};

bool SmallPass16(const GemmParams& p) {
  const int mats = p.moe ? std::max(1, p.w.n_mats) : 1;
  return p.n_b > g_tuning.pass16_min_avg * mats && p.n_b > kSmallTokens;
}

}  // namespace

GemmPath ChooseGemmPath(const GemmParams& p) {
  if (p.path != GemmPath::kAuto) return p.path;
  if (p.moe) {
    // n_b bounds the pair slots; small while experts average few tokens.
    return p.n_b <= g_tuning.moe_small_avg * std::max(1, p.w.n_mats) ? GemmPath::kSmallBatch
                                                                        : GemmPath::kLargeBatch;
  }
  return p.n_b <= g_tuning.dense_small_max ? GemmPath::kSmallBatch : GemmPath::kLargeBatch;
}

int32_t MoeTileSlots(int32_t pairs, int32_t experts) {
  const int forced = g_tuning.moe_tile_slots;
  if (forced == 8 || forced == 16 || forced == 32 || forced == 64) return forced;
  // H100 sweep (docs/perf.md): 16-slot tiles beat 8, 32 and 64 at 8 and 16
  // pairs per expert on average (64 and 128 sequences of decode).
  const int64_t avg = (static_cast<int64_t>(pairs) + experts - 1) / std::max(1, experts);
  for (int32_t slots : {16, 32}) {
    if (avg <= slots) return slots;
  }
  return kLargeTokens;
}

void SetGemmTuning(const GemmTuning& t) { g_tuning = t; }
GemmTuning GetGemmTuning() { return g_tuning; }

void LaunchGemm(const GemmParams& p, cudaStream_t stream) {
  if (p.n_b <= 0) return;
  if (p.ldx % 8 != 0 || (p.w.fmt != WFormat::kF32 && p.w.cols % kBlockK != 0)) {
    std::fprintf(stderr, "LaunchGemm: ldx (%d) must be a multiple of 8 and cols (%d) of 32\n", p.ldx, p.w.cols);
    std::abort();
  }
  if (p.w.fmt == WFormat::kQ4K && p.w.cols % kQ4KSuperBlockCols != 0) {
    std::fprintf(stderr, "LaunchGemm: Q4_K tiles need cols (%d) in whole super-blocks of %d\n", p.w.cols,
                 kQ4KSuperBlockCols);
    std::abort();
  }
  if (p.w.fmt == WFormat::kF32) {
    if (p.moe || p.epilogue != GemmEpilogue::kStoreF32) {
      std::fprintf(stderr, "LaunchGemm: F32 weights support only dense kStoreF32\n");
      std::abort();
    }
    const dim3 grid((p.w.rows + 7) / 8, p.n_b);
    LaunchKernel(GemvF32Kernel, grid, 256, 0, stream, p);
    CUDA_CHECK_LAUNCH();
    return;
  }
  const GemmPath path = ChooseGemmPath(p);
  if (p.epilogue == GemmEpilogue::kStoreF32) {
    LaunchEpi<GemmEpilogue::kStoreF32>(p, path, stream);
  } else {
    LaunchEpi<GemmEpilogue::kSwiGlu>(p, path, stream);
  }
}

void InitGemmKernels() {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&g_sm_count, cudaDevAttrMultiProcessorCount, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&g_smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  SetLargeSmem<WFormat::kQ8_0, GemmEpilogue::kStoreF32>();
  SetLargeSmem<WFormat::kQ8_0, GemmEpilogue::kSwiGlu>();
  SetLargeSmem<WFormat::kMxfp4, GemmEpilogue::kStoreF32>();
  SetLargeSmem<WFormat::kMxfp4, GemmEpilogue::kSwiGlu>();
  SetLargeSmem<WFormat::kQ4K, GemmEpilogue::kStoreF32>();
  SetLargeSmem<WFormat::kQ4K, GemmEpilogue::kSwiGlu>();
  SetLargeSmem<WFormat::kF16, GemmEpilogue::kStoreF32>();
  SetLargeSmem<WFormat::kF16, GemmEpilogue::kSwiGlu>();
  SetLargeSmem<WFormat::kBf16, GemmEpilogue::kStoreF32>();
  SetLargeSmem<WFormat::kBf16, GemmEpilogue::kSwiGlu>();
}

}  // namespace ossgate::kernels
