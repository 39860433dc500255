#include "absl/strings/str_format.h"
#include "inference_worker/cuda/cuda_backend.h"

namespace ossgate::gpu {

std::string VramReport::ToString() const {
  auto mib = [](int64_t b) { return b / 1048576.0; };
  // The dense families have a feed-forward and no experts or router: the
  // report names what the model has.
  const std::string ffn = weights_ffn > 0 || weights_experts == 0
                              ? absl::StrFormat("feed-forward %.1f", mib(weights_ffn))
                              : absl::StrFormat("experts %.1f, router %.1f", mib(weights_experts), mib(weights_router));
  return absl::StrFormat(
      "weights %.1f MiB (attention %.1f, %s, embedding %.1f, unembedding %.1f, norms/sinks %.2f), KV cache %.1f "
      "MiB, activations %.1f MiB, workspace %.1f MiB, total %.1f MiB",
      mib(weights()), mib(weights_attention), ffn, mib(weights_embedding), mib(weights_unembedding),
      mib(weights_small), mib(kv_cache), mib(activations), mib(workspace), mib(total()));
}

}  // namespace ossgate::gpu
