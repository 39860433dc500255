// Token sampling on the GPU, one block per row, so only the chosen token id
// goes back to the host. Follows model::Sampler (sampler.cc) step by step:
// candidates ordered by logit descending then id ascending, NaN last; top-k;
// probabilities exp((l - max) / T) in double; top-p over the running sum;
// min-p against the best; then the Philox4x32-10 draw of (seed, step) scaled
// by the kept total. The top-k candidates are found with an 8-bit radix select
// and sorted with a bitonic sort in shared memory.
#include <climits>
#include <cstdio>
#include <cstdlib>

#include <cstdlib>
#include <string_view>

#include "kernels/common.cuh"
#include "kernels/ops.h"

namespace ossgate::kernels {

namespace {

constexpr int kThreads = 512;
constexpr int kSortSlots = 2 * kMaxGpuTopK;

// Larger key = larger float; NaN gets the smallest key (never preferred).
__device__ __forceinline__ uint32_t OrderedKey(float v) {
  if (isnan(v)) return 0u;
  const uint32_t u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// a goes before b: higher key, then lower id.
__device__ __forceinline__ bool Before(uint32_t ka, int ia, uint32_t kb, int ib) {
  return ka > kb || (ka == kb && ia < ib);
}

__device__ float PhiloxUniformDevice(uint64_t seed, uint64_t counter) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return static_cast<float>(c0 >> 8) * (1.0f / 16777216.0f);
}


// Deterministic sum over the block of 16 per-thread double buckets: warp
// butterflies (every lane ends with the same bits), then warps in order.
__device__ __forceinline__ void BlockSum16(double (&b)[16], double* warp_sums, double* sums) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int i = 0; i < 16; ++i) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) b[i] += __shfl_xor_sync(0xFFFFFFFFu, b[i], o);
  }
  if (lane == 0) {
#pragma unroll
    for (int i = 0; i < 16; ++i) warp_sums[warp * 16 + i] = b[i];
  }
  __syncthreads();
  if (threadIdx.x < 16) {
    double s = 0.0;
    for (int w = 0; w < kThreads / 32; ++w) s += warp_sums[w * 16 + threadIdx.x];
    sums[threadIdx.x] = s;
  }
  __syncthreads();
}

// Full-vocabulary sampling (top-k off): the CPU sorts every token; here the
// element where a running sum in sorted order crosses a threshold is found
// by a radix search over the ordered keys, 4 bits at a time, with per-digit
// probability sums, then among equal logits by id. Used for the top-p cut
// and for the draw.
struct FullState {
  double max_l;
  double inv_temp;
  double min_p;
  bool has_cut;  // top-p cut (key, id): kept = at or before it in order
  uint32_t cut_key;
  int cut_id;
  uint32_t first_key;
  int first_id;
};

__device__ __forceinline__ double ProbOf(float l, const FullState& st) {
  return isnan(l) ? 0.0 : exp((static_cast<double>(l) - st.max_l) * st.inv_temp);
}
__device__ __forceinline__ bool Kept(uint32_t key, int id, double p, const FullState& st) {
  if (st.has_cut && Before(st.cut_key, st.cut_id, key, id)) return false;
  if (key == st.first_key && id == st.first_id) return true;
  return st.min_p <= 0.0 || p >= st.min_p;
}

struct SearchSmem {
  double warp_sums[kThreads / 32 * 16];
  double sums[16];
  uint32_t hist[256];
  uint32_t prefix, mask;
  double before;
  int count;
  int remaining;
  int result_id;
};

