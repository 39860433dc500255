// Writes gpt-oss GGUF files with seeded random weights, for tests and
// benchmarks: any dimensions up to the real 20b/120b shapes, in the official
// dtype layout (MXFP4 experts, Q8_0 or BF16 dense, F32 small tensors), with
// scales that keep activations well-behaved. Tensors are generated in
// parallel and streamed to disk, so the full 20b shape needs little memory.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::tools {

struct RandomModelSpec {
  model::ModelConfig config;  // vocab_size is taken from the vocabulary
  gguf::GgmlType dense_type = gguf::GgmlType::kQ8_0;   // attention, embedding, unembedding
  gguf::GgmlType expert_type = gguf::GgmlType::kMXFP4;
  gguf::GgmlType small_type = gguf::GgmlType::kF32;    // norms, biases, sinks, router
  uint64_t seed = 1;
  std::string name = "ossgate-random";
  int threads = 0;  // 0 = all cores
  // Multiplies the spread of the matrices and biases that write into the
  // residual stream (attn_output, ffn_down_exps). 1 (the default) keeps the
  // historical bytes. 1/sqrt(2 * layers), the GPT-2 initialisation, gives a
  // better-conditioned model whose per-layer updates do not dominate the
  // residual stream (used by the GPU accuracy tests; see docs/cuda.md).
  float residual_scale = 1.0f;
};

// Presets: "tiny" (2 layers, d 64), "small" (4 layers, d 128), "medium" (4
// layers at the real width 2880), "20b", "120b". Unknown name -> NotFound.
absl::Status ApplyPreset(const std::string& preset, model::ModelConfig* config);

// Writes the model with the given vocabulary (tokens, merges, types) as its
// tokenizer metadata. The vocabulary size sets the embedding rows.
absl::Status WriteRandomModel(const RandomModelSpec& spec, const text::VocabSpec& vocab, const std::string& path);

// Deterministic value in [-1, 1) for element `index` of stream `stream`.
float HashUniform(uint64_t seed, uint64_t stream, uint64_t index);

}  // namespace ossgate::tools
