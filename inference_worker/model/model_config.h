// Model hyperparameters read from a GGUF file's `<architecture>.*` metadata
// (gpt-oss: spec §3; qwen2, phi3: the keys llama.cpp's convert_hf_to_gguf.py
// writes), and the RoPE tables derived from them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"

namespace ossgate::model {

// The model families ossgate runs, one per GGUF general.architecture. Each
// family has its own metadata reader (model_config.cc, dense_families.cc),
// tensor binding (weights.cc, dense_families.cc) and layer in the CPU
// forward pass (cpu_backend.cc).
enum class Family {
  kGptOss,  // "gpt-oss": MoE with MXFP4 experts, attention sinks, 128-token window on even layers, YaRN
  kQwen2,   // "qwen2": dense SiLU-gated FFN, GQA, q/k/v biases, usually tied embeddings
  kPhi3,    // "phi3": dense SiLU-gated FFN, fused attn_qkv and gate/up, sliding window on every layer
};

// The general.architecture value of a family: "gpt-oss", "qwen2", "phi3".
const char* FamilyName(Family family);

// Keys are <arch>.<name>, arch = FamilyName(family); "gpt-oss only" fields
// stay zero (or at their defaults) for the dense families.
struct ModelConfig {
  Family family = Family::kGptOss;  // general.architecture
  int n_layers = 0;          // block_count
  int d_model = 0;           // embedding_length (D)
  int n_heads = 0;           // attention.head_count (H)
  int n_kv_heads = 0;        // attention.head_count_kv
  // gpt-oss: attention.key_length (never D / H); qwen2, phi3: key_length when
  // present, else D / H (the converter writes the key only when the HF config
  // names a head_dim).
  int head_dim = 0;
  int n_experts = 0;         // gpt-oss only: expert_count (E)
  int n_experts_used = 0;    // gpt-oss only: expert_used_count (top-k)
  int d_ff = 0;              // gpt-oss: expert_feed_forward_length; qwen2, phi3: feed_forward_length (F)
  int vocab_size = 0;        // rows of token_embd.weight (= tokenizer.ggml.tokens, when the file has them)
  // qwen2, phi3: the file has no output.weight and the unembedding is
  // token_embd.weight (Qwen2.5-0.5B). gpt-oss files always carry output.weight.
  bool tied_embeddings = false;
  // Ids the model never emits: those of tokenizer.ggml.token_type UNUSED (5),
  // the padding rows of the vocabulary (o200k_harmony: 200019..201087),
  // ascending. Every backend's logits hold -inf there (SuppressUnsampled in
  // backend.h), so no sampler returns them.
  std::vector<int32_t> unsampled_tokens;
  int context_length = 0;    // context_length
  // attention.sliding_window (tokens, current one included: a query at p
  // sees p - window + 1 .. p); gpt-oss and phi3, 0 = none.
  int sliding_window = 0;
  float rms_eps = 1e-5f;     // attention.layer_norm_rms_epsilon
  float rope_theta = 0.0f;   // rope.freq_base
  // YaRN (gpt-oss only); factor 1 (or no scaling key) means plain RoPE.
  float rope_scaling_factor = 1.0f;     // gpt-oss.rope.scaling.factor
  int rope_original_context = 0;        // gpt-oss.rope.scaling.original_context_length
  float yarn_beta_fast = 32.0f;         // llama.cpp defaults; optional keys
  float yarn_beta_slow = 1.0f;
  // gpt-oss only; not stored in GGUF (fixed by the architecture, spec §5.9).
  float swiglu_alpha = 1.702f;
  float swiglu_limit = 7.0f;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Whether `layer` attends through the sliding window. gpt-oss: even layers
  // (odd ones full attention, spec §3). phi3: every layer, as HF transformers'
  // Phi3Model masks (llama.cpp ignores the window; docs/architecture.md).
  // qwen2: none (the converter writes no window; Qwen2.5 runs with
  // use_sliding_window false).
  bool IsSlidingLayer(int layer) const {
    if (sliding_window <= 0) return false;
    switch (family) {
      case Family::kGptOss:
        return layer % 2 == 0;
      case Family::kPhi3:
        return true;
      case Family::kQwen2:
        return false;
    }
    return false;
  }

  std::string DebugString() const;
};

// Reads and validates the config of any supported family (by
// general.architecture). Rejects other architectures, missing keys,
// inconsistent head counts, non-positive sizes and features a family's
// reader does not implement (phi3 LongRoPE, qwen2/phi3 rope scaling) with an
// InvalidArgument naming the key or tensor.
absl::StatusOr<ModelConfig> ReadModelConfig(const gguf::GgufFile& file);

// RoPE inverse frequencies (head_dim / 2 entries, float64) and the magnitude
// factor of YaRN, computed the HF way with truncate=false (gpt-oss's config):
// correction range not rounded, clamped to [0, head_dim - 1].
struct RopeTables {
  std::vector<double> inv_freq;
  double attention_factor = 1.0;  // multiplies both cos and sin
};
RopeTables ComputeRope(const ModelConfig& config);

}  // namespace ossgate::model
