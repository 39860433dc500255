#include "inference_worker/cuda/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernels/layout.h"
#include "kernels/repack.h"

namespace ossgate::gpu {

namespace {

// Memory::Device (cuda_backend_impl.h) allocates at least one byte.
int64_t Alloc(int64_t bytes) { return std::max<int64_t>(1, bytes); }
int64_t Floats(size_t n) { return n == 0 ? 0 : Alloc(static_cast<int64_t>(n) * 4); }  // none: nullptr

// A tiled stack: codes and scales are two allocations (scales only when the
// format has them), as in UploadMatrix.
int64_t Tiled(kernels::WFormat f, int64_t rows, int64_t cols, int64_t n_mats, bool gate_up) {
  const kernels::TiledBytes t = kernels::TiledSize(f, rows, cols, gate_up);
  return Alloc(t.codes * n_mats) + (t.scales > 0 ? Alloc(t.scales * n_mats) : 0);
}

}  // namespace

absl::StatusOr<kernels::WFormat> FusedFormat(int layer, const std::string& names,
                                             std::initializer_list<const model::Matrix*> parts) {
  std::vector<gguf::GgmlType> types;
  for (const model::Matrix* m : parts) {
    if (auto f = kernels::FormatForType(m->type); !f.ok()) return f.status();  // an unsupported type, as such
    types.push_back(m->type);
  }
  absl::StatusOr<kernels::WFormat> f = kernels::FusedFormatForTypes(types);
  if (f.ok()) return f;
  return absl::InvalidArgumentError(absl::StrCat("CUDA backend: layer ", layer, ": ", names, " (",
                                                 kernels::TypeList(types),
                                                 ") are fused into one matrix and must share a device format: ",
                                                 kernels::kFusedFormatRule));
}

absl::StatusOr<WeightBytes> PlanWeightBytes(const model::ModelConfig& c, const model::Weights& w, int max_context) {
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), E = c.n_experts, F = c.d_ff;
  WeightBytes b;
  // What UploadAttention and UploadGatedFfn allocate for one layer.
  auto attention = [&](int l, const model::Matrix& wq, const model::Matrix& wk, const model::Matrix& wv,
                       const model::Matrix& wo) -> absl::Status {
    auto dense = FusedFormat(l, "attn_q, attn_k and attn_v", {&wq, &wk, &wv});
    auto o = kernels::FormatForType(wo.type);
    if (!dense.ok()) return dense.status();
    if (!o.ok()) return o.status();
    b.attention += Tiled(*dense, Q + 2 * KV, D, 1, false) + Tiled(*o, D, Q, 1, false);
    return absl::OkStatus();
  };
  auto ffn = [&](int l, const model::Matrix& gate, const model::Matrix& up, const model::Matrix& down,
                 int64_t n_mats, int64_t* category) -> absl::Status {
    auto g = FusedFormat(l, absl::StrCat(gate.name, " and ", up.name), {&gate, &up});
    auto dn = kernels::FormatForType(down.type);
    if (!g.ok()) return g.status();
    if (!dn.ok()) return dn.status();
    *category += Tiled(*g, F, D, n_mats, true) + Tiled(*dn, D, F, n_mats, false);
    return absl::OkStatus();
  };
  for (int l = 0; l < c.n_layers; ++l) {
    if (c.family != model::Family::kGptOss) {
      const model::DenseLayerWeights& L = w.dense_layers[l];
      if (absl::Status s = attention(l, L.wq, L.wk, L.wv, L.wo); !s.ok()) return s;
      if (absl::Status s = ffn(l, L.gate, L.up, L.down, 1, &b.ffn); !s.ok()) return s;
      b.attention += Floats(L.bq.size() + L.bk.size() + L.bv.size());
      b.small += Floats(L.attn_norm.size()) + Floats(L.ffn_norm.size()) + Floats(static_cast<size_t>(c.n_heads));
      continue;
    }
    const model::LayerWeights& L = w.layers[l];
    if (absl::Status s = attention(l, L.wq, L.wk, L.wv, L.wo); !s.ok()) return s;
    // All experts, or an expert-parallel rank's (model::SliceWeights).
    if (absl::Status s = ffn(l, L.gate_exps, L.up_exps, L.down_exps, L.gate_exps.n_mats, &b.experts); !s.ok()) {
      return s;
    }
    b.attention += Floats(L.bq.size() + L.bk.size() + L.bv.size()) + Floats(L.bo.size());
    b.experts += Floats(L.gate_b.size()) + Floats(L.up_b.size()) + Floats(L.down_b.size());
    b.router += Floats(static_cast<size_t>(E * D)) + Floats(L.router_b.size());
    b.small += Floats(L.attn_norm.size()) + Floats(L.post_attn_norm.size()) + Floats(L.sinks.size());
  }
  b.embedding = Alloc(static_cast<int64_t>(w.token_embd.bytes()));
  auto out = kernels::FormatForType(w.output.type);
  if (!out.ok()) return out.status();
  b.unembedding = Tiled(*out, c.vocab_size, D, 1, false);
  b.small += Floats(w.output_norm.size());
  b.small += Alloc(static_cast<int64_t>(c.head_dim / 2) * 8);  // inv_freq, float64
  b.small += Floats(static_cast<size_t>(max_context) * c.head_dim);
  return b;
}

