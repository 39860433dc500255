// Attention with sinks over the paged bf16 KV cache, on tensor cores
// (flash-attention style: S = Q K^T and O += P V with mma m16n8k16, online
// softmax in fp32, base 2).
//
// A warp owns 16 rows = (16 / G) query tokens x G heads of one KV head, so
// K/V tiles are read once per GQA group. Keys come from the cache for
// positions before the step and from this step's fresh K/V for the others,
// so a prompt chunk longer than the sliding ring still sees its window.
//
// Canonical order (what makes decode, prefill, any chunking and any batch
// give the same bits for a row): keys are processed in tiles of 64 aligned at
// absolute positions, tiles grouped in splits of 256 keys; each split starts
// from the state (m = sink, l = 0, O = 0) and the split states are merged
// left to right from that same state. A tile or split in which a row sees no
// key leaves its state bit-for-bit unchanged, so rows may share a CTA with
// rows of other positions. Decode with many splits runs the splits of a row
// in parallel CTAs and merges them in AttentionCombineKernel; prefill, and
// decode with at most kMaxSerialSplits splits (sliding layers, short
// contexts), merge in registers with the same arithmetic and skip the
// combine launch.
// A decode CTA has 4 warps: the first computes (one query token = G rows),
// all four load the K/V tiles.
#include <cstdio>
#include <cstdlib>

#include "kernels/common.cuh"
#include "kernels/ops.h"

namespace ossgate::kernels {

namespace {

constexpr int kKT = kAttnTileKeys;
constexpr int kTilesPerSplit = kAttnSplitKeys / kAttnTileKeys;
constexpr int kPrefillWarps = 4;
constexpr int kDecodeWarps = 4;
constexpr int kMaxSerialSplits = 2;  // decode: splits one CTA merges itself

__device__ __forceinline__ void MergeState(float& m, float& l, float& o, float mb, float lb, float ob) {
  const float mn = fmaxf(m, mb);
  const float ca = exp2f(__fsub_rn(m, mn)), cb = exp2f(__fsub_rn(mb, mn));
  l = __fadd_rn(__fmul_rn(l, ca), __fmul_rn(lb, cb));
  o = __fadd_rn(__fmul_rn(o, ca), __fmul_rn(ob, cb));
  m = mn;
}
// The same merge for m and l only (o handled element-wise by the caller).
__device__ __forceinline__ void MergeScale(float m, float mb, float& ca, float& cb, float& mn) {
  mn = fmaxf(m, mb);
  ca = exp2f(__fsub_rn(m, mn));
  cb = exp2f(__fsub_rn(mb, mn));
}

__device__ __forceinline__ uint4 Bf16x8ToHalf(uint4 v) {
  return make_uint4(Bf16PairToHalf(v.x), Bf16PairToHalf(v.y), Bf16PairToHalf(v.z), Bf16PairToHalf(v.w));
}

__device__ __forceinline__ void LdMatrixX4Trans(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                                const void* smem) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(a));
}

// The two rows of lane 4r + c (fragment rows r and r + 8) in a warp of tpw
// query tokens (G = 16 / tpw heads each) whose first is tok0 (of the step's
// tokens of the sequence), the last valid one tok_last: token, q head,
// position, first visible key, whether it is a row at all, the sink in base 2.
__device__ __forceinline__ void WarpRows(const AttnParams& p, int r, int kvh, int G, int tpw, int tok0,
                                         int tok_last, int start, int (&tok)[2], int (&head)[2], int (&pos)[2],
                                         int (&lo)[2], bool (&valid)[2], float (&sink2)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int rr = r + 8 * h;
    tok[h] = tok0 + rr / G;
    head[h] = kvh * G + rr % G;
    // With G not dividing 16 (Qwen2.5: 7) a warp's last 16 - tpw * G rows are padding.
    valid[h] = rr < tpw * G && tok[h] <= tok_last;
    pos[h] = start + tok[h];
    lo[h] = p.sliding ? max(0, pos[h] - p.window + 1) : 0;
    sink2[h] = __fmul_rn(p.sinks[head[h]], kLog2e);
  }
}

