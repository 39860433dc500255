#include "inference_worker/model/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "inference_worker/model/cpu_ops.h"

namespace ossgate::model {

namespace {

// Tokens of one forward step, flattened over the batch.
struct FlatToken {
  int32_t id;
  int32_t pos;   // absolute position in its sequence
  int32_t step;  // index into the steps span
};

}  // namespace

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(const gguf::GgufFile& file,
                                                               const CpuBackendOptions& options) {
  auto config = ReadModelConfig(file);
  if (!config.ok()) return config.status();
  auto weights = BindWeights(file, *config);
  if (!weights.ok()) return weights.status();
  if (absl::Status s = CheckCpuBackendOptions(options); !s.ok()) return s;
  const int max_context = std::min(options.max_context, config->context_length);
  return std::unique_ptr<CpuBackend>(new CpuBackend(*config, ShardWeights{*std::move(weights), {}}, options,
                                                    max_context, nullptr, 0, nullptr));
}

absl::Status CheckCpuBackendOptions(const CpuBackendOptions& options) {
  if (options.kv.block_size <= 0 || options.kv.max_sequences <= 0 || options.max_context <= 0) {
    return absl::InvalidArgumentError("CPU backend: block_size, max_sequences and max_context must be positive");
  }
  return absl::OkStatus();
}

std::unique_ptr<KvBlockManager> MakeCpuKvManager(const CpuBackendOptions& options, int max_context, int window) {
  const KvCacheOptions& kv = options.kv;
  const int blocks =
      kv.num_full_blocks > 0 ? kv.num_full_blocks : kv.max_sequences * ((max_context + kv.block_size - 1) / kv.block_size);
  return std::make_unique<KvBlockManager>(KvCacheOptions{kv.block_size, blocks, kv.max_sequences}, window);
}

CpuBackend::CpuBackend(ModelConfig config, ShardWeights weights, const CpuBackendOptions& options, int max_context,
                       KvBlockManager* kv, int expert_begin, Communicator* comm)
    : config_(std::move(config)),
      weights_storage_(std::move(weights)),
      rope_(ComputeRope(config_)),
      max_context_(max_context),
      pool_(options.n_threads),
      own_kv_(kv ? nullptr : MakeCpuKvManager(options, max_context, config_.sliding_window)),
      kv_(kv ? kv : own_kv_.get()),
      expert_begin_(expert_begin),
      comm_(comm) {
  kind_index_.resize(config_.n_layers);
  for (int l = 0; l < config_.n_layers; ++l) {
    kind_index_[l] = config_.IsSlidingLayer(l) ? n_sliding_layers_++ : n_full_layers_++;
  }
  const size_t block_floats = static_cast<size_t>(kv_->block_size()) * config_.kv_dim();
  k_full_.assign(static_cast<size_t>(n_full_layers_) * kv_->num_full_blocks() * block_floats, 0.0f);
  v_full_.assign(k_full_.size(), 0.0f);
  k_ring_.assign(static_cast<size_t>(n_sliding_layers_) * kv_->num_ring_blocks_total() * block_floats, 0.0f);
  v_ring_.assign(k_ring_.size(), 0.0f);
}

std::string CpuBackend::Description() const { return absl::StrCat("cpu (", pool_.size(), " threads)"); }

float* CpuBackend::KvRow(bool value, int layer, KvSlot slot) {
  const size_t kv_dim = config_.kv_dim();
  const size_t block_floats = static_cast<size_t>(kv_->block_size()) * kv_dim;
  const int idx = kind_index_[layer];
  if (config_.IsSlidingLayer(layer)) {
    float* base = value ? v_ring_.data() : k_ring_.data();
    return base + (static_cast<size_t>(idx) * kv_->num_ring_blocks_total() + slot.block) * block_floats +
           static_cast<size_t>(slot.offset) * kv_dim;
  }
  float* base = value ? v_full_.data() : k_full_.data();
  return base + (static_cast<size_t>(idx) * kv_->num_full_blocks() + slot.block) * block_floats +
         static_cast<size_t>(slot.offset) * kv_dim;
}

// One step's flattened tokens and activation buffers, shared by the blocks.
struct CpuBackend::StepState {
  std::span<const SequenceStep> steps;
  std::vector<FlatToken> toks;
  std::vector<int64_t> step_first;      // index of each step's first token
  std::vector<int32_t> step_start_pos;  // each step's sequence length before the step
  int64_t max_pos = 0;                  // longest visible context in this step
  // (T, D) residual stream, normed input and block output; (T, Q) q and the
  // attention output; (T, KV) k and v.
  std::vector<float> x, h, proj, q, attn, k, v;
  // gpt-oss: router logits (T, E), chosen experts and weights (T, top-k),
  // the weighted expert sum (T, D).
  std::vector<float> router, moe, top_w;
  std::vector<int32_t> top_ids;
  // qwen2, phi3: (T, F) gate and up projections and silu(gate) * up.
  std::vector<float> gate, up, act;

