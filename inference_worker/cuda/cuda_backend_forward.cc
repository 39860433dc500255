// The forward pass, part of CudaBackendImpl (cuda_backend_impl.h).
//
// One step runs as one or more passes of at most max_step_tokens tokens. A
// pass uploads one block of int32 metadata (tokens, positions, per-sequence
// tables, attention work lists) to a fixed device address and launches the
// layers (EnqueueLayers, which reads like the model) and the unembedding.
// Decode passes (one token per sequence) replay instead a graph captured for
// their (batch bucket, attention split bucket), padded with rows that no
// kernel writes back (cuda_backend_graphs.cc). Every kernel is batch
// invariant (kernels/ops.h), so the padding, the pass split and the graph
// never change a sequence's results. Forward copies the logits back;
// ForwardSample (cuda_backend_sampling.cc) runs the same passes and samples
// on the device. The weights come from cuda_backend_weights.cc, the buffers
// from AllocateBuffers and AllocateKv (cuda_backend.cc).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <span>
#include <vector>

#include "inference_worker/cuda/cuda_backend_impl.h"

namespace ossgate::gpu::internal {

absl::Status CudaBackendImpl::Validate(std::span<const SequenceStep> steps) {
  return model::ValidateAndReserve(steps, config_.vocab_size, max_context_, *kv_);
}

std::vector<std::vector<PassSeq>> CudaBackendImpl::PlanPasses(std::span<const SequenceStep> steps) const {
  std::vector<std::vector<PassSeq>> passes(1);
  int used = 0;
  for (int i = 0; i < static_cast<int>(steps.size()); ++i) {
    const int n = static_cast<int>(steps[i].tokens.size());
    int begin = 0;
    while (begin < n) {
      if (used == max_tokens_ || static_cast<int>(passes.back().size()) == max_seqs_) {
        passes.emplace_back();
        used = 0;
      }
      const int take = std::min(n - begin, max_tokens_ - used);
      passes.back().push_back({i, begin, begin + take});
      used += take;
      begin += take;
    }
  }
  return passes;
}

PassShape CudaBackendImpl::FillMeta(std::span<const SequenceStep> steps, const std::vector<PassSeq>& pass,
                                    bool pad_for_graph) {
  const model::ModelConfig& c = config_;
  const MetaLayout& m = meta_;
  int32_t* h = meta_host_;
  PassShape shape;
  int row = 0, n_pre = 0, n_dec = 0, n_out = 0, split_total = 0;
  for (int i = 0; i < static_cast<int>(pass.size()); ++i) {
    const PassSeq& ps = pass[i];
    const SequenceStep& st = steps[ps.step];
    // Earlier parts of this step were committed by earlier passes.
    const int start = kv_->Length(st.seq);
    const int n = ps.end - ps.begin;
    h[m.seq_start + i] = start;
    h[m.seq_n + i] = n;
    h[m.seq_first + i] = row;
    h[m.full_off + i] = static_cast<int32_t>(m.full_tables + static_cast<int64_t>(i) * max_blocks_);
    h[m.ring_off + i] = static_cast<int32_t>(m.ring_tables + static_cast<int64_t>(i) * kv_->ring_blocks());
    const std::vector<int32_t>& full = kv_->FullTable(st.seq);
    std::copy(full.begin(), full.end(), h + m.full_tables + static_cast<int64_t>(i) * max_blocks_);
    const std::vector<int32_t>& ring = kv_->RingTable(st.seq);
    std::copy(ring.begin(), ring.end(), h + m.ring_tables + static_cast<int64_t>(i) * kv_->ring_blocks());
    for (int j = 0; j < n; ++j) {
      h[m.tokens + row + j] = st.tokens[ps.begin + j];
      h[m.pos + row + j] = start + j;
      h[m.tok_seq + row + j] = i;
    }
    if (n == 1) {
      h[m.decode_items + n_dec] = i;
      h[m.split_off + n_dec] = split_total;
      const int full_splits = start / kernels::kAttnSplitKeys + 1;
      const int lo = c.sliding_window > 0 ? std::max(0, start - c.sliding_window + 1) : 0;
      split_total += full_splits;
      shape.splits_full = std::max(shape.splits_full, full_splits);
      shape.splits_sliding =
          std::max(shape.splits_sliding, start / kernels::kAttnSplitKeys - lo / kernels::kAttnSplitKeys + 1);
      ++n_dec;
    } else {
      for (int qt = 0; qt * tokens_per_item_ < n; ++qt) {
        h[m.prefill_items + 2 * n_pre] = i;
        h[m.prefill_items + 2 * n_pre + 1] = qt;
        ++n_pre;
      }
    }
    const bool last_chunk = ps.end == static_cast<int>(st.tokens.size());
    if (st.logits == Logits::kAll) {
      for (int j = 0; j < n; ++j) h[m.out_rows + n_out++] = row + j;
    } else if (st.logits == Logits::kLast && last_chunk) {
      h[m.out_rows + n_out++] = row + n - 1;
    }
    row += n;
  }
  shape.valid = row;
  shape.rows = row;
  shape.prefill_items = n_pre;
  shape.decode_items = n_dec;
  shape.out_rows = n_out;
  if (pad_for_graph) PadForGraph(&shape);
  h[0] = shape.valid;
  h[1] = n_pre;
  h[2] = n_dec;
  shape.meta_ints = m.full_tables + static_cast<int64_t>(pass.size()) * max_blocks_;
  return shape;
}

void CudaBackendImpl::UploadMeta(const PassShape& shape) {
  CUDA_CHECK(cudaMemcpyAsync(meta_dev_, meta_host_, shape.meta_ints * sizeof(int32_t), cudaMemcpyHostToDevice,
                             stream_));
}

void CudaBackendImpl::EnqueueLayers(const PassShape& shape) {
  const model::ModelConfig& c = config_;
  const MetaLayout& m = meta_;
  const int T = shape.rows;
  const int D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), K = c.n_experts_used;
  const int32_t* meta = meta_dev_;
  cudaStream_t s = stream_;
  kernels::SeqTables seqs;
  seqs.start = meta + m.seq_start;
  seqs.n = meta + m.seq_n;
  seqs.first_row = meta + m.seq_first;
  seqs.full_off = meta + m.full_off;
  seqs.ring_off = meta + m.ring_off;
  seqs.tables = meta;

