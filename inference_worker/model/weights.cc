#include "inference_worker/model/weights.h"

#include <cmath>

#include "absl/strings/str_cat.h"

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

class Binder {
 public:
  explicit Binder(const gguf::GgufFile& f) : f_(f) {}

  absl::StatusOr<const TensorInfo*> Find(const std::string& name, std::initializer_list<int64_t> ne) {
    const TensorInfo* t = f_.FindTensor(name);
    if (!t) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' is missing; the file is not a complete gpt-oss model"));
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

  absl::Status Mat(const std::string& name, std::initializer_list<int64_t> ne, Matrix* out) {
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

  // 1-D or 2-D small tensor converted to float; must be F32, F16 or BF16.
  absl::Status Vec(const std::string& name, std::initializer_list<int64_t> ne, std::vector<float>* out) {
    auto t = Find(name, ne);
    if (!t.ok()) return t.status();
    const TensorInfo* ti = *t;
    if (ti->type != GgmlType::kF32 && ti->type != GgmlType::kF16 && ti->type != GgmlType::kBF16) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has type ",
                                                     gguf::GgmlTypeName(static_cast<uint32_t>(ti->type)),
                                                     "; norms, biases and sinks must be F32, F16 or BF16"));
    }
    out->resize(static_cast<size_t>(ti->elements()));
    gguf::DequantizeRow(ti->type, ti->data, out->data(), ti->elements());
    for (float v : *out) {
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' contains a non-finite value"));
      }
    }
    return absl::OkStatus();
  }

 private:
  const gguf::GgufFile& f_;
};

}  // namespace

absl::StatusOr<Weights> BindWeights(const gguf::GgufFile& file, const ModelConfig& c) {
  Binder b(file);
  Weights w;
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
  if (file.tensors().size() != static_cast<size_t>(ExpectedTensorCount(c.n_layers))) {
    // Extra tensors are harmless to the math but mean the file is not what its
    // metadata says; refuse rather than silently ignore them.
    return absl::InvalidArgumentError(absl::StrCat("the file holds ", file.tensors().size(), " tensors but a ",
                                                   c.n_layers, "-layer gpt-oss model has ",
                                                   ExpectedTensorCount(c.n_layers)));
  }
  return w;
}

}  // namespace ossgate::model
