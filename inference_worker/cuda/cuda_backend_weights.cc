// The weights on the device, part of CudaBackendImpl (cuda_backend_impl.h).
//
// Upload gives every tensor of the model its device form and counts its bytes
// in the VRAM report. Matrices are repacked on host threads into the tiled
// layout of kernels/layout.h (kernels/repack.h) and copied through two pinned
// staging buffers, so repacking overlaps the copies; q/k/v become one matrix
// and the gate/up experts one interleaved matrix. The router becomes fp32,
// the embedding stays in raw ggml rows, norms, biases and sinks are fp32, and
// the RoPE rotation of every position is computed once. Create
// (cuda_backend.cc) calls Upload before it allocates the KV cache and the
// per-pass buffers; the forward pass (cuda_backend_forward.cc) reads what
// Upload leaves in layers_, embd_, output_ and the RoPE tables.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "inference_worker/cuda/cuda_backend_impl.h"
#include "kernels/repack.h"

namespace ossgate::gpu::internal {

absl::StatusOr<TiledMatrix> CudaBackendImpl::UploadMatrix(WFormat fmt, int64_t rows, int64_t cols, int64_t n_mats,
                                                         bool gate_up,
                                                         const std::function<const uint8_t*(int64_t, int64_t)>& src,
                                                         int64_t* category) {
  TiledMatrix t;
  t.fmt = fmt;
  t.rows = static_cast<int32_t>(rows);
  t.cols = static_cast<int32_t>(cols);
  t.n_mats = static_cast<int32_t>(n_mats);
  t.gate_up = gate_up;
  const kernels::TiledBytes size = kernels::TiledSize(fmt, rows, cols, gate_up);
  t.mat_code_bytes = size.codes;
  t.mat_scale_bytes = size.scales;
  uint8_t* codes = mem_.Device<uint8_t>(size.codes * n_mats, category);
  uint8_t* scales = size.scales > 0 ? mem_.Device<uint8_t>(size.scales * n_mats, category) : nullptr;
  if (mem_.failed()) {
    return absl::ResourceExhaustedError("CUDA backend: out of device memory while uploading the weights");
  }
  if (fmt == WFormat::kF32) {
    t.f32 = reinterpret_cast<const float*>(codes);
  } else {
    t.row_tiles = kernels::RowTilesFor(rows, gate_up);
    t.k_blocks = static_cast<int32_t>(cols / kernels::kBlockK);
    t.codes = codes;
    t.scales = scales;
  }
  // Pieces go through two pinned buffers, so repacking overlaps the copies.
  uint8_t* const* staging = upload_->staging;
  cudaEvent_t* done = upload_->done;
  int& which = upload_->which;
  model::ThreadPool& pool = upload_->pool;
  for (int64_t mat = 0; mat < n_mats; ++mat) {
    if (fmt == WFormat::kF32) {
      const int64_t row_bytes = cols * 4;
      const int64_t rows_per_piece = std::max<int64_t>(1, kStageBytes / row_bytes);
      for (int64_t r0 = 0; r0 < rows; r0 += rows_per_piece) {
        const int64_t nr = std::min(rows_per_piece, rows - r0);
        CUDA_CHECK(cudaEventSynchronize(done[which]));
        uint8_t* st = staging[which];
        for (int64_t r = 0; r < nr; ++r) std::memcpy(st + r * row_bytes, src(mat, r0 + r), row_bytes);
        CUDA_CHECK(cudaMemcpyAsync(codes + mat * size.codes + r0 * row_bytes, st, nr * row_bytes,
                                   cudaMemcpyHostToDevice, stream_));
        CUDA_CHECK(cudaEventRecord(done[which], stream_));
        which ^= 1;
      }
      continue;
    }
    const int64_t tile_code = kernels::TileCodeBytes(fmt), tile_scale = kernels::TileScaleBytes(fmt);
    const int64_t per_rt = t.k_blocks * (tile_code + tile_scale);
    const int64_t rts_per_piece = std::max<int64_t>(1, kStageBytes / per_rt);
    const kernels::RowSource row_src = [&](int64_t dev_row) { return src(mat, dev_row); };
    for (int64_t rt0 = 0; rt0 < t.row_tiles; rt0 += rts_per_piece) {
      const int64_t nrt = std::min<int64_t>(rts_per_piece, t.row_tiles - rt0);
      CUDA_CHECK(cudaEventSynchronize(done[which]));
      uint8_t* st_codes = staging[which];
      uint8_t* st_scales = st_codes + nrt * t.k_blocks * tile_code;
      pool.ParallelFor(nrt, std::max<int64_t>(1, nrt / (pool.size() * 4)), [&](int64_t b, int64_t e) {
        kernels::RepackTiles(fmt, t.k_blocks, row_src, rt0 + b, rt0 + e, st_codes + b * t.k_blocks * tile_code,
                             tile_scale ? st_scales + b * t.k_blocks * tile_scale : nullptr);
      });
      CUDA_CHECK(cudaMemcpyAsync(codes + mat * size.codes + rt0 * t.k_blocks * tile_code, st_codes,
                                 nrt * t.k_blocks * tile_code, cudaMemcpyHostToDevice, stream_));
      if (tile_scale) {
        CUDA_CHECK(cudaMemcpyAsync(scales + mat * size.scales + rt0 * t.k_blocks * tile_scale, st_scales,
                                   nrt * t.k_blocks * tile_scale, cudaMemcpyHostToDevice, stream_));
      }
      CUDA_CHECK(cudaEventRecord(done[which], stream_));
      which ^= 1;
    }
  }
  return t;
}

float* CudaBackendImpl::UploadFloats(const std::vector<float>& v, int64_t* category) {
  float* d = mem_.Device<float>(static_cast<int64_t>(v.size()), category);
  if (!d) return nullptr;
  CUDA_CHECK(cudaMemcpy(d, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
  return d;
}

absl::Status CudaBackendImpl::Upload(const gguf::GgufFile& file, const model::Weights& w) {
  (void)file;
  const model::ModelConfig& c = config_;
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), E = c.n_experts, F = c.d_ff;
  auto format = [](const model::Matrix& m) { return kernels::FormatForType(m.type); };
  layers_.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    const model::LayerWeights& L = w.layers[l];
    LayerDev& d = layers_[l];
    if (L.wq.type != L.wk.type || L.wq.type != L.wv.type) {
      return absl::InvalidArgumentError(absl::StrCat("CUDA backend: layer ", l,
                                                     ": attn_q, attn_k and attn_v must share one type (they are "
                                                     "fused into one matrix)"));
    }
    auto dense = format(L.wq);
    auto wo = format(L.wo);
    auto gate = format(L.gate_exps);
    auto down = format(L.down_exps);
    if (!dense.ok()) return dense.status();
    if (!wo.ok()) return wo.status();
    if (!gate.ok()) return gate.status();
    if (!down.ok()) return down.status();
    if (L.gate_exps.type != L.up_exps.type) {
      return absl::InvalidArgumentError(absl::StrCat("CUDA backend: layer ", l, ": gate and up experts differ in type"));
    }
    if (*gate == WFormat::kF32 || *down == WFormat::kF32) {
      return absl::UnimplementedError(absl::StrCat("CUDA backend: F32 expert tensors (layer ", l,
                                                   ") are not supported; use MXFP4, Q8_0, BF16 or F16"));
    }
    auto qkv = UploadMatrix(
        *dense, Q + 2 * KV, D, 1, false,
        [&](int64_t, int64_t r) -> const uint8_t* {
          if (r < Q) return L.wq.Row(0, r);
          if (r < Q + KV) return L.wk.Row(0, r - Q);
          if (r < Q + 2 * KV) return L.wv.Row(0, r - Q - KV);
          return nullptr;
        },
        &vram_.weights_attention);
    if (!qkv.ok()) return qkv.status();
    d.qkv = *qkv;
    auto o = UploadMatrix(
        *wo, D, Q, 1, false, [&](int64_t, int64_t r) { return r < D ? L.wo.Row(0, r) : nullptr; },
        &vram_.weights_attention);
    if (!o.ok()) return o.status();
    d.o = *o;
    auto gu = UploadMatrix(
        *gate, F, D, E, true,
        [&](int64_t mat, int64_t dev_row) -> const uint8_t* {
          bool is_up = false;
          const int64_t f = kernels::GateUpSourceRow(dev_row, F, &is_up);
          if (f < 0) return nullptr;
          return is_up ? L.up_exps.Row(mat, f) : L.gate_exps.Row(mat, f);
        },
        &vram_.weights_experts);
    if (!gu.ok()) return gu.status();
    d.gate_up = *gu;
    auto dn = UploadMatrix(
        *down, D, F, E, false, [&](int64_t mat, int64_t r) { return r < D ? L.down_exps.Row(mat, r) : nullptr; },
        &vram_.weights_experts);
    if (!dn.ok()) return dn.status();
    d.down = *dn;

    std::vector<float> qkv_b(L.bq);
    qkv_b.insert(qkv_b.end(), L.bk.begin(), L.bk.end());
    qkv_b.insert(qkv_b.end(), L.bv.begin(), L.bv.end());
    d.qkv_bias = UploadFloats(qkv_b, &vram_.weights_attention);
    d.o_bias = UploadFloats(L.bo, &vram_.weights_attention);
    d.attn_norm = UploadFloats(L.attn_norm, &vram_.weights_small);
    d.post_norm = UploadFloats(L.post_attn_norm, &vram_.weights_small);
    d.sinks = UploadFloats(L.sinks, &vram_.weights_small);
    std::vector<float> router(static_cast<size_t>(E * D));
    for (int64_t e = 0; e < E; ++e) gguf::DequantizeRow(L.router.type, L.router.Row(0, e), &router[e * D], D);
    d.router_w = UploadFloats(router, &vram_.weights_router);
    d.router_b = UploadFloats(L.router_b, &vram_.weights_router);
    d.gate_b = UploadFloats(L.gate_b, &vram_.weights_experts);
    d.up_b = UploadFloats(L.up_b, &vram_.weights_experts);
    d.down_b = UploadFloats(L.down_b, &vram_.weights_experts);
    if (mem_.failed()) return absl::ResourceExhaustedError("CUDA backend: out of device memory while uploading");
  }
  // Embedding rows stay in their raw ggml form (a gather, not a matmul).
  embd_type_ = static_cast<int>(w.token_embd.type);
  embd_row_bytes_ = static_cast<int64_t>(w.token_embd.row_bytes);
  {
    uint8_t* e = mem_.Device<uint8_t>(static_cast<int64_t>(w.token_embd.bytes()), &vram_.weights_embedding);
    if (!e) return absl::ResourceExhaustedError("CUDA backend: out of device memory for the embedding");
    CUDA_CHECK(cudaMemcpy(e, w.token_embd.data, w.token_embd.bytes(), cudaMemcpyHostToDevice));
    embd_ = e;
  }
  auto out_fmt = format(w.output);
  if (!out_fmt.ok()) return out_fmt.status();
  auto out = UploadMatrix(
      *out_fmt, c.vocab_size, D, 1, false,
      [&](int64_t, int64_t r) { return r < c.vocab_size ? w.output.Row(0, r) : nullptr; }, &vram_.weights_unembedding);
  if (!out.ok()) return out.status();
  output_ = *out;
  output_norm_ = UploadFloats(w.output_norm, &vram_.weights_small);
  inv_freq_ = mem_.Device<double>(static_cast<int64_t>(rope_.inv_freq.size()), &vram_.weights_small);
  if (mem_.failed()) return absl::ResourceExhaustedError("CUDA backend: out of device memory while uploading");
  CUDA_CHECK(cudaMemcpy(inv_freq_, rope_.inv_freq.data(), rope_.inv_freq.size() * sizeof(double),
                        cudaMemcpyHostToDevice));
  // The rotation of every position the backend can see, computed once (a
  // decode step then reads 2 x head_dim floats instead of evaluating
  // float64 sin/cos).
  rope_table_ = mem_.Device<float>(static_cast<int64_t>(max_context_) * c.head_dim, &vram_.weights_small);
  if (mem_.failed()) return absl::ResourceExhaustedError("CUDA backend: out of device memory while uploading");
  kernels::RopeParams rp;
  rp.head_dim = c.head_dim;
  rp.inv_freq = inv_freq_;
  rp.attention_factor = rope_.attention_factor;
  kernels::LaunchRopeTable(rp, rope_table_, max_context_, stream_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return absl::OkStatus();
}

}  // namespace ossgate::gpu::internal
