// DeviceModelImage (cuda_backend.h): the CUDA backend's end of the
// streaming load. StreamModelFile reads into one of kRing pinned buffers
// while the copies of the previous chunks run; each buffer is reused once
// its copy has finished (an event per buffer). The host keeps only the
// ring and the first kHeaderKeepBytes of the file, so a load's host memory
// does not grow with the model.
//
// The device copy is one virtual address range backed by separately
// allocated pieces of kPieceBytes (CUDA's virtual memory management, through
// the driver entry points the runtime hands out): as the backend finishes
// repacking tensors it reports them (Consumed), and every piece whose
// tensors are all done is unmapped and freed, so the device holds the file
// and its repacked form side by side only a few layers at a time. Where
// the driver lacks these calls the copy is one cudaMalloc, freed at the end.
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "inference_worker/cuda/cuda_backend.h"

namespace ossgate::gpu {

namespace {

constexpr int kRing = 3;
constexpr uint64_t kRingBytes = uint64_t{64} << 20;
constexpr uint64_t kPieceBytes = uint64_t{64} << 20;

absl::Status CudaError(const char* what, cudaError_t err) {
  return absl::InternalError(absl::StrCat("CUDA ", what, ": ", cudaGetErrorString(err)));
}

// The driver's virtual memory calls, looked up once through the runtime
// (no link-time dependency on libcuda).
struct Vmm {
  decltype(&cuMemAddressReserve) reserve = nullptr;
  decltype(&cuMemAddressFree) address_free = nullptr;
  decltype(&cuMemCreate) create = nullptr;
  decltype(&cuMemRelease) release = nullptr;
  decltype(&cuMemMap) map = nullptr;
  decltype(&cuMemUnmap) unmap = nullptr;
  decltype(&cuMemSetAccess) set_access = nullptr;
  decltype(&cuMemGetAllocationGranularity) granularity = nullptr;

  bool Load() {
    auto get = [](const char* name, auto* fn) {
      cudaDriverEntryPointQueryResult found{};
      void* p = nullptr;
      if (cudaGetDriverEntryPointByVersion(name, &p, 12000, cudaEnableDefault, &found) != cudaSuccess ||
          found != cudaDriverEntryPointSuccess || p == nullptr) {
        cudaGetLastError();
        return false;
      }
      *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(p);
      return true;
    };
    return get("cuMemAddressReserve", &reserve) && get("cuMemAddressFree", &address_free) &&
           get("cuMemCreate", &create) && get("cuMemRelease", &release) && get("cuMemMap", &map) &&
           get("cuMemUnmap", &unmap) && get("cuMemSetAccess", &set_access) &&
           get("cuMemGetAllocationGranularity", &granularity);
  }
};

class DeviceModelImageImpl final : public DeviceModelImage {
 public:
  explicit DeviceModelImageImpl(int device) : device_(device) {}
  ~DeviceModelImageImpl() override {
    Free();
    for (int i = 0; i < kRing; ++i) {
      if (done_[i]) cudaEventDestroy(done_[i]);
      if (ring_[i]) cudaFreeHost(ring_[i]);
    }
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
    // A device without virtual memory management fails the first
    // allocation, and Begin falls back to cudaMalloc.
    vmm_ok_ = vmm_.Load();
    if (vmm_ok_) {
      prop_.type = CU_MEM_ALLOCATION_TYPE_PINNED;
      prop_.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
      prop_.location.id = device_;
      size_t gran = 0;
      vmm_ok_ = vmm_.granularity(&gran, &prop_, CU_MEM_ALLOC_GRANULARITY_MINIMUM) == CUDA_SUCCESS && gran > 0 &&
                kPieceBytes % gran == 0;
      granularity_ = gran;
    }
    return absl::OkStatus();
  }

  absl::Status Begin(uint64_t size) override {
    // A new read (the worker retries a rejected model): drop the last one.
    Free();
    header_.clear();
    finished_ = released_ = false;
    next_slot_ = commit_slot_ = 0;
    size_ = size;
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    absl::Status allocated = vmm_ok_ ? MapPieces() : Malloc();
    if (!allocated.ok() && vmm_ok_) {
      Free();
      vmm_ok_ = false;
      allocated = Malloc();
    }
    if (!allocated.ok()) {
      Free();
      return absl::ResourceExhaustedError(absl::StrCat(
          "the model file (", size, " bytes) does not fit in the free device memory (", free, " of ", total,
          " bytes free): ", allocated.message(), "; use a GPU with more memory or free the device"));
    }
    header_.reserve(static_cast<size_t>(std::min(size, kHeaderKeepBytes)));
    return absl::OkStatus();
  }

