// Built when the CUDA toolkit is absent: the factory explains why there is
// no GPU backend.
#include "inference_worker/cuda/cuda_backend.h"

namespace ossgate::gpu {

absl::StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackendImpl(const gguf::GgufFile&, const CudaBackendOptions&) {
  return absl::UnimplementedError(
      "this build of ossgate has no CUDA backend (configured without a CUDA compiler or with -DOSSGATE_CUDA=OFF); "
      "rebuild with the CUDA toolkit installed to serve on a GPU");
}

absl::StatusOr<std::unique_ptr<model::Backend>> CreateCudaBackend(const gguf::GgufFile& file,
                                                                  const CudaBackendOptions& options) {
  auto b = CreateCudaBackendImpl(file, options);
  if (!b.ok()) return b.status();
  return std::unique_ptr<model::Backend>(std::move(*b));
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackendRank(const gguf::GgufFile& file,
                                                                   const CudaBackendOptions& options,
                                                                   const CudaRankSetup&) {
  return CreateCudaBackendImpl(file, options);
}

absl::StatusOr<std::unique_ptr<model::Backend>> CreateShardedCudaBackend(const gguf::GgufFile& file,
                                                                        const CudaBackendOptions& options,
                                                                        const model::ParallelLayout&,
                                                                        const std::vector<int>&) {
  return CreateCudaBackend(file, options);
}

absl::StatusOr<std::unique_ptr<DeviceModelImage>> CreateDeviceModelImage(int) {
  return absl::UnimplementedError("this build of ossgate has no CUDA backend; the model is read into host memory");
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackendFromImage(DeviceModelImage&,
                                                                        const gguf::GgufFile& file,
                                                                        const CudaBackendOptions& options) {
  return CreateCudaBackendImpl(file, options);
}

}  // namespace ossgate::gpu
