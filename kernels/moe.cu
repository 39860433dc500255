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

constexpr int kRouterThreads = 256;
constexpr int kMaxExperts = 256;
constexpr int kMaxK = 16;
constexpr int kRouteThreads = 1024;

__global__ void __launch_bounds__(kRouterThreads) RouterKernel(const RouterParams p) {
  __shared__ float logits[kMaxExperts];
  const int t = blockIdx.x;
  if (p.n_valid && t >= *p.n_valid) return;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* h = p.h + static_cast<int64_t>(t) * p.d;
  for (int e = warp; e < p.n_experts; e += kRouterThreads / 32) {
    const float* w = p.w + static_cast<int64_t>(e) * p.d;
    float s = 0.0f;
    for (int i = lane; i < p.d; i += 32) s = fmaf(w[i], h[i], s);
    s = WarpSum(s);
    if (lane == 0) logits[e] = __fadd_rn(s, p.b[e]);
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  // Top-k by repeated maximum, ties to the lower index (as cpu::RouterTopK).
  int ids[kMaxK];
  uint32_t taken[kMaxExperts / 32] = {};
  for (int i = 0; i < p.k; ++i) {
    int best = -1;
    for (int e = 0; e < p.n_experts; ++e) {
      if (taken[e >> 5] & (1u << (e & 31))) continue;
      if (best < 0 || logits[e] > logits[best]) best = e;
    }
    taken[best >> 5] |= 1u << (best & 31);
    ids[i] = best;
  }
  float m = -INFINITY;
  for (int i = 0; i < p.k; ++i) m = fmaxf(m, logits[ids[i]]);
  float w[kMaxK];
  double sum = 0.0;
  for (int i = 0; i < p.k; ++i) {
    w[i] = expf(__fsub_rn(logits[ids[i]], m));
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
  RouterKernel<<<p.n_tokens, kRouterThreads, 0, stream>>>(p);
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
