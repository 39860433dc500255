#include "inference_worker/model/weights.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "inference_worker/model/families.h"

namespace ossgate::model {

namespace {

using gguf::GgmlType;
using gguf::TensorInfo;

std::string Shape(std::initializer_list<int64_t> ne) {
  std::string s = "[";
  bool first = true;
  for (int64_t d : ne) {
    absl::StrAppend(&s, first ? "" : ", ", d);
    first = false;
  }
  return s + "]";
}

// The first non-finite scale or value of blocks [begin, end) of a matrix's
// row-major block sequence, or -1. Q8_0, Q5_0: the fp16 scale d; Q5_1: d and
// the fp16 min m; Q4_K, Q5_K: the fp16 d and dmin of each super-block; Q6_K:
// its fp16 d; MXFP4: the E8M0 byte (0xFF
// is NaN in the OCP MX format); F16 / BF16 / F32: every value. (A k-quant's
// sub-block scales are small integers: always finite.)
int64_t FirstBadBlock(const Matrix& m, int64_t begin, int64_t end) {
  auto f16_bad_at = [&m](int64_t block, size_t block_bytes, size_t at) {
    uint16_t v;
    std::memcpy(&v, m.data + block * block_bytes + at, sizeof(v));
    return (v & 0x7C00u) == 0x7C00u;
  };
  switch (m.type) {
    case GgmlType::kQ4_K:
      for (int64_t b = begin; b < end; ++b) {
        if (f16_bad_at(b, sizeof(gguf::BlockQ4_K), offsetof(gguf::BlockQ4_K, d)) ||
            f16_bad_at(b, sizeof(gguf::BlockQ4_K), offsetof(gguf::BlockQ4_K, dmin))) {
          return b;
        }
      }
      return -1;
    case GgmlType::kQ5_K:
      for (int64_t b = begin; b < end; ++b) {
        if (f16_bad_at(b, sizeof(gguf::BlockQ5_K), offsetof(gguf::BlockQ5_K, d)) ||
            f16_bad_at(b, sizeof(gguf::BlockQ5_K), offsetof(gguf::BlockQ5_K, dmin))) {
          return b;
        }
      }
      return -1;
    case GgmlType::kQ5_0:
      for (int64_t b = begin; b < end; ++b) {
        if (f16_bad_at(b, sizeof(gguf::BlockQ5_0), offsetof(gguf::BlockQ5_0, d))) return b;
      }
      return -1;
    case GgmlType::kQ5_1:
      for (int64_t b = begin; b < end; ++b) {
        if (f16_bad_at(b, sizeof(gguf::BlockQ5_1), offsetof(gguf::BlockQ5_1, d)) ||
            f16_bad_at(b, sizeof(gguf::BlockQ5_1), offsetof(gguf::BlockQ5_1, m))) {
          return b;
        }
      }
      return -1;
    case GgmlType::kQ6_K:
      for (int64_t b = begin; b < end; ++b) {
        if (f16_bad_at(b, sizeof(gguf::BlockQ6_K), offsetof(gguf::BlockQ6_K, d))) return b;
      }
      return -1;
    case GgmlType::kQ8_0:
      for (int64_t b = begin; b < end; ++b) {
        uint16_t d;
        std::memcpy(&d, m.data + b * sizeof(gguf::BlockQ8_0), sizeof(d));
        if ((d & 0x7C00u) == 0x7C00u) return b;
      }
      return -1;
    case GgmlType::kMXFP4:
      for (int64_t b = begin; b < end; ++b) {
        if (m.data[b * sizeof(gguf::BlockMxfp4)] == 0xFF) return b;
      }
      return -1;
    case GgmlType::kF16:
      for (int64_t b = begin; b < end; ++b) {
        uint16_t v;
        std::memcpy(&v, m.data + b * 2, 2);
        if ((v & 0x7C00u) == 0x7C00u) return b;
      }
      return -1;
    case GgmlType::kBF16:
      for (int64_t b = begin; b < end; ++b) {
        uint16_t v;
        std::memcpy(&v, m.data + b * 2, 2);
        if ((v & 0x7F80u) == 0x7F80u) return b;
      }
      return -1;
    case GgmlType::kF32:
      for (int64_t b = begin; b < end; ++b) {
        uint32_t v;
        std::memcpy(&v, m.data + b * 4, 4);
        if ((v & 0x7F800000u) == 0x7F800000u) return b;
      }
      return -1;
  }
  return -1;
}

// Every matrix's scales (quantized) or values (float) must be finite: a NaN
// scale would turn whole rows of outputs into NaN at run time. The blocks of
// all matrices are scanned by the hardware's threads in slices; the error
// names the tensor, the matrix (expert), the row and the block.
absl::Status CheckFinite(const std::vector<const Matrix*>& mats) {
  struct Slice {
    const Matrix* m;
    int64_t begin, end;
  };
  std::vector<Slice> slices;
  constexpr int64_t kSliceBlocks = int64_t{1} << 20;
  for (const Matrix* m : mats) {
    const int64_t blocks = MatrixBlocks(*m);
    for (int64_t b = 0; b < blocks; b += kSliceBlocks) slices.push_back({m, b, std::min(blocks, b + kSliceBlocks)});
  }
  std::vector<int64_t> bad(slices.size(), -1);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < slices.size();) bad[i] = FirstBadBlock(*slices[i].m, slices[i].begin, slices[i].end);
  };
  const unsigned n = std::clamp(std::thread::hardware_concurrency(), 1u, 16u);
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < n && t < slices.size(); ++t) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < slices.size(); ++i) {
    if (bad[i] < 0) continue;
    return NonFiniteBlockError(*slices[i].m, bad[i]);
  }
  return absl::OkStatus();
}

}  // namespace

