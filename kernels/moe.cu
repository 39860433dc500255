// Mixture-of-experts routing in one launch: router logits (fp32, like the
// CPU reference so expert choices agree), top-k softmax, and the grouping of
// (token, k) pairs by expert that the expert GEMMs read. The expert matmuls
// themselves are the block-scaled GEMM (gemm.cu) with a gather of the token
// rows and the fused SwiGLU epilogue; the weighted combine is fused into the
// next residual add + norm (elementwise.cu).
//
// Grid: (token groups of kRouterTokens) x (expert pairs). Every block
// computes the logits of its tokens for its 2 experts, 4 warps per expert
// (each a quarter of the row), and writes them to a workspace; the last block
// of a token group to finish (an atomic ticket) does the top-k of the
// group's tokens (a warp per token), and the last group the grouping. One
// launch and no serial pass over the weights: at batch 1 the 368 KB of the
// 20b router are read by 16 blocks at once.
#include <cstdio>
#include <cstdlib>

#include "kernels/common.cuh"
#include "kernels/ops.h"

namespace ossgate::kernels {

namespace {

constexpr int kRouterWarps = 8;
constexpr int kRouterParts = 4;  // warps per expert, each summing a quarter of the row
constexpr int kRouterExperts = kRouterWarps / kRouterParts;  // experts per block
constexpr int kRouterTokens = 8;                             // tokens per block
constexpr int kRouterUnroll = 8;                             // float4 loads in flight per lane
constexpr int kMaxExperts = 256;
constexpr int kMaxK = 16;

// Groups the valid (token, k) pairs by expert (stable: by token within an
// expert): offsets, the active-expert list, tiles of tile_slots slots for the
// large-batch GEMM, and each slot's token / each pair's slot. Run by one
// whole block (any multiple of 32 threads). The ids were written by other
// blocks of this launch: read through L2 (__ldcg), staged in shared memory
// in chunks for the placement scans.
constexpr int kGroupChunk = 4096;  // pair ids staged per placement pass (1 byte each)
__device__ void GroupPairs(const RouterParams& p, int n) {
  __shared__ int counts[kMaxExperts];
  __shared__ int next[kMaxExperts];  // next free slot of each expert
  __shared__ uint8_t chunk[kGroupChunk];
  const MoeRouting& g = p.route;
  const int pairs = n * p.k;
  for (int e = threadIdx.x; e < p.n_experts; e += blockDim.x) counts[e] = 0;
  for (int i = pairs + threadIdx.x; i < p.n_tokens * p.k; i += blockDim.x) g.pair_slot[i] = -1;
  __syncthreads();
  for (int i = threadIdx.x; i < pairs; i += blockDim.x) atomicAdd(&counts[__ldcg(p.ids + i)], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    const int lo = g.expert_begin, hi = g.expert_end < 0 ? p.n_experts : g.expert_end;
    int off = 0, n_active = 0, n_tiles = 0;
    for (int e = 0; e < p.n_experts; ++e) {
      next[e] = off;
      g.offsets[e] = off;
      const int cnt = counts[e];
      if (cnt > 0 && e >= lo && e < hi) {
        g.active[n_active++] = e - lo;
        for (int s = off; s < off + cnt && n_tiles < g.max_tiles; s += g.tile_slots) {
          g.tiles[3 * n_tiles] = e - lo;
          g.tiles[3 * n_tiles + 1] = s;
          g.tiles[3 * n_tiles + 2] = min(s + g.tile_slots, off + cnt);
          ++n_tiles;
        }
      }
      off += cnt;
    }
    g.offsets[p.n_experts] = off;
    *g.n_active = n_active;
    *g.n_tiles = n_tiles;
  }
  // Stable placement: per chunk of pairs, one warp per expert scans them in
  // order (ballot + popcount ranks).
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const uint32_t lt_mask = (1u << lane) - 1u;
  for (int c0 = 0; c0 < pairs; c0 += kGroupChunk) {
    const int len = min(kGroupChunk, pairs - c0);
    __syncthreads();  // the previous chunk's scans (and the offsets above) are done
    for (int i = threadIdx.x; i < len; i += blockDim.x) chunk[i] = static_cast<uint8_t>(__ldcg(p.ids + c0 + i));
    __syncthreads();
    for (int e = warp; e < p.n_experts; e += nwarps) {
      if (counts[e] == 0) continue;
      int base = next[e];
      for (int i0 = 0; i0 < len; i0 += 32) {
        const int i = i0 + lane;
        const bool mine = i < len && chunk[i] == e;
        const uint32_t mask = __ballot_sync(0xFFFFFFFFu, mine);
        if (mine) {
          const int slot = base + __popc(mask & lt_mask);
          g.slot_token[slot] = (c0 + i) / p.k;
          g.pair_slot[c0 + i] = slot;
        }
        base += __popc(mask);
      }
      __syncwarp();  // every lane has read next[e]
      if (lane == 0) next[e] = base;
    }
  }
}

// Top-k of token t's logits by one warp: k rounds of a warp argmax (largest
// logit, ties to the lower expert id, as cpu::RouterTopK; NaN counts as
// -inf), then the softmax of the chosen logits (fp32 exp of the difference
// to the largest, double sum) — the CPU's arithmetic.
__device__ void TopKSoftmax(const RouterParams& p, int t) {
  const int lane = threadIdx.x & 31;
  constexpr int kPerLane = kMaxExperts / 32;
  float v[kPerLane];
#pragma unroll
  for (int m = 0; m < kPerLane; ++m) {
    const int e = lane + 32 * m;
    v[m] = -INFINITY;
    if (e < p.n_experts) {
      const float x = __ldcg(p.logits + static_cast<int64_t>(t) * p.n_experts + e);
      v[m] = isnan(x) ? -INFINITY : x;
    }
  }
  uint32_t taken = 0;  // bit m: expert lane + 32m already chosen
  int ids[kMaxK];
  float chosen[kMaxK];
  for (int i = 0; i < p.k; ++i) {
    int be = INT_MAX;
    float bv = -INFINITY;
#pragma unroll
    for (int m = 0; m < kPerLane; ++m) {
      const int e = lane + 32 * m;
      if (e < p.n_experts && !(taken >> m & 1u) && (be == INT_MAX || v[m] > bv)) {
        bv = v[m];
        be = e;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xFFFFFFFFu, bv, o);
      const int oe = __shfl_xor_sync(0xFFFFFFFFu, be, o);
      if (oe != INT_MAX && (be == INT_MAX || ov > bv || (ov == bv && oe < be))) {
        bv = ov;
        be = oe;
      }
    }
    ids[i] = be;
    chosen[i] = bv;
    if ((be & 31) == lane) taken |= 1u << (be >> 5);
  }
  if (lane != 0) return;
  float m = -INFINITY;
  for (int i = 0; i < p.k; ++i) m = fmaxf(m, chosen[i]);
  float w[kMaxK];
  double sum = 0.0;
  for (int i = 0; i < p.k; ++i) {
    w[i] = expf(__fsub_rn(chosen[i], m));
    sum += w[i];
  }
  for (int i = 0; i < p.k; ++i) {
    p.ids[t * p.k + i] = ids[i];
    p.weights[t * p.k + i] = static_cast<float>(w[i] / sum);
  }
}

// A token's logit for an expert is the same sum in the same order whatever
// the batch: per lane an fmaf chain over its
// float4s of one quarter of the row (RouterLanePartial), a xor tree over the
// lanes, the quarters added in order (RouterLogit), then the bias.
__device__ __forceinline__ void RouterQuarter(int d, int part, int* i_begin, int* i_end) {
  const int d4 = d / 4;
  const int per_part = (d4 + kRouterParts - 1) / kRouterParts;
  *i_begin = part * per_part;
  *i_end = min(d4, *i_begin + per_part);
}
// h: the token's row; w: the expert's row.
__device__ __forceinline__ float RouterLanePartial(const float4* w, const float4* h, int i_begin, int i_end,
                                                  int lane) {
  float s = 0.0f;
  for (int i0 = i_begin + lane; i0 < i_end; i0 += 32 * kRouterUnroll) {
    float4 wv[kRouterUnroll], hv[kRouterUnroll];
#pragma unroll
    for (int u = 0; u < kRouterUnroll; ++u) {
      wv[u] = __ldg(w + min(i0 + 32 * u, i_end - 1));
      hv[u] = h[min(i0 + 32 * u, i_end - 1)];
    }
#pragma unroll
    for (int u = 0; u < kRouterUnroll; ++u) {
      if (i0 + 32 * u < i_end) {
        s = fmaf(wv[u].x, hv[u].x, s);
        s = fmaf(wv[u].y, hv[u].y, s);
        s = fmaf(wv[u].z, hv[u].z, s);
        s = fmaf(wv[u].w, hv[u].w, s);
      }
    }
  }
  return s;
}
__device__ __forceinline__ float RouterLogit(const float (&quarter)[kRouterParts], float bias) {
  float v = quarter[0];
  for (int q = 1; q < kRouterParts; ++q) v = __fadd_rn(v, quarter[q]);
  return __fadd_rn(v, bias);
}

__global__ void __launch_bounds__(kRouterWarps * 32, 1) RouterKernel(const RouterParams p) {
  LaunchDependents();
  __shared__ float part_sum[kRouterTokens][kRouterExperts][kRouterParts];
  __shared__ bool last;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int x = warp / kRouterParts, part = warp % kRouterParts;
  const int e = blockIdx.y * kRouterExperts + x;
  int i_begin = 0, i_end = 0;
  const float4* w = reinterpret_cast<const float4*>(p.w + static_cast<int64_t>(min(e, p.n_experts - 1)) * p.d);
  RouterQuarter(p.d, part, &i_begin, &i_end);
  // The weights do not depend on the previous kernel: bring this warp's
  // quarter row into L2 while it finishes (programmatic launch).
  if (e < p.n_experts) {
    for (int i = i_begin + 2 * lane; i < i_end; i += 64) PrefetchL2(w + i);  // 128-byte lines
  }
  GridDependencySync();
  const int n = p.n_valid ? min(*p.n_valid, p.n_tokens) : p.n_tokens;
  const int t0 = blockIdx.x * kRouterTokens;
  const int nt = min(kRouterTokens, n - t0);
  if (nt > 0 && e < p.n_experts) {
    for (int j = 0; j < nt; ++j) {
      const float4* h = reinterpret_cast<const float4*>(p.h + static_cast<int64_t>(t0 + j) * p.d);
      const float v = WarpSum(RouterLanePartial(w, h, i_begin, i_end, lane));
      if (lane == 0) part_sum[j][x][part] = v;
    }
  }
  __syncthreads();
  if (nt > 0 && static_cast<int>(threadIdx.x) < kRouterExperts * nt) {
    const int xx = threadIdx.x / nt, j = threadIdx.x % nt;
    const int ee = blockIdx.y * kRouterExperts + xx;
    if (ee < p.n_experts) p.logits[static_cast<int64_t>(t0 + j) * p.n_experts + ee] = RouterLogit(part_sum[j][xx], p.b[ee]);
  }
  // Every block (also those with no valid token) takes a ticket of its token
  // group; the group's last block sees all its logits and picks the experts
  // of its tokens (a warp per token), then takes a ticket of the launch; the
  // last group to finish groups the pairs. Each counter is reset by the
  // block that completes it, ready for the next launch.
  static_assert(kRouterTokens == kRouterWarps, "one warp per token of the group");
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned int ticket = atomicAdd(p.done + 1 + blockIdx.x, 1u);
    last = ticket == gridDim.y - 1;
    if (last) p.done[1 + blockIdx.x] = 0;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (warp < nt) TopKSoftmax(p, t0 + warp);
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned int ticket = atomicAdd(p.done, 1u);
    last = ticket == gridDim.x - 1;
    if (last) *p.done = 0;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  GroupPairs(p, n);
}

}  // namespace

int RouterCounters(int n_tokens) { return 1 + (n_tokens + kRouterTokens - 1) / kRouterTokens; }

void LaunchRouter(const RouterParams& p, cudaStream_t stream) {
  if (p.n_tokens <= 0) return;
  if (p.n_experts > kMaxExperts || p.k > kMaxK || p.k > p.n_experts) {
    std::fprintf(stderr, "LaunchRouter: unsupported experts %d / top-k %d\n", p.n_experts, p.k);
    std::abort();
  }
  if (p.d % 4 != 0) {
    std::fprintf(stderr, "LaunchRouter: d (%d) must be a multiple of 4\n", p.d);
    std::abort();
  }
  if (p.route.max_tiles < MoeMaxTiles(p.n_tokens * p.k, p.n_experts, p.route.tile_slots)) {
    std::fprintf(stderr, "LaunchRouter: too few tiles (%d)\n", p.route.max_tiles);
    std::abort();
  }
  const dim3 grid((p.n_tokens + kRouterTokens - 1) / kRouterTokens, (p.n_experts + kRouterExperts - 1) / kRouterExperts);
  LaunchKernel(RouterKernel, grid, kRouterWarps * 32, 0, stream, p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace ossgate::kernels
