// The dense families, qwen2 and phi3: their GGUF metadata and tensors in the
// form llama.cpp's convert_hf_to_gguf.py writes (Qwen2Model, Phi3MiniModel;
// names from gguf-py's constants), read for the computation of HF
// transformers' Qwen2ForCausalLM and Phi3ForCausalLM:
//
//   x = embed(tokens)
//   per layer: x += o(attention(rope(q(n)), rope(k(n)), v(n))),  n = rms_norm(x) * attn_norm
//              x += down(silu(gate(m)) * up(m)),                 m = rms_norm(x) * ffn_norm
//   logits = unembed(rms_norm(x) * output_norm)
//
// qwen2: separate q/k/v with biases (o without), GQA, usually tied
// embeddings (no output.weight: the unembedding is token_embd). phi3: one
// fused attn_qkv (rows q, then k, then v, as HF's Phi3Attention slices
// qkv_proj) and one fused ffn_up (rows gate, then up: HF's Phi3MLP takes
// gate, up = gate_up_proj(x).chunk(2), and llama.cpp's swiglu activates the
// first half), viewed here as row ranges without a copy; a sliding window on
// every layer (ModelConfig::IsSlidingLayer). Both rotate whole heads in the
// NeoX layout (halves), like gpt-oss.
#include <string>

#include "absl/strings/str_cat.h"
#include "inference_worker/model/families.h"

namespace ossgate::model::internal {

namespace {

#define OSSGATE_TRY(expr) \
  if (absl::Status s = (expr); !s.ok()) return s

absl::Status ReadRequiredFloat(const gguf::GgufFile& f, const std::string& key, float* out) {
  if (!f.FindKey(key)) {
    const std::string arch = key.substr(0, key.find('.'));
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF metadata key '", key, "' is missing (required ", arch, " hyperparameter)"));
  }
  return ReadOptionalFloat(f, key, out);
}

// The keys both dense families share (the converter's TextModel
// parameters): sizes, plain RoPE, RMSNorm epsilon. Head size from
// attention.key_length when present, else embedding_length / head_count.
absl::Status ReadDenseKeys(const gguf::GgufFile& f, ModelConfig* c) {
  const std::string arch = FamilyName(c->family);
  const std::string p = arch + ".";
  constexpr int kBig = 1 << 20;
  OSSGATE_TRY(ReadPositiveInt(f, p + "block_count", 4096, &c->n_layers));
  OSSGATE_TRY(ReadPositiveInt(f, p + "embedding_length", kBig, &c->d_model));
  OSSGATE_TRY(ReadPositiveInt(f, p + "feed_forward_length", kBig, &c->d_ff));
  OSSGATE_TRY(ReadPositiveInt(f, p + "attention.head_count", 4096, &c->n_heads));
  // Absent means no grouping, as llama.cpp reads it.
  c->n_kv_heads = c->n_heads;
  if (f.FindKey(p + "attention.head_count_kv")) {
    OSSGATE_TRY(ReadPositiveInt(f, p + "attention.head_count_kv", 4096, &c->n_kv_heads));
  }
  OSSGATE_TRY(ReadPositiveInt(f, p + "context_length", 1 << 24, &c->context_length));
  if (f.FindKey(p + "attention.key_length")) {
    OSSGATE_TRY(ReadPositiveInt(f, p + "attention.key_length", 1024, &c->head_dim));
  } else if (c->d_model % c->n_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        p, "embedding_length (", c->d_model, ") is not a multiple of ", p, "attention.head_count (", c->n_heads,
        ") and the file has no ", p, "attention.key_length: the head size is unknown"));
  } else {
    c->head_dim = c->d_model / c->n_heads;
  }
  if (f.FindKey(p + "attention.value_length")) {
    int value_length = 0;
    OSSGATE_TRY(ReadPositiveInt(f, p + "attention.value_length", 1024, &value_length));
    if (value_length != c->head_dim) {
      return absl::InvalidArgumentError(absl::StrCat(p, "attention.value_length (", value_length,
                                                     ") differs from the key head size (", c->head_dim, "); ", arch,
                                                     " uses equal head sizes"));
    }
  }
  if (c->n_heads % c->n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(p, "attention.head_count (", c->n_heads,
                                                   ") must be a multiple of ", p, "attention.head_count_kv (",
                                                   c->n_kv_heads, ")"));
  }
  if (c->head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("the head size ", c->head_dim, " is odd; RoPE needs it even"));
  }
  // Absent means 10,000, llama.cpp's default (early Phi-3 conversions lack the key).
  c->rope_theta = 10000.0f;
  OSSGATE_TRY(ReadOptionalFloat(f, p + "rope.freq_base", &c->rope_theta));
  if (!(c->rope_theta > 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(p, "rope.freq_base must be > 1, found ", c->rope_theta));
  }
  OSSGATE_TRY(ReadRequiredFloat(f, p + "attention.layer_norm_rms_epsilon", &c->rms_eps));
  if (!(c->rms_eps > 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(p, "attention.layer_norm_rms_epsilon must be positive"));
  }
  if (f.FindKey(p + "rope.dimension_count")) {
    auto n_rot = f.GetUint(p + "rope.dimension_count");
    if (!n_rot.ok()) return n_rot.status();
    if (*n_rot != static_cast<uint64_t>(c->head_dim)) {
      return absl::InvalidArgumentError(absl::StrCat(
          p, "rope.dimension_count = ", *n_rot, " rotates part of each head of ", c->head_dim,
          " (partial rotary, e.g. Phi-4-mini); ossgate rotates whole heads only"));
    }
  }
  if (f.FindKey(p + "rope.scaling.type")) {
    auto t = f.GetString(p + "rope.scaling.type");
    if (!t.ok()) return t.status();
    if (*t != "none") {
      return absl::InvalidArgumentError(absl::StrCat(p, "rope.scaling.type '", *t, "' is not supported for ", arch,
                                                     " models (plain RoPE only); use a file without RoPE scaling"));
    }
  }
  c->tied_embeddings = f.FindTensor("output.weight") == nullptr;
  return absl::OkStatus();
}