namespace internal {

absl::StatusOr<const TensorInfo*> TensorBinder::Find(const std::string& name, std::initializer_list<int64_t> ne) {
  const TensorInfo* t = f_.FindTensor(name);
  if (!t) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "' is missing; the file is not a complete ", FamilyName(family_), " model"));
  }
  bool ok = static_cast<size_t>(t->n_dims) == ne.size();
  int i = 0;
  for (int64_t d : ne) ok = ok && t->ne[i++] == d;
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has shape ", t->ShapeString(), ", expected ",
                                                   Shape(ne), " for this model's metadata"));
  }
  return t;
}

absl::Status TensorBinder::Mat(const std::string& name, std::initializer_list<int64_t> ne, Matrix* out) {
  auto t = Find(name, ne);
  if (!t.ok()) return t.status();
  const TensorInfo* ti = *t;
  out->type = ti->type;
  out->cols = ti->ne[0];
  out->rows = ti->ne[1];
  out->n_mats = ti->ne[2];
  out->row_bytes = static_cast<uint64_t>(gguf::RowBytes(ti->type, ti->ne[0]));
  out->data = ti->data;
  out->name = name;
  return absl::OkStatus();
}

absl::Status TensorBinder::Vec(const std::string& name, std::initializer_list<int64_t> ne, std::vector<float>* out) {
  auto t = Find(name, ne);
  if (!t.ok()) return t.status();
  const TensorInfo* ti = *t;
  if (ti->type != GgmlType::kF32 && ti->type != GgmlType::kF16 && ti->type != GgmlType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has type ",
                                                   gguf::GgmlTypeName(static_cast<uint32_t>(ti->type)),
                                                   "; norms, biases and sinks must be F32, F16 or BF16"));
  }
  out->resize(static_cast<size_t>(ti->elements()));
  const uint8_t* bytes = ti->data;
  std::vector<uint8_t> fetched;
  if (o_.fetch) {
    if (absl::Status s = o_.fetch(*ti, &fetched); !s.ok()) return s;
    if (fetched.size() != ti->nbytes) {
      return absl::InternalError(absl::StrCat("tensor '", name, "': fetched ", fetched.size(), " of ", ti->nbytes,
                                              " bytes"));
    }
    bytes = fetched.data();
  }
  gguf::DequantizeRow(ti->type, bytes, out->data(), ti->elements());
  for (float v : *out) {
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' contains a non-finite value"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTensorCount(const gguf::GgufFile& file, const ModelConfig& c, int expected) {
  if (file.tensors().size() == static_cast<size_t>(expected)) return absl::OkStatus();
  // The dense families' count depends on output.weight: say which case applied.
  const char* variant = c.family == Family::kGptOss ? ""
                        : c.tied_embeddings         ? " with tied embeddings"
                                                    : " with an output.weight";
  return absl::InvalidArgumentError(absl::StrCat("the file holds ", file.tensors().size(), " tensors but a ",
                                                 c.n_layers, "-layer ", FamilyName(c.family), " model", variant,
                                                 " has ", expected));
}

}  // namespace internal

int64_t MatrixBlocks(const Matrix& m) {
  const auto traits = gguf::GetTypeTraits(static_cast<uint32_t>(m.type));
  return m.cols / (traits ? traits->block_elems : 1) * m.rows * m.n_mats;
}

absl::Status NonFiniteBlockError(const Matrix& m, int64_t bad) {
  const auto traits = gguf::GetTypeTraits(static_cast<uint32_t>(m.type));
  const int64_t per_row = m.cols / (traits ? traits->block_elems : 1);
  const int64_t row = bad / per_row, block = bad % per_row;  // row counts through the stacked matrices
  const bool k_quant = m.type == GgmlType::kQ4_K || m.type == GgmlType::kQ5_K || m.type == GgmlType::kQ6_K;
  const bool quantized = m.type == GgmlType::kQ8_0 || m.type == GgmlType::kMXFP4 ||
                         m.type == GgmlType::kQ5_0 || m.type == GgmlType::kQ5_1 || k_quant;
  return absl::InvalidArgumentError(absl::StrCat(
      "tensor '", m.name, "' has a non-finite ", quantized ? "block scale" : "value", " at ",
      m.n_mats > 1 ? absl::StrCat("matrix ", row / m.rows, ", ") : "", "row ", m.first_row + row % m.rows, ", ",
      quantized ? "block " : "column ", block, m.type == GgmlType::kMXFP4 ? " (E8M0 0xFF, NaN)" : "",
      k_quant ? " (a 256-element super-block's fp16 scale)" : "",
      "; the file is corrupt or was written wrongly: re-download it or convert it again"));
}

