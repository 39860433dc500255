// Per-token kernels: embedding lookup, residual add + RMSNorm (with the MoE
// combine fused in), q/k/v split + YaRN RoPE, and the KV-cache write. Each
// computes a token's row from that row alone, in the order of the CPU
// reference (spec §5), with explicitly rounded operations so the compiler
// cannot contract them differently in different places.
#include <cstdio>
#include <cstdlib>

#include <algorithm>

#include "kernels/common.cuh"
#include "kernels/ops.h"

namespace ossgate::kernels {

namespace {

// gguf::GgmlType ids (the kernel library does not depend on the GGUF code).
constexpr int kTypeF32 = 0, kTypeF16 = 1, kTypeQ5_0 = 6, kTypeQ5_1 = 7, kTypeQ8_0 = 8, kTypeQ4_K = 12,
              kTypeQ5_K = 13, kTypeQ6_K = 14, kTypeBf16 = 30, kTypeMxfp4 = 39;
__constant__ int8_t kMxfp4Doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

constexpr int kNormThreads = 1024;
constexpr int kNormPer = 4;  // d <= 4096
constexpr int kMaxMoeK = 16;

__device__ __forceinline__ float EmbedValue(const uint8_t* row, int type, int i) {
  switch (type) {
    case kTypeF32: return reinterpret_cast<const float*>(row)[i];
    case kTypeF16: return __half2float(reinterpret_cast<const __half*>(row)[i]);
    case kTypeBf16: return __uint_as_float(static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(row)[i]) << 16);
    case kTypeQ8_0: {
      const uint8_t* b = row + (i / 32) * 34;
      const __half d = *reinterpret_cast<const __half*>(b);  // 2-byte aligned: 34-byte blocks
      return __half2float(d) * static_cast<float>(static_cast<int8_t>(b[2 + i % 32]));
    }
    // The k-quant and 5-bit decoders of the repack (repack_tile.h): the same
    // float as the CPU's DequantizeRow, bit for bit.
    case kTypeQ5_0: return Q5_0Value(row + (i / 32) * kQ5_0BlockBytes, i % 32);
    case kTypeQ5_1: return Q5_1Value(row + (i / 32) * kQ5_1BlockBytes, i % 32);
    case kTypeQ4_K: return Q4KValue(row + (i / kKQuantBlockElems) * kQ4_KBlockBytes, i % kKQuantBlockElems);
    case kTypeQ5_K: return Q5KValue(row + (i / kKQuantBlockElems) * kQ5_KBlockBytes, i % kKQuantBlockElems);
    case kTypeQ6_K: return Q6KValue(row + (i / kKQuantBlockElems) * kQ6_KBlockBytes, i % kKQuantBlockElems);
    case kTypeMxfp4: {
      const uint8_t* b = row + (i / 32) * 17;
      const int j = i % 32;
      const int code = j < 16 ? (b[1 + j] & 0x0F) : (b[1 + j - 16] >> 4);
      return ldexpf(1.0f, static_cast<int>(b[0]) - 128) * kMxfp4Doubled[code];
    }
  }
  return 0.0f;
}

__global__ void EmbedKernel(const EmbedParams p) {
  LaunchDependents();
  GridDependencySync();
  const int t = blockIdx.x;
  const uint8_t* row = p.table + static_cast<int64_t>(p.tokens[t]) * p.row_bytes;
  for (int i = threadIdx.x; i < p.d; i += blockDim.x) {
    p.x[static_cast<int64_t>(t) * p.d + i] = EmbedValue(row, p.type, i);
  }
}

// One block per token, kNormPer elements per thread held in registers: all
// loads of the row (x, the residual terms, the norm weights) are requested
// before any is used, so the kernel costs a few memory round trips whatever
// the width. Indices past the row are clamped to a valid address and their
// values never used.
__global__ void __launch_bounds__(kNormThreads) AddNormKernel(const AddNormParams p) {
  // The norm weights are loaded before waiting for the previous kernel
  // (programmatic launch); the row and its residual terms after.
  LaunchDependents();
  __shared__ double partial[kNormThreads / 32];
  __shared__ float s_w[kMaxMoeK];
  __shared__ int32_t s_slot[kMaxMoeK];
  __shared__ int s_k;
  const int t = blockIdx.x;
  float* x = p.x + static_cast<int64_t>(t) * p.d;
  int idx[kNormPer];
  float v[kNormPer], nw[kNormPer], a[kNormPer];
#pragma unroll
  for (int u = 0; u < kNormPer; ++u) {
    idx[u] = min(static_cast<int>(threadIdx.x) + u * kNormThreads, p.d - 1);
    nw[u] = p.norm_w[idx[u]];
  }
  GridDependencySync();
  if (p.moe_y && threadIdx.x == 0) {
    // The experts of this token in increasing id (the CPU adds them in that order).
    int ids[kMaxMoeK];
    int k = 0;
    for (int i = 0; i < p.moe_k; ++i) {
      const int slot = p.moe_slot[t * p.moe_k + i];
      if (slot < 0) continue;  // padding row
      int j = k++;
      const int id = p.moe_ids[t * p.moe_k + i];
      while (j > 0 && ids[j - 1] > id) {
        ids[j] = ids[j - 1];
        s_w[j] = s_w[j - 1];
        s_slot[j] = s_slot[j - 1];
        --j;
      }
      ids[j] = id;
      s_w[j] = p.moe_w[t * p.moe_k + i];
      s_slot[j] = slot;
    }
    s_k = k;
  }
#pragma unroll
  for (int u = 0; u < kNormPer; ++u) {
    v[u] = x[idx[u]];
    a[u] = p.add ? p.add[static_cast<int64_t>(t) * p.d + idx[u]] : 0.0f;
  }
  if (p.add) {
#pragma unroll
    for (int u = 0; u < kNormPer; ++u) v[u] = __fadd_rn(v[u], a[u]);
  }
  if (p.moe_y) {
    __syncthreads();  // s_k, s_w, s_slot
    float m[kNormPer];
#pragma unroll
    for (int u = 0; u < kNormPer; ++u) m[u] = 0.0f;
    for (int j0 = 0; j0 < s_k; j0 += 4) {
      float y[4][kNormPer];
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        const float* row = p.moe_y + static_cast<int64_t>(s_slot[min(j0 + jj, s_k - 1)]) * p.d;
#pragma unroll
        for (int u = 0; u < kNormPer; ++u) y[jj][u] = row[idx[u]];
      }
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        if (j0 + jj < s_k) {
          const float w = s_w[j0 + jj];
#pragma unroll
          for (int u = 0; u < kNormPer; ++u) m[u] = __fadd_rn(m[u], __fmul_rn(w, y[jj][u]));
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kNormPer; ++u) v[u] = __fadd_rn(v[u], m[u]);
  }
  double ss = 0.0;
#pragma unroll
  for (int u = 0; u < kNormPer; ++u) {
    if (static_cast<int>(threadIdx.x) + u * kNormThreads < p.d) {
      x[idx[u]] = v[u];
      ss += static_cast<double>(v[u]) * v[u];
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xFFFFFFFFu, ss, o);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kNormThreads / 32; ++w) total += partial[w];
  const float scale = static_cast<float>(1.0 / sqrt(total / static_cast<double>(p.d) + static_cast<double>(p.eps)));
#pragma unroll
  for (int u = 0; u < kNormPer; ++u) {
    if (static_cast<int>(threadIdx.x) + u * kNormThreads < p.d) {
      const float h = __fmul_rn(__fmul_rn(v[u], scale), nw[u]);
      const int64_t o = static_cast<int64_t>(t) * p.d + idx[u];
      reinterpret_cast<__half*>(p.h16)[o] = __float2half_rn(h);
      if (p.h32) p.h32[o] = h;
    }
  }
}

// A K/V element: bf16 (the cache format) or fp16 (precision experiment).
__device__ __forceinline__ uint16_t ToKv(float v, int32_t f16) {
  if (f16) {
    const __half h = __float2half_rn(v);
    return *reinterpret_cast<const uint16_t*>(&h);
  }
  const __nv_bfloat16 b = __float2bfloat16_rn(v);
  return *reinterpret_cast<const uint16_t*>(&b);
}

// cos and sin of frequency i at `pos`, in float64 as the CPU tables, scaled
// by the YaRN attention factor, rounded to float.
__device__ __forceinline__ void RopeCosSin(const RopeParams& p, int pos, int i, float* c, float* s) {
  const double angle = static_cast<double>(pos) * p.inv_freq[i];
  *c = static_cast<float>(cos(angle) * p.attention_factor);
  *s = static_cast<float>(sin(angle) * p.attention_factor);
}

__global__ void RopeTableKernel(const RopeParams p, float* table, int positions) {
  const int half = p.head_dim / 2;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       idx < static_cast<int64_t>(positions) * half; idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int pos = static_cast<int>(idx / half), i = static_cast<int>(idx % half);
    float* row = table + static_cast<int64_t>(pos) * p.head_dim;
    RopeCosSin(p, pos, i, &row[i], &row[half + i]);
  }
}