// The A fragments of the rows' queries (zeros for rows that are not), lane 4r + c.
template <int HD>
__device__ __forceinline__ void LoadQFragments(const AttnParams& p, int c, int first_row, const int (&tok)[2],
                                               const int (&head)[2], const bool (&valid)[2],
                                               uint32_t (&qa)[HD / 16][4]) {
#pragma unroll
  for (int s = 0; s < HD / 16; ++s) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t lo32 = 0, hi32 = 0;
      if (valid[h]) {
        const half_t* qrow = p.q + (static_cast<int64_t>(first_row + tok[h]) * p.n_heads + head[h]) * HD;
        lo32 = *reinterpret_cast<const uint32_t*>(qrow + 16 * s + 2 * c);
        hi32 = *reinterpret_cast<const uint32_t*>(qrow + 16 * s + 2 * c + 8);
      }
      qa[s][h] = lo32;
      qa[s][2 + h] = hi32;
    }
  }
}

// One 64-key tile t for a warp's 16 rows: S = Q K^T, the online softmax
// update of the split state (mS, lS) and O = O * corr + P V. ks/vs hold the
// tile's keys and values in rows of HD + 8 halfs; with kRawBf16 they hold the
// cache's bf16 bits and each fragment is converted as it is read (the values
// a converting store would have written, so the arithmetic is the same).
template <int HD, bool kRawBf16>
__device__ __forceinline__ void AttnTileStep(const __half* ks, const __half* vs, const uint32_t (&qa)[HD / 16][4],
                                             int t, const bool (&valid)[2], const int (&lo)[2], const int (&pos)[2],
                                             float scale_log2, float (&mS)[2], float (&lS)[2],
                                             float (&oS)[HD / 8][4]) {
  constexpr int LDS = HD + 8;
  constexpr int KSTEPS = HD / 16;
  constexpr int DT = HD / 8;
  const int lane = threadIdx.x & 31, r = lane >> 2, c = lane & 3;
  float sc[8][4];
#pragma unroll
  for (int jn = 0; jn < 8; ++jn) {
    sc[jn][0] = sc[jn][1] = sc[jn][2] = sc[jn][3] = 0.0f;
#pragma unroll
    for (int s2 = 0; s2 < KSTEPS; ++s2) {
      const __half* krow = &ks[(jn * 8 + r) * LDS + 16 * s2 + 2 * c];
      uint32_t b0 = *reinterpret_cast<const uint32_t*>(krow);
      uint32_t b1 = *reinterpret_cast<const uint32_t*>(krow + 8);
      if constexpr (kRawBf16) {
        b0 = Bf16PairToHalf(b0);
        b1 = Bf16PairToHalf(b1);
      }
      MmaF16(sc[jn], qa[s2][0], qa[s2][1], qa[s2][2], qa[s2][3], b0, b1);
    }
  }
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int jn = 0; jn < 8; ++jn) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int h = e >> 1;
      const int key = t * kKT + jn * 8 + 2 * c + (e & 1);
      const bool ok = valid[h] && key >= lo[h] && key <= pos[h];
      const float v = ok ? __fmul_rn(sc[jn][e], scale_log2) : -INFINITY;
      sc[jn][e] = v;
      mx[h] = fmaxf(mx[h], v);
    }
  }
  float corr[2], mnew[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xFFFFFFFFu, mx[h], 1));
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xFFFFFFFFu, mx[h], 2));
    mnew[h] = fmaxf(mS[h], mx[h]);
    corr[h] = exp2f(__fsub_rn(mS[h], mnew[h]));
  }
#pragma unroll
  for (int jn = 0; jn < 8; ++jn) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int h = e >> 1;
      const float pv = exp2f(__fsub_rn(sc[jn][e], mnew[h]));
      sc[jn][e] = pv;
      rs[h] = __fadd_rn(rs[h], pv);
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    rs[h] = __fadd_rn(rs[h], __shfl_xor_sync(0xFFFFFFFFu, rs[h], 1));
    rs[h] = __fadd_rn(rs[h], __shfl_xor_sync(0xFFFFFFFFu, rs[h], 2));
    lS[h] = __fadd_rn(__fmul_rn(lS[h], corr[h]), rs[h]);
    mS[h] = mnew[h];
  }
