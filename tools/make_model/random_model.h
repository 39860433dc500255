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
  // qwen2, phi3: type the matrices as llama.cpp's Q4_K_M quantization does
  // (LlamaQ4KMType), in place of dense_type.
  bool llama_q4_k_m = false;
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

// The type llama.cpp's Q4_K_M quantization gives a dense (qwen2, phi3)
// matrix: tensor `name` (e.g. "blk.3.attn_v.weight", "output.weight") with
// ne0 elements per row, in layer `layer` of n_layers, with `tied`
// embeddings. The rules of llama_tensor_get_type (ggml-org/llama.cpp
// src/llama-quant.cpp, as it was when the official Q4_K_M releases were
// made; docs/quant-formats.md): Q4_K by default; the unembedding (the
// embedding when tied) Q6_K, or Q8_0 where ne0 is not a multiple of 256;
// attn_v and ffn_down Q6_K in the layers use_more_bits picks (the first and
// last eighth, and every third between); a fused attn_qkv Q5_K; then where
// ne0 is not a multiple of 256 Q4_K falls back to Q5_0, Q5_K to Q5_1 and Q6_K
// to Q8_0 (F16 where ne0 is not a multiple of 32 either).
gguf::GgmlType LlamaQ4KMType(const std::string& name, int64_t ne0, int layer, int n_layers, bool tied);

// Writes the model with the given vocabulary (tokens, merges, types) as its
// tokenizer metadata. The vocabulary size sets the embedding rows.
absl::Status WriteRandomModel(const RandomModelSpec& spec, const text::VocabSpec& vocab, const std::string& path);

// Deterministic value in [-1, 1) for element `index` of stream `stream`.
float HashUniform(uint64_t seed, uint64_t stream, uint64_t index);

}  // namespace ossgate::tools
