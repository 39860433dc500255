// Typed views of a model's tensors inside a parsed GGUF file: gpt-oss (spec
// §4), qwen2 and phi3 (the tensors llama.cpp's convert_hf_to_gguf.py
// writes). Matrices stay in their stored format (Q8_0, Q5_0, Q5_1, Q4_K,
// Q5_K, Q6_K, MXFP4, BF16, F16, F32) and are dequantized row by row where
// they are used; only the small 1-D tensors (norms, biases, sinks) are
// converted to float once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_config.h"

namespace ossgate::model {

// A stack of n_mats matrices of rows x cols (GGUF ne = [cols, rows, n_mats]),
// each row contiguous. y = W x reads row r as the weights of output r.
struct Matrix {
  gguf::GgmlType type = gguf::GgmlType::kF32;
  int64_t cols = 0;    // ne[0], input features
  int64_t rows = 0;    // ne[1], output features
  int64_t n_mats = 1;  // ne[2], experts (1 for a plain matrix)
  uint64_t row_bytes = 0;
  const uint8_t* data = nullptr;  // not owned: points into the model bytes
  std::string name;               // the GGUF tensor (of a view: the fused tensor it is part of)
  int64_t first_row = 0;          // of a view: its first row in the tensor `name` (errors name file rows)

  const uint8_t* Row(int64_t mat, int64_t r) const { return data + (mat * rows + r) * row_bytes; }
  uint64_t bytes() const { return row_bytes * rows * n_mats; }
  // Rows [first, first + n) of a plain matrix (n_mats 1), in place: how a
  // fused tensor (phi3's attn_qkv, ffn_up) becomes its parts without a copy.
  Matrix RowRange(int64_t first, int64_t n) const {
    Matrix v = *this;
    v.data = data + first * row_bytes;
    v.rows = n;
    v.first_row = first_row + first;
    return v;
  }
};

// A gpt-oss layer: attention with biases and sinks, then the MoE.
struct LayerWeights {
  std::vector<float> attn_norm;       // (D)
  Matrix wq, wk, wv;                  // (H*d, D), (Hkv*d, D), (Hkv*d, D)
  std::vector<float> bq, bk, bv;      // (H*d), (Hkv*d), (Hkv*d)
  Matrix wo;                          // (D, H*d)
  std::vector<float> bo;              // (D)
  std::vector<float> sinks;           // (H) attention sink logits
  std::vector<float> post_attn_norm;  // (D) the pre-MoE norm
  Matrix router;                      // (E, D)
  std::vector<float> router_b;        // (E)
  Matrix gate_exps, up_exps;          // (E, F, D) usually MXFP4
  std::vector<float> gate_b, up_b;    // (E, F)
  Matrix down_exps;                   // (E, D, F)
  std::vector<float> down_b;          // (E, D)
};

// A dense layer (qwen2, phi3): attention without sinks, then the
// SiLU-gated feed-forward down(silu(gate(x)) * up(x)).
struct DenseLayerWeights {
  std::vector<float> attn_norm;   // (D) attn_norm (HF input_layernorm)
  Matrix wq, wk, wv;              // (H*d, D), (Hkv*d, D), (Hkv*d, D); phi3: row ranges of attn_qkv
  std::vector<float> bq, bk, bv;  // (H*d), (Hkv*d), (Hkv*d): qwen2; empty for phi3 (no bias)
  Matrix wo;                      // (D, H*d) attn_output, no bias
  std::vector<float> ffn_norm;    // (D) ffn_norm (HF post_attention_layernorm)
  Matrix gate, up;                // (F, D), (F, D); phi3: the first and second half of ffn_up
  Matrix down;                    // (D, F)
};

struct Weights {
  Matrix token_embd;               // (V, D)
  std::vector<LayerWeights> layers;             // gpt-oss (empty otherwise)
  std::vector<DenseLayerWeights> dense_layers;  // qwen2, phi3 (empty otherwise)
  std::vector<float> output_norm;  // (D)
  // (V, D) unembedding; with tied embeddings (ModelConfig::tied_embeddings)
  // the same view as token_embd.
  Matrix output;
};

// Finds every tensor the config's family requires, checks its shape and
// type, and returns views into `file`'s bytes (which must outlive the
// Weights). A missing tensor, a wrong shape or a tensor the family does not
// have is an InvalidArgument naming the tensor;
// so is a non-finite value anywhere: every block scale of the quantized
// matrices (Q8_0 and Q5_0 d, Q5_1 d and m, Q4_K and Q5_K d and dmin, Q6_K
// d, MXFP4 E8M0 0xFF) and every element of the float tensors
// is checked (one parallel pass over the scales; docs/perf.md has its cost),
// the error naming the tensor, matrix, row and block.
struct BindOptions {
  // Copies a tensor's bytes to the host, for files whose data section is in
  // device memory (the CUDA backend's streaming load): used for the small
  // tensors read here. Null: they are read through TensorInfo::data.
  std::function<absl::Status(const gguf::TensorInfo&, std::vector<uint8_t>*)> fetch;
  // Scan the matrices' scales here. A caller that passes false checks them
  // where the bytes are and reports the first bad block with
  // NonFiniteBlockError.
  bool check_matrices = true;
};
absl::StatusOr<Weights> BindWeights(const gguf::GgufFile& file, const ModelConfig& config,
                                    const BindOptions& options = {});

// Every matrix of the model, in this order: embedding, unembedding (unless
// tied: then it is the embedding), per layer q, k, v, o, then gpt-oss's
// router, gate, up, down experts or a dense layer's gate, up, down.
std::vector<const Matrix*> AllMatrices(const Weights& w);
// Blocks of a matrix in its row-major block sequence (elements for F32/F16/BF16).
int64_t MatrixBlocks(const Matrix& m);
// The error for a non-finite scale (Q8_0 / Q5_0 d, Q5_1 d / m, Q4_K / Q5_K
// d / dmin, Q6_K d, MXFP4 E8M0 0xFF) or value at block `block` of m's
// row-major block sequence, naming matrix, row (of the file's tensor, for a
// view), block.
absl::Status NonFiniteBlockError(const Matrix& m, int64_t block);

// Number of tensors a gpt-oss GGUF holds: 19 per layer plus 3.
constexpr int ExpectedTensorCount(int n_layers) { return 19 * n_layers + 3; }
static_assert(ExpectedTensorCount(24) == 459, "gpt-oss-20b has 459 tensors (spec §2.3)");
static_assert(ExpectedTensorCount(36) == 687, "gpt-oss-120b has 687 tensors (spec §4)");

// Number of tensors a qwen2 GGUF holds: 12 per layer (attn_norm, attn_q/k/v
// weight and bias, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down), then
// token_embd, output_norm and, unless the embeddings are tied, output.
constexpr int Qwen2TensorCount(int n_layers, bool tied) { return 12 * n_layers + 2 + (tied ? 0 : 1); }
static_assert(Qwen2TensorCount(24, /*tied=*/true) == 290, "Qwen2.5-0.5B: 24 layers, tied embeddings");
// A phi3 GGUF: 6 per layer (attn_norm, attn_qkv, attn_output, ffn_norm, the
// fused ffn_up, ffn_down) plus the same 2 or 3.
constexpr int Phi3TensorCount(int n_layers, bool tied) { return 6 * n_layers + 2 + (tied ? 0 : 1); }
static_assert(Phi3TensorCount(32, /*tied=*/false) == 195, "Phi-3-mini-4k: 32 layers, untied");

}  // namespace ossgate::model