  int64_t T() const { return static_cast<int64_t>(toks.size()); }
};

struct CpuBackend::AttentionWeights {
  const float* norm;                   // (D)
  const Matrix *wq, *wk, *wv, *wo;
  const float *bq, *bk, *bv, *bo;      // null: the family has no such bias
  const float* sinks;                  // (H) sink logits; null: plain softmax
};

namespace {

const float* OrNull(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

}  // namespace

absl::Status CpuBackend::Forward(std::span<const SequenceStep> steps, std::vector<float>* logits) {
  if (absl::Status st = ValidateAndReserve(steps, config_.vocab_size, max_context_, *kv_); !st.ok()) return st;
  Run(steps, logits);
  for (const SequenceStep& st : steps) kv_->Commit(st.seq, static_cast<int>(st.tokens.size()));
  return absl::OkStatus();
}

void CpuBackend::AllReduce(std::vector<float>& v, int64_t n) {
  if (comm_) comm_->AllReduceSum({v.data(), static_cast<size_t>(n)});
}

void CpuBackend::Run(std::span<const SequenceStep> steps, std::vector<float>* logits) {
  const ModelConfig& c = config_;

  // Flatten the batch.
  StepState s;
  s.steps = steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    s.step_first.push_back(static_cast<int64_t>(s.toks.size()));
    const int start = kv_->Length(steps[i].seq);
    s.step_start_pos.push_back(start);
    for (size_t j = 0; j < steps[i].tokens.size(); ++j) {
      s.toks.push_back({steps[i].tokens[j], static_cast<int32_t>(start + j), static_cast<int32_t>(i)});
    }
  }
  const int64_t T = s.T();
  for (const FlatToken& t : s.toks) s.max_pos = std::max<int64_t>(s.max_pos, t.pos + 1);
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim();
  for (std::vector<float>* b : {&s.x, &s.h, &s.proj}) b->resize(T * D);
  for (std::vector<float>* b : {&s.q, &s.attn}) b->resize(T * Q);
  for (std::vector<float>* b : {&s.k, &s.v}) b->resize(T * KV);

  pool_.ParallelFor(T, pool_.GrainFor(T, D), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      gguf::DequantizeRow(weights_.token_embd.type, weights_.token_embd.Row(0, s.toks[t].id), &s.x[t * D], D);
    }
  });

  for (int l = 0; l < c.n_layers; ++l) {
    switch (c.family) {
      case Family::kGptOss: {  // attention with biases and sinks, then the mixture of experts
        const LayerWeights& L = weights_.layers[l];
        const AttentionWeights attention{L.attn_norm.data(), &L.wq,         &L.wk,         &L.wv,         &L.wo,
                                         OrNull(L.bq),       OrNull(L.bk), OrNull(L.bv), OrNull(L.bo), L.sinks.data()};
        AttentionBlock(l, attention, s);
        MoeBlock(l, L, s);
        break;
      }
      case Family::kQwen2:
      case Family::kPhi3: {  // plain attention (qwen2: q/k/v biases), then the SiLU-gated FFN
        const DenseLayerWeights& L = weights_.dense_layers[l];
        const AttentionWeights attention{L.attn_norm.data(), &L.wq,         &L.wk,         &L.wv, &L.wo,
                                         OrNull(L.bq),       OrNull(L.bk), OrNull(L.bv), nullptr, nullptr};
        AttentionBlock(l, attention, s);
        DenseFfnBlock(L, s);
        break;
      }
    }
  }

  // Final norm and unembedding (output.weight, or token_embd when tied) of
  // the rows the caller wants.
  if (logits == nullptr) return;
  std::vector<int64_t> out_rows;
  for (size_t i = 0; i < steps.size(); ++i) {
    const int64_t n = static_cast<int64_t>(steps[i].tokens.size());
    if (steps[i].logits == Logits::kAll) {
      for (int64_t j = 0; j < n; ++j) out_rows.push_back(s.step_first[i] + j);
    } else if (steps[i].logits == Logits::kLast) {
      out_rows.push_back(s.step_first[i] + n - 1);
    }
  }
  const int64_t R = static_cast<int64_t>(out_rows.size());
  std::vector<float> final_h(R * D);
  for (int64_t r = 0; r < R; ++r) {
    cpu::RmsNorm(&s.x[out_rows[r] * D], weights_.output_norm.data(), c.rms_eps, D, &final_h[r * D]);
  }
  logits->resize(static_cast<size_t>(R) * c.vocab_size);
  cpu::MatMul(weights_.output, 0, final_h.data(), R, nullptr, logits->data(), c.vocab_size, pool_);
  SuppressUnsampled(c, logits->data(), R);
}

