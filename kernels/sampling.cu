// Token sampling on the GPU: model::Sampler's algorithm (sampler.h) with the
// arithmetic of sampling_math.h, so the GPU and the host pick the same token
// bit for bit. Only the chosen ids go back to the host.
//
// Every launch covers all rows, each row split over ceil(vocab / 4096)
// blocks (50 for the o200k vocabulary); the blocks of a row combine their
// results with integer atomics (order-independent, so the result does not
// depend on how many blocks there are or which finishes first), and the last
// block of a row (an atomic ticket) finishes the row's part of the launch.
// The passes:
//   1. scan: NaN check, the best id (greedy), the number of candidates, and
//      for temperature sampling without top-k/top-p/min-p the Gumbel-max
//      winner: one pass over the logits, so plain temperature sampling costs
//      what greedy does plus the Philox and two logarithms per token;
//   2. top-k cut (3 launches, rows with top_k): a radix select over the
//      32-bit order keys, 11 + 11 + 10 bits, of the k-th candidate;
//   3. top-p cut (3 launches, rows with top_p < 1): the same select over the
//      integer masses of the (top-k) candidates, the first where the running
//      mass reaches ceil(top_p * total);
//   4. final (rows with any of top-k, top-p, min-p): the Gumbel-max winner
//      among the candidates up to the cut with z >= log(min_p).
// No pass sorts anything. Ties of the cut key are resolved by the per-bin
// smallest and largest id, and in the rare remaining case by an ordered scan
// of the row in the last block.
//
// Workspace (SampleWorkspaceBytes): per row a state and a histogram; the
// last block of a row leaves them zeroed for the next launch.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "inference_worker/model/sampling_math.h"
#include "kernels/common.cuh"
#include "kernels/ops.h"

namespace ossgate::kernels {

namespace {

namespace sm = ossgate::model::sampling;

constexpr int kThreads = 256;
constexpr int kGroupsPerThread = 4;  // groups of 4 ids
constexpr int kBlockIds = kThreads * kGroupsPerThread * 4;
constexpr int kDigitBins = 2048;  // 11-bit digits (the last one has 10 bits)
constexpr int kLastBins = 1024;
constexpr uint32_t kMinusInfKey = 0x007FFFFFu;  // sm::OrderKey(-inf)
constexpr uint32_t kPlusInfKey = 0xFF800000u;   // sm::OrderKey(+inf)
constexpr int32_t kNoToken = -1;                 // model::kNoToken

enum Mode : uint32_t { kModeSearchK = 1, kModeSearchP = 2, kModeFinal = 4 };

// Per row, zero between launches (the identity of every reduction below).
struct alignas(16) RowState {
  unsigned long long best;    // max of (key << 32 | ~id) over allowed non-NaN ids
  unsigned long long gumbel;  // max of (OrderKey(score) << 32 | ~id)
  unsigned long long target;  // search: count or mass still to reach inside `prefix`
  uint32_t nan;               // an allowed id holds NaN
  uint32_t n_cand;            // allowed ids with a logit above -inf
  uint32_t ticket;            // blocks of the row done in this launch
  uint32_t mode;              // Mode bits still to run (set by the scan)
  uint32_t prefix;            // search: resolved high bits of the cut key
  uint32_t has_cut_k, cut_key_k;
  int32_t cut_id_k;
  uint32_t has_cut, cut_key;
  int32_t cut_id;
  float max_l;
};
struct RowHist {
  uint32_t count[kDigitBins];
  unsigned long long mass[kDigitBins];
  uint32_t not_min_id[kLastBins];  // max of ~id (last digit only)
  uint32_t max_id_1[kLastBins];    // max of id + 1
};

__host__ __device__ constexpr size_t Align256(size_t n) { return (n + 255) / 256 * 256; }
__host__ __device__ size_t StateBytes(int rows) { return Align256(sizeof(RowState) * static_cast<size_t>(rows)); }

__device__ __forceinline__ unsigned long long Pack(uint32_t key, int32_t id) {
  return (static_cast<unsigned long long>(key) << 32) | static_cast<uint32_t>(~id);
}
__device__ __forceinline__ int32_t PackedId(unsigned long long v) { return static_cast<int32_t>(~static_cast<uint32_t>(v)); }
__device__ __forceinline__ uint32_t PackedKey(unsigned long long v) { return static_cast<uint32_t>(v >> 32); }

__device__ __forceinline__ unsigned long long WarpMax(unsigned long long v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}

// One row's parameters, derived the same way as on the host.
struct RowCfg {
  bool greedy, use_k, use_p, use_min_p, filtered;
  float inv_t, z_min;
};
__device__ __forceinline__ RowCfg MakeCfg(const SampleRow& r, int vocab) {
  RowCfg c;
  c.greedy = !(r.temperature > 0.0f);
  c.use_k = !c.greedy && r.top_k > 0 && r.top_k < vocab;
  c.use_p = !c.greedy && r.top_p < 1.0f;
  c.use_min_p = !c.greedy && r.min_p > 0.0f;
  c.filtered = c.use_k || c.use_p || c.use_min_p;
  c.inv_t = c.greedy ? 0.0f : sm::Div(1.0f, r.temperature);
  c.z_min = c.use_min_p ? sm::MinPBound(r.min_p) : -INFINITY;
  return c;
}

// Calls f(id, logit, allowed) for the ids of this block (groups of 4, in
// order within a thread; loads issued before use).
template <typename F>
__device__ __forceinline__ void ForBlockIds(const SampleParams& p, const float* l, F&& f) {
  const int g0 = blockIdx.x * (kBlockIds / 4) + threadIdx.x;
  const int n_groups = (p.vocab + 3) / 4;
  float v[kGroupsPerThread][4];
  uint32_t mask[kGroupsPerThread];
#pragma unroll
  for (int u = 0; u < kGroupsPerThread; ++u) {
    const int g = g0 + u * kThreads;
    mask[u] = 0u;
    if (g < n_groups) {
      if (p.vocab % 4 == 0) {
        const float4 x = __ldg(reinterpret_cast<const float4*>(l) + g);
        v[u][0] = x.x, v[u][1] = x.y, v[u][2] = x.z, v[u][3] = x.w;
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) v[u][j] = 4 * g + j < p.vocab ? __ldg(l + 4 * g + j) : 0.0f;
      }
      if (p.unsampled) mask[u] = __ldg(p.unsampled + (g >> 3)) >> ((4 * g) & 31);
    }
  }
#pragma unroll
  for (int u = 0; u < kGroupsPerThread; ++u) {
    const int g = g0 + u * kThreads;
    if (g >= n_groups) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int id = 4 * g + j;
      if (id < p.vocab) f(id, g, j, v[u][j], ((mask[u] >> j) & 1u) == 0);
    }
  }
}

