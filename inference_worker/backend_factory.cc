#include "inference_worker/backend_factory.h"

#include "absl/strings/str_cat.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/model/cpu_backend.h"

namespace ossgate {

absl::StatusOr<CreatedBackend> CreateBackend(const gguf::GgufFile& file, const BackendChoice& c) {
  if (c.kind != "auto" && c.kind != "cpu" && c.kind != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("backend: unknown kind '", c.kind, "' (auto, cpu, cuda)"));
  }
  CreatedBackend out;
  if (c.kind != "cpu") {
    gpu::CudaBackendOptions o;
    o.device = c.cuda_device;
    o.kv.max_sequences = c.max_sequences;
    o.kv.num_full_blocks = c.kv_blocks;
    o.max_context = c.max_context;
    o.gpu_memory_fraction = c.gpu_memory_fraction;
    auto b = gpu::CreateCudaBackend(file, o);
    if (b.ok()) {
      out.backend = *std::move(b);
      out.kind = "cuda";
      return out;
    }
    if (c.kind == "cuda") return b.status();
    out.note = absl::StrCat("CUDA backend unavailable (", b.status().message(), "); using the CPU backend");
  }
  model::CpuBackendOptions o;
  o.n_threads = c.cpu_threads;
  o.kv.max_sequences = c.max_sequences;
  o.kv.num_full_blocks = c.kv_blocks;
  o.max_context = c.max_context;
  auto b = model::CpuBackend::Create(file, o);
  if (!b.ok()) return b.status();
  out.backend = *std::move(b);
  out.kind = "cpu";
  return out;
}

}  // namespace ossgate