  Mark("start");
  kernels::EmbedParams ep;
  ep.table = embd_;
  ep.type = embd_type_;
  ep.row_bytes = embd_row_bytes_;
  ep.d = D;
  ep.tokens = meta + m.tokens;
  ep.n_tokens = T;
  ep.x = x_;
  kernels::LaunchEmbed(ep, s);
  kernels::AddNormParams np;
  np.x = x_;
  np.d = D;
  np.n_tokens = T;
  np.norm_w = layers_[0].attn_norm;
  np.eps = c.rms_eps;
  np.h16 = h16_;
  kernels::LaunchAddNorm(np, s);
  Mark("embed+norm");

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerDev& L = layers_[l];
    const bool sliding = c.IsSlidingLayer(l);
    kernels::GemmParams g;
    g.w = L.qkv;
    g.x = h16_;
    g.ldx = D;
    g.n_b = T;
    g.bias = L.qkv_bias;
    g.out_f32 = qkv_;
    g.ldo = Q + 2 * KV;
    if (Runs(kQkv)) kernels::LaunchGemm(g, s);
    Mark("qkv_gemm");

    kernels::RopeParams rp;
    rp.qkv = qkv_;
    rp.pos = meta + m.pos;
    rp.n_tokens = T;
    rp.n_heads = c.n_heads;
    rp.n_kv_heads = c.n_kv_heads;
    rp.head_dim = c.head_dim;
    rp.inv_freq = inv_freq_;
    rp.attention_factor = rope_.attention_factor;
    rp.table = rope_table_;
    rp.table_positions = max_context_;
    rp.q = q16_;
    rp.k_new = k_new_;
    rp.v_new = v_new_;
    rp.kv_f16 = options_.kv_fp16 ? 1 : 0;
    if (Runs(kRope)) kernels::LaunchRope(rp, s);
    Mark("rope");

