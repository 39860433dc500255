// Command-line helpers shared by the model tools.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::tools {

// "q8_0", "mxfp4", "bf16", "f16", "f32" (case-insensitive).
absl::StatusOr<gguf::GgmlType> ParseGgmlType(const std::string& name);

// "tiny", "o200k", "placeholder:N" or the path of a vocab file.
absl::StatusOr<text::VocabSpec> LoadVocabByName(const std::string& name);

}  // namespace ossgate::tools
