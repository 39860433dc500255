// The weights on the device, part of CudaBackendImpl (cuda_backend_impl.h).
//
// Upload gives every tensor of the model its device form and counts its bytes
// in the VRAM report. Matrices are repacked into the tiled layout of
// kernels/layout.h: for a file streamed into device memory (the worker's
// load, DeviceModelImage) by a kernel on the device (kernels/repack.cu); for
// a file in host memory on host threads (kernels/repack.h) copied through
// two pinned staging buffers, so repacking overlaps the copies. Both write
// each lane with the same function (kernels/repack_tile.h); Q6_K, Q5_K, Q5_0
// and Q5_1 matrices, and Q4_K ones fused with a part of such a type or Q8_0,
// are re-quantized into Q8_0 tiles on the way (Q6_K 1.3x their file bytes,
// Q5_K and Q5_0 1.55x, Q5_1 1.4x, Q4_K 1.9x; docs/quant-formats.md). q/k/v become one
// matrix and the gate/up experts one interleaved matrix. The router becomes fp32,
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
#include "inference_worker/cuda/memory_plan.h"
#include "kernels/repack.h"

namespace ossgate::gpu::internal {

absl::StatusOr<TiledMatrix> CudaBackendImpl::UploadMatrix(WFormat fmt, int64_t rows, int64_t cols, int64_t n_mats,
                                                         bool gate_up, const kernels::RepackSource& src,
                                                         bool on_device, int64_t* category) {
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
  if (on_device) {
    if (fmt == WFormat::kF32) {
      // Row-major floats, the parts stacked: one copy per part and matrix.
      for (int64_t mat = 0; mat < n_mats; ++mat) {
        int64_t row0 = 0;
        for (int p = 0; p < src.n_parts; ++p) {
          const int64_t n = src.part_rows[p] * cols * 4;
          CUDA_CHECK(cudaMemcpyAsync(codes + mat * size.codes + row0 * cols * 4, src.part[p] + mat * n, n,
                                     cudaMemcpyDeviceToDevice, stream_));
          row0 += src.part_rows[p];
        }
      }
      return t;
    }
    kernels::RepackParams p;
    p.fmt = fmt;
    p.src = src;
    p.n_mats = n_mats;
    p.row_tiles = t.row_tiles;
    p.k_blocks = t.k_blocks;
    p.codes = codes;
    p.scales = scales;
    kernels::LaunchRepackTiles(p, stream_);
    return t;
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
        for (int64_t r = 0; r < nr; ++r) {
          std::memcpy(st + r * row_bytes, kernels::SourceRow(src, mat, r0 + r).data, row_bytes);
        }
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
    const kernels::RowSource row_src = [&](int64_t dev_row) { return kernels::SourceRow(src, mat, dev_row); };
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
  if (v.empty()) return nullptr;  // an absent bias stays absent (the kernels skip null)
  float* d = mem_.Device<float>(static_cast<int64_t>(v.size()), category);
  if (!d) return nullptr;
  CUDA_CHECK(cudaMemcpy(d, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
  return d;
}

namespace {

// Part p of a repack source: matrix m's rows, in m's encoding.
void SetPart(kernels::RepackSource* s, int p, const model::Matrix& m) {
  s->part[p] = m.data;
  s->part_rows[p] = m.rows;
  s->part_row_bytes[p] = static_cast<int64_t>(m.row_bytes);
  s->part_enc[p] = kernels::EncodingForType(m.type);
}

// One matrix's rows as the repack reads them (n_mats matrices of rows rows).
kernels::RepackSource Plain(const model::Matrix& m) {
  kernels::RepackSource s;
  SetPart(&s, 0, m);
  return s;
}


}  // namespace

absl::Status CudaBackendImpl::CheckFiniteOnDevice(const model::Weights& w) {
  const std::vector<const model::Matrix*> mats = model::AllMatrices(w);
  unsigned long long* first = mem_.Device<unsigned long long>(static_cast<int64_t>(mats.size()), &vram_.workspace);
  if (!first) return absl::ResourceExhaustedError("CUDA backend: out of device memory while checking the weights");
  CUDA_CHECK(cudaMemsetAsync(first, 0xFF, mats.size() * sizeof(unsigned long long), stream_));
  for (size_t i = 0; i < mats.size(); ++i) {
    auto fmt = kernels::FormatForType(mats[i]->type);
    if (!fmt.ok()) return fmt.status();
    kernels::LaunchFirstBadBlock(*fmt, kernels::EncodingForType(mats[i]->type), mats[i]->data,
                                 model::MatrixBlocks(*mats[i]), first + i, stream_);
  }
  std::vector<unsigned long long> host(mats.size());
  CUDA_CHECK(cudaMemcpyAsync(host.data(), first, host.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  // The first bad block of the first matrix that has one, as the host scan reports it.
  for (size_t i = 0; i < mats.size(); ++i) {
    if (host[i] != ~0ull) return model::NonFiniteBlockError(*mats[i], static_cast<int64_t>(host[i]));
  }
  return absl::OkStatus();
}

absl::Status CudaBackendImpl::UploadAttention(int l, const model::Matrix& wq, const model::Matrix& wk,
                                              const model::Matrix& wv, const model::Matrix& wo, bool on_device,
                                              LayerDev* d) {
  const int64_t D = config_.d_model, Q = config_.q_dim(), KV = config_.kv_dim();
  auto o_fmt = kernels::FormatForType(wo.type);
  if (!o_fmt.ok()) return o_fmt.status();
  // q, k and v are fused into one matrix: their types may differ (Q4_K_M
  // files mix Q4_K, Q6_K, Q5_0 and Q8_0) as long as they share a device format.
  auto dense = FusedFormat(l, "attn_q, attn_k and attn_v", {&wq, &wk, &wv});
  if (!dense.ok()) return dense.status();
  kernels::RepackSource qkv_src = Plain(wq);
  SetPart(&qkv_src, 1, wk);
  SetPart(&qkv_src, 2, wv);
  qkv_src.n_parts = 3;
  auto qkv = UploadMatrix(*dense, Q + 2 * KV, D, 1, false, qkv_src, on_device, &vram_.weights_attention);
  if (!qkv.ok()) return qkv.status();
  d->qkv = *qkv;
  auto o = UploadMatrix(*o_fmt, D, Q, 1, false, Plain(wo), on_device, &vram_.weights_attention);
  if (!o.ok()) return o.status();
  d->o = *o;
  return absl::OkStatus();
}

absl::Status CudaBackendImpl::UploadGatedFfn(int l, const model::Matrix& gate, const model::Matrix& up,
                                             const model::Matrix& down, int64_t n_mats, bool on_device,
                                             LayerDev* d) {
  const int64_t D = config_.d_model, F = config_.d_ff;
  auto dn_fmt = kernels::FormatForType(down.type);
  if (!dn_fmt.ok()) return dn_fmt.status();
  // gate and up become one interleaved matrix (layout.h).
  auto g = FusedFormat(l, absl::StrCat(gate.name, " and ", up.name), {&gate, &up});
  if (!g.ok()) return g.status();
  if (*g == WFormat::kF32 || *dn_fmt == WFormat::kF32) {
    return absl::UnimplementedError(absl::StrCat("CUDA backend: F32 feed-forward tensors (layer ", l,
                                                 ") are not supported; use MXFP4, Q8_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, "
                                                 "BF16 or F16"));
  }
  int64_t* category = n_mats > 1 ? &vram_.weights_experts : &vram_.weights_ffn;
  kernels::RepackSource gu_src = Plain(gate);
  SetPart(&gu_src, 1, up);
  gu_src.n_parts = 2;
  gu_src.gate_up = true;
  auto gu = UploadMatrix(*g, F, D, n_mats, true, gu_src, on_device, category);
  if (!gu.ok()) return gu.status();
  d->gate_up = *gu;
  auto dn = UploadMatrix(*dn_fmt, D, F, n_mats, false, Plain(down), on_device, category);
  if (!dn.ok()) return dn.status();
  d->down = *dn;
  return absl::OkStatus();
}

absl::Status CudaBackendImpl::Upload(const gguf::GgufFile& file, const model::Weights& w,
                                     DeviceModelImage* image) {
  const bool on_device = image != nullptr;
  const model::ModelConfig& c = config_;
  const int64_t D = c.d_model, E = c.n_experts;
  auto format = [](const model::Matrix& m) { return kernels::FormatForType(m.type); };
  // The bytes of a small matrix on the host (copied back for device images).
  std::vector<uint8_t> fetched;
  auto host_bytes = [&](const model::Matrix& m) -> absl::StatusOr<const uint8_t*> {
    if (!on_device) return m.data;
    const gguf::TensorInfo* t = file.FindTensor(m.name);
    if (!t) return absl::InternalError(absl::StrCat("tensor '", m.name, "' vanished"));
    fetched.resize(t->nbytes);
    if (absl::Status s = image->CopyToHost(file.data_offset() + t->offset, t->nbytes, fetched.data()); !s.ok()) {
      return s;
    }
    return fetched.data();
  };
  layers_.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerDev& d = layers_[l];
    if (c.family == model::Family::kGptOss) {
      const model::LayerWeights& L = w.layers[l];
      if (absl::Status st = UploadAttention(l, L.wq, L.wk, L.wv, L.wo, on_device, &d); !st.ok()) return st;
      // All experts, or an expert-parallel rank's (its weights hold only those).
      if (absl::Status st = UploadGatedFfn(l, L.gate_exps, L.up_exps, L.down_exps, L.gate_exps.n_mats, on_device, &d);
          !st.ok()) {
        return st;
      }
      std::vector<float> qkv_b(L.bq);
      qkv_b.insert(qkv_b.end(), L.bk.begin(), L.bk.end());
      qkv_b.insert(qkv_b.end(), L.bv.begin(), L.bv.end());
      d.qkv_bias = UploadFloats(qkv_b, &vram_.weights_attention);
      d.o_bias = UploadFloats(L.bo, &vram_.weights_attention);
      d.attn_norm = UploadFloats(L.attn_norm, &vram_.weights_small);
      d.post_norm = UploadFloats(L.post_attn_norm, &vram_.weights_small);
      d.sinks = UploadFloats(L.sinks, &vram_.weights_small);
      std::vector<float> router(static_cast<size_t>(E * D));
      auto router_bytes = host_bytes(L.router);
      if (!router_bytes.ok()) return router_bytes.status();
      for (int64_t e = 0; e < E; ++e) {
        gguf::DequantizeRow(L.router.type, *router_bytes + e * L.router.row_bytes, &router[e * D], D);
      }
      d.router_w = UploadFloats(router, &vram_.weights_router);
      d.router_b = UploadFloats(L.router_b, &vram_.weights_router);
      d.gate_b = UploadFloats(L.gate_b, &vram_.weights_experts);
      d.up_b = UploadFloats(L.up_b, &vram_.weights_experts);
      d.down_b = UploadFloats(L.down_b, &vram_.weights_experts);
    } else {
      // qwen2, phi3: no sinks (a sink logit of -1e30 adds exactly nothing to
      // any softmax, and keeps the merge of empty split states finite), no
      // o bias, q/k/v biases for qwen2 only, the dense SiLU-gated FFN.
      const model::DenseLayerWeights& L = w.dense_layers[l];
      if (absl::Status st = UploadAttention(l, L.wq, L.wk, L.wv, L.wo, on_device, &d); !st.ok()) return st;
      if (absl::Status st = UploadGatedFfn(l, L.gate, L.up, L.down, 1, on_device, &d); !st.ok()) return st;
      if (!L.bq.empty()) {
        std::vector<float> qkv_b(L.bq);
        qkv_b.insert(qkv_b.end(), L.bk.begin(), L.bk.end());
        qkv_b.insert(qkv_b.end(), L.bv.begin(), L.bv.end());
        d.qkv_bias = UploadFloats(qkv_b, &vram_.weights_attention);
      }
      d.attn_norm = UploadFloats(L.attn_norm, &vram_.weights_small);
      d.post_norm = UploadFloats(L.ffn_norm, &vram_.weights_small);
      d.sinks = UploadFloats(std::vector<float>(c.n_heads, kNoSink), &vram_.weights_small);
    }
    if (mem_.failed()) return absl::ResourceExhaustedError("CUDA backend: out of device memory while uploading");
    if (on_device) {
      // The layer's tensors are repacked: their part of the file's device
      // copy can go, so the 120b's file and weights need not fit side by side.
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      const std::string prefix = absl::StrCat("blk.", l, ".");
      for (const gguf::TensorInfo& t : file.tensors()) {
        if (t.name.compare(0, prefix.size(), prefix) == 0) image->Consumed(t, file.data_offset());
      }
    }
  }
  // Embedding rows stay in their raw ggml form (a gather, not a matmul).
  embd_type_ = static_cast<int>(w.token_embd.type);
  embd_row_bytes_ = static_cast<int64_t>(w.token_embd.row_bytes);
  {
    uint8_t* e = mem_.Device<uint8_t>(static_cast<int64_t>(w.token_embd.bytes()), &vram_.weights_embedding);
    if (!e) return absl::ResourceExhaustedError("CUDA backend: out of device memory for the embedding");
    CUDA_CHECK(cudaMemcpyAsync(e, w.token_embd.data, w.token_embd.bytes(),
                               on_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice, stream_));
    embd_ = e;
  }
  auto out_fmt = format(w.output);
  if (!out_fmt.ok()) return out_fmt.status();
  auto out = UploadMatrix(*out_fmt, c.vocab_size, D, 1, false, Plain(w.output), on_device, &vram_.weights_unembedding);
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
