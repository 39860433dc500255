#include "tests/gpu/reference_forward.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/model/cpu_ops.h"

namespace ossgate::testing {

namespace cpu = model::cpu;

ReferenceResult ReferenceForward(const model::ModelConfig& c, const model::Weights& weights,
                                 const std::vector<int32_t>& tokens, model::ThreadPool& pool,
                                 const std::vector<int32_t>* forced_ids) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), hd = c.head_dim, E = c.n_experts,
                K = c.n_experts_used;
  const int group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const model::RopeTables rope = model::ComputeRope(c);
  ReferenceResult res;
  res.ids.resize(static_cast<size_t>(c.n_layers) * T * K);
  res.router_logits.resize(static_cast<size_t>(c.n_layers) * T * E);

  std::vector<float> x(T * D), h(T * D), q(T * Q), k(T * KV), v(T * KV), attn(T * Q), proj(T * D);
  std::vector<float> moe(T * D);
  auto grain = [&](int64_t n) { return std::max<int64_t>(1, n / (4 * pool.size())); };

  pool.ParallelFor(T, grain(T), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      gguf::DequantizeRow(weights.token_embd.type, weights.token_embd.Row(0, tokens[t]), &x[t * D], D);
    }
  });
  for (int l = 0; l < c.n_layers; ++l) {
    const model::LayerWeights& L = weights.layers[l];
    const bool sliding = c.IsSlidingLayer(l);
    pool.ParallelFor(T, grain(T), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) cpu::RmsNorm(&x[t * D], L.attn_norm.data(), c.rms_eps, D, &h[t * D]);
    });
    cpu::MatMul(L.wq, 0, h.data(), T, L.bq.data(), q.data(), Q, pool);
    cpu::MatMul(L.wk, 0, h.data(), T, L.bk.data(), k.data(), KV, pool);
    cpu::MatMul(L.wv, 0, h.data(), T, L.bv.data(), v.data(), KV, pool);
    pool.ParallelFor(T, grain(T), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        cpu::ApplyRope(&q[t * Q], c.n_heads, c.head_dim, t, rope);
        cpu::ApplyRope(&k[t * KV], c.n_kv_heads, c.head_dim, t, rope);
      }
    });
    pool.ParallelFor(T * c.n_heads, grain(T * c.n_heads), [&](int64_t b, int64_t e) {
      std::vector<const float*> keys, values;
      std::vector<float> scratch;
      for (int64_t task = b; task < e; ++task) {
        const int64_t t = task / c.n_heads;
        const int head = static_cast<int>(task % c.n_heads);
        const int g = head / group;
        const int64_t lo = sliding ? std::max<int64_t>(0, t - c.sliding_window + 1) : 0;
        keys.clear();
        values.clear();
        for (int64_t j = lo; j <= t; ++j) {
          keys.push_back(&k[j * KV + g * hd]);
          values.push_back(&v[j * KV + g * hd]);
        }
        scratch.resize(keys.size());
        cpu::AttentionWithSink(&q[t * Q + head * hd], keys.data(), values.data(), static_cast<int64_t>(keys.size()),
                               c.head_dim, scale, L.sinks[head], scratch.data(), &attn[t * Q + head * hd]);
      }
    });
    cpu::MatMul(L.wo, 0, attn.data(), T, L.bo.data(), proj.data(), D, pool);
    for (int64_t i = 0; i < T * D; ++i) x[i] += proj[i];

    pool.ParallelFor(T, grain(T), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) cpu::RmsNorm(&x[t * D], L.post_attn_norm.data(), c.rms_eps, D, &h[t * D]);
    });
    float* router = &res.router_logits[static_cast<size_t>(l) * T * E];
    cpu::MatMul(L.router, 0, h.data(), T, L.router_b.data(), router, E, pool);
    std::vector<std::vector<std::pair<int64_t, float>>> by_expert(E);
    for (int64_t t = 0; t < T; ++t) {
      int32_t* ids = &res.ids[(static_cast<size_t>(l) * T + t) * K];
      std::vector<float> w(K);
      if (forced_ids == nullptr) {
        cpu::RouterTopK(&router[t * E], static_cast<int>(E), static_cast<int>(K), ids, w.data());
      } else {
        // cpu::RouterTopK's softmax over the forced experts.
        const float* lg = &router[t * E];
        float m = -std::numeric_limits<float>::infinity();
        for (int i = 0; i < K; ++i) {
          ids[i] = (*forced_ids)[(static_cast<size_t>(l) * T + t) * K + i];
          m = std::max(m, lg[ids[i]]);
        }
        double sum = 0.0;
        for (int i = 0; i < K; ++i) {
          w[i] = std::exp(lg[ids[i]] - m);
          sum += w[i];
        }
        for (int i = 0; i < K; ++i) w[i] = static_cast<float>(w[i] / sum);
      }
      for (int i = 0; i < K; ++i) by_expert[ids[i]].emplace_back(t, w[i]);
    }
    std::fill(moe.begin(), moe.end(), 0.0f);
    std::vector<float> xe, gate, up, act, ye;
    for (int ex = 0; ex < E; ++ex) {
      const auto& members = by_expert[ex];
      if (members.empty()) continue;
      const int64_t n = static_cast<int64_t>(members.size());
      const int64_t F = c.d_ff;
      xe.resize(n * D);
      gate.resize(n * F);
      up.resize(n * F);
      act.resize(n * F);
      ye.resize(n * D);
      for (int64_t i = 0; i < n; ++i) std::copy_n(&h[members[i].first * D], D, &xe[i * D]);
      cpu::MatMul(L.gate_exps, ex, xe.data(), n, &L.gate_b[ex * F], gate.data(), F, pool);
      cpu::MatMul(L.up_exps, ex, xe.data(), n, &L.up_b[ex * F], up.data(), F, pool);
      for (int64_t i = 0; i < n; ++i) {
        cpu::ClampedSwiGlu(&gate[i * F], &up[i * F], F, c.swiglu_alpha, c.swiglu_limit, &act[i * F]);
      }
      cpu::MatMul(L.down_exps, ex, act.data(), n, &L.down_b[ex * D], ye.data(), D, pool);
      for (int64_t i = 0; i < n; ++i) {
        const float wt = members[i].second;
        float* dst = &moe[members[i].first * D];
        for (int64_t d = 0; d < D; ++d) dst[d] += wt * ye[i * D + d];
      }
    }
    for (int64_t i = 0; i < T * D; ++i) x[i] += moe[i];
  }
  std::vector<float> final_h(T * D);
  for (int64_t t = 0; t < T; ++t) cpu::RmsNorm(&x[t * D], weights.output_norm.data(), c.rms_eps, D, &final_h[t * D]);
  res.logits.resize(static_cast<size_t>(T) * c.vocab_size);
  cpu::MatMul(weights.output, 0, final_h.data(), T, nullptr, res.logits.data(), c.vocab_size, pool);
  return res;
}

float RouterMargin(const float* logits, int n_experts, int k) {
  std::vector<float> v(logits, logits + n_experts);
  std::sort(v.begin(), v.end(), [](float a, float b) { return a > b; });
  return k < n_experts ? v[k - 1] - v[k] : INFINITY;
}

}  // namespace ossgate::testing
