// Model hyperparameters read from `gpt-oss.*` GGUF metadata (spec §3), and
// the YaRN RoPE tables derived from them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"

namespace ossgate::model {

struct ModelConfig {
  int n_layers = 0;          // gpt-oss.block_count
  int d_model = 0;           // gpt-oss.embedding_length (D)
  int n_heads = 0;           // gpt-oss.attention.head_count (H)
  int n_kv_heads = 0;        // gpt-oss.attention.head_count_kv
  int head_dim = 0;          // gpt-oss.attention.key_length (never D / H)
  int n_experts = 0;         // gpt-oss.expert_count (E)
  int n_experts_used = 0;    // gpt-oss.expert_used_count (top-k)
  int d_ff = 0;              // gpt-oss.expert_feed_forward_length (F)
  int vocab_size = 0;        // rows of token_embd.weight (= tokenizer.ggml.tokens, when the file has them)
  // Ids the model never emits: those of tokenizer.ggml.token_type UNUSED (5),
  // the padding rows of the vocabulary (o200k_harmony: 200019..201087),
  // ascending. Every backend's logits hold -inf there (SuppressUnsampled in
  // backend.h), so no sampler returns them.
  std::vector<int32_t> unsampled_tokens;
  int context_length = 0;    // gpt-oss.context_length
  int sliding_window = 0;    // gpt-oss.attention.sliding_window (tokens, current one included)
  float rms_eps = 1e-5f;     // gpt-oss.attention.layer_norm_rms_epsilon
  float rope_theta = 0.0f;   // gpt-oss.rope.freq_base
  // YaRN; factor 1 (or no scaling key) means plain RoPE.
  float rope_scaling_factor = 1.0f;     // gpt-oss.rope.scaling.factor
  int rope_original_context = 0;        // gpt-oss.rope.scaling.original_context_length
  float yarn_beta_fast = 32.0f;         // llama.cpp defaults; optional keys
  float yarn_beta_slow = 1.0f;
  // Not stored in GGUF (fixed by the architecture, spec §5.9).
  float swiglu_alpha = 1.702f;
  float swiglu_limit = 7.0f;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Even layers use the sliding window, odd layers full attention (spec §3).
  bool IsSlidingLayer(int layer) const { return sliding_window > 0 && layer % 2 == 0; }

  std::string DebugString() const;
};

// Reads and validates the config. Rejects other architectures, missing keys,
// inconsistent head counts and non-positive sizes with a clear message.
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
