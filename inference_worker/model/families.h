// Internal to ossgate_model: the per-family halves of ReadModelConfig and
// BindWeights, and the helpers they share. ReadModelConfig and BindWeights
// dispatch on general.architecture; each family's reader and binder read
// on their own (gpt-oss: model_config.cc and weights.cc; qwen2 and phi3:
// dense_families.cc).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/model/weights.h"

namespace ossgate::model::internal {

// Metadata (model_config.cc). Errors name the key.
// A required integer in 1..max_value.
absl::Status ReadPositiveInt(const gguf::GgufFile& f, const std::string& key, int max_value, int* out);
// An optional finite float; *out keeps its value when the key is absent.
absl::Status ReadOptionalFloat(const gguf::GgufFile& f, const std::string& key, float* out);

// Tensors (weights.cc): finds a tensor, checks its shape (GGUF ne order) and
// makes a view of it; every error names the tensor and says what the
// family's metadata expects.
class TensorBinder {
 public:
  TensorBinder(const gguf::GgufFile& file, const BindOptions& options, Family family)
      : f_(file), o_(options), family_(family) {}

  absl::StatusOr<const gguf::TensorInfo*> Find(const std::string& name, std::initializer_list<int64_t> ne);
  // A matrix (or stack of matrices) viewed in place, in its stored type.
  absl::Status Mat(const std::string& name, std::initializer_list<int64_t> ne, Matrix* out);
  // A small tensor converted to float; must be F32, F16 or BF16 and finite.
  absl::Status Vec(const std::string& name, std::initializer_list<int64_t> ne, std::vector<float>* out);

 private:
  const gguf::GgufFile& f_;
  const BindOptions& o_;
  const Family family_;
};

// The number of tensors `file` must hold, or an error naming both counts:
// extra tensors are harmless to the math but mean the file is not what its
// metadata says.
absl::Status CheckTensorCount(const gguf::GgufFile& file, const ModelConfig& config, int expected);

// gpt-oss (model_config.cc, weights.cc).
absl::Status ReadGptOssKeys(const gguf::GgufFile& f, ModelConfig* c);
absl::Status BindGptOss(const gguf::GgufFile& f, const ModelConfig& c, TensorBinder& b, Weights* w);

// qwen2 and phi3 (dense_families.cc).
absl::Status ReadQwen2Keys(const gguf::GgufFile& f, ModelConfig* c);
absl::Status ReadPhi3Keys(const gguf::GgufFile& f, ModelConfig* c);
absl::Status BindQwen2(const gguf::GgufFile& f, const ModelConfig& c, TensorBinder& b, Weights* w);
absl::Status BindPhi3(const gguf::GgufFile& f, const ModelConfig& c, TensorBinder& b, Weights* w);

}  // namespace ossgate::model::internal
