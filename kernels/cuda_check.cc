#include "kernels/cuda_check.h"

#include <cstdio>
#include <cstdlib>

namespace ossgate::kernels {

void CudaFail(const char* expr, cudaError_t err, const char* file, int line, const char* func) {
  int device = -1;
  cudaGetDevice(&device);
  std::fprintf(stderr, "CUDA error %s (%s) on device %d in %s at %s:%d: %s\n", cudaGetErrorName(err),
               cudaGetErrorString(err), device, func, file, line, expr);
  std::fflush(stderr);
  std::abort();
}

}  // namespace ossgate::kernels
