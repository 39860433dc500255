// The CUDA backend's creation, hooks and factories, part of CudaBackendImpl
// (cuda_backend_impl.h, which lists the other files).
//
// Create checks the device and the model's shapes against what the kernels
// support, allocates what the passes use (AllocateBuffers: the activations of
// max_step_tokens rows, the workspace and the int32 metadata block that
// FillMeta (cuda_backend_forward.cc) fills in the MetaLayout decided here),
// refuses a model that cannot fit before any weight is uploaded (PlanKvBlocks
// with the weight bytes of memory_plan.h), uploads the weights
// (cuda_backend_weights.cc), and then sizes and allocates the bf16 KV cache
// of every layer from the memory left (AllocateKv). Then the profiling marks and the routing trace of
// eager passes, and the public factories of cuda_backend.h.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "inference_worker/cuda/cuda_backend_impl.h"
#include "inference_worker/cuda/memory_plan.h"

namespace ossgate::gpu {

const std::vector<std::string>& CudaBackend::PhaseNames() {
  static const std::vector<std::string> names = {"qkv_gemm",        "rope",         "attention",
                                                 "kv_write",        "o_gemm",       "add+norm",
                                                 "router",          "experts_gate_up", "experts_down",
                                                 "moe_combine+norm", "unembedding", "all_reduce"};
  return names;
}

namespace internal {

// ------------------------------------------------------------ creation ----

CudaBackendImpl::CudaBackendImpl(model::ModelConfig config, const CudaBackendOptions& options, int max_context)
    : config_(std::move(config)),
      rope_(model::ComputeRope(config_)),
      max_context_(max_context),
      options_(options),
      kv_(std::in_place,
          model::KvCacheOptions{options.kv.block_size,
                                options.kv.num_full_blocks > 0
                                    ? options.kv.num_full_blocks
                                    : options.kv.max_sequences *
                                          ((max_context + options.kv.block_size - 1) / options.kv.block_size),
                                options.kv.max_sequences},
          config_.sliding_window),
      use_graphs_(options.use_graphs) {}

CudaBackendImpl::~CudaBackendImpl() {
  DropGraphs();
  for (auto& [name, ev] : marks_) cudaEventDestroy(ev);
  for (cudaEvent_t ev : free_events_) cudaEventDestroy(ev);
  if (stream_) cudaStreamDestroy(stream_);
}

absl::StatusOr<std::unique_ptr<CudaBackendImpl>> CudaBackendImpl::Create(const gguf::GgufFile& file,
                                                                         const CudaBackendOptions& options,
                                                                         DeviceModelImage* image,
                                                                         const CudaRankSetup* rank) {
  if (rank && (image || !rank->config || !rank->weights || !rank->all_reduce)) {
    return absl::InvalidArgumentError("CUDA backend: a rank needs its config, weights and all-reduce, and no image");
  }
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
  absl::StatusOr<model::ModelConfig> config = rank ? *rank->config : model::ReadModelConfig(file);
  if (!config.ok()) return config.status();
  model::BindOptions bind;
  if (image) {
    // The small tensors are copied back; the matrices' scales are checked
    // on the device below.
    bind.fetch = [&](const gguf::TensorInfo& t, std::vector<uint8_t>* out) {
      out->resize(t.nbytes);
      return image->CopyToHost(file.data_offset() + t.offset, t.nbytes, out->data());
    };
    bind.check_matrices = false;
  }
  absl::StatusOr<model::Weights> weights = rank ? *rank->weights : model::BindWeights(file, *config, bind);
  if (!weights.ok()) return weights.status();
  const model::ModelConfig& c = *config;
  if (options.kv.block_size <= 0 || options.kv.max_sequences <= 0 || options.max_context <= 0 ||
      options.max_step_tokens <= 0) {
    return absl::InvalidArgumentError(
        "CUDA backend: block_size, max_sequences, max_context and max_step_tokens must be positive");
  }
  if (absl::Status s = ValidateGpuMemoryFraction(options.gpu_memory_fraction); !s.ok()) return s;
  if (c.head_dim != 16 && c.head_dim != 32 && c.head_dim != 64 && c.head_dim != 96) {
    return absl::UnimplementedError(
        absl::StrCat("CUDA backend: head_dim ", c.head_dim, " (supported: 16, 32, 64, 96)"));
  }
  const int group = c.n_heads / c.n_kv_heads;
  if (group > 16) {
    return absl::UnimplementedError(absl::StrCat("CUDA backend: ", group, " query heads per KV head (at most 16)"));
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
  backend->n_local_experts_ = c.n_experts;
  if (rank && !weights->layers.empty()) {
    backend->expert_begin_ = rank->expert_begin;
    backend->n_local_experts_ = static_cast<int>(weights->layers[0].gate_exps.n_mats);
  }
  if (rank) {
    backend->all_reduce_ = rank->all_reduce;
    if (!rank->all_reduce->Capturable()) backend->use_graphs_ = false;
    backend->description_ += absl::StrCat(", a tensor-parallel rank (", rank->all_reduce->Name(), ")");
  }
  CUDA_CHECK(cudaStreamCreateWithFlags(&backend->stream_, cudaStreamNonBlocking));
  kernels::InitKernels();
  if (absl::Status s = backend->AllocateBuffers(); !s.ok()) return s;
  // A model that cannot fit is refused here, before any weight is on the
  // device; returning destroys the backend, which frees the buffers.
  auto weight_bytes = PlanWeightBytes(c, *weights, max_context);
  if (!weight_bytes.ok()) return weight_bytes.status();
  // An image's device copy of the file is released after the upload: the
  // weights add only what they take beyond it, once they are in place.
  const int64_t image_bytes = image ? static_cast<int64_t>(image->size()) : 0;
  if (auto fits = backend->PlanKvBlocks(weight_bytes->total() - image_bytes); !fits.ok()) return fits.status();
  if (image) {
    // During the repack the device holds the weights done so far next to
    // what is left of the file: with the file released piece by piece as
    // layers finish, about one layer (twice, for pieces that straddle two)
    // beyond the file; else the whole of the weights beside it.
    const WeightBytes& wb = *weight_bytes;
    const int64_t per_layer = (wb.attention + wb.experts + wb.router) / std::max(1, c.n_layers);
    const int64_t peak = image->ReleasesProgressively()
                             ? 2 * per_layer + wb.embedding + wb.unembedding + wb.small + (int64_t{256} << 20)
                             : wb.total();
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (static_cast<int64_t>(free_b) < std::min(peak, wb.total())) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "CUDA backend: repacking the weights needs ", FormatGiB(std::min(peak, wb.total())),
          " next to the device copy of the file (", FormatGiB(image_bytes), "), but only ",
          FormatGiB(static_cast<int64_t>(free_b)), " is free; use a GPU with more memory"));
    }
    if (absl::Status s = backend->CheckFiniteOnDevice(*weights); !s.ok()) return s;
  } else {
    backend->upload_ = std::make_unique<CudaBackendImpl::UploadState>(options.upload_threads);
    for (int i = 0; i < 2; ++i) CUDA_CHECK(cudaEventRecord(backend->upload_->done[i], backend->stream_));
  }
  absl::Status uploaded = backend->Upload(file, *weights, image);
  backend->upload_.reset();  // waits for the last copies
  if (!uploaded.ok()) return uploaded;
  if (image) {
    // The weights are in their own layout now: the file's bytes go before
    // the KV cache takes the memory.
    CUDA_CHECK(cudaStreamSynchronize(backend->stream_));
    image->ReleaseDeviceMemory();
  }
  if (absl::Status s = backend->AllocateKv(); !s.ok()) return s;
  CUDA_CHECK(cudaStreamSynchronize(backend->stream_));
  return backend;
}

