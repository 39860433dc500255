#include "inference_worker/cuda/device_collective.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_check.h"

namespace ossgate::gpu {

void HostStagedAllReduce::AllReduceSum(float* data, int64_t n, cudaStream_t stream) {
  host_.resize(static_cast<size_t>(n));
  CUDA_CHECK(cudaMemcpyAsync(host_.data(), data, n * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  comm_.AllReduceSum(host_);
  CUDA_CHECK(cudaMemcpyAsync(data, host_.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));  // host_ may be overwritten by the next call
}

namespace {

// The part of NCCL's C API used here, declared from its public header
// (nccl.h of NCCL 2.x; the values are part of its ABI) so that the build
// needs neither the header nor the library.
using ncclComm_t = struct ncclComm*;
using ncclResult_t = int;  // ncclSuccess = 0
constexpr int kNcclFloat32 = 7;
constexpr int kNcclSum = 0;
struct NcclApi {
  void* handle = nullptr;
  std::string library;
  ncclResult_t (*GetVersion)(int*) = nullptr;
  ncclResult_t (*CommInitAll)(ncclComm_t*, int, const int*) = nullptr;
  ncclResult_t (*CommDestroy)(ncclComm_t) = nullptr;
  ncclResult_t (*AllReduce)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t) = nullptr;
  const char* (*GetErrorString)(ncclResult_t) = nullptr;
};

absl::StatusOr<const NcclApi*> Api() {
  static std::mutex mu;
  static NcclApi api;
  static absl::Status status = absl::UnknownError("not loaded");
  std::lock_guard<std::mutex> lock(mu);
  if (api.handle) return &api;
  const char* env = std::getenv("OSSGATE_NCCL_LIBRARY");
  const std::string lib = env && *env ? env : "libnccl.so.2";
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    return absl::UnavailableError(absl::StrCat(
        "NCCL: cannot open ", lib, " (", dlerror(),
        "); several GPUs need NCCL 2: install it (the CUDA toolkit's libnccl2, or pip's nvidia-nccl-cu13) or set "
        "OSSGATE_NCCL_LIBRARY to the path of libnccl.so.2"));
  }
  NcclApi a;
  a.handle = h;
  a.library = lib;
  auto sym = [&](const char* name, auto& fn) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
    return fn != nullptr;
  };
  for (bool ok : {sym("ncclGetVersion", a.GetVersion), sym("ncclCommInitAll", a.CommInitAll),
                  sym("ncclCommDestroy", a.CommDestroy), sym("ncclAllReduce", a.AllReduce),
                  sym("ncclGetErrorString", a.GetErrorString)}) {
    if (!ok) {
      dlclose(h);
      return absl::UnavailableError(
          absl::StrCat("NCCL: ", lib, " lacks a function this worker needs (", dlerror(), "); use NCCL 2.x"));
    }
  }
  api = a;
  return &api;
}

class NcclAllReduce final : public DeviceAllReduce {
 public:
  NcclAllReduce(const NcclApi* api, ncclComm_t comm, int rank) : api_(api), comm_(comm), rank_(rank) {}
  ~NcclAllReduce() override { api_->CommDestroy(comm_); }
  void AllReduceSum(float* data, int64_t n, cudaStream_t stream) override {
    const ncclResult_t r = api_->AllReduce(data, data, static_cast<size_t>(n), kNcclFloat32, kNcclSum, comm_, stream);
    if (r != 0) {
      std::fprintf(stderr, "NCCL all-reduce of %lld floats failed on rank %d: %s\n", static_cast<long long>(n), rank_,
                   api_->GetErrorString(r));
      std::abort();
    }
  }
  bool Capturable() const override { return true; }
  std::string Name() const override { return "NCCL"; }

 private:
  const NcclApi* api_;
  ncclComm_t comm_;
  int rank_;
};

}  // namespace

absl::StatusOr<NcclVersion> LoadNccl() {
  auto api = Api();
  if (!api.ok()) return api.status();
  NcclVersion v;
  v.library = (*api)->library;
  if (const ncclResult_t r = (*api)->GetVersion(&v.code); r != 0) {
    return absl::InternalError(absl::StrCat("NCCL: ncclGetVersion failed: ", (*api)->GetErrorString(r)));
  }
  return v;
}

absl::StatusOr<std::vector<std::unique_ptr<DeviceAllReduce>>> MakeNcclGroup(std::span<const int> devices) {
  if (devices.empty()) return absl::InvalidArgumentError("NCCL: no devices");
  if (std::set<int>(devices.begin(), devices.end()).size() != devices.size()) {
    return absl::InvalidArgumentError("NCCL: a device appears twice; NCCL ranks need distinct GPUs");
  }
  auto api = Api();
  if (!api.ok()) return api.status();
  // NVLink multicast (NVLS) stays off unless the deployment turns it on: on
  // shared GPU hosts a program using it can take the GPUs out of service.
  ::setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
  // Every connection made at init, none lazily at a first collective that a
  // CUDA graph capture could meet.
  ::setenv("NCCL_RUNTIME_CONNECT", "0", /*overwrite=*/0);
  std::vector<ncclComm_t> comms(devices.size());
  if (const ncclResult_t r = (*api)->CommInitAll(comms.data(), static_cast<int>(devices.size()), devices.data());
      r != 0) {
    return absl::InternalError(absl::StrCat("NCCL: ncclCommInitAll over ", devices.size(),
                                            " devices failed: ", (*api)->GetErrorString(r)));
  }
  std::vector<std::unique_ptr<DeviceAllReduce>> out;
  for (size_t r = 0; r < comms.size(); ++r) {
    out.push_back(std::make_unique<NcclAllReduce>(*api, comms[r], static_cast<int>(r)));
  }
  return out;
}

}  // namespace ossgate::gpu
