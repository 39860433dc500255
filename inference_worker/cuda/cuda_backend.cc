// CudaBackend: weights upload, per-step metadata, the forward pass as a
// sequence of kernel launches (kernels/ops.h), and CUDA graphs for decode.
//
// One step runs as one or more passes of at most max_step_tokens tokens. A
// pass uploads one block of int32 metadata (tokens, positions, per-sequence
// tables, attention work lists) to a fixed device address and launches the
// layers; decode passes (one token per sequence) replay a graph captured for
// their (batch bucket, attention split bucket), padded with rows that no
// kernel writes back. Every kernel is batch invariant (kernels/ops.h), so the
// padding, the pass split and the graph never change a sequence's results.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "inference_worker/cuda/cuda_backend_impl.h"

namespace ossgate::gpu {

const std::vector<std::string>& CudaBackend::PhaseNames() {
  static const std::vector<std::string> names = {"qkv_gemm",        "rope",         "attention",
                                                 "kv_write",        "o_gemm",       "add+norm",
                                                 "router",          "experts_gate_up", "experts_down",
                                                 "moe_combine+norm", "unembedding"};
  return names;
}

namespace internal {

// ------------------------------------------------------------ creation ----

CudaBackendImpl::CudaBackendImpl(model::ModelConfig config, const CudaBackendOptions& options, int max_context)
    : config_(std::move(config)),
      rope_(model::ComputeRope(config_)),
      max_context_(max_context),
      options_(options),
      kv_(model::KvCacheOptions{options.kv.block_size,
                                options.kv.num_full_blocks > 0
                                    ? options.kv.num_full_blocks
                                    : options.kv.max_sequences *
                                          ((max_context + options.kv.block_size - 1) / options.kv.block_size),
                                options.kv.max_sequences},
          config_.sliding_window),
      use_graphs_(options.use_graphs) {}

void CudaBackendImpl::DropGraphs() {
  if (stream_) cudaStreamSynchronize(stream_);
  for (auto& [shape, g] : graphs_) {
    if (g.exec) cudaGraphExecDestroy(g.exec);
    if (g.graph) cudaGraphDestroy(g.graph);
  }
  graphs_.clear();
}

CudaBackendImpl::~CudaBackendImpl() {
  DropGraphs();
  for (auto& [name, ev] : marks_) cudaEventDestroy(ev);
  for (cudaEvent_t ev : free_events_) cudaEventDestroy(ev);
  if (stream_) cudaStreamDestroy(stream_);
}

absl::StatusOr<std::unique_ptr<CudaBackendImpl>> CudaBackendImpl::Create(const gguf::GgufFile& file,
                                                                         const CudaBackendOptions& options) {
  int n_devices = 0;
  if (cudaGetDeviceCount(&n_devices) != cudaSuccess || n_devices == 0) {
    cudaGetLastError();
    return absl::UnimplementedError("CUDA backend: no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)");
  }
  if (options.device < 0 || options.device >= n_devices) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA backend: device ", options.device, " does not exist (", n_devices,
                                                   " visible)"));
  }
  CUDA_CHECK(cudaSetDevice(options.device));
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, options.device));
  if (prop.major < 8) {
    return absl::UnimplementedError(absl::StrCat("CUDA backend: ", prop.name, " has compute capability ", prop.major, ".",
                                                 prop.minor, "; 8.0 or newer is required"));
  }
  auto config = model::ReadModelConfig(file);
  if (!config.ok()) return config.status();
  auto weights = model::BindWeights(file, *config);
  if (!weights.ok()) return weights.status();
  const model::ModelConfig& c = *config;
  if (options.kv.block_size <= 0 || options.kv.max_sequences <= 0 || options.max_context <= 0 ||
      options.max_step_tokens <= 0) {
    return absl::InvalidArgumentError(
        "CUDA backend: block_size, max_sequences, max_context and max_step_tokens must be positive");
  }
  if (c.head_dim != 16 && c.head_dim != 32 && c.head_dim != 64) {
    return absl::UnimplementedError(absl::StrCat("CUDA backend: head_dim ", c.head_dim, " (supported: 16, 32, 64)"));
  }
  const int group = c.n_heads / c.n_kv_heads;
  if (16 % group != 0) {
    return absl::UnimplementedError(absl::StrCat("CUDA backend: ", group, " query heads per KV head (must divide 16)"));
  }
  if (c.d_model % 32 != 0 || c.q_dim() % 32 != 0 || c.d_ff % 32 != 0) {
    return absl::UnimplementedError("CUDA backend: d_model, heads * head_dim and d_ff must be multiples of 32");
  }
  if (c.d_model > 4096) {
    return absl::UnimplementedError(absl::StrCat("CUDA backend: d_model ", c.d_model, " (at most 4096)"));
  }
  if (c.n_experts > 256 || c.n_experts_used > 16) {
    return absl::UnimplementedError("CUDA backend: at most 256 experts and top-16");
  }
  const int max_context = std::min(options.max_context, c.context_length);
  auto backend = std::unique_ptr<CudaBackendImpl>(new CudaBackendImpl(c, options, max_context));
  backend->description_ = absl::StrFormat("cuda (%s, sm_%d%d, %d SMs)", prop.name, prop.major, prop.minor,
                                          prop.multiProcessorCount);
  CUDA_CHECK(cudaStreamCreateWithFlags(&backend->stream_, cudaStreamNonBlocking));
  kernels::InitKernels();
  backend->upload_ = std::make_unique<CudaBackendImpl::UploadState>(options.upload_threads);
  for (int i = 0; i < 2; ++i) CUDA_CHECK(cudaEventRecord(backend->upload_->done[i], backend->stream_));
  absl::Status uploaded = backend->Upload(file, *weights);
  backend->upload_.reset();  // waits for the last copies
  if (!uploaded.ok()) return uploaded;
  if (absl::Status s = backend->AllocateRuntime(); !s.ok()) return s;
  CUDA_CHECK(cudaStreamSynchronize(backend->stream_));
  return backend;
}