std::vector<const Matrix*> AllMatrices(const Weights& w) {
  std::vector<const Matrix*> mats = {&w.token_embd};
  if (w.output.data != w.token_embd.data) mats.push_back(&w.output);
  for (const LayerWeights& L : w.layers) {
    for (const Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.router, &L.gate_exps, &L.up_exps, &L.down_exps}) {
      mats.push_back(m);
    }
  }
  for (const DenseLayerWeights& L : w.dense_layers) {
    for (const Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) mats.push_back(m);
  }
  return mats;
}

namespace internal {

absl::Status BindGptOss(const gguf::GgufFile& file, const ModelConfig& c, TensorBinder& b, Weights* out) {
  Weights& w = *out;
  const int64_t D = c.d_model, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim(), E = c.n_experts, F = c.d_ff;
#define OSSGATE_TRY(expr) \
  if (absl::Status s = (expr); !s.ok()) return s
  OSSGATE_TRY(b.Mat("token_embd.weight", {D, V}, &w.token_embd));
  OSSGATE_TRY(b.Vec("output_norm.weight", {D}, &w.output_norm));
  OSSGATE_TRY(b.Mat("output.weight", {D, V}, &w.output));
  w.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = absl::StrCat("blk.", l, ".");
    OSSGATE_TRY(b.Vec(p + "attn_norm.weight", {D}, &L.attn_norm));
    OSSGATE_TRY(b.Mat(p + "attn_q.weight", {D, Q}, &L.wq));
    OSSGATE_TRY(b.Vec(p + "attn_q.bias", {Q}, &L.bq));
    OSSGATE_TRY(b.Mat(p + "attn_k.weight", {D, KV}, &L.wk));
    OSSGATE_TRY(b.Vec(p + "attn_k.bias", {KV}, &L.bk));
    OSSGATE_TRY(b.Mat(p + "attn_v.weight", {D, KV}, &L.wv));
    OSSGATE_TRY(b.Vec(p + "attn_v.bias", {KV}, &L.bv));
    OSSGATE_TRY(b.Mat(p + "attn_output.weight", {Q, D}, &L.wo));
    OSSGATE_TRY(b.Vec(p + "attn_output.bias", {D}, &L.bo));
    OSSGATE_TRY(b.Vec(p + "attn_sinks.weight", {c.n_heads}, &L.sinks));
    OSSGATE_TRY(b.Vec(p + "post_attention_norm.weight", {D}, &L.post_attn_norm));
    OSSGATE_TRY(b.Mat(p + "ffn_gate_inp.weight", {D, E}, &L.router));
    OSSGATE_TRY(b.Vec(p + "ffn_gate_inp.bias", {E}, &L.router_b));
    if (file.FindTensor(p + "ffn_gate_up_exps.weight")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", p, "ffn_gate_up_exps.weight': fused gate/up experts are not supported; convert with separate "
          "ffn_gate_exps/ffn_up_exps tensors as the official ggml-org GGUF does"));
    }
    OSSGATE_TRY(b.Mat(p + "ffn_gate_exps.weight", {D, F, E}, &L.gate_exps));
    OSSGATE_TRY(b.Vec(p + "ffn_gate_exps.bias", {F, E}, &L.gate_b));
    OSSGATE_TRY(b.Mat(p + "ffn_up_exps.weight", {D, F, E}, &L.up_exps));
    OSSGATE_TRY(b.Vec(p + "ffn_up_exps.bias", {F, E}, &L.up_b));
    OSSGATE_TRY(b.Mat(p + "ffn_down_exps.weight", {F, D, E}, &L.down_exps));
    OSSGATE_TRY(b.Vec(p + "ffn_down_exps.bias", {D, E}, &L.down_b));
  }
#undef OSSGATE_TRY
  return absl::OkStatus();
}

}  // namespace internal

absl::StatusOr<Weights> BindWeights(const gguf::GgufFile& file, const ModelConfig& c, const BindOptions& options) {
  internal::TensorBinder b(file, options, c.family);
  Weights w;
  absl::Status bound;
  int expected_tensors = 0;
  switch (c.family) {
    case Family::kGptOss:
      bound = internal::BindGptOss(file, c, b, &w);
      expected_tensors = ExpectedTensorCount(c.n_layers);
      break;
    case Family::kQwen2:
      bound = internal::BindQwen2(file, c, b, &w);
      expected_tensors = Qwen2TensorCount(c.n_layers, c.tied_embeddings);
      break;
    case Family::kPhi3:
      bound = internal::BindPhi3(file, c, b, &w);
      expected_tensors = Phi3TensorCount(c.n_layers, c.tied_embeddings);
      break;
  }
  if (!bound.ok()) return bound;
  if (options.check_matrices) {
    if (absl::Status s = CheckFinite(AllMatrices(w)); !s.ok()) return s;
  }
  if (absl::Status s = internal::CheckTensorCount(file, c, expected_tensors); !s.ok()) return s;
  return w;
}

}  // namespace ossgate::model
