// A deliberately naive float64 implementation of the gpt-oss forward pass,
// written from the spec (§5) independently of the engine's CPU backend: no
// KV cache, no threads, whole sequence at once, all weights dequantized to
// double. Used only by tests, on tiny models.
#include "tests/model/reference_model.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "absl/strings/str_cat.h"

namespace ossgate::testing {

namespace {

using Mat = std::vector<std::vector<double>>;  // [out][in]

std::vector<double> Vec(const gguf::GgufFile& f, const std::string& name) {
  const gguf::TensorInfo* t = f.FindTensor(name);
  std::vector<float> tmp(t->elements());
  gguf::DequantizeRow(t->type, t->data, tmp.data(), t->elements());
  return {tmp.begin(), tmp.end()};
}

// Matrix `mat` of a (possibly 3-D) tensor as [ne1][ne0].
Mat Matrix(const gguf::GgufFile& f, const std::string& name, int64_t mat = 0) {
  const gguf::TensorInfo* t = f.FindTensor(name);
  const int64_t cols = t->ne[0], rows = t->ne[1];
  const uint64_t row_bytes = gguf::RowBytes(t->type, cols);
  Mat m(rows, std::vector<double>(cols));
  std::vector<float> tmp(cols);
  for (int64_t r = 0; r < rows; ++r) {
    gguf::DequantizeRow(t->type, t->data + (mat * rows + r) * row_bytes, tmp.data(), cols);
    std::copy(tmp.begin(), tmp.end(), m[r].begin());
  }
  return m;
}

std::vector<double> Apply(const Mat& w, const std::vector<double>& x, const std::vector<double>* bias = nullptr,
                          int64_t bias_offset = 0) {
  std::vector<double> y(w.size());
  for (size_t r = 0; r < w.size(); ++r) {
    double s = 0;
    for (size_t c = 0; c < x.size(); ++c) s += w[r][c] * x[c];
    y[r] = s + (bias ? (*bias)[bias_offset + r] : 0.0);
  }
  return y;
}

std::vector<double> Norm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= static_cast<double>(x.size());
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * w[i];
  return y;
}

}  // namespace