__global__ void RopeKernel(const RopeParams p) {
  // The position (step metadata) and its rotation do not depend on the
  // previous kernel (programmatic launch); q/k/v do.
  LaunchDependents();
  extern __shared__ float cs[];  // cos[half], sin[half]
  const int t = blockIdx.x;
  const int half = p.head_dim / 2;
  const int pos = p.pos[t];
  if (p.table && pos >= 0 && pos < p.table_positions) {
    const float* row = p.table + static_cast<int64_t>(pos) * p.head_dim;
    for (int i = threadIdx.x; i < p.head_dim; i += blockDim.x) cs[i] = row[i];
  } else {
    for (int i = threadIdx.x; i < half; i += blockDim.x) RopeCosSin(p, pos, i, &cs[i], &cs[half + i]);
  }
  GridDependencySync();
  __syncthreads();
  const int q_dim = p.n_heads * p.head_dim, kv_dim = p.n_kv_heads * p.head_dim;
  const float* src = p.qkv + static_cast<int64_t>(t) * (q_dim + 2 * kv_dim);
  const int pairs = (p.n_heads + p.n_kv_heads) * half;
  for (int idx = threadIdx.x; idx < pairs; idx += blockDim.x) {
    const int head = idx / half, i = idx % half;
    const float* v = src + head * p.head_dim;  // q heads then k heads, contiguous
    const float a = v[i], b = v[i + half];
    const float c = cs[i], s = cs[half + i];
    const float ra = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    const float rb = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
    if (head < p.n_heads) {
      __half* q = reinterpret_cast<__half*>(p.q) + static_cast<int64_t>(t) * q_dim + head * p.head_dim;
      q[i] = __float2half_rn(ra);
      q[i + half] = __float2half_rn(rb);
    } else {
      const int64_t o = static_cast<int64_t>(t) * kv_dim + (head - p.n_heads) * p.head_dim;
      p.k_new[o + i] = ToKv(ra, p.kv_f16);
      p.k_new[o + i + half] = ToKv(rb, p.kv_f16);
    }
  }
  for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    p.v_new[static_cast<int64_t>(t) * kv_dim + i] = ToKv(src[q_dim + kv_dim + i], p.kv_f16);
  }
}