// Finds the kept element e (in order: logit descending, id ascending) with
// S(e) + p(e) crossing x, S(e) the kept mass before e: the first e with
// x < S + p (strict) or x <= S + p (not strict). Past the end: the last kept
// element. Returns its id; *key_out its key.
__device__ int CdfSearch(const float* l, int vocab, const FullState& st, double x, bool strict, SearchSmem& sm,
                         uint32_t* key_out) {
  const int tid = threadIdx.x;
  if (tid == 0) sm.prefix = 0u, sm.mask = 0u, sm.before = 0.0;
  __syncthreads();
  for (int shift = 28; shift >= 0; shift -= 4) {
    double b[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) b[i] = 0.0;
    const uint32_t prefix = sm.prefix, mask = sm.mask;
    for (int i = tid; i < vocab; i += kThreads) {
      const float li = l[i];
      const uint32_t key = OrderedKey(li);
      if ((key & mask) != prefix) continue;
      const double p = ProbOf(li, st);
      if (!Kept(key, i, p, st)) continue;
      const uint32_t d = (key >> shift) & 15u;
#pragma unroll
      for (int j = 0; j < 16; ++j) b[j] += (static_cast<uint32_t>(j) == d) ? p : 0.0;
    }
    // Digits with kept elements but zero mass still count as present.
    if (tid < 16) sm.hist[tid] = 0u;
    __syncthreads();
    for (int i = tid; i < vocab; i += kThreads) {
      const float li = l[i];
      const uint32_t key = OrderedKey(li);
      if ((key & mask) == prefix && Kept(key, i, ProbOf(li, st), st)) atomicOr(&sm.hist[(key >> shift) & 15u], 1u);
    }
    BlockSum16(b, sm.warp_sums, sm.sums);
    if (tid == 0) {
      double before = sm.before, before_last = sm.before;
      int chosen = -1, last = -1;
      for (int d = 15; d >= 0; --d) {
        if (!sm.hist[d]) continue;
        const double s = before + sm.sums[d];
        if (strict ? (x < s) : (x <= s)) {
          chosen = d;
          break;
        }
        last = d;
        before_last = before;
        before = s;
      }
      if (chosen < 0) {  // past the end (rounding): the last kept element
        chosen = last;
        before = before_last;
      }
      sm.prefix = prefix | (static_cast<uint32_t>(chosen < 0 ? 0 : chosen) << shift);
      sm.mask = mask | (15u << shift);
      sm.before = before;
    }
    __syncthreads();
  }
  // Ties: every kept element with this key has the same logit and mass.
  const uint32_t key = sm.prefix;
  if (tid == 0) sm.count = 0, sm.result_id = INT_MAX;
  __syncthreads();
  for (int i = tid; i < vocab; i += kThreads) {
    const float li = l[i];
    if (OrderedKey(li) == key && Kept(key, i, ProbOf(li, st), st)) {
      atomicAdd(&sm.count, 1);
      atomicMin(&sm.result_id, i);
    }
  }
  __syncthreads();
  if (tid == 0) {
    const double p = sm.result_id == INT_MAX ? 0.0 : ProbOf(l[sm.result_id], st);
    const int n = max(sm.count, 1);
    double jd = p > 0.0 ? (x - sm.before) / p : 0.0;
    int j = strict ? static_cast<int>(floor(jd)) : static_cast<int>(ceil(jd)) - 1;
    sm.remaining = min(max(j, 0), n - 1) + 1;  // 1-based rank among the ties, by id
    sm.prefix = 0u;
    sm.mask = 0u;
  }
  __syncthreads();
  // The remaining-th smallest id among the ties (8 bits at a time).
  for (int shift = 16; shift >= 0; shift -= 8) {
    if (tid < 256) sm.hist[tid] = 0u;
    __syncthreads();
    const uint32_t prefix = sm.prefix, mask = sm.mask;
    for (int i = tid; i < vocab; i += kThreads) {
      const float li = l[i];
      if (OrderedKey(li) != key || (static_cast<uint32_t>(i) & mask) != prefix) continue;
      if (!Kept(key, i, ProbOf(li, st), st)) continue;
      atomicAdd(&sm.hist[(static_cast<uint32_t>(i) >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (tid == 0) {
      int remaining = sm.remaining;
      for (int b = 0; b < 256; ++b) {
        if (static_cast<int>(sm.hist[b]) >= remaining) {
          sm.prefix = prefix | (static_cast<uint32_t>(b) << shift);
          sm.mask = mask | (255u << shift);
          break;
        }
        remaining -= static_cast<int>(sm.hist[b]);
      }
      sm.remaining = remaining;
    }
    __syncthreads();
  }
  *key_out = key;
  return static_cast<int>(sm.prefix);
}

// Deterministic block sum of one double per thread.
__device__ double BlockSum(double v, SearchSmem& sm) {
  double b[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) b[i] = i == 0 ? v : 0.0;
  BlockSum16(b, sm.warp_sums, sm.sums);
  return sm.sums[0];
}

__device__ void FullVocabSample(const float* l, int vocab, const SampleRow& cfg, uint32_t best_key, int best_id,
                                int32_t* out, SearchSmem& sm) {
  const int tid = threadIdx.x;
  FullState st;
  st.max_l = l[best_id];
  st.inv_temp = 1.0 / static_cast<double>(cfg.temperature);
  st.min_p = 0.0;
  st.has_cut = false;
  st.first_key = best_key;
  st.first_id = best_id;
  st.cut_key = 0u;
  st.cut_id = 0;
  if (cfg.top_p < 1.0f) {
    double mine = 0.0;
    for (int i = tid; i < vocab; i += kThreads) mine += ProbOf(l[i], st);
    const double total = BlockSum(mine, sm);
    uint32_t cut_key;
    const int cut_id = CdfSearch(l, vocab, st, static_cast<double>(cfg.top_p) * total, false, sm, &cut_key);
    st.has_cut = true;
    st.cut_key = cut_key;
    st.cut_id = cut_id;
  }
  st.min_p = cfg.min_p > 0.0f ? static_cast<double>(cfg.min_p) : 0.0;
  double mine = 0.0;
  for (int i = tid; i < vocab; i += kThreads) {
    const float li = l[i];
    const double p = ProbOf(li, st);
    if (Kept(OrderedKey(li), i, p, st)) mine += p;
  }
  const double kept_total = BlockSum(mine, sm);
  const double target = static_cast<double>(PhiloxUniformDevice(cfg.seed, cfg.step)) * kept_total;
  uint32_t key;
  const int pick = CdfSearch(l, vocab, st, target, true, sm, &key);
  if (tid == 0) *out = pick;
}

__global__ void __launch_bounds__(kThreads) SampleKernel(const SampleParams p) {
  LaunchDependents();
  GridDependencySync();
  __shared__ uint32_t skey[kSortSlots];
  __shared__ int sid[kSortSlots];
  __shared__ double prob[kMaxGpuTopK];
  __shared__ uint32_t hist[256];
  __shared__ uint32_t s_prefix, s_mask;
  __shared__ int s_remaining, s_count;
  __shared__ SearchSmem search;
  const int row = blockIdx.x, tid = threadIdx.x;
  const float* l = p.logits + static_cast<int64_t>(row) * p.vocab;
  const SampleRow cfg = p.rows[row];

  if (cfg.temperature <= 0.0f || cfg.top_k <= 0) {
    uint32_t best_k = 0;
    int best_i = INT_MAX;
    auto consider = [&](float v, int i) {
      const uint32_t k = OrderedKey(v);
      if (Before(k, i, best_k, best_i)) best_k = k, best_i = i;
    };
    if (p.vocab % 4 == 0) {
      // float4 loads, kUnroll in flight per thread (rows are 16-byte aligned).
      constexpr int kUnroll = 4;
      const float4* l4 = reinterpret_cast<const float4*>(l);
      const int n4 = p.vocab / 4;
      for (int i0 = tid; i0 < n4; i0 += kThreads * kUnroll) {
        float4 v[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) v[u] = l4[min(i0 + u * kThreads, n4 - 1)];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int i = i0 + u * kThreads;
          if (i < n4) {
            consider(v[u].x, 4 * i);
            consider(v[u].y, 4 * i + 1);
            consider(v[u].z, 4 * i + 2);
            consider(v[u].w, 4 * i + 3);
          }
        }
      }
    } else {
      for (int i = tid; i < p.vocab; i += kThreads) consider(l[i], i);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const uint32_t ok = __shfl_xor_sync(0xFFFFFFFFu, best_k, o);
      const int oi = __shfl_xor_sync(0xFFFFFFFFu, best_i, o);
      if (Before(ok, oi, best_k, best_i)) best_k = ok, best_i = oi;
    }
    if ((tid & 31) == 0) skey[tid >> 5] = best_k, sid[tid >> 5] = best_i;
    __syncthreads();
    if (tid == 0) {
      for (int w = 1; w < kThreads / 32; ++w) {
        if (Before(skey[w], sid[w], skey[0], sid[0])) skey[0] = skey[w], sid[0] = sid[w];
      }
      if (sid[0] == INT_MAX) sid[0] = 0;
    }
    __syncthreads();
    if (cfg.temperature <= 0.0f) {
      if (tid == 0) p.out[row] = sid[0];
      return;
    }
    FullVocabSample(l, p.vocab, cfg, skey[0], sid[0], &p.out[row], search);
    return;
  }

  // k-th largest key by radix select, 8 bits at a time from the top.
  const int k = min(cfg.top_k, p.vocab);
  if (tid == 0) s_prefix = 0u, s_mask = 0u, s_remaining = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    if (tid < 256) hist[tid] = 0u;
    __syncthreads();
    const uint32_t prefix = s_prefix, mask = s_mask;
    for (int i = tid; i < p.vocab; i += kThreads) {
      const uint32_t key = OrderedKey(l[i]);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (tid == 0) {
      int remaining = s_remaining;
      for (int b = 255; b >= 0; --b) {
        if (static_cast<int>(hist[b]) >= remaining) {
          s_prefix = prefix | (static_cast<uint32_t>(b) << shift);
          s_mask = mask | (255u << shift);
          break;
        }
        remaining -= static_cast<int>(hist[b]);
      }
      s_remaining = remaining;
    }
    __syncthreads();
  }
  const uint32_t tau = s_prefix;  // key of the k-th best
  // Collect every key above tau and (up to the slots left) those equal to it.
  for (int i = tid; i < kSortSlots; i += kThreads) skey[i] = 0u, sid[i] = INT_MAX;
  if (tid == 0) s_count = 0;
  __syncthreads();
  for (int i = tid; i < p.vocab; i += kThreads) {
    const uint32_t key = OrderedKey(l[i]);
    if (key >= tau) {
      const int slot = atomicAdd(&s_count, 1);
      if (slot < kSortSlots) skey[slot] = key, sid[slot] = i;
    }
  }
  __syncthreads();
  for (int size = 2; size <= kSortSlots; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = tid; i < kSortSlots; i += kThreads) {
        const int j = i ^ stride;
        if (j > i) {
          const bool up = (i & size) == 0;
          if (Before(skey[j], sid[j], skey[i], sid[i]) == up) {
            const uint32_t tk = skey[i];
            const int ti = sid[i];
            skey[i] = skey[j], sid[i] = sid[j];
            skey[j] = tk, sid[j] = ti;
          }
        }
      }
      __syncthreads();
    }
  }
  const double max_l = l[sid[0]];
  for (int i = tid; i < k; i += kThreads) {
    const float li = l[sid[i]];
    prob[i] = isnan(li) ? 0.0 : exp((static_cast<double>(li) - max_l) / static_cast<double>(cfg.temperature));
  }
  __syncthreads();
  if (tid != 0) return;
  int keep = k;
  double total = 0.0;
  for (int i = 0; i < keep; ++i) total += prob[i];
  if (cfg.top_p < 1.0f) {
    double cum = 0.0;
    int i = 0;
    while (i < keep) {
      cum += prob[i++];
      if (cum >= static_cast<double>(cfg.top_p) * total) break;
    }
    keep = max(1, i);
  }
  if (cfg.min_p > 0.0f) {
    int i = 1;
    while (i < keep && prob[i] >= static_cast<double>(cfg.min_p) * prob[0]) ++i;
    keep = i;
  }
  total = 0.0;
  for (int i = 0; i < keep; ++i) total += prob[i];
  const double target = static_cast<double>(PhiloxUniformDevice(cfg.seed, cfg.step)) * total;
  double cum = 0.0;
  int pick = sid[keep - 1];
  for (int i = 0; i < keep; ++i) {
    cum += prob[i];
    if (target < cum) {
      pick = sid[i];
      break;
    }
  }
  p.out[row] = pick;
}

}  // namespace

void LaunchSample(const SampleParams& p, cudaStream_t stream) {
  if (p.n_rows <= 0) return;
  LaunchKernel(SampleKernel, p.n_rows, kThreads, 0, stream, p);
  CUDA_CHECK_LAUNCH();
}

void InitGemmKernels();

namespace {
bool g_programmatic_launch = false;
}  // namespace

bool ProgrammaticLaunchEnabled() { return g_programmatic_launch; }

// Programmatic dependent launch needs compute capability 9.0; OSSGATE_PDL=0
// turns it off (to measure what it brings).
void InitKernels() {
  InitGemmKernels();
  int dev = 0, major = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  const char* env = std::getenv("OSSGATE_PDL");
  g_programmatic_launch = major >= 9 && !(env && std::string_view(env) == "0");
}

}  // namespace ossgate::kernels