// Block-wide reductions into thread 0 (the others get unspecified values).
struct ReduceSmem {
  unsigned long long u64[kThreads / 32];
  uint32_t u32[kThreads / 32];
};
__device__ unsigned long long BlockMax(unsigned long long v, ReduceSmem& s) {
  v = WarpMax(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) s.u64[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) v = max(v, s.u64[w]);
  }
  return v;
}
__device__ uint32_t BlockOr(uint32_t v, ReduceSmem& s) {
  v = __reduce_or_sync(0xFFFFFFFFu, v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) s.u32[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) v |= s.u32[w];
  }
  return v;
}
__device__ uint32_t BlockSum(uint32_t v, ReduceSmem& s) {
  v = __reduce_add_sync(0xFFFFFFFFu, v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) s.u32[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) v += s.u32[w];
  }
  return v;
}

// Takes the row's ticket after this block's atomics; true in the last block.
__device__ bool LastBlockOfRow(RowState& st) {
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const uint32_t t = atomicAdd(&st.ticket, 1u);
    last = t == gridDim.x - 1;
  }
  __syncthreads();
  if (last) __threadfence();
  return last;
}

__device__ __forceinline__ void FinishRow(const SampleParams& p, RowState& st, int row, int32_t token) {
  p.out[row] = token;
  st = RowState{};  // every reduction back to its identity for the next launch
}

// The Gumbel score of an allowed candidate id with its Philox block.
struct GumbelCache {
  int group = -1;
  sm::PhiloxBlock block;
};
__device__ __forceinline__ float Score(const SampleRow& r, const RowCfg& c, GumbelCache& cache, int g, int j, float l) {
  if (cache.group != g) {
    cache.group = g;
    cache.block = sm::GumbelBlock(r.seed, r.step, static_cast<uint32_t>(g));
  }
  return sm::GumbelScore(l, c.inv_t, cache.block.w[j]);
}

