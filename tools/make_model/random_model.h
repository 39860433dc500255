// Writes GGUF files with seeded random weights, for tests and benchmarks:
// gpt-oss (any dimensions up to the real 20b/120b shapes, in the official
// dtype layout: MXFP4 experts, Q8_0 or BF16 dense, F32 small tensors), qwen2
// and phi3 (the tensor names, shapes and metadata keys llama.cpp's
// convert_hf_to_gguf.py writes, up to Qwen2.5-0.5B and Phi-3-mini-4k), with
// scales that keep activations well-behaved. Tensors are generated in
// parallel and streamed to disk, so the full 20b shape needs little memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::tools {

struct RandomModelSpec {
  // family picks the layout; vocab_size is taken from the vocabulary;
  // tied_embeddings (qwen2, phi3) leaves output.weight out.
  model::ModelConfig config;
  // gpt-oss: attention, embedding, unembedding; qwen2, phi3: every matrix.
  // Any type gguf::QuantizeRow writes (the rows' lengths must be multiples
  // of its block).
  gguf::GgmlType dense_type = gguf::GgmlType::kQ8_0;
  gguf::GgmlType expert_type = gguf::GgmlType::kMXFP4;  // gpt-oss experts
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

// Presets, each setting config->family. gpt-oss: "tiny" (2 layers, d 64),
// "small" (4 layers, d 128), "medium" (4 layers at the real width 2880),
// "20b", "120b". qwen2: "qwen2-tiny" (2 layers, d 64, 4 heads over 2 KV
// heads, tied), "qwen2.5-0.5b". phi3: "phi3-tiny" (2 layers, d 64, 4 heads,
// window 2047), "phi3-mini" (Phi-3-mini-4k). Unknown name -> NotFound.
absl::Status ApplyPreset(const std::string& preset, model::ModelConfig* config);

// One tensor WriteRandomModel writes: name, type, shape (GGUF ne order).
struct TensorSpec {
  std::string name;
  gguf::GgmlType type;
  std::vector<int64_t> ne;
};
// The tensors WriteRandomModel(spec, a vocabulary of vocab_size) writes, in
// file order, without writing anything.
std::vector<TensorSpec> RandomModelTensors(const RandomModelSpec& spec, int vocab_size);

// Writes the model with the given vocabulary (tokens, merges, types) as its
// tokenizer metadata. The vocabulary size sets the embedding rows.
absl::Status WriteRandomModel(const RandomModelSpec& spec, const text::VocabSpec& vocab, const std::string& path);

// Deterministic value in [-1, 1) for element `index` of stream `stream`.
float HashUniform(uint64_t seed, uint64_t stream, uint64_t index);

}  // namespace ossgate::tools
