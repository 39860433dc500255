// Typed views of the gpt-oss tensors inside a parsed GGUF file (spec §4).
// Matrices stay in their stored format (Q8_0, Q4_K, Q6_K, MXFP4, BF16, F16, F32) and are
// dequantized row by row where they are used; only the small 1-D tensors
// (norms, biases, sinks) are converted to float once.
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
  std::string name;

  const uint8_t* Row(int64_t mat, int64_t r) const { return data + (mat * rows + r) * row_bytes; }
  uint64_t bytes() const { return row_bytes * rows * n_mats; }
};

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

struct Weights {
  Matrix token_embd;               // (V, D)
  std::vector<LayerWeights> layers;
  std::vector<float> output_norm;  // (D)
  Matrix output;                   // (V, D) unembedding, not tied
};

// Finds every tensor the config requires, checks its shape and type, and
// returns views into `file`'s bytes (which must outlive the Weights). A
// missing tensor or a wrong shape is an InvalidArgument naming the tensor;
// so is a non-finite value anywhere: every block scale of the quantized
// matrices (Q8_0 d, Q4_K d and dmin, Q6_K d, MXFP4 E8M0 0xFF) and every
// element of the float tensors
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

// Every matrix of the model (embedding, unembedding, per layer q, k, v, o,
// router, gate, up, down), in that order.
std::vector<const Matrix*> AllMatrices(const Weights& w);
// Blocks of a matrix in its row-major block sequence (elements for F32/F16/BF16).
int64_t MatrixBlocks(const Matrix& m);
// The error for a non-finite scale (Q8_0 d, Q4_K d / dmin, Q6_K d, MXFP4 E8M0 0xFF) or value at
// block `block` of m's row-major block sequence, naming matrix, row, block.
absl::Status NonFiniteBlockError(const Matrix& m, int64_t block);

// Number of tensors a gpt-oss GGUF holds: 19 per layer plus 3.
constexpr int ExpectedTensorCount(int n_layers) { return 19 * n_layers + 3; }
static_assert(ExpectedTensorCount(24) == 459, "gpt-oss-20b has 459 tensors (spec §2.3)");
static_assert(ExpectedTensorCount(36) == 687, "gpt-oss-120b has 687 tensors (spec §4)");

}  // namespace ossgate::model
