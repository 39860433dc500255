// Chooses and creates the engine backend: the CUDA backend when asked for
// (or, with "auto", when a usable GPU is present), else the CPU reference.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/engine.h"

namespace ossgate {

struct BackendChoice {
  std::string kind = "auto";  // "auto", "cpu" or "cuda"
  int cuda_device = 0;
  int cpu_threads = 0;        // 0 = all cores
  int max_sequences = 8;
  int max_context = 4096;
  int kv_blocks = 0;          // 0 = CUDA: from gpu_memory_fraction; CPU: max_sequences * max_context worth
  double gpu_memory_fraction = 0.9;  // CUDA: share of the device memory to fill (gpu::CudaBackendOptions)
};

struct CreatedBackend {
  std::unique_ptr<model::Backend> backend;
  std::string kind;  // "cpu" or "cuda"
  std::string note;  // why "auto" chose what it chose (for the log)
};

// `file` (and the bytes it points into) must outlive the backend.
absl::StatusOr<CreatedBackend> CreateBackend(const gguf::GgufFile& file, const BackendChoice& choice);

}  // namespace ossgate
