// A deliberately naive float64 forward pass of the dense families, written
// from HF transformers' modeling_qwen2.py (Qwen2ForCausalLM) and
// modeling_phi3.py (Phi3ForCausalLM) independently of the engine's CPU
// backend: no KV cache, no threads, whole sequence at once, every weight
// dequantized to double, tensors sliced here by their HF meaning. Used only
// by tests, on tiny models.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/model/reference_model.h"

namespace ossgate::testing {

namespace {

using Mat = std::vector<std::vector<double>>;  // nn.Linear weight: [out][in]
using Vec = std::vector<double>;

Vec Tensor1d(const gguf::GgufFile& f, const std::string& name) {
  const gguf::TensorInfo* t = f.FindTensor(name);
  std::vector<float> tmp(t->elements());
  gguf::DequantizeRow(t->type, t->data, tmp.data(), t->elements());
  return {tmp.begin(), tmp.end()};
}

Mat Tensor2d(const gguf::GgufFile& f, const std::string& name) {
  const gguf::TensorInfo* t = f.FindTensor(name);
  const int64_t cols = t->ne[0], rows = t->ne[1];
  const uint64_t row_bytes = gguf::RowBytes(t->type, cols);
  Mat m(rows, Vec(cols));
  std::vector<float> tmp(cols);
  for (int64_t r = 0; r < rows; ++r) {
    gguf::DequantizeRow(t->type, t->data + r * row_bytes, tmp.data(), cols);
    std::copy(tmp.begin(), tmp.end(), m[r].begin());
  }
  return m;
}

// Output features [first, first + n) of a Linear: what HF's slicing of
// qkv_proj's and gate_up_proj's outputs keeps.
Mat Slice(const Mat& w, size_t first, size_t n) { return Mat(w.begin() + first, w.begin() + first + n); }

Vec Linear(const Mat& w, const Vec& x, const Vec* bias = nullptr) {
  Vec y(w.size());
  for (size_t r = 0; r < w.size(); ++r) {
    double s = 0;
    for (size_t c = 0; c < x.size(); ++c) s += w[r][c] * x[c];
    y[r] = s + (bias ? (*bias)[r] : 0.0);
  }
  return y;
}

// Qwen2RMSNorm / Phi3RMSNorm: weight * (x * rsqrt(mean(x^2) + eps)).
Vec RmsNorm(const Vec& x, const Vec& weight, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= static_cast<double>(x.size());
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = weight[i] * (x[i] / std::sqrt(ms + eps));
  return y;
}

}  // namespace

std::vector<std::vector<double>> DenseReferenceLogits(const gguf::GgufFile& f, const model::ModelConfig& c,
                                                      const std::vector<int32_t>& tokens) {
  const bool phi3 = c.family == model::Family::kPhi3;
  const int n = static_cast<int>(tokens.size());
  const int hd = c.head_dim, half = hd / 2, n_rep = c.n_heads / c.n_kv_heads;
  const int Q = c.n_heads * hd, KV = c.n_kv_heads * hd, F = c.d_ff;
  // Phi3Model masks with config.sliding_window in every layer (the
  // converter writes 0 for "none"); Qwen2.5 has use_sliding_window false.
  int window = 0;
  if (phi3) {
    auto w = f.GetUint("phi3.attention.sliding_window");
    if (w.ok()) window = static_cast<int>(*w);
  }

  // compute_default_rope_parameters: inv_freq = 1 / base^(arange(0, dim, 2) / dim).
  Vec inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = 1.0 / std::pow(static_cast<double>(c.rope_theta), 2.0 * i / hd);
  // apply_rotary_pos_emb: x * cos + rotate_half(x) * sin, cos/sin = cat(freqs, freqs).
  auto rope = [&](Vec& v, int heads, int pos) {
    for (int h = 0; h < heads; ++h) {
      Vec x(v.begin() + h * hd, v.begin() + (h + 1) * hd);
      for (int i = 0; i < hd; ++i) {
        const double angle = pos * inv_freq[i % half];
        const double rotated = i < half ? -x[i + half] : x[i - half];
        v[h * hd + i] = x[i] * std::cos(angle) + rotated * std::sin(angle);
      }
    }
  };

  const Mat embed = Tensor2d(f, "token_embd.weight");
  // Tied embeddings (no output.weight): lm_head is embed_tokens.
  const Mat lm_head = f.FindTensor("output.weight") ? Tensor2d(f, "output.weight") : embed;
  std::vector<Vec> x(n);
  for (int t = 0; t < n; ++t) x[t] = embed[tokens[t]];

  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    const Vec input_norm = Tensor1d(f, p + "attn_norm.weight"), post_norm = Tensor1d(f, p + "ffn_norm.weight");
    Mat wq, wk, wv, gate, up;
    Vec bq, bk, bv;
    if (phi3) {
      const Mat qkv = Tensor2d(f, p + "attn_qkv.weight");
      wq = Slice(qkv, 0, Q), wk = Slice(qkv, Q, KV), wv = Slice(qkv, Q + KV, KV);
      const Mat gate_up = Tensor2d(f, p + "ffn_up.weight");  // gate, up = chunk(2, dim=-1)
      gate = Slice(gate_up, 0, F), up = Slice(gate_up, F, F);
    } else {
      wq = Tensor2d(f, p + "attn_q.weight"), wk = Tensor2d(f, p + "attn_k.weight");
      wv = Tensor2d(f, p + "attn_v.weight");
      bq = Tensor1d(f, p + "attn_q.bias"), bk = Tensor1d(f, p + "attn_k.bias"), bv = Tensor1d(f, p + "attn_v.bias");
      gate = Tensor2d(f, p + "ffn_gate.weight"), up = Tensor2d(f, p + "ffn_up.weight");
    }
    const Mat wo = Tensor2d(f, p + "attn_output.weight"), down = Tensor2d(f, p + "ffn_down.weight");

    std::vector<Vec> q(n), k(n), v(n);
    for (int t = 0; t < n; ++t) {
      const Vec h = RmsNorm(x[t], input_norm, c.rms_eps);
      q[t] = Linear(wq, h, phi3 ? nullptr : &bq);
      k[t] = Linear(wk, h, phi3 ? nullptr : &bk);
      v[t] = Linear(wv, h, phi3 ? nullptr : &bv);
      rope(q[t], c.n_heads, t);
      rope(k[t], c.n_kv_heads, t);
    }
    for (int t = 0; t < n; ++t) {
      Vec o(Q, 0.0);
      for (int h = 0; h < c.n_heads; ++h) {
        const int g = h / n_rep;  // repeat_kv
        // Causal mask, and the sliding-window overlay kv_idx > q_idx - window.
        std::vector<double> s;
        std::vector<int> js;
        for (int j = 0; j <= t; ++j) {
          if (window > 0 && !(j > t - window)) continue;
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[t][h * hd + i] * k[j][g * hd + i];
          s.push_back(d * std::pow(static_cast<double>(hd), -0.5));
          js.push_back(j);
        }
        double m = -std::numeric_limits<double>::infinity(), z = 0;
        for (double e : s) m = std::max(m, e);
        for (double e : s) z += std::exp(e - m);
        for (size_t a = 0; a < js.size(); ++a) {
          const double w = std::exp(s[a] - m) / z;
          for (int i = 0; i < hd; ++i) o[h * hd + i] += w * v[js[a]][g * hd + i];
        }
      }
      const Vec attn_out = Linear(wo, o);
      for (int d = 0; d < c.d_model; ++d) x[t][d] += attn_out[d];

      const Vec h2 = RmsNorm(x[t], post_norm, c.rms_eps);
      const Vec gt = Linear(gate, h2), ut = Linear(up, h2);
      Vec a(F);
      for (int i = 0; i < F; ++i) a[i] = gt[i] / (1.0 + std::exp(-gt[i])) * ut[i];  // silu(gate) * up
      const Vec mlp = Linear(down, a);
      for (int d = 0; d < c.d_model; ++d) x[t][d] += mlp[d];
    }
  }
  const Vec final_norm = Tensor1d(f, "output_norm.weight");
  std::vector<Vec> logits(n);
  for (int t = 0; t < n; ++t) logits[t] = Linear(lm_head, RmsNorm(x[t], final_norm, c.rms_eps));
  return logits;
}

}  // namespace ossgate::testing
