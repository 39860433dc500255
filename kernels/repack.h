// Host-side repacking of GGUF matrices into the tiled device layout of
// layout.h. Plain C++ (no CUDA): the CUDA backend runs it while uploading,
// and CPU-only tests check it against the CPU dequantizer.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/ggml_types.h"
#include "kernels/layout.h"

namespace ossgate::kernels {

// The tiled format that stores `type` without changing its bits.
absl::StatusOr<WFormat> FormatForType(gguf::GgmlType type);

// Source of device row `dev_row` of a matrix being tiled: a pointer to the
// ggml row (row_bytes of the matrix's type), or nullptr for a padding row,
// which is stored as zeros.
using RowSource = std::function<const uint8_t*(int64_t dev_row)>;

// Writes row tiles [rt_begin, rt_end) of a matrix with `k_blocks` blocks per
// row, reading ggml rows through `src`. codes/scales point at the bytes of
// tile rt_begin (so a range can be staged on its own). Thread-safe for
// disjoint ranges.
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
