// The operations of the forward passes on the CPU, in float32 (gpt-oss: spec
// §5; qwen2 and phi3: plain attention and the SiLU-gated FFN). Each is a
// plain function over row-major float arrays so tests can compare it with a
// float64 implementation.
#pragma once

#include <cstdint>
#include <span>

#include "inference_worker/model/model_config.h"
#include "inference_worker/model/thread_pool.h"
#include "inference_worker/model/weights.h"

namespace ossgate::model::cpu {

// Dot product of n floats, 16 independent partial sums (vectorisable,
// deterministic order).
float Dot(const float* a, const float* b, int64_t n);

// out = x * rsqrt(mean(x^2) + eps) * weight, for one row of n.
void RmsNorm(const float* x, const float* weight, float eps, int64_t n, float* out);

// y[t][r] = sum_c W[mat][r][c] * x[t][c] (+ bias[r]) for t < n_tokens, every
// output row r of the matrix. x is n_tokens x w.cols, y is n_tokens x y_stride
// (y_stride >= w.rows). Rows are dequantized on the fly, one at a time.
void MatMul(const Matrix& w, int64_t mat, const float* x, int64_t n_tokens, const float* bias, float* y,
            int64_t y_stride, ThreadPool& pool);

// Rotates the first and second half of each head (NeoX style) by pos *
// inv_freq, scaled by the YaRN attention factor. v holds n_heads heads.
void ApplyRope(float* v, int n_heads, int head_dim, int64_t pos, const RopeTables& rope);

// Attention of one query head over `n_keys` keys with a sink logit:
// out = sum_j softmax([s_j..., sink])_j * v_j, s_j = scale * q . k_j.
// keys[j] / values[j] point to head_dim floats. scratch holds n_keys floats.
void AttentionWithSink(const float* q, const float* const* keys, const float* const* values, int64_t n_keys,
                       int head_dim, float scale, float sink, float* scratch, float* out);
// The same without a sink (qwen2, phi3): out = sum_j softmax(s)_j * v_j.
// n_keys >= 1 (a query always sees itself).
void Attention(const float* q, const float* const* keys, const float* const* values, int64_t n_keys, int head_dim,
               float scale, float* scratch, float* out);

// The router: top-k of `logits` (ties to the lower index) and the softmax of
// the chosen logits. Writes k ids and weights.
void RouterTopK(const float* logits, int n_experts, int k, int32_t* ids, float* weights);
// The routing weights of chosen experts `ids` (k of them): the softmax of
// their logits (float exp of the difference to the largest, double sum), as
// RouterTopK computes them for its own choice.
void RouterSoftmax(const float* logits, int k, const int32_t* ids, float* weights);

// a = min(g, limit) * sigmoid(alpha * min(g, limit)) * (clamp(u, -limit, limit) + 1).
void ClampedSwiGlu(const float* gate, const float* up, int64_t n, float alpha, float limit, float* out);

// a = silu(g) * u = g * sigmoid(g) * u: the dense families' FFN activation
// (HF's act_fn(gate) * up with hidden_act "silu").
void SiluGlu(const float* gate, const float* up, int64_t n, float* out);

}  // namespace ossgate::model::cpu
