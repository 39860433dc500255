#pragma once

#include <cstdint>
#include <vector>

#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_config.h"

namespace ossgate::testing {

// Logits (float64) at every position of `tokens`, by a naive independent
// implementation of spec §5 (gpt-oss). Tiny models only: all weights
// become doubles.
std::vector<std::vector<double>> ReferenceLogits(const gguf::GgufFile& file, const model::ModelConfig& config,
                                                 const std::vector<int32_t>& tokens);

// The same for qwen2 and phi3 files (config.family), from HF transformers'
// Qwen2ForCausalLM / Phi3ForCausalLM math (dense_reference_model.cc): the
// fused tensors sliced, the window and tied embeddings read from the file.
std::vector<std::vector<double>> DenseReferenceLogits(const gguf::GgufFile& file, const model::ModelConfig& config,
                                                      const std::vector<int32_t>& tokens);

}  // namespace ossgate::testing