absl::Status CudaBackendImpl::AllocateRuntime() {
  const model::ModelConfig& c = config_;
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), F = c.d_ff, K = c.n_experts_used;
  const int bs = kv_.block_size();
  max_seqs_ = kv_.max_sequences();
  max_tokens_ = std::max({options_.max_step_tokens, NextPow2(max_seqs_), 64});
  max_blocks_ = (max_context_ + bs - 1) / bs;
  logit_rows_ = std::max(64, NextPow2(max_seqs_));
  tokens_per_item_ = kernels::AttentionPrefillTokensPerItem(c.n_heads, c.n_kv_heads);
  max_prefill_items_ = max_tokens_ / tokens_per_item_ + max_seqs_;
  const int64_t pool_tokens = static_cast<int64_t>(kv_.num_full_blocks()) * bs;
  split_slots_ = static_cast<int>(pool_tokens / kernels::kAttnSplitKeys) + 2 * max_seqs_ + 1;

  // KV cache: (kind layers, blocks, kv heads, block_size, head_dim) bf16 for K and V.
  int n_full = 0, n_sliding = 0;
  for (int l = 0; l < c.n_layers; ++l) (c.IsSlidingLayer(l) ? n_sliding : n_full)++;
  const int64_t block_elems = static_cast<int64_t>(c.n_kv_heads) * bs * c.head_dim;
  const int64_t full_elems = static_cast<int64_t>(kv_.num_full_blocks()) * block_elems;
  const int64_t ring_elems = static_cast<int64_t>(kv_.num_ring_blocks_total()) * block_elems;
  {
    // Check the whole runtime allocation up front for a clear error.
    const int64_t kv_bytes = 2 * 2 * (n_full * full_elems + n_sliding * ring_elems);
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (static_cast<int64_t>(free_b) < kv_bytes + (256ll << 20)) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "CUDA backend: the KV cache needs %.2f GiB but %.2f GiB of device memory is free after the weights; lower "
          "max_sequences, max_context or num_full_blocks",
          kv_bytes / 1073741824.0, free_b / 1073741824.0));
    }
  }
  kernels::bf16_t* k_full = mem_.Device<kernels::bf16_t>(n_full * full_elems, &vram_.kv_cache);
  kernels::bf16_t* v_full = mem_.Device<kernels::bf16_t>(n_full * full_elems, &vram_.kv_cache);
  kernels::bf16_t* k_ring = mem_.Device<kernels::bf16_t>(n_sliding * ring_elems, &vram_.kv_cache);
  kernels::bf16_t* v_ring = mem_.Device<kernels::bf16_t>(n_sliding * ring_elems, &vram_.kv_cache);
  int fi = 0, si = 0;
  for (int l = 0; l < c.n_layers; ++l) {
    if (c.IsSlidingLayer(l)) {
      layers_[l].k_cache = k_ring + si * ring_elems;
      layers_[l].v_cache = v_ring + si * ring_elems;
      ++si;
    } else {
      layers_[l].k_cache = k_full + fi * full_elems;
      layers_[l].v_cache = v_full + fi * full_elems;
      ++fi;
    }
  }

  const int64_t T = max_tokens_, P = T * K;
  int64_t* act = &vram_.activations;
  x_ = mem_.Device<float>(T * D, act);
  h16_ = mem_.Device<kernels::half_t>(T * D, act);
  h32_ = mem_.Device<float>(T * D, act);
  qkv_ = mem_.Device<float>(T * (Q + 2 * KV), act);
  q16_ = mem_.Device<kernels::half_t>(T * Q, act);
  k_new_ = mem_.Device<kernels::bf16_t>(T * KV, act);
  v_new_ = mem_.Device<kernels::bf16_t>(T * KV, act);
  attn_ = mem_.Device<kernels::half_t>(T * Q, act);
  proj_ = mem_.Device<float>(T * D, act);
  act_ = mem_.Device<kernels::half_t>(P * F, act);
  y_ = mem_.Device<float>(P * D, act);
  logits_dev_ = mem_.Device<float>(static_cast<int64_t>(logit_rows_) * c.vocab_size, act);

  int64_t* ws = &vram_.workspace;
  ids_ = mem_.Device<int32_t>(P, ws);
  wts_ = mem_.Device<float>(P, ws);
  moe_offsets_ = mem_.Device<int32_t>(c.n_experts + 1, ws);
  moe_active_ = mem_.Device<int32_t>(c.n_experts, ws);
  moe_counts_ = mem_.Device<int32_t>(2, ws);
  router_logits_ = mem_.Device<float>(T * c.n_experts, ws);
  router_done_ = mem_.Device<uint32_t>(kernels::RouterCounters(static_cast<int>(T)), ws);
  const int max_tiles = kernels::MoeMaxTiles(static_cast<int32_t>(P), c.n_experts, 64);
  moe_tiles_ = mem_.Device<int32_t>(3 * max_tiles, ws);
  slot_token_ = mem_.Device<int32_t>(P, ws);
  pair_slot_ = mem_.Device<int32_t>(P, ws);
  part_ = mem_.Device<float>(static_cast<int64_t>(split_slots_) * c.n_heads * (c.head_dim + 2), ws);
  sample_rows_dev_ = mem_.Device<kernels::SampleRow>(logit_rows_, ws);
  sampled_dev_ = mem_.Device<int32_t>(logit_rows_, ws);

  MetaLayout& m = meta_;
  int64_t o = 8;  // header
  auto take = [&](int64_t n) {
    const int64_t at = o;
    o += (n + 3) / 4 * 4;
    return at;
  };
  m.tokens = take(T);
  m.pos = take(T);
  m.tok_seq = take(T);
  m.seq_start = take(max_seqs_);
  m.seq_n = take(max_seqs_);
  m.seq_first = take(max_seqs_);
  m.full_off = take(max_seqs_);
  m.ring_off = take(max_seqs_);
  m.prefill_items = take(2 * max_prefill_items_);
  m.decode_items = take(max_seqs_);
  m.split_off = take(max_seqs_);
  m.out_rows = take(T);
  m.ring_tables = take(static_cast<int64_t>(max_seqs_) * std::max(1, kv_.ring_blocks()));
  m.full_tables = take(static_cast<int64_t>(max_seqs_) * max_blocks_);
  m.total = o;
  meta_dev_ = mem_.Device<int32_t>(m.total, ws);
  if (mem_.failed()) {
    return absl::ResourceExhaustedError(
        "CUDA backend: out of device memory for the KV cache and activations; lower max_sequences, max_context or "
        "max_step_tokens");
  }
  CUDA_CHECK(cudaMemset(router_done_, 0, kernels::RouterCounters(static_cast<int>(T)) * sizeof(uint32_t)));
  meta_host_ = mem_.Host<int32_t>(m.total);
  std::memset(meta_host_, 0, m.total * sizeof(int32_t));
  logits_host_ = mem_.Host<float>(static_cast<int64_t>(logit_rows_) * c.vocab_size);
  sample_rows_host_ = mem_.Host<kernels::SampleRow>(logit_rows_);
  sampled_host_ = mem_.Host<int32_t>(logit_rows_);
  // Finite contents everywhere: padding rows of graph steps read stale rows.
  CUDA_CHECK(cudaMemsetAsync(x_, 0, T * D * sizeof(float), stream_));
  CUDA_CHECK(cudaMemsetAsync(attn_, 0, T * Q * sizeof(kernels::half_t), stream_));
  CUDA_CHECK(cudaMemsetAsync(meta_dev_, 0, m.total * sizeof(int32_t), stream_));
  CUDA_CHECK(cudaMemsetAsync(pair_slot_, 0xFF, P * sizeof(int32_t), stream_));
  return absl::OkStatus();
}