void CpuBackend::AttentionBlock(int l, const AttentionWeights& w, StepState& s) {
  const ModelConfig& c = config_;
  const int64_t T = s.T(), D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), hd = c.head_dim;
  const int group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool sliding = c.IsSlidingLayer(l);
  std::vector<float>&x = s.x, &h = s.h, &q = s.q, &k = s.k, &v = s.v, &attn = s.attn, &proj = s.proj;
  const std::vector<FlatToken>& toks = s.toks;

  pool_.ParallelFor(T, pool_.GrainFor(T, 2 * D), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) cpu::RmsNorm(&x[t * D], w.norm, c.rms_eps, D, &h[t * D]);
  });
  cpu::MatMul(*w.wq, 0, h.data(), T, w.bq, q.data(), Q, pool_);
  cpu::MatMul(*w.wk, 0, h.data(), T, w.bk, k.data(), KV, pool_);
  cpu::MatMul(*w.wv, 0, h.data(), T, w.bv, v.data(), KV, pool_);
  pool_.ParallelFor(T, pool_.GrainFor(T, 8 * (Q + KV)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      cpu::ApplyRope(&q[t * Q], c.n_heads, c.head_dim, toks[t].pos, rope_);
      cpu::ApplyRope(&k[t * KV], c.n_kv_heads, c.head_dim, toks[t].pos, rope_);
    }
  });
  // Work of one (token, head) task: 2 passes over its visible keys.
  const int64_t max_visible = sliding ? std::min<int64_t>(c.sliding_window, s.max_pos) : s.max_pos;
  pool_.ParallelFor(T * c.n_heads, pool_.GrainFor(T * c.n_heads, 2 * hd * max_visible), [&](int64_t b, int64_t e) {
    thread_local std::vector<const float*> keys, values;
    thread_local std::vector<float> scratch;
    for (int64_t task = b; task < e; ++task) {
      const int64_t t = task / c.n_heads;
      const int head = static_cast<int>(task % c.n_heads);
      const int g = head / group;
      const FlatToken& tok = toks[t];
      const SeqId seq = s.steps[tok.step].seq;
      const int start = s.step_start_pos[tok.step];
      const int lo = sliding ? std::max(0, tok.pos - c.sliding_window + 1) : 0;
      keys.clear();
      values.clear();
      for (int j = lo; j <= tok.pos; ++j) {
        if (j >= start) {  // written in this step: still in the activation buffers
          const int64_t row = s.step_first[tok.step] + (j - start);
          keys.push_back(&k[row * KV + g * hd]);
          values.push_back(&v[row * KV + g * hd]);
        } else {
          const KvSlot slot = sliding ? kv_->WindowSlot(seq, j) : kv_->FullSlot(seq, j);
          keys.push_back(KvRow(false, l, slot) + g * hd);
          values.push_back(KvRow(true, l, slot) + g * hd);
        }
      }
      scratch.resize(keys.size());
      const int64_t n_keys = static_cast<int64_t>(keys.size());
      float* out = &attn[t * Q + head * hd];
      if (w.sinks) {
        cpu::AttentionWithSink(&q[t * Q + head * hd], keys.data(), values.data(), n_keys, c.head_dim, scale,
                               w.sinks[head], scratch.data(), out);
      } else {
        cpu::Attention(&q[t * Q + head * hd], keys.data(), values.data(), n_keys, c.head_dim, scale, scratch.data(),
                       out);
      }
    }
  });
  // Cache this step's K/V. A sliding ring may be shorter than a long chunk:
  // later positions then overwrite earlier ones, leaving the last window.
  for (int64_t t = 0; t < T; ++t) {
    const SeqId seq = s.steps[toks[t].step].seq;
    const KvSlot slot = sliding ? kv_->WindowSlot(seq, toks[t].pos) : kv_->FullSlot(seq, toks[t].pos);
    std::copy_n(&k[t * KV], KV, KvRow(false, l, slot));
    std::copy_n(&v[t * KV], KV, KvRow(true, l, slot));
  }
  cpu::MatMul(*w.wo, 0, attn.data(), T, w.bo, proj.data(), D, pool_);
  AllReduce(proj, T * D);  // a rank's heads give a partial sum
  for (int64_t i = 0; i < T * D; ++i) x[i] += proj[i];
}

