#pragma once

#include <cstdint>
#include <vector>

#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_config.h"

namespace ossgate::testing {

// Logits (float64) at every position of `tokens`, by a naive independent
// implementation of spec §5. Tiny models only: all weights become doubles.
std::vector<std::vector<double>> ReferenceLogits(const gguf::GgufFile& file, const model::ModelConfig& config,
                                                 const std::vector<int32_t>& tokens);

}  // namespace ossgate::testing