// ---------------------------------------------------------------- steps ----

absl::Status CudaBackendImpl::Validate(std::span<const SequenceStep> steps) {
  return model::ValidateAndReserve(steps, config_.vocab_size, max_context_, kv_);
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
    const int start = kv_.Length(st.seq);
    const int n = ps.end - ps.begin;
    h[m.seq_start + i] = start;
    h[m.seq_n + i] = n;
    h[m.seq_first + i] = row;
    h[m.full_off + i] = static_cast<int32_t>(m.full_tables + static_cast<int64_t>(i) * max_blocks_);
    h[m.ring_off + i] = static_cast<int32_t>(m.ring_tables + static_cast<int64_t>(i) * kv_.ring_blocks());
    const std::vector<int32_t>& full = kv_.FullTable(st.seq);
    std::copy(full.begin(), full.end(), h + m.full_tables + static_cast<int64_t>(i) * max_blocks_);
    const std::vector<int32_t>& ring = kv_.RingTable(st.seq);
    std::copy(ring.begin(), ring.end(), h + m.ring_tables + static_cast<int64_t>(i) * kv_.ring_blocks());
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
  if (pad_for_graph) {
    // Decode graph: bucket the batch and the split count; padding rows are
    // token 0 of no sequence, and every row gets logits.
    const int bucket = NextPow2(row);
    for (int r = row; r < bucket; ++r) {
      h[m.tokens + r] = 0;
      h[m.pos + r] = 0;
      h[m.tok_seq + r] = -1;
      h[m.decode_items + r] = -1;
      h[m.split_off + r] = 0;
    }
    for (int r = 0; r < bucket; ++r) h[m.out_rows + r] = r;
    shape.rows = bucket;
    shape.decode_items = bucket;
    shape.out_rows = bucket;
    shape.splits_full = NextPow2(shape.splits_full);
    shape.splits_sliding = NextPow2(shape.splits_sliding);
  }
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

void CudaBackendImpl::Mark(const char* name) {
  if (!profiling_) return;
  cudaEvent_t ev;
  if (!free_events_.empty()) {
    ev = free_events_.back();
    free_events_.pop_back();
  } else {
    CUDA_CHECK(cudaEventCreate(&ev));
  }
  CUDA_CHECK(cudaEventRecord(ev, stream_));
  marks_.emplace_back(name, ev);
}

void CudaBackendImpl::CollectProfile() {
  if (marks_.empty()) return;
  CUDA_CHECK(cudaEventSynchronize(marks_.back().second));
  // Each mark closes the segment that began at the previous mark.
  for (size_t i = 1; i < marks_.size(); ++i) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, marks_[i - 1].second, marks_[i].second));
    auto& e = profile_[marks_[i].first];
    e.first += ms;
    e.second += 1;
  }
  for (auto& [name, ev] : marks_) free_events_.push_back(ev);
  marks_.clear();
}