void CpuBackend::MoeBlock(int l, const LayerWeights& L, StepState& s) {
  const ModelConfig& c = config_;
  const int64_t T = s.T(), D = c.d_model;
  std::vector<float>&x = s.x, &h = s.h, &router = s.router, &moe = s.moe, &top_w = s.top_w;
  std::vector<int32_t>& top_ids = s.top_ids;
  router.resize(T * c.n_experts);
  moe.resize(T * D);
  top_ids.resize(T * c.n_experts_used);
  top_w.resize(T * c.n_experts_used);

  pool_.ParallelFor(T, pool_.GrainFor(T, 2 * D), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) cpu::RmsNorm(&x[t * D], L.post_attn_norm.data(), c.rms_eps, D, &h[t * D]);
  });
  cpu::MatMul(L.router, 0, h.data(), T, L.router_b.data(), router.data(), c.n_experts, pool_);
  std::vector<std::vector<std::pair<int64_t, float>>> by_expert(c.n_experts);  // (token, weight)
  for (int64_t t = 0; t < T; ++t) {
    int32_t* ids = &top_ids[t * c.n_experts_used];
    float* w = &top_w[t * c.n_experts_used];
    cpu::RouterTopK(&router[t * c.n_experts], c.n_experts, c.n_experts_used, ids, w);
    if (router_hook_) {
      router_hook_(l, s.steps[s.toks[t].step].seq, s.toks[t].pos,
                   {&router[t * c.n_experts], static_cast<size_t>(c.n_experts)},
                   {ids, static_cast<size_t>(c.n_experts_used)});
      for (int i = 0; i < c.n_experts_used; ++i) {
        if (ids[i] < 0 || ids[i] >= c.n_experts) {
          std::fprintf(stderr, "CpuBackend: the router hook chose expert %d of %d\n", ids[i], c.n_experts);
          std::abort();
        }
      }
      cpu::RouterSoftmax(&router[t * c.n_experts], c.n_experts_used, ids, w);
    }
    for (int i = 0; i < c.n_experts_used; ++i) by_expert[ids[i]].emplace_back(t, w[i]);
  }
  std::fill(moe.begin(), moe.end(), 0.0f);
  std::vector<float> xe, gate, up, act, ye;
  const int local_experts = static_cast<int>(L.gate_exps.n_mats);
  for (int ex = expert_begin_; ex < expert_begin_ + local_experts; ++ex) {  // all experts, or a rank's
    const auto& members = by_expert[ex];
    if (members.empty()) continue;
    const int m = ex - expert_begin_;  // index among the local matrices
    const int64_t n = static_cast<int64_t>(members.size());
    const int64_t F = c.d_ff;
    xe.resize(n * D);
    gate.resize(n * F);
    up.resize(n * F);
    act.resize(n * F);
    ye.resize(n * D);
    for (int64_t i = 0; i < n; ++i) std::copy_n(&h[members[i].first * D], D, &xe[i * D]);
    cpu::MatMul(L.gate_exps, m, xe.data(), n, &L.gate_b[m * F], gate.data(), F, pool_);
    cpu::MatMul(L.up_exps, m, xe.data(), n, &L.up_b[m * F], up.data(), F, pool_);
    for (int64_t i = 0; i < n; ++i) {
      cpu::ClampedSwiGlu(&gate[i * F], &up[i * F], F, c.swiglu_alpha, c.swiglu_limit, &act[i * F]);
    }
    cpu::MatMul(L.down_exps, m, act.data(), n, &L.down_b[m * D], ye.data(), D, pool_);
    for (int64_t i = 0; i < n; ++i) {
      const float w = members[i].second;
      float* dst = &moe[members[i].first * D];
      for (int64_t d = 0; d < D; ++d) dst[d] += w * ye[i * D + d];
    }
  }
  AllReduce(moe, T * D);  // a rank's experts (or slices of them) give a partial sum
  for (int64_t i = 0; i < T * D; ++i) x[i] += moe[i];
}

void CpuBackend::DenseFfnBlock(const DenseLayerWeights& L, StepState& s) {
  const ModelConfig& c = config_;
  const int64_t T = s.T(), D = c.d_model, F = c.d_ff;
  std::vector<float>&x = s.x, &h = s.h, &gate = s.gate, &up = s.up, &act = s.act, &proj = s.proj;
  gate.resize(T * F);
  up.resize(T * F);
  act.resize(T * F);
  pool_.ParallelFor(T, pool_.GrainFor(T, 2 * D), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) cpu::RmsNorm(&x[t * D], L.ffn_norm.data(), c.rms_eps, D, &h[t * D]);
  });
  cpu::MatMul(L.gate, 0, h.data(), T, nullptr, gate.data(), F, pool_);
  cpu::MatMul(L.up, 0, h.data(), T, nullptr, up.data(), F, pool_);
  pool_.ParallelFor(T, pool_.GrainFor(T, 4 * F), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) cpu::SiluGlu(&gate[t * F], &up[t * F], F, &act[t * F]);
  });
  cpu::MatMul(L.down, 0, act.data(), T, nullptr, proj.data(), D, pool_);
  AllReduce(proj, T * D);  // a rank's slice of the intermediate dimension gives a partial sum
  for (int64_t i = 0; i < T * D; ++i) x[i] += proj[i];
}

}  // namespace ossgate::model