  // Two buffers are lent at once (one being read, one being hashed) while
  // the third one's copy to the device runs.
  int MaxOutstanding() const override { return kRing - 1; }

  absl::StatusOr<std::span<uint8_t>> Next(uint64_t, uint64_t max) override {
    if (cudaError_t e = cudaEventSynchronize(done_[next_slot_]); e != cudaSuccess) return CudaError("copy", e);
    uint8_t* buf = ring_[next_slot_];
    next_slot_ = (next_slot_ + 1) % kRing;
    return std::span<uint8_t>(buf, static_cast<size_t>(std::min(max, kRingBytes)));
  }

  absl::Status Commit(uint64_t offset, uint64_t n) override {
    uint8_t* buf = ring_[commit_slot_];
    if (offset < kHeaderKeepBytes) {
      const uint64_t keep = std::min(n, kHeaderKeepBytes - offset);
      header_.insert(header_.end(), buf, buf + keep);
    }
    if (cudaError_t e = cudaMemcpyAsync(image_ + offset, buf, n, cudaMemcpyHostToDevice, stream_); e != cudaSuccess) {
      return CudaError("copy to the device", e);
    }
    if (cudaError_t e = cudaEventRecord(done_[commit_slot_], stream_); e != cudaSuccess) return CudaError("event", e);
    commit_slot_ = (commit_slot_ + 1) % kRing;
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
      if (f.ok()) {
        CountLiveBytes(*f);
        return f;
      }
      if (f.status().code() != absl::StatusCode::kOutOfRange || prefix.size() >= size_) return f;
      // A header longer than what was kept: the verified bytes are on the device.
      more.resize(static_cast<size_t>(std::min<uint64_t>(size_, prefix.size() * 2)));
      if (absl::Status s = CopyToHost(0, more.size(), more.data()); !s.ok()) return s;
      prefix = more;
    }
  }

  uint64_t size() const override { return size_; }

  absl::Status CopyToHost(uint64_t offset, uint64_t n, uint8_t* out) const override {
    if (released_) return absl::FailedPreconditionError("the device copy of the model file was released");
    if (offset > size_ || n > size_ - offset) {
      return absl::OutOfRangeError(absl::StrCat("bytes ", offset, "+", n, " are outside the ", size_, "-byte file"));
    }
    for (uint64_t p = offset / kPieceBytes; vmm_ok_ && n > 0 && p <= (offset + n - 1) / kPieceBytes; ++p) {
      if (pieces_[p].handle == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("bytes ", offset, "+", n, " of the model file were already released from the device"));
      }
    }
    if (cudaError_t e = cudaMemcpy(out, image_ + offset, n, cudaMemcpyDeviceToHost); e != cudaSuccess) {
      return CudaError("copy to the host", e);
    }
    return absl::OkStatus();
  }

  void Consumed(const gguf::TensorInfo& t, uint64_t data_offset) override {
    if (!vmm_ok_ || released_) return;
    const uint64_t begin = data_offset + t.offset;
    if (!consumed_.insert(begin).second || t.nbytes == 0) return;
    const uint64_t end = begin + t.nbytes;
    for (uint64_t p = begin / kPieceBytes; p <= (end - 1) / kPieceBytes && p < pieces_.size(); ++p) {
      Piece& piece = pieces_[p];
      const uint64_t lo = std::max(begin, p * kPieceBytes), hi = std::min(end, (p + 1) * kPieceBytes);
      piece.live -= std::min(piece.live, hi - lo);
      if (piece.live == 0) ReleasePiece(p);
    }
  }

  uint64_t ResidentBytes() const override {
    if (released_) return 0;
    if (!vmm_ok_) return size_;
    uint64_t n = 0;
    for (const Piece& p : pieces_) n += p.handle ? p.bytes : 0;
    return n;
  }

  bool ReleasesProgressively() const override { return vmm_ok_; }

  void ReleaseDeviceMemory() override {
    Free();
    released_ = true;
  }

