// Host-side repacking of GGUF matrices into the tiled device layout of
// layout.h. Plain C++ (no CUDA): the CUDA backend runs it while uploading,
// and CPU-only tests check it against the CPU dequantizer.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/ggml_types.h"
#include "kernels/layout.h"
#include "kernels/repack_tile.h"

namespace ossgate::kernels {

// The tiled format of `type` on the device: the one that stores its bits
// unchanged (Q4_K: WFormat::kQ4K), or for Q5_0, Q5_1, Q5_K and Q6_K Q8_0,
// their blocks re-quantized on upload (repack_tile.h: RequantizeQ8Block).
absl::StatusOr<WFormat> FormatForType(gguf::GgmlType type);
// The tiled format of one matrix fused from rows of these types (q/k/v,
// gate/up): their common format, or Q8_0 where Q8_0, Q4_K and the types
// re-quantized into Q8_0 tiles (Q5_0, Q5_1, Q5_K, Q6_K) mix (a Q4_K_M file's
// Q4_K attn_q next to a Q6_K attn_v: every k-quant part re-quantized); an
// error naming the types for any other mix.
absl::StatusOr<WFormat> FusedFormatForTypes(const std::vector<gguf::GgmlType>& types);
// The rule those errors state, and "Q4_K, Q4_K, BF16" for a list of types
// (for the callers that name the fused tensors in their own message).
inline constexpr char kFusedFormatRule[] =
    "Q8_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K go together, every other type only with itself";
std::string TypeList(const std::vector<gguf::GgmlType>& types);
// How rows of `type` are read when tiled into FormatForType(type).
RowEncoding EncodingForType(gguf::GgmlType type);

// Source of device row `dev_row` of a matrix being tiled: the ggml row
// (row_bytes of its type) and its encoding, or a null row for padding,
// which is stored as zeros. A plain pointer converts to a row in the tile
// format's own encoding.
using RowSource = std::function<RowRef(int64_t dev_row)>;

// Writes row tiles [rt_begin, rt_end) of a matrix with `k_blocks` blocks (of
// 32) per row, reading ggml rows through `src`. codes/scales point at the
// bytes of tile rt_begin (so a range can be staged on its own). Thread-safe
// for disjoint ranges.
void RepackTiles(WFormat fmt, int64_t k_blocks, const RowSource& src, int64_t rt_begin, int64_t rt_end,
                 uint8_t* codes, uint8_t* scales);

// Device row -> source row for a plain matrix of `rows` rows, and for a fused
// gate/up matrix (tile rt: rows 0-7 gate features 8rt.., rows 8-15 up).
// Returns -1 for padding; `is_up` tells which input a gate/up row comes from.
inline int64_t PlainSourceRow(int64_t dev_row, int64_t rows) { return dev_row < rows ? dev_row : -1; }
inline int64_t GateUpSourceRow(int64_t dev_row, int64_t features, bool* is_up) {
  const int64_t rt = dev_row / kTileRows, i = dev_row % kTileRows;
  *is_up = i >= 8;
  const int64_t f = rt * 8 + (i % 8);
  return f < features ? f : -1;
}

// The value the kernels compute for element (dev_row, col) of a tiled
// matrix, decoded from the tiled bytes exactly as the device does (Q8_0: the
// fp16 rounding of d * q; BF16: converted to fp16; MXFP4: exact). For tests.
float TiledValue(WFormat fmt, int64_t k_blocks, const uint8_t* codes, const uint8_t* scales, int64_t dev_row,
                 int64_t col);

}  // namespace ossgate::kernels