std::vector<std::vector<double>> ReferenceLogits(const gguf::GgufFile& f, const model::ModelConfig& c,
                                                 const std::vector<int32_t>& tokens) {
  const int n = static_cast<int>(tokens.size());
  const int hd = c.head_dim, half = hd / 2, group = c.n_heads / c.n_kv_heads;

  // YaRN, OpenAI formula (spec §5.4), float64, with HF transformers' clamp
  // of the correction range (low >= 0, high <= head_dim - 1), which only
  // matters for original contexts below 32·2π tokens.
  std::vector<double> inv_freq(half);
  double mscale = 1.0;
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(static_cast<double>(c.rope_theta), -2.0 * i / hd);
  if (c.rope_scaling_factor > 1.0f) {
    const double s = c.rope_scaling_factor, L = c.rope_original_context, b = c.rope_theta;
    const double low = std::max(0.0, half * std::log(L / (32.0 * 2 * std::numbers::pi)) / std::log(b));
    const double high = std::min(hd - 1.0, half * std::log(L / (1.0 * 2 * std::numbers::pi)) / std::log(b));
    for (int i = 0; i < half; ++i) {
      const double ramp = std::min(1.0, std::max(0.0, (i - low) / (high - low)));
      inv_freq[i] = inv_freq[i] / s * ramp + inv_freq[i] * (1 - ramp);
    }
    mscale = 0.1 * std::log(s) + 1.0;
  }
  auto rope = [&](std::vector<double>& v, int heads, int pos) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < half; ++i) {
        const double cs = std::cos(pos * inv_freq[i]) * mscale, sn = std::sin(pos * inv_freq[i]) * mscale;
        double& a = v[h * hd + i];
        double& bb = v[h * hd + i + half];
        const double a0 = a, b0 = bb;
        a = a0 * cs - b0 * sn;
        bb = b0 * cs + a0 * sn;
      }
    }
  };

  const Mat embd = Matrix(f, "token_embd.weight");
  std::vector<std::vector<double>> x(n);
  for (int t = 0; t < n; ++t) x[t] = embd[tokens[t]];

  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    const auto attn_norm = Vec(f, p + "attn_norm.weight");
    const Mat wq = Matrix(f, p + "attn_q.weight"), wk = Matrix(f, p + "attn_k.weight"),
              wv = Matrix(f, p + "attn_v.weight"), wo = Matrix(f, p + "attn_output.weight");
    const auto bq = Vec(f, p + "attn_q.bias"), bk = Vec(f, p + "attn_k.bias"), bv = Vec(f, p + "attn_v.bias"),
               bo = Vec(f, p + "attn_output.bias"), sinks = Vec(f, p + "attn_sinks.weight");
    std::vector<std::vector<double>> q(n), k(n), v(n);
    for (int t = 0; t < n; ++t) {
      const auto h = Norm(x[t], attn_norm, c.rms_eps);
      q[t] = Apply(wq, h, &bq);
      k[t] = Apply(wk, h, &bk);
      v[t] = Apply(wv, h, &bv);
      rope(q[t], c.n_heads, t);
      rope(k[t], c.n_kv_heads, t);
    }
    const bool sliding = c.sliding_window > 0 && l % 2 == 0;
    for (int t = 0; t < n; ++t) {
      std::vector<double> o(c.q_dim(), 0.0);
      for (int h = 0; h < c.n_heads; ++h) {
        const int g = h / group;
        std::vector<double> s;
        std::vector<int> js;
        for (int j = 0; j <= t; ++j) {
          if (sliding && t - j >= c.sliding_window) continue;
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[t][h * hd + i] * k[j][g * hd + i];
          s.push_back(d / std::sqrt(static_cast<double>(hd)));
          js.push_back(j);
        }
        // Softmax over [s..., sink], sink column dropped.
        double m = sinks[h];
        for (double z : s) m = std::max(m, z);
        double denom = std::exp(sinks[h] - m);
        for (double z : s) denom += std::exp(z - m);
        for (size_t a = 0; a < js.size(); ++a) {
          const double w = std::exp(s[a] - m) / denom;
          for (int i = 0; i < hd; ++i) o[h * hd + i] += w * v[js[a]][g * hd + i];
        }
      }
      const auto proj = Apply(wo, o, &bo);
      for (int d = 0; d < c.d_model; ++d) x[t][d] += proj[d];
    }

    const auto post_norm = Vec(f, p + "post_attention_norm.weight");
    const Mat router = Matrix(f, p + "ffn_gate_inp.weight");
    const auto router_b = Vec(f, p + "ffn_gate_inp.bias");
    const auto gate_b = Vec(f, p + "ffn_gate_exps.bias"), up_b = Vec(f, p + "ffn_up_exps.bias"),
               down_b = Vec(f, p + "ffn_down_exps.bias");
    std::vector<Mat> gate(c.n_experts), up(c.n_experts), down(c.n_experts);
    for (int e = 0; e < c.n_experts; ++e) {
      gate[e] = Matrix(f, p + "ffn_gate_exps.weight", e);
      up[e] = Matrix(f, p + "ffn_up_exps.weight", e);
      down[e] = Matrix(f, p + "ffn_down_exps.weight", e);
    }
    for (int t = 0; t < n; ++t) {
      const auto h = Norm(x[t], post_norm, c.rms_eps);
      const auto r = Apply(router, h, &router_b);
      std::vector<int> idx(c.n_experts);
      for (int e = 0; e < c.n_experts; ++e) idx[e] = e;
      std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return r[a] > r[b]; });
      idx.resize(c.n_experts_used);
      double m = r[idx[0]], z = 0;
      for (int e : idx) z += std::exp(r[e] - m);
      std::vector<double> acc(c.d_model, 0.0);
      for (int e : idx) {
        const double w = std::exp(r[e] - m) / z;
        const auto g = Apply(gate[e], h, &gate_b, static_cast<int64_t>(e) * c.d_ff);
        const auto u = Apply(up[e], h, &up_b, static_cast<int64_t>(e) * c.d_ff);
        std::vector<double> a(c.d_ff);
        for (int i = 0; i < c.d_ff; ++i) {
          const double gc = std::min(g[i], 7.0), uc = std::min(std::max(u[i], -7.0), 7.0);
          a[i] = gc / (1.0 + std::exp(-1.702 * gc)) * (uc + 1.0);
        }
        const auto y = Apply(down[e], a, &down_b, static_cast<int64_t>(e) * c.d_model);
        for (int d = 0; d < c.d_model; ++d) acc[d] += w * y[d];
      }
      for (int d = 0; d < c.d_model; ++d) x[t][d] += acc[d];
    }
  }
  const auto out_norm = Vec(f, "output_norm.weight");
  const Mat out = Matrix(f, "output.weight");
  std::vector<std::vector<double>> logits(n);
  for (int t = 0; t < n; ++t) logits[t] = Apply(out, Norm(x[t], out_norm, c.rms_eps));
  return logits;
}

}  // namespace ossgate::testing
