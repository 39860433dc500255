// Chooses and creates the engine backend: the CUDA backend when asked for
// (or, with "auto", when a usable GPU is present), else the CPU reference.
// The CUDA backend runs gpt-oss files only: a qwen2 or phi3 file is refused
// with kind "cuda" (Unimplemented, naming the family) and runs on the CPU
// with "auto" (the note says why).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/model/backend.h"
#include "inference_worker/model/model_file.h"

namespace ossgate {

struct BackendChoice {
  std::string kind = "auto";  // "auto", "cpu" or "cuda"
  int cuda_device = 0;
  // A tensor-parallel layout (docs/parallel.md) when > 1: CUDA over GPUs
  // cuda_device .. cuda_device + tensor_parallel - 1 (the file read into host
  // memory once, each GPU given its slices), CPU over threads.
  int tensor_parallel = 1;
  int expert_parallel = 1;
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

// Where the model file should be streamed for `choice`: a device image when
// the CUDA backend may run (kind "cuda", or "auto" with a visible device),
// else null (host memory). `note` says why not, for the log.
std::unique_ptr<gpu::DeviceModelImage> DeviceImageFor(const BackendChoice& choice, std::string* note);

// The backend of a verified file streamed into `image` (`file` =
// image.ParseHeader()). With kind "auto", when the CUDA backend cannot run
// the model, the bytes are copied back to the host into *host_bytes (with
// `digest`), parsed into *host_file, and the CPU backend made from those;
// both must then outlive the backend.
absl::StatusOr<CreatedBackend> CreateBackendFromImage(gpu::DeviceModelImage& image, const gguf::GgufFile& file,
                                                      const BackendChoice& choice, const model::FileDigest& digest,
                                                      model::ModelBytes* host_bytes,
                                                      std::optional<gguf::GgufFile>* host_file);

}  // namespace ossgate
