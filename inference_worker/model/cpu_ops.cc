#include "inference_worker/model/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "inference_worker/gguf/ggml_types.h"

namespace ossgate::model::cpu {

float Dot(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  // Pairwise reduction of the lanes.
  for (int w = kLanes / 2; w > 0; w /= 2) {
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  }
  return acc[0] + tail;
}

void RmsNorm(const float* x, const float* weight, float eps, int64_t n, float* out) {
  double ss = 0.0;  // float64 accumulation: the mean of squares is the precision-critical part
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void MatMul(const Matrix& w, int64_t mat, const float* x, int64_t n_tokens, const float* bias, float* y,
            int64_t y_stride, ThreadPool& pool) {
  const int64_t cols = w.cols;
  const int64_t grain = pool.GrainFor(w.rows, cols * n_tokens);
  pool.ParallelFor(w.rows, grain, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> row;
    row.resize(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      const float* wr;
      if (w.type == gguf::GgmlType::kF32) {
        wr = reinterpret_cast<const float*>(w.Row(mat, r));
      } else {
        gguf::DequantizeRow(w.type, w.Row(mat, r), row.data(), cols);
        wr = row.data();
      }
      const float b = bias ? bias[r] : 0.0f;
      for (int64_t t = 0; t < n_tokens; ++t) y[t * y_stride + r] = Dot(wr, x + t * cols, cols) + b;
    }
  });
}

void ApplyRope(float* v, int n_heads, int head_dim, int64_t pos, const RopeTables& rope) {
  const int half = head_dim / 2;
  thread_local std::vector<float> cos_t, sin_t;
  cos_t.resize(half);
  sin_t.resize(half);
  for (int i = 0; i < half; ++i) {
    const double angle = static_cast<double>(pos) * rope.inv_freq[i];
    cos_t[i] = static_cast<float>(std::cos(angle) * rope.attention_factor);
    sin_t[i] = static_cast<float>(std::sin(angle) * rope.attention_factor);
  }
  for (int h = 0; h < n_heads; ++h) {
    float* x = v + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = x[i], b = x[i + half];
      x[i] = a * cos_t[i] - b * sin_t[i];
      x[i + half] = b * cos_t[i] + a * sin_t[i];
    }
  }
}

namespace {

// Softmax attention of one query over n_keys keys, with an extra sink
// column (dropped from the output) when `sink` is not null.
void SoftmaxAttention(const float* q, const float* const* keys, const float* const* values, int64_t n_keys,
                      int head_dim, float scale, const float* sink, float* scratch, float* out) {
  float max_logit = sink ? *sink : -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n_keys; ++j) {
    scratch[j] = scale * Dot(q, keys[j], head_dim);
    max_logit = std::max(max_logit, scratch[j]);
  }
  double denom = sink ? std::exp(static_cast<double>(*sink) - max_logit) : 0.0;
  for (int64_t j = 0; j < n_keys; ++j) {
    scratch[j] = std::exp(scratch[j] - max_logit);
    denom += scratch[j];
  }
  const float inv = static_cast<float>(1.0 / denom);
  std::fill(out, out + head_dim, 0.0f);
  for (int64_t j = 0; j < n_keys; ++j) {
    const float a = scratch[j] * inv;
    const float* vj = values[j];
    for (int d = 0; d < head_dim; ++d) out[d] += a * vj[d];
  }
}

}  // namespace

void AttentionWithSink(const float* q, const float* const* keys, const float* const* values, int64_t n_keys,
                       int head_dim, float scale, float sink, float* scratch, float* out) {
  SoftmaxAttention(q, keys, values, n_keys, head_dim, scale, &sink, scratch, out);
}

void Attention(const float* q, const float* const* keys, const float* const* values, int64_t n_keys, int head_dim,
               float scale, float* scratch, float* out) {
  SoftmaxAttention(q, keys, values, n_keys, head_dim, scale, nullptr, scratch, out);
}

void RouterTopK(const float* logits, int n_experts, int k, int32_t* ids, float* weights) {
  // Selection by repeated max keeps ties on the lowest index, like torch.topk
  // on CPU for distinct values; k is small (4).
  std::vector<bool> taken(n_experts, false);
  for (int i = 0; i < k; ++i) {
    int best = -1;
    for (int e = 0; e < n_experts; ++e) {
      if (!taken[e] && (best < 0 || logits[e] > logits[best])) best = e;
    }
    taken[best] = true;
    ids[i] = best;
  }
  RouterSoftmax(logits, k, ids, weights);
}

void RouterSoftmax(const float* logits, int k, const int32_t* ids, float* weights) {
  float m = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < k; ++i) m = std::max(m, logits[ids[i]]);
  double sum = 0.0;
  for (int i = 0; i < k; ++i) {
    weights[i] = std::exp(logits[ids[i]] - m);
    sum += weights[i];
  }
  for (int i = 0; i < k; ++i) weights[i] = static_cast<float>(weights[i] / sum);
}

void ClampedSwiGlu(const float* gate, const float* up, int64_t n, float alpha, float limit, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = std::min(gate[i], limit);
    const float u = std::clamp(up[i], -limit, limit);
    out[i] = g / (1.0f + std::exp(-alpha * g)) * (u + 1.0f);
  }
}

void SiluGlu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace ossgate::model::cpu
