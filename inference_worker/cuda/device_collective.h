// The all-reduce of GPU ranks (docs/parallel.md): NCCL, loaded at run time
// (libnccl.so.2 is not a build dependency: the GPU machine has it from
// Python's nvidia-nccl-cu13 package, a deployment from the CUDA image), and a
// host-staged variant over model::Communicator with which several ranks
// share one GPU in tests.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/model/parallel.h"

namespace ossgate::gpu {

class DeviceAllReduce {
 public:
  virtual ~DeviceAllReduce() = default;
  // Enqueues on `stream` the sum over the group of the n floats at `data`
  // (this rank's device memory), left in `data` on every rank. Every rank
  // makes the same calls with the same n in the same order. A failure of the
  // collective is fatal (like a CUDA error): the ranks cannot continue apart.
  virtual void AllReduceSum(float* data, int64_t n, cudaStream_t stream) = 0;
  // Whether the call can be captured into a CUDA graph.
  virtual bool Capturable() const = 0;
  virtual std::string Name() const = 0;
};

// Copies to the host, sums with `comm` (an InProcessGroup rank: rank order),
// copies back; synchronizes the stream, so not capturable. For tests.
class HostStagedAllReduce final : public DeviceAllReduce {
 public:
  explicit HostStagedAllReduce(model::Communicator& comm) : comm_(comm) {}
  void AllReduceSum(float* data, int64_t n, cudaStream_t stream) override;
  bool Capturable() const override { return false; }
  std::string Name() const override { return "host-staged"; }

 private:
  model::Communicator& comm_;
  std::vector<float> host_;
};

// The NCCL library of this process: OSSGATE_NCCL_LIBRARY if set, else
// libnccl.so.2 from the loader's path. Unavailable (naming what was tried and
// how to provide it) when it cannot be opened or lacks a function.
struct NcclVersion {
  int code = 0;  // NCCL_VERSION_CODE, e.g. 22703 for 2.27.3
  std::string library;
};
absl::StatusOr<NcclVersion> LoadNccl();

// One NCCL communicator per device of `devices` (one process, ncclCommInitAll),
// rank r on devices[r]; fp32 sum all-reduces. Devices must be distinct.
absl::StatusOr<std::vector<std::unique_ptr<DeviceAllReduce>>> MakeNcclGroup(std::span<const int> devices);

}  // namespace ossgate::gpu
