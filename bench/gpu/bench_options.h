// The CUDA backend options of a gpu_bench run (bench/gpu/gpu_bench.cc), in a
// header so that a CPU test checks the plan: the KV cache holds the sequences
// the chosen run decodes at once, and no more (every sequence of a model with
// a sliding-window ring on every layer and no GQA, such as Phi-3-mini, costs
// ~0.75 GiB of rings whether it runs or not).
#pragma once

#include <algorithm>

#include "inference_worker/cuda/cuda_backend.h"

namespace ossgate::bench {

// long_context: one sequence of up to 131,072 tokens. decode_only = n > 0: n
// sequences. quick: at most 64 sequences at once (65 planned). Otherwise
// the full benchmark: up to 256 sequences.
inline gpu::CudaBackendOptions GpuBenchOptions(bool long_context, bool quick, int decode_only) {
  gpu::CudaBackendOptions opt;
  opt.kv.max_sequences = 256;
  opt.max_context = 8192 + 256;
  // One long sequence + 128 of up to 512 tokens (or 256 of up to 256).
  opt.kv.num_full_blocks = (8192 + 256) / 16 + 2 + 128 * 32;
  opt.max_step_tokens = 4096;
  if (long_context) {
    opt.kv.max_sequences = 1;
    opt.max_context = 131072;  // the model's (clamped to it)
    opt.kv.num_full_blocks = 131072 / 16 + 1;
  } else if (decode_only > 0) {
    opt.kv.max_sequences = std::min(decode_only, 256);
  } else if (quick) {
    opt.kv.max_sequences = 65;
  }
  return opt;
}

}  // namespace ossgate::bench
