// DeviceModelImage (cuda_backend.h): the CUDA backend's end of the
// streaming load. StreamModelFile reads into one of kRing pinned buffers
// while the copies of the previous chunks run; each buffer is reused once
// its copy has finished (an event per buffer). The host keeps only the
// ring and the first kHeaderKeepBytes of the file, so a load's host memory
// does not grow with the model.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "inference_worker/cuda/cuda_backend.h"

namespace ossgate::gpu {

namespace {

constexpr int kRing = 3;
constexpr uint64_t kRingBytes = uint64_t{64} << 20;

absl::Status CudaError(const char* what, cudaError_t err) {
  return absl::InternalError(absl::StrCat("CUDA ", what, ": ", cudaGetErrorString(err)));
}

class DeviceModelImageImpl final : public DeviceModelImage {
 public:
  explicit DeviceModelImageImpl(int device) : device_(device) {}
  ~DeviceModelImageImpl() override {
    if (stream_) cudaStreamSynchronize(stream_);
    for (int i = 0; i < kRing; ++i) {
      if (done_[i]) cudaEventDestroy(done_[i]);
      if (ring_[i]) cudaFreeHost(ring_[i]);
    }
    if (image_) cudaFree(image_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  absl::Status Init() {
    if (cudaError_t e = cudaSetDevice(device_); e != cudaSuccess) return CudaError("set device", e);
    if (cudaError_t e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking); e != cudaSuccess) {
      return CudaError("stream", e);
    }
    for (int i = 0; i < kRing; ++i) {
      if (cudaError_t e = cudaMallocHost(reinterpret_cast<void**>(&ring_[i]), kRingBytes); e != cudaSuccess) {
        return CudaError("pinned host buffer", e);
      }
      if (cudaError_t e = cudaEventCreateWithFlags(&done_[i], cudaEventDisableTiming); e != cudaSuccess) {
        return CudaError("event", e);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Begin(uint64_t size) override {
    // A new read (the worker retries a rejected model): drop the last one.
    if (stream_) cudaStreamSynchronize(stream_);
    if (image_) cudaFree(image_);
    image_ = nullptr;
    header_.clear();
    finished_ = released_ = false;
    size_ = size;
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    if (cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&image_), std::max<uint64_t>(size, 1)); e != cudaSuccess) {
      cudaGetLastError();
      return absl::ResourceExhaustedError(absl::StrCat(
          "the model file (", size, " bytes) does not fit in the free device memory (", free, " of ", total,
          " bytes free); use a GPU with more memory or free the device"));
    }
    header_.reserve(static_cast<size_t>(std::min(size, kHeaderKeepBytes)));
    return absl::OkStatus();
  }

  absl::StatusOr<std::span<uint8_t>> Next(uint64_t, uint64_t max) override {
    if (cudaError_t e = cudaEventSynchronize(done_[slot_]); e != cudaSuccess) return CudaError("copy", e);
    return std::span<uint8_t>(ring_[slot_], static_cast<size_t>(std::min(max, kRingBytes)));
  }

  absl::Status Commit(uint64_t offset, uint64_t n) override {
    if (offset < kHeaderKeepBytes) {
      const uint64_t keep = std::min(n, kHeaderKeepBytes - offset);
      header_.insert(header_.end(), ring_[slot_], ring_[slot_] + keep);
    }
    if (cudaError_t e = cudaMemcpyAsync(image_ + offset, ring_[slot_], n, cudaMemcpyHostToDevice, stream_);
        e != cudaSuccess) {
      return CudaError("copy to the device", e);
    }
    if (cudaError_t e = cudaEventRecord(done_[slot_], stream_); e != cudaSuccess) return CudaError("event", e);
    slot_ = (slot_ + 1) % kRing;
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    if (cudaError_t e = cudaStreamSynchronize(stream_); e != cudaSuccess) return CudaError("copy to the device", e);
    finished_ = true;
    return absl::OkStatus();
  }

  absl::StatusOr<gguf::GgufFile> ParseHeader() override {
    if (!finished_) return absl::FailedPreconditionError("the model file was not completely read");
    std::vector<uint8_t> more;
    std::span<const uint8_t> prefix(header_);
    for (;;) {
      auto f = gguf::GgufFile::ParseHeader(prefix, size_, image_);
      if (f.ok() || f.status().code() != absl::StatusCode::kOutOfRange || prefix.size() >= size_) return f;
      // A header longer than what was kept: the verified bytes are on the device.
      more.resize(static_cast<size_t>(std::min<uint64_t>(size_, prefix.size() * 2)));
      if (absl::Status s = CopyToHost(0, more.size(), more.data()); !s.ok()) return s;
      prefix = more;
    }
  }

  uint64_t size() const override { return size_; }

  void ReleaseDeviceMemory() override {
    if (stream_) cudaStreamSynchronize(stream_);
    if (image_) cudaFree(image_);
    image_ = nullptr;
    released_ = true;
  }

  absl::Status CopyToHost(uint64_t offset, uint64_t n, uint8_t* out) const override {
    if (released_) return absl::FailedPreconditionError("the device copy of the model file was released");
    if (offset > size_ || n > size_ - offset) {
      return absl::OutOfRangeError(absl::StrCat("bytes ", offset, "+", n, " are outside the ", size_, "-byte file"));
    }
    if (cudaError_t e = cudaMemcpy(out, image_ + offset, n, cudaMemcpyDeviceToHost); e != cudaSuccess) {
      return CudaError("copy to the host", e);
    }
    return absl::OkStatus();
  }

 private:
  const int device_;
  cudaStream_t stream_ = nullptr;
  uint8_t* ring_[kRing] = {};
  cudaEvent_t done_[kRing] = {};
  int slot_ = 0;
  uint8_t* image_ = nullptr;
  uint64_t size_ = 0;
  std::vector<uint8_t> header_;
  bool finished_ = false;
  bool released_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceModelImage>> CreateDeviceModelImage(int device) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    cudaGetLastError();
    return absl::UnimplementedError("no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)");
  }
  if (device < 0 || device >= n) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA device ", device, " does not exist (", n, " visible)"));
  }
  auto image = std::make_unique<DeviceModelImageImpl>(device);
  if (absl::Status s = image->Init(); !s.ok()) return s;
  return image;
}

}  // namespace ossgate::gpu
