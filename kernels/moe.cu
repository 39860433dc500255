// Mixture-of-experts routing: router logits with top-k softmax (one block
// per token, fp32 like the CPU reference so expert choices agree), and the
// grouping of (token, k) pairs by expert that the expert GEMMs read. The
// expert matmuls themselves are the block-scaled GEMM (gemm.cu) with a
// gather of the token rows and the fused SwiGLU epilogue; the weighted
// combine is fused into the next residual add + norm (elementwise.cu).
#include <cstdio>
#include <cstdlib>

#include "kernels/common.cuh"
#include "kernels/ops.h"

namespace ossgate::kernels {

namespace {

constexpr int kRouterThreads = 1024;
constexpr int kRouterTokens = 2;
constexpr int kRouterMaxD = 4096;  // staged rows: 2 x 16 KiB of shared memory
constexpr int kMaxExperts = 256;
constexpr int kMaxK = 16;
constexpr int kRouteThreads = 1024;

// kRouterTokens tokens per block. Their fp32 rows are staged in shared
// memory; warp e computes the logits of experts e, e + 32, ... streaming each
// router row once: every lane requests its 8 float4 of a step before using
// any (indices past the row are clamped to a valid address and their
// products skipped), so a step costs one memory round trip. A token's logit
// is the same sum in the same order whatever the batch: per lane an fmaf
// chain over its float4s, then a xor tree.
__global__ void __launch_bounds__(kRouterThreads) RouterKernel(const RouterParams p) {
  __shared__ float logits[kRouterTokens][kMaxExperts];
  __shared__ __align__(16) float hs[kRouterTokens * kRouterMaxD];
  const int t0 = blockIdx.x * kRouterTokens;
  const int n_valid = p.n_valid ? min(*p.n_valid, p.n_tokens) : p.n_tokens;
  const int nt = min(kRouterTokens, n_valid - t0);
  if (nt <= 0) return;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int d4 = p.d / 4;
  for (int i = threadIdx.x; i < nt * d4; i += kRouterThreads) {
    const int j = i / d4, q = i % d4;
    reinterpret_cast<float4*>(hs)[j * d4 + q] =
        __ldg(reinterpret_cast<const float4*>(p.h + static_cast<int64_t>(t0 + j) * p.d) + q);
  }
  __syncthreads();
  constexpr int kU = 8;
  for (int e = warp; e < p.n_experts; e += kRouterThreads / 32) {
    const float4* w = reinterpret_cast<const float4*>(p.w + static_cast<int64_t>(e) * p.d);
    float s[kRouterTokens];
#pragma unroll
    for (int j = 0; j < kRouterTokens; ++j) s[j] = 0.0f;
    for (int i0 = lane; i0 < d4; i0 += 32 * kU) {
      float4 wv[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) wv[u] = __ldg(w + min(i0 + 32 * u, d4 - 1));
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int i = i0 + 32 * u;
        if (i < d4) {
#pragma unroll
          for (int j = 0; j < kRouterTokens; ++j) {
            if (j < nt) {
              const float4 hv = reinterpret_cast<const float4*>(hs)[j * d4 + i];
              s[j] = fmaf(wv[u].x, hv.x, s[j]);
              s[j] = fmaf(wv[u].y, hv.y, s[j]);
              s[j] = fmaf(wv[u].z, hv.z, s[j]);
              s[j] = fmaf(wv[u].w, hv.w, s[j]);
            }
          }
        }
      }
    }
#pragma unroll
    for (int j = 0; j < kRouterTokens; ++j) {
      const float v = WarpSum(s[j]);
      if (lane == 0 && j < nt) logits[j][e] = __fadd_rn(v, p.b[e]);
    }
  }
  __syncthreads();
  if (static_cast<int>(threadIdx.x) >= nt) return;
  // One thread per token: top-k by repeated maximum, ties to the lower index
  // (as cpu::RouterTopK), then the softmax of the chosen logits.
  const int t = t0 + threadIdx.x;
  const float* lg = logits[threadIdx.x];
  int ids[kMaxK];
  uint32_t taken[kMaxExperts / 32] = {};
  for (int i = 0; i < p.k; ++i) {
    int best = -1;
    for (int e = 0; e < p.n_experts; ++e) {
      if (taken[e >> 5] & (1u << (e & 31))) continue;
      if (best < 0 || lg[e] > lg[best]) best = e;
    }
    taken[best >> 5] |= 1u << (best & 31);
    ids[i] = best;
  }
  float m = -INFINITY;
  for (int i = 0; i < p.k; ++i) m = fmaxf(m, lg[ids[i]]);
  float w[kMaxK];
  double sum = 0.0;
  for (int i = 0; i < p.k; ++i) {
    w[i] = expf(__fsub_rn(lg[ids[i]], m));
    sum += w[i];
  }
  for (int i = 0; i < p.k; ++i) {
    p.ids[t * p.k + i] = ids[i];
    p.weights[t * p.k + i] = static_cast<float>(w[i] / sum);
  }
}

__global__ void __launch_bounds__(kRouteThreads) MoeRouteKernel(const MoeRouteParams p) {
  __shared__ int counts[kMaxExperts];
  __shared__ int offs[kMaxExperts + 1];
  const int n = p.n_valid ? min(*p.n_valid, p.n_tokens) : p.n_tokens;
  const int pairs = n * p.k;
  for (int e = threadIdx.x; e < p.n_experts; e += blockDim.x) counts[e] = 0;
  for (int i = pairs + threadIdx.x; i < p.n_tokens * p.k; i += blockDim.x) p.pair_slot[i] = -1;
  __syncthreads();
  for (int i = threadIdx.x; i < pairs; i += blockDim.x) atomicAdd(&counts[p.ids[i]], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int off = 0, n_active = 0, n_tiles = 0;
    for (int e = 0; e < p.n_experts; ++e) {
      offs[e] = off;
      p.offsets[e] = off;
      const int cnt = counts[e];
      if (cnt > 0) {
        p.active[n_active++] = e;
        for (int s = off; s < off + cnt && n_tiles < p.max_tiles; s += p.tile_slots) {
          p.tiles[3 * n_tiles] = e;
          p.tiles[3 * n_tiles + 1] = s;
          p.tiles[3 * n_tiles + 2] = min(s + p.tile_slots, off + cnt);
          ++n_tiles;
        }
      }
      off += cnt;
    }
    offs[p.n_experts] = off;
    p.offsets[p.n_experts] = off;
    *p.n_active = n_active;
    *p.n_tiles = n_tiles;
  }
  __syncthreads();
  // Stable placement: one warp per expert scans the pairs in order.
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const uint32_t lt_mask = (1u << lane) - 1u;
  for (int e = warp; e < p.n_experts; e += nwarps) {
    if (counts[e] == 0) continue;
    int base = offs[e];
    for (int i0 = 0; i0 < pairs; i0 += 32) {
      const int i = i0 + lane;
      const bool mine = i < pairs && p.ids[i] == e;
      const uint32_t mask = __ballot_sync(0xFFFFFFFFu, mine);
      if (mine) {
        const int slot = base + __popc(mask & lt_mask);
        p.slot_token[slot] = i / p.k;
        p.pair_slot[i] = slot;
      }
      base += __popc(mask);
    }
  }
}

}  // namespace