#pragma unroll
  for (int d = 0; d < DT; ++d) {
    oS[d][0] = __fmul_rn(oS[d][0], corr[0]);
    oS[d][1] = __fmul_rn(oS[d][1], corr[0]);
    oS[d][2] = __fmul_rn(oS[d][2], corr[1]);
    oS[d][3] = __fmul_rn(oS[d][3], corr[1]);
  }
#pragma unroll
  for (int kk = 0; kk < kKT / 16; ++kk) {
    const uint32_t a0 = PackHalf2(sc[2 * kk][0], sc[2 * kk][1]);
    const uint32_t a1 = PackHalf2(sc[2 * kk][2], sc[2 * kk][3]);
    const uint32_t a2 = PackHalf2(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
    const uint32_t a3 = PackHalf2(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
#pragma unroll
    for (int d = 0; d < DT; d += 2) {
      uint32_t v0, v1, v2, v3;
      LdMatrixX4Trans(v0, v1, v2, v3, &vs[(kk * 16 + (lane & 15)) * LDS + (d + (lane >> 4)) * 8]);
      if constexpr (kRawBf16) {
        v0 = Bf16PairToHalf(v0);
        v1 = Bf16PairToHalf(v1);
        v2 = Bf16PairToHalf(v2);
        v3 = Bf16PairToHalf(v3);
      }
      MmaF16(oS[d], a0, a1, a2, a3, v0, v1);
      MmaF16(oS[d + 1], a0, a1, a2, a3, v2, v3);
    }
  }
}

// A split's state of a decode row, for the combine kernel.
template <int HD>
__device__ __forceinline__ void StoreSplitState(const AttnParams& p, int slot, const int (&head)[2],
                                                const bool (&valid)[2], const float (&mS)[2], const float (&lS)[2],
                                                const float (&oS)[HD / 8][4]) {
  constexpr int DT = HD / 8;
  const int c = threadIdx.x & 3;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (!valid[h]) continue;
    float* st = p.part + (static_cast<int64_t>(slot) * p.n_heads + head[h]) * (HD + 2);
#pragma unroll
    for (int d = 0; d < DT; ++d) {
      st[d * 8 + 2 * c] = oS[d][2 * h];
      st[d * 8 + 2 * c + 1] = oS[d][2 * h + 1];
    }
    if (c == 0) {
      st[HD] = mS[h];
      st[HD + 1] = lS[h];
    }
  }
}