    kernels::AttnParams ap;
    ap.q = q16_;
    ap.k_new = k_new_;
    ap.v_new = v_new_;
    ap.k_cache = L.k_cache;
    ap.v_cache = L.v_cache;
    ap.block_size = kv_->block_size();
    ap.sliding = sliding ? 1 : 0;
    ap.window = c.sliding_window;
    ap.ring_blocks = kv_->ring_blocks();
    ap.seqs = seqs;
    ap.sinks = L.sinks;
    ap.scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)) * 1.4426950408889634);
    ap.n_heads = c.n_heads;
    ap.n_kv_heads = c.n_kv_heads;
    ap.head_dim = c.head_dim;
    ap.kv_f16 = options_.kv_fp16 ? 1 : 0;
    ap.out = attn_;
    if (shape.prefill_items > 0) {
      kernels::AttnParams pp = ap;
      pp.items = meta + m.prefill_items;
      pp.n_items = meta + 1;
      pp.max_items = shape.prefill_items;
      if (Runs(kAttention)) kernels::LaunchAttentionPrefill(pp, s);
    }
    if (shape.decode_items > 0) {
      kernels::AttnParams dp = ap;
      dp.items = meta + m.decode_items;
      dp.n_items = meta + 2;
      dp.max_items = shape.decode_items;
      dp.split_off = meta + m.split_off;
      dp.part = part_;
      dp.max_splits = sliding ? shape.splits_sliding : shape.splits_full;
      if (Runs(kAttention)) kernels::LaunchAttentionDecode(dp, s);
    }
    Mark("attention");

    kernels::KvWriteParams kw;
    kw.k_new = k_new_;
    kw.v_new = v_new_;
    kw.k_cache = L.k_cache;
    kw.v_cache = L.v_cache;
    kw.tok_seq = meta + m.tok_seq;
    kw.pos = meta + m.pos;
    kw.n_tokens = T;
    kw.seqs = seqs;
    kw.sliding = sliding ? 1 : 0;
    kw.ring_blocks = kv_->ring_blocks();
    kw.block_size = kv_->block_size();
    kw.n_kv_heads = c.n_kv_heads;
    kw.head_dim = c.head_dim;
    if (Runs(kKvWrite)) kernels::LaunchKvWrite(kw, s);
    Mark("kv_write");

    g = kernels::GemmParams();
    g.w = L.o;
    g.x = attn_;
    g.ldx = Q;
    g.n_b = T;
    g.bias = L.o_bias;
    g.out_f32 = proj_;
    g.ldo = D;
    if (Runs(kO)) kernels::LaunchGemm(g, s);
    Mark("o_gemm");
    AllReduce(proj_, static_cast<int64_t>(T) * D);  // a rank's heads give a partial sum

    np = kernels::AddNormParams();
    np.x = x_;
    np.d = D;
    np.n_tokens = T;
    np.add = proj_;
    np.norm_w = L.post_norm;
    np.eps = c.rms_eps;
    np.h16 = h16_;
    np.h32 = h32_;
    if (Runs(kAddNorm)) kernels::LaunchAddNorm(np, s);
    Mark("add+norm");
    if (c.family != model::Family::kGptOss) {
      EnqueueDenseFfn(l, T);
      continue;
    }

    kernels::RouterParams rt;
    rt.h = h32_;
    rt.w = L.router_w;
    rt.b = L.router_b;
    rt.n_tokens = T;
    rt.n_valid = meta;
    rt.d = D;
    rt.n_experts = c.n_experts;
    rt.k = K;
    rt.ids = ids_;
    rt.weights = wts_;
    const int tile_slots = kernels::MoeTileSlots(T * K, c.n_experts);
    rt.route.tile_slots = tile_slots;
    rt.route.offsets = moe_offsets_;
    rt.route.active = moe_active_;
    rt.route.n_active = moe_counts_;
    rt.route.tiles = moe_tiles_;
    rt.route.n_tiles = moe_counts_ + 1;
    rt.route.max_tiles = kernels::MoeMaxTiles(T * K, c.n_experts, tile_slots);
    rt.route.slot_token = slot_token_;
    rt.route.pair_slot = pair_slot_;
    rt.route.expert_begin = expert_begin_;
    rt.route.expert_end = expert_begin_ + n_local_experts_;
    rt.logits = router_logits_;
    rt.done = router_done_;
    if (Runs(kRouter)) kernels::LaunchRouter(rt, s);
    if (tracing_) {
      CUDA_CHECK(cudaMemcpyAsync(trace_host_ + static_cast<int64_t>(l) * shape.valid * K, ids_,
                                 static_cast<size_t>(shape.valid) * K * sizeof(int32_t), cudaMemcpyDeviceToHost, s));
    }
    Mark("router");

    kernels::MoeGroups groups;
    // Offsets of every expert, indexed from this backend's first one (the
    // router numbers active experts and tiles from it).
    groups.offsets = moe_offsets_ + expert_begin_;
    groups.active = moe_active_;
    groups.n_active = moe_counts_;
    groups.tiles = moe_tiles_;
    groups.n_tiles = moe_counts_ + 1;
    groups.max_active = std::min(n_local_experts_, T * K);
    groups.max_tiles = rt.route.max_tiles;
    groups.tile_slots = tile_slots;
    g = kernels::GemmParams();
    g.w = L.gate_up;
    g.x = h16_;
    g.ldx = D;
    g.gather = slot_token_;
    g.n_b = T * K;
    g.bias_gate = L.gate_b;
    g.bias_up = L.up_b;
    g.out_f16 = act_;
    g.ldo = c.d_ff;
    g.epilogue = kernels::GemmEpilogue::kSwiGlu;
    g.swiglu_alpha = c.swiglu_alpha;
    g.swiglu_limit = c.swiglu_limit;
    g.moe = true;
    g.groups = groups;
    if (Runs(kGateUp)) kernels::LaunchGemm(g, s);
    Mark("experts_gate_up");

    // An expert-parallel rank writes only its experts' pair rows: the others
    // must add nothing to the all-reduce.
    if (n_local_experts_ < c.n_experts) {
      CUDA_CHECK(cudaMemsetAsync(y_, 0, static_cast<size_t>(T) * K * D * sizeof(float), s));
    }
    g = kernels::GemmParams();
    g.w = L.down;
    g.x = act_;
    g.ldx = c.d_ff;
    g.n_b = T * K;
    g.bias = L.down_b;
    g.out_f32 = y_;
    g.ldo = D;
    g.moe = true;
    g.groups = groups;
    g.routing_ready = Runs(kGateUp);  // the gate/up launch waited for the router
    if (Runs(kDown)) kernels::LaunchGemm(g, s);
    Mark("experts_down");
    // A rank's intermediate slice of every expert gives partial pair rows
    // (slots 0 .. T*K - 1, placed alike on every rank: the routing is the same).
    AllReduce(y_, static_cast<int64_t>(T) * K * D);

    np = kernels::AddNormParams();
    np.x = x_;
    np.d = D;
    np.n_tokens = T;
    np.moe_y = y_;
    np.moe_slot = pair_slot_;
    np.moe_ids = ids_;
    np.moe_w = wts_;
    np.moe_k = K;
    np.norm_w = l + 1 < c.n_layers ? layers_[l + 1].attn_norm : output_norm_;
    np.eps = c.rms_eps;
    np.h16 = h16_;
    if (Runs(kCombineNorm)) kernels::LaunchAddNorm(np, s);
    Mark("moe_combine+norm");
  }
}