void CudaBackendImpl::SetRoutingTrace(bool on) {
  if (on && trace_host_ == nullptr) {
    trace_host_ = mem_.Host<int32_t>(static_cast<int64_t>(config_.n_layers) * max_tokens_ * config_.n_experts_used);
  }
  tracing_ = on;
}

void CudaBackendImpl::CollectEager(const PassShape& shape) {
  CollectProfile();
  if (tracing_) {
    // The pass has completed (the caller synchronized the stream).
    trace_.insert(trace_.end(), trace_host_,
                  trace_host_ + static_cast<int64_t>(config_.n_layers) * shape.valid * config_.n_experts_used);
  }
}

std::string CudaBackendImpl::ProfileReport() const {
  double total = 0;
  for (const auto& [name, e] : profile_) total += e.first;
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [name, e] : profile_) rows.emplace_back(e.first, name);
  std::sort(rows.rbegin(), rows.rend());
  std::string out = absl::StrFormat("%-22s %10s %7s %8s\n", "phase", "total ms", "share", "calls");
  for (const auto& [ms, name] : rows) {
    out += absl::StrFormat("%-22s %10.3f %6.1f%% %8d\n", name, ms, total > 0 ? 100.0 * ms / total : 0.0,
                           profile_.at(name).second);
  }
  return out;
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
    ap.block_size = kv_.block_size();
    ap.sliding = sliding ? 1 : 0;
    ap.window = c.sliding_window;
    ap.ring_blocks = kv_.ring_blocks();
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
    kw.ring_blocks = kv_.ring_blocks();
    kw.block_size = kv_.block_size();
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
    rt.route.tile_slots = 64;
    rt.route.offsets = moe_offsets_;
    rt.route.active = moe_active_;
    rt.route.n_active = moe_counts_;
    rt.route.tiles = moe_tiles_;
    rt.route.n_tiles = moe_counts_ + 1;
    rt.route.max_tiles = kernels::MoeMaxTiles(T * K, c.n_experts, 64);
    rt.route.slot_token = slot_token_;
    rt.route.pair_slot = pair_slot_;
    rt.logits = router_logits_;
    rt.done = router_done_;
    if (Runs(kRouter)) kernels::LaunchRouter(rt, s);
    if (tracing_) {
      CUDA_CHECK(cudaMemcpyAsync(trace_host_ + static_cast<int64_t>(l) * shape.valid * K, ids_,
                                 static_cast<size_t>(shape.valid) * K * sizeof(int32_t), cudaMemcpyDeviceToHost, s));
    }
    Mark("router");

    kernels::MoeGroups groups;
    groups.offsets = moe_offsets_;
    groups.active = moe_active_;
    groups.n_active = moe_counts_;
    groups.tiles = moe_tiles_;
    groups.n_tiles = moe_counts_ + 1;
    groups.max_active = std::min(c.n_experts, T * K);
    groups.max_tiles = rt.route.max_tiles;
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