// kParallel (decode only): one split per CTA (grid z), states to p.part for
// the combine kernel; otherwise the CTA runs all splits of its rows.
// Parallel decode runs thousands of one-split CTAs at long contexts, of which
// only the first warp computes: it is latency-bound, so its registers are
// capped for 3 resident CTAs per SM instead of 2 (168 instead of 200 for
// head_dim 64; register allocation does not change the arithmetic). At
// context 131,072 on an H200 this took batch-1 decode from 178.8 to 196.7
// tokens/s (a cap for 4 CTAs, 128 registers with spills: 195.5).
template <int HD, int WARPS, bool kDecode, bool kParallel>
__global__ void __launch_bounds__(WARPS * 32, kDecode && kParallel ? 3 : 1) AttentionKernel(const AttnParams p) {
  // Programmatic launch: the step's metadata (copied before the step) and
  // the cached keys of earlier positions (written by earlier steps) are read
  // before waiting for the previous kernel; q and this step's keys after.
  LaunchDependents();
  constexpr int LDS = HD + 8;  // padded smem row (halfs): conflict-free fragment loads
  constexpr int KSTEPS = HD / 16;
  constexpr int DT = HD / 8;
  __shared__ __align__(16) __half ks[kKT * LDS];
  __shared__ __align__(16) __half vs[kKT * LDS];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int r = lane >> 2, c = lane & 3;
  const int item = blockIdx.x;
  if (item >= *p.n_items) return GridDependencySync();
  const int G = p.n_heads / p.n_kv_heads;
  const int tpw = 16 / G;  // query tokens per warp
  const int kvh = blockIdx.y;
  const int seq = kDecode ? p.items[item] : p.items[2 * item];
  const int qtile = kDecode ? 0 : p.items[2 * item + 1];
  if (seq < 0) return GridDependencySync();
  const int start = p.seqs.start[seq], n = p.seqs.n[seq], first_row = p.seqs.first_row[seq];
  const int32_t* table = p.seqs.tables + (p.sliding ? p.seqs.ring_off[seq] : p.seqs.full_off[seq]);
  const int cta_tok0 = qtile * WARPS * tpw;
  const int cta_tok1 = min(n, cta_tok0 + WARPS * tpw) - 1;
  if (cta_tok1 < cta_tok0) return GridDependencySync();
  const int kmin = p.sliding ? max(0, start + cta_tok0 - p.window + 1) : 0;
  const int kmax = start + cta_tok1;
  const int s_first = kmin / kAttnSplitKeys, s_last = kmax / kAttnSplitKeys;
  int s_begin = s_first, s_end = s_last;
  if (kParallel) {
    s_begin = s_first + blockIdx.z;
    if (s_begin > s_last) return GridDependencySync();
    s_end = s_begin;
  }

  int tok[2], head[2], pos[2], lo[2];
  bool valid[2];
  float sink2[2];
  WarpRows(p, r, kvh, G, tpw, cta_tok0 + warp * tpw, cta_tok1, start, tok, head, pos, lo, valid, sink2);
  float mM[2] = {sink2[0], sink2[1]}, lM[2] = {0.0f, 0.0f};
  float oM[DT][4];
#pragma unroll
  for (int d = 0; d < DT; ++d) oM[d][0] = oM[d][1] = oM[d][2] = oM[d][3] = 0.0f;

  // K/V tiles: each thread requests all its pieces of a 64-key tile before
  // converting and storing any (one memory round trip per tile), and the
  // next tile's pieces are requested as soon as this one is in shared
  // memory, so the load of tile t + 1 overlaps the math of tile t.
  constexpr int kPieces = HD / 8;
  constexpr int kLoads = kKT * kPieces / (WARPS * 32);
  static_assert(kLoads * WARPS * 32 == kKT * kPieces, "pieces per thread");
  uint4 kr[kLoads], vr[kLoads];
  // which: 0 = the cached keys (j < start), 1 = this step's keys, 2 = both.
  auto load_tile = [&](int t, int which) {
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int idx = threadIdx.x + u * WARPS * 32;
      const int key = idx / kPieces, piece = idx % kPieces;
      const int j = t * kKT + key;
      if (which != 1) kr[u] = vr[u] = make_uint4(0, 0, 0, 0);
      if (j >= kmin && j <= kmax && (which == 2 || (which == 0) == (j < start))) {
        int64_t off;
        const bf16_t *kb, *vb;
        if (j < start) {
          const int blk = p.sliding ? table[(j / p.block_size) % p.ring_blocks] : table[j / p.block_size];
          off = ((static_cast<int64_t>(blk) * p.n_kv_heads + kvh) * p.block_size + j % p.block_size) * HD;
          kb = p.k_cache;
          vb = p.v_cache;
        } else {
          off = (static_cast<int64_t>(first_row + j - start) * p.n_kv_heads + kvh) * HD;
          kb = p.k_new;
          vb = p.v_new;
        }
        kr[u] = *reinterpret_cast<const uint4*>(kb + off + piece * 8);
        vr[u] = *reinterpret_cast<const uint4*>(vb + off + piece * 8);
      }
    }
  };
  const int t_first = max(s_begin * kTilesPerSplit, kmin / kKT);
  const int t_last = min(s_end * kTilesPerSplit + kTilesPerSplit - 1, kmax / kKT);
  if (t_first <= t_last) load_tile(t_first, 0);
  GridDependencySync();
  if (t_first <= t_last) load_tile(t_first, 1);
  uint32_t qa[KSTEPS][4];
  LoadQFragments<HD>(p, c, first_row, tok, head, valid, qa);


  for (int s = s_begin; s <= s_end; ++s) {
    float mS[2] = {sink2[0], sink2[1]}, lS[2] = {0.0f, 0.0f};
    float oS[DT][4];
#pragma unroll
    for (int d = 0; d < DT; ++d) oS[d][0] = oS[d][1] = oS[d][2] = oS[d][3] = 0.0f;
    const int t_lo = max(s * kTilesPerSplit, kmin / kKT);
    const int t_hi = min(s * kTilesPerSplit + kTilesPerSplit - 1, kmax / kKT);
    for (int t = t_lo; t <= t_hi; ++t) {
      __syncthreads();  // the previous tile's readers are done
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        const int idx = threadIdx.x + u * WARPS * 32;
        const int key = idx / kPieces, piece = idx % kPieces;
        uint4 kv = kr[u], vv = vr[u];
        if (!p.kv_f16) {
          kv = Bf16x8ToHalf(kv);
          vv = Bf16x8ToHalf(vv);
        }
        *reinterpret_cast<uint4*>(&ks[key * LDS + piece * 8]) = kv;
        *reinterpret_cast<uint4*>(&vs[key * LDS + piece * 8]) = vv;
      }
      if (t < t_last) load_tile(t + 1, 2);
      __syncthreads();

      AttnTileStep<HD, false>(ks, vs, qa, t, valid, lo, pos, p.scale_log2, mS, lS, oS);
    }
    if constexpr (kParallel) {
      // One split per CTA: store its state for the combine kernel.
      StoreSplitState<HD>(p, p.split_off[item] + (s - s_first), head, valid, mS, lS, oS);
    } else {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float ca, cb, mn;
        MergeScale(mM[h], mS[h], ca, cb, mn);
        lM[h] = __fadd_rn(__fmul_rn(lM[h], ca), __fmul_rn(lS[h], cb));
#pragma unroll
        for (int d = 0; d < DT; ++d) {
          oM[d][2 * h] = __fadd_rn(__fmul_rn(oM[d][2 * h], ca), __fmul_rn(oS[d][2 * h], cb));
          oM[d][2 * h + 1] = __fadd_rn(__fmul_rn(oM[d][2 * h + 1], ca), __fmul_rn(oS[d][2 * h + 1], cb));
        }
        mM[h] = mn;
      }
    }
  }
  if constexpr (!kParallel) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (!valid[h]) continue;
      const float L = __fadd_rn(lM[h], exp2f(__fsub_rn(sink2[h], mM[h])));
      __half* out =
          reinterpret_cast<__half*>(p.out) + (static_cast<int64_t>(first_row + tok[h]) * p.n_heads + head[h]) * HD;