// ---- pass 1: scan ----

__global__ void __launch_bounds__(kThreads) SampleScanKernel(const SampleParams p) {
  LaunchDependents();
  GridDependencySync();
  __shared__ ReduceSmem red;
  const int row = blockIdx.y;
  const SampleRow r = p.rows[row];
  const RowCfg c = MakeCfg(r, p.vocab);
  RowState& st = reinterpret_cast<RowState*>(p.workspace)[row];
  const float* l = p.logits + static_cast<int64_t>(row) * p.vocab;
  const bool score_all = !c.greedy && !c.filtered;
  unsigned long long best = 0, gumbel = 0;
  uint32_t nan = 0, n_cand = 0;
  GumbelCache cache;
  ForBlockIds(p, l, [&](int id, int g, int j, float v, bool allowed) {
    if (!allowed) return;
    if (sm::IsNaN(v)) {
      nan = 1u;
      return;
    }
    const uint32_t key = sm::OrderKey(v);
    best = max(best, Pack(key, id));
    if (key <= kMinusInfKey) return;
    ++n_cand;
    if (score_all) gumbel = max(gumbel, Pack(sm::OrderKey(Score(r, c, cache, g, j, v)), id));
  });
  best = BlockMax(best, red);
  gumbel = BlockMax(gumbel, red);
  nan = BlockOr(nan, red);
  n_cand = BlockSum(n_cand, red);
  if (threadIdx.x == 0) {
    if (best) atomicMax(&st.best, best);
    if (gumbel) atomicMax(&st.gumbel, gumbel);
    if (nan) atomicOr(&st.nan, 1u);
    if (n_cand) atomicAdd(&st.n_cand, n_cand);
  }
  if (!LastBlockOfRow(st) || threadIdx.x != 0) return;
  const unsigned long long b = __ldcg(&st.best);
  const uint32_t best_key = PackedKey(b);
  if (__ldcg(&st.nan) || best_key <= kMinusInfKey) return FinishRow(p, st, row, kNoToken);
  if (c.greedy || best_key == kPlusInfKey) return FinishRow(p, st, row, PackedId(b));
  if (!c.filtered) return FinishRow(p, st, row, PackedId(__ldcg(&st.gumbel)));
  st.max_l = sm::LogitOfKey(best_key);
  st.mode = kModeFinal | (c.use_k && static_cast<uint32_t>(r.top_k) < __ldcg(&st.n_cand) ? kModeSearchK : 0u) |
            (c.use_p ? kModeSearchP : 0u);
  st.ticket = 0;
}

// ---- passes 2, 3: radix select of the cut ----

struct HistSmem {
  uint32_t count[kDigitBins];
  unsigned long long mass[kDigitBins];
  uint32_t not_min_id[kLastBins];
  uint32_t max_id_1[kLastBins];
  unsigned long long suffix[kThreads];
  int32_t found_bin;
  unsigned long long found_before;
  int32_t found_id;
  uint32_t running;
};

constexpr int DigitShift(int d) { return d == 0 ? 21 : d == 1 ? 10 : 0; }
constexpr int DigitBins(int d) { return d == 2 ? kLastBins : kDigitBins; }

// Bins are taken from the highest down (= candidate order). Thread t owns
// the kPer bins [hi - kPer, hi), hi = kBins - t * kPer. BinScan leaves in
// s.suffix[t] the sum of the bins before thread t's (an exclusive scan over
// the threads) and returns the total to every thread.
template <int kBins, typename Val>
__device__ unsigned long long BinScan(const Val* val, HistSmem& s) {
  constexpr int kPer = kBins / kThreads;
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
  const int hi = kBins - t * kPer;
  unsigned long long mine = 0;
#pragma unroll
  for (int i = 1; i <= kPer; ++i) mine += val[hi - i];
  unsigned long long incl = mine;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const unsigned long long x = __shfl_up_sync(0xFFFFFFFFu, incl, o);
    if (lane >= o) incl += x;
  }
  __shared__ unsigned long long warp_total[kThreads / 32];
  if (lane == 31) warp_total[warp] = incl;
  __syncthreads();
  unsigned long long warp_before = 0, total = 0;
  for (int w = 0; w < kThreads / 32; ++w) {
    if (w < warp) warp_before += warp_total[w];
    total += warp_total[w];
  }
  s.suffix[t] = warp_before + incl - mine;
  __syncthreads();
  return total;
}

