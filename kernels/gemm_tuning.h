// How LaunchGemm (kernels/ops.h) picks a kernel for GemmPath::kAuto: plain
// C++, so host code without CUDA headers (the backend's public header) can
// name it.
#pragma once

namespace ossgate::kernels {

// How kAuto launches pick their kernel (every choice gives the same bits):
// the large-batch path for dense GEMMs of more than `dense_small_max` rows
// and MoE GEMMs whose experts average more than `moe_small_avg` rows;
// small-batch passes of 16 tokens (two n-tiles per decoded weight tile)
// above `pass16_min_avg` rows per matrix on average, else 8; large-batch
// CTAs of 4 row tiles instead of 8 when 8 would leave fewer than two CTAs
// per SM (`large_narrow`). MoE routings group the pairs into tiles of
// `moe_tile_slots` slots (8, 16, 32 or 64), which the large-batch path
// stages per CTA (MXFP4 experts; other formats run 64-slot CTAs over any
// tile); 0 = the smallest of 16, 32, 64 that is at least the average pairs
// per expert. Tuning and tests; CUDA graphs captured before a change keep
// the old choice.
struct GemmTuning {
  int dense_small_max = 32;
  int moe_small_avg = 4;
  int pass16_min_avg = 8;
  bool large_narrow = true;
  int moe_tile_slots = 0;
};
void SetGemmTuning(const GemmTuning& t);
GemmTuning GetGemmTuning();

}  // namespace ossgate::kernels