// qwen2, phi3: x += down(silu(gate(h)) * up(h)), then the next layer's
// norm. One dense GEMM for gate and up (interleaved per tile, the SiLU gate
// applied in its epilogue), one for down.
void CudaBackendImpl::EnqueueDenseFfn(int l, int T) {
  const model::ModelConfig& c = config_;
  const LayerDev& L = layers_[l];
  cudaStream_t s = stream_;
  kernels::GemmParams g;
  g.w = L.gate_up;
  g.x = h16_;
  g.ldx = c.d_model;
  g.n_b = T;
  g.out_f16 = act_;
  g.ldo = c.d_ff;
  g.epilogue = kernels::GemmEpilogue::kSwiGlu;
  g.silu_glu = true;
  if (Runs(kGateUp)) kernels::LaunchGemm(g, s);
  Mark("ffn_gate_up");

  g = kernels::GemmParams();
  g.w = L.down;
  g.x = act_;
  g.ldx = c.d_ff;
  g.n_b = T;
  g.out_f32 = y_;
  g.ldo = c.d_model;
  if (Runs(kDown)) kernels::LaunchGemm(g, s);
  Mark("ffn_down");
  AllReduce(y_, static_cast<int64_t>(T) * c.d_model);  // a rank's intermediate slice gives a partial sum

  kernels::AddNormParams np;
  np.x = x_;
  np.d = c.d_model;
  np.n_tokens = T;
  np.add = y_;
  np.norm_w = l + 1 < c.n_layers ? layers_[l + 1].attn_norm : output_norm_;
  np.eps = c.rms_eps;
  np.h16 = h16_;
  if (Runs(kCombineNorm)) kernels::LaunchAddNorm(np, s);
  Mark("ffn_add+norm");
}