// token_embd, output_norm, and output.weight or, tied, token_embd again.
absl::Status BindEmbeddings(const ModelConfig& c, TensorBinder& b, Weights* w) {
  const int64_t D = c.d_model, V = c.vocab_size;
  OSSGATE_TRY(b.Mat("token_embd.weight", {D, V}, &w->token_embd));
  OSSGATE_TRY(b.Vec("output_norm.weight", {D}, &w->output_norm));
  if (c.tied_embeddings) {
    w->output = w->token_embd;
    return absl::OkStatus();
  }
  return b.Mat("output.weight", {D, V}, &w->output);
}

}  // namespace

// ---------------------------------------------------------------------------
// qwen2 (Qwen2.5-0.5B: 24 layers, D 896, 14 q heads over 2 KV heads of 64,
// FFN 4,864, RoPE theta 1e6, RMSNorm eps 1e-6, tied embeddings).

absl::Status ReadQwen2Keys(const gguf::GgufFile& f, ModelConfig* c) { return ReadDenseKeys(f, c); }

absl::Status BindQwen2(const gguf::GgufFile& file, const ModelConfig& c, TensorBinder& b, Weights* w) {
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), F = c.d_ff;
  OSSGATE_TRY(BindEmbeddings(c, b, w));
  w->dense_layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    DenseLayerWeights& L = w->dense_layers[l];
    const std::string p = absl::StrCat("blk.", l, ".");
    OSSGATE_TRY(b.Vec(p + "attn_norm.weight", {D}, &L.attn_norm));
    OSSGATE_TRY(b.Mat(p + "attn_q.weight", {D, Q}, &L.wq));
    OSSGATE_TRY(b.Vec(p + "attn_q.bias", {Q}, &L.bq));
    OSSGATE_TRY(b.Mat(p + "attn_k.weight", {D, KV}, &L.wk));
    OSSGATE_TRY(b.Vec(p + "attn_k.bias", {KV}, &L.bk));
    OSSGATE_TRY(b.Mat(p + "attn_v.weight", {D, KV}, &L.wv));
    OSSGATE_TRY(b.Vec(p + "attn_v.bias", {KV}, &L.bv));
    OSSGATE_TRY(b.Mat(p + "attn_output.weight", {Q, D}, &L.wo));
    OSSGATE_TRY(b.Vec(p + "ffn_norm.weight", {D}, &L.ffn_norm));
    OSSGATE_TRY(b.Mat(p + "ffn_gate.weight", {D, F}, &L.gate));
    OSSGATE_TRY(b.Mat(p + "ffn_up.weight", {D, F}, &L.up));
    OSSGATE_TRY(b.Mat(p + "ffn_down.weight", {F, D}, &L.down));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// phi3 (Phi-3-mini-4k: 32 layers, D 3,072, 32 heads of 96 without grouping,