// The first bin b (from the top) with before(b) + val[b] >= target, after
// BinScan; into s.found_bin (-1 if the total is below the target) and
// s.found_before.
template <int kBins, typename Val>
__device__ void FindCrossing(const Val* val, unsigned long long target, HistSmem& s) {
  constexpr int kPer = kBins / kThreads;
  const int t = threadIdx.x;
  const int hi = kBins - t * kPer;
  if (t == 0) s.found_bin = -1;
  __syncthreads();
  unsigned long long before = s.suffix[t];
  if (before < target) {
    for (int i = 1; i <= kPer; ++i) {
      const unsigned long long x = val[hi - i];
      if (before + x >= target) {
        s.found_bin = hi - i;  // exactly one thread gets here: before grows with t
        s.found_before = before;
        break;
      }
      before += x;
    }
  }
  __syncthreads();
}

template <bool kTopP, int kDigit>
__global__ void __launch_bounds__(kThreads) SampleSearchKernel(const SampleParams p) {
  LaunchDependents();
  GridDependencySync();
  __shared__ HistSmem s;
  const int row = blockIdx.y;
  RowState& st = reinterpret_cast<RowState*>(p.workspace)[row];
  const uint32_t mode = kTopP ? kModeSearchP : kModeSearchK;
  if (!(st.mode & mode)) return;  // (the same for every block of the row in this launch)
  const SampleRow r = p.rows[row];
  const RowCfg c = MakeCfg(r, p.vocab);
  RowHist& gh = *reinterpret_cast<RowHist*>(static_cast<uint8_t*>(p.workspace) + StateBytes(p.n_rows) +
                                            sizeof(RowHist) * static_cast<size_t>(row));
  constexpr int kShift = DigitShift(kDigit);
  constexpr int kBins = DigitBins(kDigit);
  const uint32_t prefix = st.prefix;
  const float max_l = st.max_l;
  const bool restrict_k = kTopP && st.has_cut_k;
  const uint32_t cut_key_k = st.cut_key_k;
  const int32_t cut_id_k = st.cut_id_k;
  for (int i = threadIdx.x; i < kBins; i += kThreads) {
    s.count[i] = 0u;
    if (kTopP) s.mass[i] = 0ull;
    if (kDigit == 2) s.not_min_id[i] = 0u, s.max_id_1[i] = 0u;
  }
  __syncthreads();
  const float* l = p.logits + static_cast<int64_t>(row) * p.vocab;
  ForBlockIds(p, l, [&](int id, int, int, float v, bool allowed) {
    if (!allowed) return;
    const uint32_t key = sm::OrderKey(v);
    if (key <= kMinusInfKey) return;
    if (kDigit > 0 && (key >> (kShift + (kDigit == 1 ? 11 : 10))) != (prefix >> (kShift + (kDigit == 1 ? 11 : 10)))) {
      return;
    }
    if (restrict_k && sm::Before(cut_key_k, cut_id_k, key, id)) return;
    const int bin = static_cast<int>((key >> kShift) & (kBins - 1));
    atomicAdd(&s.count[bin], 1u);
    if (kTopP) atomicAdd(&s.mass[bin], static_cast<unsigned long long>(sm::Mass(sm::RelativeLogit(v, max_l, c.inv_t))));
    if (kDigit == 2) {
      atomicMax(&s.not_min_id[bin], ~static_cast<uint32_t>(id));
      atomicMax(&s.max_id_1[bin], static_cast<uint32_t>(id) + 1u);
    }
  });
  __syncthreads();
  for (int i = threadIdx.x; i < kBins; i += kThreads) {
    if (!s.count[i]) continue;
    atomicAdd(&gh.count[i], s.count[i]);
    if (kTopP) atomicAdd(&gh.mass[i], s.mass[i]);
    if (kDigit == 2) {
      atomicMax(&gh.not_min_id[i], s.not_min_id[i]);
      atomicMax(&gh.max_id_1[i], s.max_id_1[i]);
    }
  }
  if (!LastBlockOfRow(st)) return;

  // The last block: pick this digit, then clear the histogram.
  for (int i = threadIdx.x; i < kBins; i += kThreads) {
    s.count[i] = __ldcg(&gh.count[i]);
    if (kTopP) s.mass[i] = __ldcg(&gh.mass[i]);
  }
  __syncthreads();
  unsigned long long target = __ldcg(&st.target);
  if (kTopP) {
    const unsigned long long total = BinScan<kBins>(s.mass, s);
    if (kDigit == 0) target = sm::TopPThreshold(r.top_p, total);
    FindCrossing<kBins>(s.mass, target, s);
  } else {
    BinScan<kBins>(s.count, s);
    if (kDigit == 0) target = static_cast<unsigned long long>(r.top_k);
    FindCrossing<kBins>(s.count, target, s);
  }
  // found_bin >= 0: the target is at most the total (top-k: k < candidates;
  // top-p: ceil(p * total) <= total), and a digit's bins hold exactly the
  // elements of the bin chosen by the digit before.
  const int bin = s.found_bin;
  const unsigned long long before = s.found_before;
  uint32_t n_at = 0, lo_id = 0, hi_id = 0;
  if (kDigit == 2) {
    n_at = __ldcg(&gh.count[bin]);
    lo_id = ~__ldcg(&gh.not_min_id[bin]);
    hi_id = __ldcg(&gh.max_id_1[bin]) - 1u;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kBins; i += kThreads) {
    gh.count[i] = 0u;
    if (kTopP) gh.mass[i] = 0ull;
    if (kDigit == 2) gh.not_min_id[i] = 0u, gh.max_id_1[i] = 0u;
  }
  if (bin < 0) {  // (not reached; see above) no cut from this search
    if (threadIdx.x == 0) {
      st.mode &= ~mode;
      st.prefix = 0u;
      st.target = 0ull;
      st.ticket = 0;
    }
    return;
  }
  const uint32_t new_prefix = prefix | (static_cast<uint32_t>(bin) << kShift);
  const unsigned long long remaining = target - before;
  if (kDigit < 2) {
    if (threadIdx.x == 0) {
      st.prefix = new_prefix;
      st.target = remaining;
      st.ticket = 0;
    }
    return;
  }
  // The cut key is known: which of its ids (all of equal logit and mass)?
  const uint32_t cut_key = new_prefix;
  uint64_t rank = remaining;  // 1-based among the key's ids, in id order
  if (kTopP) {
    const uint64_t w = sm::Mass(sm::RelativeLogit(sm::LogitOfKey(cut_key), max_l, c.inv_t));
    rank = w ? (remaining + w - 1) / w : 1;
  }
  if (rank < 1) rank = 1;
  if (rank > n_at) rank = n_at;
  int32_t cut_id;
  if (rank == 1) {
    cut_id = static_cast<int32_t>(lo_id);
  } else if (rank == n_at) {
    cut_id = static_cast<int32_t>(hi_id);
  } else {
    // Rare: an inner id among ties. Scan the row in id order.
    if (threadIdx.x == 0) s.running = 0u, s.found_id = -1;
    __syncthreads();
    for (int base = 0; base < p.vocab && s.found_id < 0; base += kThreads) {
      const int id = base + threadIdx.x;
      bool hit = false;
      if (id < p.vocab) {
        const bool allowed = !p.unsampled || !((__ldg(p.unsampled + (id >> 5)) >> (id & 31)) & 1u);
        const float v = l[id];
        hit = allowed && sm::OrderKey(v) == cut_key && !(restrict_k && sm::Before(cut_key_k, cut_id_k, cut_key, id));
      }
      const uint32_t ballot = __ballot_sync(0xFFFFFFFFu, hit);
      __shared__ uint32_t warp_n[kThreads / 32];
      if ((threadIdx.x & 31) == 0) warp_n[threadIdx.x >> 5] = __popc(ballot);
      __syncthreads();
      uint32_t off = s.running;
      for (int w = 0; w < static_cast<int>(threadIdx.x >> 5); ++w) off += warp_n[w];
      const uint32_t mine = off + __popc(ballot & ((1u << (threadIdx.x & 31)) - 1u)) + 1u;
      if (hit && mine == rank) s.found_id = id;
      __syncthreads();
      if (threadIdx.x == 0) {
        for (int w = 0; w < kThreads / 32; ++w) s.running += warp_n[w];
      }
      __syncthreads();
    }
    cut_id = s.found_id;
  }
  if (threadIdx.x != 0) return;
  if (kTopP) {
    st.has_cut = 1u, st.cut_key = cut_key, st.cut_id = cut_id;
  } else {
    st.has_cut_k = 1u, st.cut_key_k = cut_key, st.cut_id_k = cut_id;
    st.has_cut = 1u, st.cut_key = cut_key, st.cut_id = cut_id;  // unless top-p cuts further
  }
  st.prefix = 0u;
  st.target = 0ull;
  st.ticket = 0;
}

