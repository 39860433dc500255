// CUDA_CHECK: the one way CUDA API failures are handled. A failed call is a
// broken invariant (or a dead device): it prints the statement, the device,
// the function and file:line, and aborts; the supervisor restarts the worker.
#pragma once

#include <cuda_runtime_api.h>

namespace ossgate::kernels {

[[noreturn]] void CudaFail(const char* expr, cudaError_t err, const char* file, int line, const char* func);

}  // namespace ossgate::kernels

#define CUDA_CHECK(expr)                                                                    \
  do {                                                                                      \
    const cudaError_t ossgate_cuda_err_ = (expr);                                           \
    if (ossgate_cuda_err_ != cudaSuccess) {                                                 \
      ::ossgate::kernels::CudaFail(#expr, ossgate_cuda_err_, __FILE__, __LINE__, __func__); \
    }                                                                                       \
  } while (0)

// After a kernel launch: catches bad configurations (not asynchronous faults).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