#pragma unroll
      for (int d = 0; d < DT; ++d) {
        out[d * 8 + 2 * c] = __float2half_rn(__fdiv_rn(oM[d][2 * h], L));
        out[d * 8 + 2 * c + 1] = __float2half_rn(__fdiv_rn(oM[d][2 * h + 1], L));
      }
    }
  }
}

// Merges a decode row's split states left to right and normalizes.
template <int HD>
__global__ void AttentionCombineKernel(const AttnParams p) {
  LaunchDependents();
  GridDependencySync();
  const int item = blockIdx.x, head = blockIdx.y, d = threadIdx.x;
  if (item >= *p.n_items) return;
  const int seq = p.items[item];
  if (seq < 0) return;
  const int pos = p.seqs.start[seq];  // one token
  const int row = p.seqs.first_row[seq];
  const int lo = p.sliding ? max(0, pos - p.window + 1) : 0;
  const int s_first = lo / kAttnSplitKeys, s_last = pos / kAttnSplitKeys;
  const float sink2 = __fmul_rn(p.sinks[head], kLog2e);
  float m = sink2, l = 0.0f, o = 0.0f;
  // The merge is a serial chain (its order is part of the canonical
  // arithmetic); the loads are not: a batch of splits' states is requested
  // at once and then merged, so a 131,072-token row's 512 splits cost 32
  // memory round trips instead of 512.
  constexpr int kBatch = 16;
  const float* part = p.part + (static_cast<int64_t>(p.split_off[item]) * p.n_heads + head) * (HD + 2);
  const int64_t split_stride = static_cast<int64_t>(p.n_heads) * (HD + 2);
  for (int s0 = 0; s0 <= s_last - s_first; s0 += kBatch) {
    const int count = min(kBatch, s_last - s_first + 1 - s0);
    float mb[kBatch], lb[kBatch], ob[kBatch];
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      if (i < count) {
        const float* st = part + (s0 + i) * split_stride;
        mb[i] = st[HD];
        lb[i] = st[HD + 1];
        ob[i] = st[d];
      }
    }
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      if (i < count) MergeState(m, l, o, mb[i], lb[i], ob[i]);
    }
  }
  const float L = __fadd_rn(l, exp2f(__fsub_rn(sink2, m)));
  reinterpret_cast<__half*>(p.out)[(static_cast<int64_t>(row) * p.n_heads + head) * HD + d] =
      __float2half_rn(__fdiv_rn(o, L));
}