// ---- pass 4: the Gumbel-max winner among the kept candidates ----

__global__ void __launch_bounds__(kThreads) SampleFinalKernel(const SampleParams p) {
  LaunchDependents();
  GridDependencySync();
  __shared__ ReduceSmem red;
  const int row = blockIdx.y;
  RowState& st = reinterpret_cast<RowState*>(p.workspace)[row];
  if (!(st.mode & kModeFinal)) return;
  const SampleRow r = p.rows[row];
  const RowCfg c = MakeCfg(r, p.vocab);
  const float max_l = st.max_l;
  const bool has_cut = st.has_cut;
  const uint32_t cut_key = st.cut_key;
  const int32_t cut_id = st.cut_id;
  const float* l = p.logits + static_cast<int64_t>(row) * p.vocab;
  unsigned long long gumbel = 0;
  GumbelCache cache;
  ForBlockIds(p, l, [&](int id, int g, int j, float v, bool allowed) {
    if (!allowed) return;
    const uint32_t key = sm::OrderKey(v);
    if (key <= kMinusInfKey) return;
    if (has_cut && sm::Before(cut_key, cut_id, key, id)) return;
    if (sm::RelativeLogit(v, max_l, c.inv_t) < c.z_min) return;
    gumbel = max(gumbel, Pack(sm::OrderKey(Score(r, c, cache, g, j, v)), id));
  });
  gumbel = BlockMax(gumbel, red);
  if (threadIdx.x == 0 && gumbel) atomicMax(&st.gumbel, gumbel);
  if (!LastBlockOfRow(st) || threadIdx.x != 0) return;
  FinishRow(p, st, row, PackedId(__ldcg(&st.gumbel)));
}

}  // namespace