absl::StatusOr<int64_t> CudaBackendImpl::PlanKvBlocks(int64_t to_allocate) const {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const KvBytes kv = PlanKvBytes(config_, kv_->block_size(), kv_->ring_blocks(), kernels::kAttnSplitKeys);
  const int64_t free_bytes = static_cast<int64_t>(free_b);
  if (options_.kv.num_full_blocks > 0) {
    // --kv_blocks as given: it must fit in what is free; the fraction does not apply.
    const int64_t need = to_allocate + options_.kv.num_full_blocks * kv.per_pool_block +
                         kv.per_sequence * kv_->max_sequences();
    if (free_bytes < need) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "CUDA backend: ", FormatGiB(free_bytes), " of device memory is free but ",
          to_allocate > 0 ? absl::StrCat("the weights need ", FormatGiB(to_allocate), " and ") : "",
          "the KV cache of --kv_blocks=", options_.kv.num_full_blocks, " needs ", FormatGiB(need - to_allocate),
          "; lower --kv_blocks, --max_sequences or --max_context, or use a GPU with more memory"));
    }
    return options_.kv.num_full_blocks;
  }
  KvPoolRequest r;
  r.device_total = static_cast<int64_t>(total_b);
  r.in_use = static_cast<int64_t>(total_b) - free_bytes;
  r.to_allocate = to_allocate;
  r.fraction = options_.gpu_memory_fraction;
  r.kv = kv;
  r.max_sequences = kv_->max_sequences();
  r.max_context = max_context_;
  auto plan = PlanKvPool(r);
  if (!plan.ok()) return absl::ResourceExhaustedError(absl::StrCat("CUDA backend: ", plan.status().message()));
  // What the fraction leaves may still exceed what is free (other processes).
  if (free_bytes < to_allocate + plan->kv_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "CUDA backend: the KV cache planned from --gpu_memory_fraction needs ", FormatGiB(plan->kv_bytes),
        to_allocate > 0 ? absl::StrCat(" and the weights ", FormatGiB(to_allocate)) : "", " but only ",
        FormatGiB(free_bytes), " is free; lower --gpu_memory_fraction or free the GPU of other processes"));
  }
  return plan->blocks;
}