 private:
  struct Piece {
    CUmemGenericAllocationHandle handle = 0;
    uint64_t bytes = 0;  // mapped bytes (a multiple of the granularity)
    uint64_t live = 0;   // tensor bytes in it not yet consumed
  };

  absl::Status Malloc() {
    if (cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&image_), std::max<uint64_t>(size_, 1));
        e != cudaSuccess) {
      cudaGetLastError();
      image_ = nullptr;
      return CudaError("allocation", e);
    }
    return absl::OkStatus();
  }

  absl::Status MapPieces() {
    const uint64_t n_pieces = std::max<uint64_t>(1, (size_ + kPieceBytes - 1) / kPieceBytes);
    reserved_ = ((std::max<uint64_t>(size_, 1) + granularity_ - 1) / granularity_) * granularity_;
    CUdeviceptr va = 0;
    if (vmm_.reserve(&va, reserved_, 0, 0, 0) != CUDA_SUCCESS) {
      reserved_ = 0;
      return absl::ResourceExhaustedError("cannot reserve the address range");
    }
    image_ = reinterpret_cast<uint8_t*>(va);
    pieces_.assign(n_pieces, Piece{});
    CUmemAccessDesc access{};
    access.location = prop_.location;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    for (uint64_t p = 0; p < n_pieces; ++p) {
      const uint64_t bytes = std::min(kPieceBytes, reserved_ - p * kPieceBytes);
      CUmemGenericAllocationHandle h = 0;
      if (vmm_.create(&h, bytes, &prop_, 0) != CUDA_SUCCESS) {
        return absl::ResourceExhaustedError(absl::StrCat("cannot allocate piece ", p, " of ", n_pieces));
      }
      pieces_[p].handle = h;
      pieces_[p].bytes = bytes;
      if (vmm_.map(va + p * kPieceBytes, bytes, 0, h, 0) != CUDA_SUCCESS ||
          vmm_.set_access(va + p * kPieceBytes, bytes, &access, 1) != CUDA_SUCCESS) {
        return absl::InternalError(absl::StrCat("cannot map piece ", p));
      }
    }
    return absl::OkStatus();
  }

  // Every piece holds the bytes of the tensors that overlap it; the header
  // and the padding are not needed once parsed.
  void CountLiveBytes(const gguf::GgufFile& f) {
    if (!vmm_ok_) return;
    consumed_.clear();
    for (Piece& p : pieces_) p.live = 0;
    for (const gguf::TensorInfo& t : f.tensors()) {
      const uint64_t begin = f.data_offset() + t.offset, end = begin + t.nbytes;
      for (uint64_t p = begin / kPieceBytes; t.nbytes > 0 && p <= (end - 1) / kPieceBytes; ++p) {
        pieces_[p].live += std::min(end, (p + 1) * kPieceBytes) - std::max(begin, p * kPieceBytes);
      }
    }
    for (uint64_t p = 0; p < pieces_.size(); ++p) {
      if (pieces_[p].live == 0) ReleasePiece(p);
    }
  }

  void ReleasePiece(uint64_t p) {
    Piece& piece = pieces_[p];
    if (piece.handle == 0) return;
    cudaStreamSynchronize(stream_);
    vmm_.unmap(reinterpret_cast<CUdeviceptr>(image_) + p * kPieceBytes, piece.bytes);
    vmm_.release(piece.handle);
    piece.handle = 0;
  }

  void Free() {
    if (stream_) cudaStreamSynchronize(stream_);
    if (vmm_ok_) {
      for (uint64_t p = 0; p < pieces_.size(); ++p) ReleasePiece(p);
      pieces_.clear();
      if (reserved_) vmm_.address_free(reinterpret_cast<CUdeviceptr>(image_), reserved_);
      reserved_ = 0;
    } else if (image_) {
      cudaFree(image_);
    }
    image_ = nullptr;
  }

  const int device_;
  cudaStream_t stream_ = nullptr;
  uint8_t* ring_[kRing] = {};
  cudaEvent_t done_[kRing] = {};
  int next_slot_ = 0;    // the ring buffer Next lends next
  int commit_slot_ = 0;  // the buffer the next Commit hands over (lent first)
  Vmm vmm_;
  bool vmm_ok_ = false;
  CUmemAllocationProp prop_{};
  uint64_t granularity_ = 0;
  uint64_t reserved_ = 0;
  std::vector<Piece> pieces_;
  std::set<uint64_t> consumed_;  // file offsets of the tensors reported
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