size_t SampleWorkspaceBytes(int rows) { return StateBytes(rows) + sizeof(RowHist) * static_cast<size_t>(rows); }

void LaunchSample(const SampleParams& p, cudaStream_t stream) {
  if (p.n_rows <= 0) return;
  if (!p.workspace || !p.rows_host) {
    std::fprintf(stderr, "LaunchSample: the workspace and the host copy of the rows are required\n");
    std::abort();
  }
  bool any_k = false, any_p = false, any_filtered = false;
  for (int i = 0; i < p.n_rows; ++i) {
    const SampleRow& r = p.rows_host[i];
    if (!(r.temperature > 0.0f)) continue;
    const bool k = r.top_k > 0 && r.top_k < p.vocab, pp = r.top_p < 1.0f;
    any_k |= k;
    any_p |= pp;
    any_filtered |= k || pp || r.min_p > 0.0f;
  }
  const dim3 grid((p.vocab + kBlockIds - 1) / kBlockIds, p.n_rows);
  LaunchKernel(SampleScanKernel, grid, kThreads, 0, stream, p);
  CUDA_CHECK_LAUNCH();
  if (any_k) {
    LaunchKernel(SampleSearchKernel<false, 0>, grid, kThreads, 0, stream, p);
    LaunchKernel(SampleSearchKernel<false, 1>, grid, kThreads, 0, stream, p);
    LaunchKernel(SampleSearchKernel<false, 2>, grid, kThreads, 0, stream, p);
    CUDA_CHECK_LAUNCH();
  }
  if (any_p) {
    LaunchKernel(SampleSearchKernel<true, 0>, grid, kThreads, 0, stream, p);
    LaunchKernel(SampleSearchKernel<true, 1>, grid, kThreads, 0, stream, p);
    LaunchKernel(SampleSearchKernel<true, 2>, grid, kThreads, 0, stream, p);
    CUDA_CHECK_LAUNCH();
  }
  if (any_filtered) {
    LaunchKernel(SampleFinalKernel, grid, kThreads, 0, stream, p);
    CUDA_CHECK_LAUNCH();
  }
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