__global__ void KvWriteKernel(const KvWriteParams p) {
  // Where the row goes comes from the step metadata (read before waiting
  // for the previous kernel); the row itself after.
  LaunchDependents();
  const int t = blockIdx.x;
  const int s = p.tok_seq[t];
  if (s < 0) return GridDependencySync();
  const int pos = p.pos[t];
  const int last = p.seqs.start[s] + p.seqs.n[s] - 1;
  int32_t blk;
  if (p.sliding) {
    // A later token of this step that maps to the same ring slot wins.
    if (pos + p.ring_blocks * p.block_size <= last) return GridDependencySync();
    blk = p.seqs.tables[p.seqs.ring_off[s] + (pos / p.block_size) % p.ring_blocks];
  } else {
    blk = p.seqs.tables[p.seqs.full_off[s] + pos / p.block_size];
  }
  const int slot = pos % p.block_size;
  const int pieces = p.head_dim / 8;  // 16-byte pieces per head
  const int kv_dim = p.n_kv_heads * p.head_dim;
  GridDependencySync();  // k_new/v_new are the previous kernels'; attention has read the cache
  for (int idx = threadIdx.x; idx < p.n_kv_heads * pieces; idx += blockDim.x) {
    const int g = idx / pieces, piece = idx % pieces;
    const int64_t dst = ((static_cast<int64_t>(blk) * p.n_kv_heads + g) * p.block_size + slot) * p.head_dim + piece * 8;
    const int64_t src = static_cast<int64_t>(t) * kv_dim + g * p.head_dim + piece * 8;
    *reinterpret_cast<uint4*>(p.k_cache + dst) = *reinterpret_cast<const uint4*>(p.k_new + src);
    *reinterpret_cast<uint4*>(p.v_cache + dst) = *reinterpret_cast<const uint4*>(p.v_new + src);
  }
}

}  // namespace

void LaunchEmbed(const EmbedParams& p, cudaStream_t stream) {
  if (p.n_tokens <= 0) return;
  LaunchKernel(EmbedKernel, p.n_tokens, 256, 0, stream, p);
  CUDA_CHECK_LAUNCH();
}

void LaunchAddNorm(const AddNormParams& p, cudaStream_t stream) {
  if (p.n_tokens <= 0) return;
  if (p.moe_k > kMaxMoeK || p.d > kNormThreads * kNormPer) {
    std::fprintf(stderr, "LaunchAddNorm: at most %d experts per token and d <= %d\n", kMaxMoeK,
                 kNormThreads * kNormPer);
    std::abort();
  }
  LaunchKernel(AddNormKernel, p.n_tokens, kNormThreads, 0, stream, p);
  CUDA_CHECK_LAUNCH();
}

void LaunchRope(const RopeParams& p, cudaStream_t stream) {
  if (p.n_tokens <= 0) return;
  LaunchKernel(RopeKernel, p.n_tokens, 256, p.head_dim * sizeof(float), stream, p);
  CUDA_CHECK_LAUNCH();
}

void LaunchRopeTable(const RopeParams& p, float* table, int positions, cudaStream_t stream) {
  if (positions <= 0) return;
  RopeTableKernel<<<std::min(1024, (positions * (p.head_dim / 2) + 255) / 256), 256, 0, stream>>>(p, table, positions);
  CUDA_CHECK_LAUNCH();
}

void LaunchKvWrite(const KvWriteParams& p, cudaStream_t stream) {
  if (p.n_tokens <= 0) return;
  if (p.head_dim % 8 != 0) {
    std::fprintf(stderr, "LaunchKvWrite: head_dim must be a multiple of 8\n");
    std::abort();
  }
  LaunchKernel(KvWriteKernel, p.n_tokens, 64, 0, stream, p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace ossgate::kernels
