#include "inference_worker/backend_factory.h"

#include "absl/strings/str_cat.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/model/cpu_backend.h"
#include "inference_worker/model/sharded_cpu_backend.h"

namespace ossgate {

namespace {

absl::Status CheckKind(const BackendChoice& c) {
  if (c.kind != "auto" && c.kind != "cpu" && c.kind != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("backend: unknown kind '", c.kind, "' (auto, cpu, cuda)"));
  }
  return absl::OkStatus();
}

std::string FallbackNote(const absl::Status& cuda) {
  return absl::StrCat("CUDA backend unavailable (", cuda.message(), "); using the CPU backend");
}

gpu::CudaBackendOptions CudaOptions(const BackendChoice& c) {
  gpu::CudaBackendOptions o;
  o.device = c.cuda_device;
  o.kv.max_sequences = c.max_sequences;
  o.kv.num_full_blocks = c.kv_blocks;
  o.max_context = c.max_context;
  o.gpu_memory_fraction = c.gpu_memory_fraction;
  return o;
}

}  // namespace

std::unique_ptr<gpu::DeviceModelImage> DeviceImageFor(const BackendChoice& c, std::string* note) {
  if (c.kind == "cpu" || !CheckKind(c).ok()) return nullptr;
  if (c.tensor_parallel > 1) {
    *note = absl::StrCat("the model is read into host memory once and each of the ", c.tensor_parallel,
                         " ranks is given its slices");
    return nullptr;
  }
  auto image = gpu::CreateDeviceModelImage(c.cuda_device);
  if (image.ok()) return *std::move(image);
  *note = absl::StrCat("the model is read into host memory: ", image.status().message());
  return nullptr;
}

absl::StatusOr<CreatedBackend> CreateBackendFromImage(gpu::DeviceModelImage& image, const gguf::GgufFile& file,
                                                      const BackendChoice& c, const model::FileDigest& digest,
                                                      model::ModelBytes* host_bytes,
                                                      std::optional<gguf::GgufFile>* host_file) {
  if (absl::Status s = CheckKind(c); !s.ok()) return s;
  auto b = gpu::CreateCudaBackendFromImage(image, file, CudaOptions(c));
  if (b.ok()) {
    CreatedBackend out;
    out.backend = *std::move(b);
    out.kind = "cuda";
    return out;
  }
  const absl::Status unavailable = b.status();
  if (c.kind == "cuda") return unavailable;
  // "auto": the verified bytes come back to the host for the CPU backend.
  model::HostModelSink host;
  if (absl::Status s = host.Begin(image.size()); !s.ok()) return s;
  auto buffer = host.Next(0, image.size());
  if (!buffer.ok()) return buffer.status();
  // (After a failure late in the CUDA backend's creation the device copy is
  // gone: its error is the one to report.)
  if (!image.CopyToHost(0, image.size(), buffer->data()).ok()) return unavailable;
  *host_bytes = host.Take(digest);
  auto parsed = gguf::GgufFile::Parse(host_bytes->bytes());
  if (!parsed.ok()) return parsed.status();
  host_file->emplace(*std::move(parsed));
  BackendChoice cpu = c;
  cpu.kind = "cpu";
  auto created = CreateBackend(**host_file, cpu);
  if (!created.ok()) return created.status();
  created->note = FallbackNote(unavailable);
  return created;
}

absl::StatusOr<CreatedBackend> CreateBackend(const gguf::GgufFile& file, const BackendChoice& c) {
  if (absl::Status s = CheckKind(c); !s.ok()) return s;
  CreatedBackend out;
  const model::ParallelLayout layout{c.tensor_parallel, c.expert_parallel};
  if (c.kind != "cpu") {
    std::vector<int> devices;
    for (int r = 0; r < c.tensor_parallel; ++r) devices.push_back(c.cuda_device + r);
    auto b = c.tensor_parallel > 1 ? gpu::CreateShardedCudaBackend(file, CudaOptions(c), layout, devices)
                                   : gpu::CreateCudaBackend(file, CudaOptions(c));
    if (b.ok()) {
      out.backend = *std::move(b);
      out.kind = "cuda";
      return out;
    }
    if (c.kind == "cuda") return b.status();
    out.note = FallbackNote(b.status());
  }
  model::CpuBackendOptions o;
  o.n_threads = c.cpu_threads;
  o.kv.max_sequences = c.max_sequences;
  o.kv.num_full_blocks = c.kv_blocks;
  o.max_context = c.max_context;
  if (c.tensor_parallel > 1) {
    auto b = model::ShardedCpuBackend::Create(file, o, layout);
    if (!b.ok()) return b.status();
    out.backend = *std::move(b);
  } else {
    auto b = model::CpuBackend::Create(file, o);
    if (!b.ok()) return b.status();
    out.backend = *std::move(b);
  }
  out.kind = "cpu";
  return out;
}

}  // namespace ossgate