template <int HD>
void LaunchPrefillHd(const AttnParams& p, cudaStream_t stream) {
  const dim3 grid(p.max_items, p.n_kv_heads);
  LaunchKernel(AttentionKernel<HD, kPrefillWarps, false, false>, grid, kPrefillWarps * 32, 0, stream, p);
  CUDA_CHECK_LAUNCH();
}

template <int HD>
void LaunchDecodeHd(const AttnParams& p, cudaStream_t stream) {
  // Decode: one token per item, so only the first warp's rows are valid; the
  // other warps share the loading of each K/V tile (4x fewer round trips).
  const bool serial = p.split_mode == AttnSplitMode::kAuto ? p.max_splits <= kMaxSerialSplits
                                                           : p.split_mode == AttnSplitMode::kSerial;
  if (serial) {
    const dim3 grid(p.max_items, p.n_kv_heads);
    LaunchKernel(AttentionKernel<HD, kDecodeWarps, true, false>, grid, kDecodeWarps * 32, 0, stream, p);
    CUDA_CHECK_LAUNCH();
    return;
  }
  const dim3 grid(p.max_items, p.n_kv_heads, p.max_splits);
  LaunchKernel(AttentionKernel<HD, kDecodeWarps, true, true>, grid, kDecodeWarps * 32, 0, stream, p);
  CUDA_CHECK_LAUNCH();
  LaunchKernel(AttentionCombineKernel<HD>, dim3(p.max_items, p.n_heads), HD, 0, stream, p);
  CUDA_CHECK_LAUNCH();
}

void CheckShape(const AttnParams& p) {
  const int g = p.n_kv_heads > 0 ? p.n_heads / p.n_kv_heads : 0;
  if (g <= 0 || p.n_heads % p.n_kv_heads != 0 || g > 16) {
    std::fprintf(stderr, "attention: q heads per KV head (%d) must be 1 to 16\n", g);
    std::abort();
  }
}

}  // namespace

int AttentionPrefillTokensPerItem(int n_heads, int n_kv_heads) {
  return kPrefillWarps * (16 / (n_heads / n_kv_heads));  // whole tokens per warp
}

void LaunchAttentionPrefill(const AttnParams& p, cudaStream_t stream) {
  if (p.max_items <= 0) return;
  CheckShape(p);
  switch (p.head_dim) {
    case 16: return LaunchPrefillHd<16>(p, stream);
    case 32: return LaunchPrefillHd<32>(p, stream);
    case 64: return LaunchPrefillHd<64>(p, stream);
    case 96: return LaunchPrefillHd<96>(p, stream);
  }
  std::fprintf(stderr, "attention: head_dim %d not supported (16, 32, 64, 96)\n", p.head_dim);
  std::abort();
}

void LaunchAttentionDecode(const AttnParams& p, cudaStream_t stream) {
  if (p.max_items <= 0) return;
  CheckShape(p);
  switch (p.head_dim) {
    case 16: return LaunchDecodeHd<16>(p, stream);
    case 32: return LaunchDecodeHd<32>(p, stream);
    case 64: return LaunchDecodeHd<64>(p, stream);
    case 96: return LaunchDecodeHd<96>(p, stream);
  }
  std::fprintf(stderr, "attention: head_dim %d not supported (16, 32, 64, 96)\n", p.head_dim);
  std::abort();
}

}  // namespace ossgate::kernels