absl::Status CudaBackendImpl::AllocateKv() {
  const model::ModelConfig& c = config_;
  auto blocks = PlanKvBlocks(0);
  if (!blocks.ok()) return blocks.status();
  if (*blocks > std::numeric_limits<int32_t>::max()) {
    return absl::ResourceExhaustedError("CUDA backend: the KV pool would exceed 2^31 blocks");
  }
  const model::KvCacheOptions pool{kv_->block_size(), static_cast<int>(*blocks), kv_->max_sequences()};
  kv_.emplace(pool, c.sliding_window);
  const int bs = kv_->block_size();
  const int64_t pool_tokens = static_cast<int64_t>(kv_->num_full_blocks()) * bs;
  split_slots_ = static_cast<int>(pool_tokens / kernels::kAttnSplitKeys) + 2 * max_seqs_ + 1;

  // KV cache: (kind layers, blocks, kv heads, block_size, head_dim) bf16 for K and V.
  int n_full = 0, n_sliding = 0;
  for (int l = 0; l < c.n_layers; ++l) (c.IsSlidingLayer(l) ? n_sliding : n_full)++;
  const int64_t block_elems = static_cast<int64_t>(c.n_kv_heads) * bs * c.head_dim;
  const int64_t full_elems = static_cast<int64_t>(kv_->num_full_blocks()) * block_elems;
  const int64_t ring_elems = static_cast<int64_t>(kv_->num_ring_blocks_total()) * block_elems;
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
  part_ = mem_.Device<float>(static_cast<int64_t>(split_slots_) * c.n_heads * (c.head_dim + 2), &vram_.workspace);
  if (mem_.failed()) {
    return absl::ResourceExhaustedError(
        "CUDA backend: out of device memory for the KV cache; lower --gpu_memory_fraction, --kv_blocks, "
        "--max_sequences or --max_context");
  }
  return absl::OkStatus();
}