void CudaBackendImpl::AllReduce(float* data, int64_t n) {
  if (all_reduce_ && Runs(kAllReduce)) all_reduce_->AllReduceSum(data, n, stream_);
}

void CudaBackendImpl::EnqueueLogits(int first_out_row, int n_rows) {
  kernels::GemmParams g;
  g.w = output_;
  g.x = h16_;
  g.ldx = config_.d_model;
  g.gather = meta_dev_ + meta_.out_rows + first_out_row;
  g.n_b = n_rows;
  g.out_f32 = logits_dev_;
  g.ldo = config_.vocab_size;
  if (Runs(kUnembed)) kernels::LaunchGemm(g, stream_);
  Mark("unembedding");
}

void CudaBackendImpl::RunPass(const PassShape& shape, bool graph) {
  UploadMeta(shape);
  if (!graph) {
    EnqueueLayers(shape);
    return;
  }
  LaunchGraph(shape);
}

absl::Status CudaBackendImpl::Forward(std::span<const SequenceStep> steps, std::vector<float>* logits) {
  if (absl::Status s = Validate(steps); !s.ok()) return s;
  const int V = config_.vocab_size;
  int64_t rows = 0;
  for (const SequenceStep& s : steps) {
    rows += s.logits == Logits::kAll ? static_cast<int64_t>(s.tokens.size()) : s.logits == Logits::kLast ? 1 : 0;
  }
  logits->resize(static_cast<size_t>(rows) * V);
  float* out = logits->data();
  const bool graph = IsGraphStep(steps);
  for (const std::vector<PassSeq>& pass : PlanPasses(steps)) {
    const PassShape shape = FillMeta(steps, pass, graph);
    RunPass(shape, graph);
    if (graph) {
      // All rows got logits; copy those of the steps that asked.
      CUDA_CHECK(cudaMemcpyAsync(logits_host_, logits_dev_, static_cast<size_t>(shape.valid) * V * sizeof(float),
                                 cudaMemcpyDeviceToHost, stream_));
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      for (int i = 0; i < static_cast<int>(steps.size()); ++i) {
        if (steps[i].logits != Logits::kLast) continue;
        std::memcpy(out, logits_host_ + static_cast<int64_t>(i) * V, V * sizeof(float));
        out += V;
      }
    } else {
      for (int r0 = 0; r0 < shape.out_rows; r0 += logit_rows_) {
        const int n = std::min(logit_rows_, shape.out_rows - r0);
        EnqueueLogits(r0, n);
        CUDA_CHECK(cudaMemcpyAsync(logits_host_, logits_dev_, static_cast<size_t>(n) * V * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        std::memcpy(out, logits_host_, static_cast<size_t>(n) * V * sizeof(float));
        out += static_cast<size_t>(n) * V;
      }
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      CollectEager(shape);
    }
    for (const PassSeq& ps : pass) kv_->Commit(steps[ps.step].seq, ps.end - ps.begin);
  }
  model::SuppressUnsampled(config_, logits->data(), static_cast<size_t>(rows));
  return absl::OkStatus();
}

}  // namespace ossgate::gpu::internal