// FFN 8,192, RoPE theta 10,000, RMSNorm eps 1e-5, window 2,047, untied).

absl::Status ReadPhi3Keys(const gguf::GgufFile& f, ModelConfig* c) {
  OSSGATE_TRY(ReadDenseKeys(f, c));
  // LongRoPE (Phi-3-mini-128k, Phi-3.5): per-frequency factor tensors and an
  // attention factor that switch at the original context. Not implemented.
  for (const char* t : {"rope_factors_long.weight", "rope_factors_short.weight"}) {
    if (f.FindTensor(t)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", t, "': LongRoPE (rope_factors_long/rope_factors_short, the 128k-context Phi-3 and Phi-3.5 "
          "files) is not supported; use a 4k-context phi3 file such as Phi-3-mini-4k-instruct"));
    }
  }
  if (f.FindKey("phi3.rope.scaling.attn_factor")) {
    return absl::InvalidArgumentError(
        "phi3.rope.scaling.attn_factor: LongRoPE scaling (the 128k-context Phi-3 files) is not supported; use a "
        "4k-context phi3 file such as Phi-3-mini-4k-instruct");
  }
  if (f.FindKey("phi3.rope.scaling.original_context_length")) {
    int original = 0;
    OSSGATE_TRY(ReadPositiveInt(f, "phi3.rope.scaling.original_context_length", 1 << 24, &original));
    if (c->context_length > original) {
      return absl::InvalidArgumentError(absl::StrCat(
          "phi3.context_length (", c->context_length, ") exceeds phi3.rope.scaling.original_context_length (",
          original, "): a long-context Phi-3 needs LongRoPE, which is not supported"));
    }
  }
  // The converter writes 0 for Phi-4 (no window).
  if (f.FindKey("phi3.attention.sliding_window")) {
    auto window = f.GetUint("phi3.attention.sliding_window");
    if (!window.ok()) return window.status();
    if (*window > static_cast<uint64_t>(1 << 24)) {
      return absl::InvalidArgumentError(
          absl::StrCat("phi3.attention.sliding_window = ", *window, " is out of range 0..", 1 << 24));
    }
    c->sliding_window = static_cast<int>(*window);
  }
  return absl::OkStatus();
}

absl::Status BindPhi3(const gguf::GgufFile& file, const ModelConfig& c, TensorBinder& b, Weights* w) {
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), F = c.d_ff;
  OSSGATE_TRY(BindEmbeddings(c, b, w));
  w->dense_layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    DenseLayerWeights& L = w->dense_layers[l];
    const std::string p = absl::StrCat("blk.", l, ".");
    OSSGATE_TRY(b.Vec(p + "attn_norm.weight", {D}, &L.attn_norm));
    Matrix qkv, gate_up;
    OSSGATE_TRY(b.Mat(p + "attn_qkv.weight", {D, Q + 2 * KV}, &qkv));
    L.wq = qkv.RowRange(0, Q);
    L.wk = qkv.RowRange(Q, KV);
    L.wv = qkv.RowRange(Q + KV, KV);
    OSSGATE_TRY(b.Mat(p + "attn_output.weight", {Q, D}, &L.wo));
    OSSGATE_TRY(b.Vec(p + "ffn_norm.weight", {D}, &L.ffn_norm));
    OSSGATE_TRY(b.Mat(p + "ffn_up.weight", {D, 2 * F}, &gate_up));
    L.gate = gate_up.RowRange(0, F);
    L.up = gate_up.RowRange(F, F);
    OSSGATE_TRY(b.Mat(p + "ffn_down.weight", {F, D}, &L.down));
  }
  return absl::OkStatus();
}

#undef OSSGATE_TRY

}  // namespace ossgate::model::internal