absl::Status CudaBackendImpl::AllocateBuffers() {
  const model::ModelConfig& c = config_;
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), F = c.d_ff, K = c.n_experts_used;
  const int bs = kv_->block_size();
  max_seqs_ = kv_->max_sequences();
  max_tokens_ = std::max({options_.max_step_tokens, NextPow2(max_seqs_), 64});
  max_blocks_ = (max_context_ + bs - 1) / bs;
  logit_rows_ = std::max(64, NextPow2(max_seqs_));
  tokens_per_item_ = kernels::AttentionPrefillTokensPerItem(c.n_heads, c.n_kv_heads);
  max_prefill_items_ = max_tokens_ / tokens_per_item_ + max_seqs_;

  // P: (token, expert) pair slots of the MoE; a dense family's FFN uses
  // act_ and y_ as one row per token.
  const int64_t T = max_tokens_, P = T * std::max<int64_t>(K, 1);
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
  const int max_tiles = kernels::MoeMaxTiles(static_cast<int32_t>(P), c.n_experts, kernels::kMinMoeTileSlots);
  moe_tiles_ = mem_.Device<int32_t>(3 * max_tiles, ws);
  slot_token_ = mem_.Device<int32_t>(P, ws);
  pair_slot_ = mem_.Device<int32_t>(P, ws);
  sample_rows_dev_ = mem_.Device<kernels::SampleRow>(logit_rows_, ws);
  sampled_dev_ = mem_.Device<int32_t>(logit_rows_, ws);
  sample_ws_ = mem_.Device<uint8_t>(static_cast<int64_t>(kernels::SampleWorkspaceBytes(logit_rows_)), ws);
  unsampled_dev_ = c.unsampled_tokens.empty() ? nullptr : mem_.Device<uint32_t>((c.vocab_size + 31) / 32, ws);

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
  m.ring_tables = take(static_cast<int64_t>(max_seqs_) * std::max(1, kv_->ring_blocks()));
  m.full_tables = take(static_cast<int64_t>(max_seqs_) * max_blocks_);
  m.total = o;
  meta_dev_ = mem_.Device<int32_t>(m.total, ws);
  if (mem_.failed()) {
    return absl::ResourceExhaustedError(
        "CUDA backend: out of device memory for the per-pass buffers; lower --max_sequences or max_step_tokens");
  }
  CUDA_CHECK(cudaMemset(router_done_, 0, kernels::RouterCounters(static_cast<int>(T)) * sizeof(uint32_t)));
  CUDA_CHECK(cudaMemset(sample_ws_, 0, kernels::SampleWorkspaceBytes(logit_rows_)));
  if (unsampled_dev_) {
    std::vector<uint32_t> bits((c.vocab_size + 31) / 32, 0u);
    for (int32_t id : c.unsampled_tokens) bits[id >> 5] |= 1u << (id & 31);
    CUDA_CHECK(cudaMemcpy(unsampled_dev_, bits.data(), bits.size() * sizeof(uint32_t), cudaMemcpyHostToDevice));
  }
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

// ------------------------------------------ profiling and routing trace ----

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

absl::StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackendRank(const gguf::GgufFile& file,
                                                                   const CudaBackendOptions& options,
                                                                   const CudaRankSetup& rank) {
  auto b = internal::CudaBackendImpl::Create(file, options, nullptr, &rank);
  if (!b.ok()) return b.status();
  return std::unique_ptr<CudaBackend>(std::move(*b));
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackendFromImage(DeviceModelImage& image,
                                                                        const gguf::GgufFile& file,
                                                                        const CudaBackendOptions& options) {
  auto b = internal::CudaBackendImpl::Create(file, options, &image);
  if (!b.ok()) return b.status();
  return std::unique_ptr<CudaBackend>(std::move(*b));
}

}  // namespace ossgate::gpu