void LaunchRouter(const RouterParams& p, cudaStream_t stream) {
  if (p.n_tokens <= 0) return;
  if (p.n_experts > kMaxExperts || p.k > kMaxK || p.k > p.n_experts) {
    std::fprintf(stderr, "LaunchRouter: unsupported experts %d / top-k %d\n", p.n_experts, p.k);
    std::abort();
  }
  if (p.d % 4 != 0 || p.d > kRouterMaxD) {
    std::fprintf(stderr, "LaunchRouter: d (%d) must be a multiple of 4 and at most %d\n", p.d, kRouterMaxD);
    std::abort();
  }
  RouterKernel<<<(p.n_tokens + kRouterTokens - 1) / kRouterTokens, kRouterThreads, 0, stream>>>(p);
  CUDA_CHECK_LAUNCH();
}

void LaunchMoeRoute(const MoeRouteParams& p, cudaStream_t stream) {
  if (p.n_tokens <= 0) return;
  if (p.n_experts > kMaxExperts || p.max_tiles < MoeMaxTiles(p.n_tokens * p.k, p.n_experts, p.tile_slots)) {
    std::fprintf(stderr, "LaunchMoeRoute: too many experts (%d) or too few tiles (%d)\n", p.n_experts, p.max_tiles);
    std::abort();
  }
  MoeRouteKernel<<<1, kRouteThreads, 0, stream>>>(p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace ossgate::kernels