bool CudaBackendImpl::IsGraphStep(std::span<const SequenceStep> steps) const {
  if (!use_graphs_ || profiling_ || tracing_ || steps.empty() || static_cast<int>(steps.size()) > max_seqs_) return false;
  for (const SequenceStep& s : steps) {
    if (s.tokens.size() != 1 || s.logits == Logits::kAll) return false;
  }
  return true;
}

void CudaBackendImpl::RunPass(const PassShape& shape, bool graph) {
  UploadMeta(shape);
  if (!graph) {
    EnqueueLayers(shape);
    return;
  }
  auto it = graphs_.find(shape);
  if (it == graphs_.end()) {
    Graph gr;
    CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    EnqueueLayers(shape);
    EnqueueLogits(0, shape.out_rows);
    CUDA_CHECK(cudaStreamEndCapture(stream_, &gr.graph));
    CUDA_CHECK(cudaGraphInstantiate(&gr.exec, gr.graph, 0));
    it = graphs_.emplace(shape, gr).first;
  }
  CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream_));
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
    for (const PassSeq& ps : pass) kv_.Commit(steps[ps.step].seq, ps.end - ps.begin);
  }
  return absl::OkStatus();
}

absl::Status CudaBackendImpl::ForwardSample(std::span<const SequenceStep> steps,
                                            std::span<const model::StepSampling> sampling,
                                            std::vector<int32_t>* tokens) {
  if (absl::Status s = model::ValidateSampling(steps, sampling); !s.ok()) return s;
  if (absl::Status s = Validate(steps); !s.ok()) return s;
  const int V = config_.vocab_size;
  // Index in `tokens` of each kLast step (step order); kNone steps get none.
  std::vector<int> out_index(steps.size(), -1);
  int n_tokens = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].logits == Logits::kLast) out_index[i] = n_tokens++;
  }
  tokens->assign(n_tokens, -1);
  const bool graph = IsGraphStep(steps);
  for (const std::vector<PassSeq>& pass : PlanPasses(steps)) {
    const PassShape shape = FillMeta(steps, pass, graph);
    RunPass(shape, graph);
    // The step of each logits row to sample (-1: sampled but dropped). Eager
    // passes compute logits only for their out_rows: the kLast steps whose
    // last token is in the pass, in pass order. A graph pass computes every
    // row, and pass entry k (one token each) is row k; the rows of kNone
    // steps (one-token prompt chunks) between them are sampled greedily and
    // dropped, which keeps the rows to sample contiguous for one launch.
    std::vector<int> row_step;
    for (const PassSeq& ps : pass) {
      const bool samples =
          steps[ps.step].logits == Logits::kLast && ps.end == static_cast<int>(steps[ps.step].tokens.size());
      if (samples) {
        row_step.push_back(ps.step);
      } else if (graph) {
        row_step.push_back(-1);
      }
    }
    while (!row_step.empty() && row_step.back() < 0) row_step.pop_back();
    if (!row_step.empty()) {
      const int n = static_cast<int>(row_step.size());  // <= max_seqs_ <= logit_rows_
      if (!graph) EnqueueLogits(0, n);
      bool host_fallback = false;
      for (int j = 0; j < n; ++j) {
        kernels::SampleRow& r = sample_rows_host_[j];
        r = kernels::SampleRow();  // greedy: a dropped row
        if (row_step[j] < 0) continue;
        const model::StepSampling& ss = sampling[row_step[j]];
        r.temperature = ss.params.temperature;
        r.top_k = ss.params.top_k;
        r.top_p = ss.params.top_p;
        r.min_p = ss.params.min_p;
        r.seed = ss.params.seed;
        r.step = ss.step;
        if (r.temperature > 0.0f && r.top_k > kernels::kMaxGpuTopK) {
          host_fallback = true;
          r.temperature = 0.0f;  // computed on the host below
        }
      }
      CUDA_CHECK(cudaMemcpyAsync(sample_rows_dev_, sample_rows_host_, n * sizeof(kernels::SampleRow),
                                 cudaMemcpyHostToDevice, stream_));
      kernels::SampleParams sp;
      sp.logits = logits_dev_;
      sp.vocab = V;
      sp.n_rows = n;
      sp.rows = sample_rows_dev_;
      sp.out = sampled_dev_;
      kernels::LaunchSample(sp, stream_);
      CUDA_CHECK(cudaMemcpyAsync(sampled_host_, sampled_dev_, n * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
      if (host_fallback) {
        CUDA_CHECK(cudaMemcpyAsync(logits_host_, logits_dev_, static_cast<size_t>(n) * V * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream_));
      }
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      for (int j = 0; j < n; ++j) {
        if (row_step[j] < 0) continue;
        const model::StepSampling& ss = sampling[row_step[j]];
        int32_t tok = sampled_host_[j];
        if (ss.params.temperature > 0.0f && ss.params.top_k > kernels::kMaxGpuTopK) {
          const model::Sampler sampler(ss.params);
          tok = sampler.Sample({logits_host_ + static_cast<int64_t>(j) * V, static_cast<size_t>(V)}, {}, ss.step);
        }
        (*tokens)[out_index[row_step[j]]] = tok;
      }
    } else {
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    if (!graph) CollectEager(shape);
    for (const PassSeq& ps : pass) kv_.Commit(steps[ps.step].seq, ps.end - ps.begin);
  }
  return absl::OkStatus();
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackendImpl(const gguf::GgufFile& file,
                                                                   const CudaBackendOptions& options) {
  auto b = internal::CudaBackendImpl::Create(file, options);
  if (!b.ok()) return b.status();
  return std::unique_ptr<CudaBackend>(std::move(*b));
}

absl::StatusOr<std::unique_ptr<model::Backend>> CreateCudaBackend(const gguf::GgufFile& file,
                                                                  const CudaBackendOptions& options) {
  auto b = CreateCudaBackendImpl(file, options);
  if (!b.ok()) return b.status();
  return std::unique_ptr<model::Backend>(std::move(*b));
}

}  // namespace ossgate::gpu