KvBytes PlanKvBytes(const model::ModelConfig& c, int block_size, int ring_blocks, int split_keys) {
  int n_full = 0, n_sliding = 0;
  for (int l = 0; l < c.n_layers; ++l) (c.IsSlidingLayer(l) ? n_sliding : n_full)++;
  const int64_t kv_token = 2 * 2 * static_cast<int64_t>(c.n_kv_heads) * c.head_dim;  // K and V, 2 bytes each
  KvBytes k;
  k.block_size = block_size;
  k.per_token = n_full * kv_token;
  const int64_t split_state = static_cast<int64_t>(c.n_heads) * (c.head_dim + 2) * 4;
  k.per_pool_block = k.per_token * block_size + (split_state * block_size + split_keys - 1) / split_keys;
  k.per_sequence = n_sliding * kv_token * block_size * ring_blocks;
  return k;
}

std::string FormatGiB(int64_t bytes) { return absl::StrFormat("%.2f GiB", bytes / 1073741824.0); }

absl::StatusOr<KvPoolPlan> PlanKvPool(const KvPoolRequest& r) {
  KvPoolPlan p;
  const int64_t allowed = static_cast<int64_t>(std::floor(r.fraction * static_cast<double>(r.device_total)));
  p.budget = allowed - r.in_use - r.to_allocate;
  const int64_t rings = r.kv.per_sequence * r.max_sequences;
  const int64_t per_seq_blocks = BlocksFor(r.max_context, r.kv.block_size);
  const int64_t cap = per_seq_blocks * r.max_sequences;
  const int64_t fit = r.kv.per_pool_block > 0 ? (p.budget - rings) / r.kv.per_pool_block : cap;
  if (p.budget - rings < per_seq_blocks * r.kv.per_pool_block) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the model does not fit on this GPU: ", FormatGiB(allowed), " may be used (--gpu_memory_fraction=",
        absl::StrFormat("%g", r.fraction), " of ", FormatGiB(r.device_total), "); ", FormatGiB(r.in_use),
        " is in use already (CUDA context, per-pass buffers", r.to_allocate > 0 ? "" : ", weights",
        ", other processes)", r.to_allocate > 0 ? absl::StrCat(", the weights need ", FormatGiB(r.to_allocate)) : "",
        ", the sliding-window KV of ", r.max_sequences, " sequences needs ", FormatGiB(rings),
        " and one sequence of ", r.max_context, " tokens needs ", FormatGiB(per_seq_blocks * r.kv.per_pool_block),
        " of KV cache. Lower --max_context or --max_sequences, raise --gpu_memory_fraction (at most 1), free the "
        "GPU of other processes, or use a GPU with more memory"));
  }
  p.blocks = std::min(fit, cap);
  p.capped = fit >= cap;
  p.max_tokens = p.blocks * r.kv.block_size;
  p.kv_bytes = p.blocks * r.kv.per_pool_block + rings;
  return p;
}

absl::Status ValidateGpuMemoryFraction(double fraction) {
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--gpu_memory_fraction must be in (0, 1] (the share of the GPU's memory the worker may use for weights, "
        "buffers and KV cache; default 0.9), got ",
        absl::StrFormat("%g", fraction)));
  }
  return absl::OkStatus();
}

}  // namespace ossgate::gpu
