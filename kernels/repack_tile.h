// One lane of one tile of the tiled weight layout (layout.h), written from
// the ggml rows it covers. Shared by the host repacker (repack.cc) and the
// device repack kernel (repack.cu) that the streaming load uses, so both
// produce the same bytes by construction (tests/gpu/repack_test.cc checks it).
// No CUDA types: compiled by the host compiler and by nvcc.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/layout.h"

#if defined(__CUDACC__)
#define OSSGATE_REPACK_HD __host__ __device__
#else
#define OSSGATE_REPACK_HD
#endif

namespace ossgate::kernels {

// ggml block layouts (ggml-common.h; spec §1.4): Q8_0 = fp16 d + 32 int8,
// MXFP4 = E8M0 e + 16 bytes of nibbles (element j low, j + 16 high).
inline constexpr int kQ8_0BlockBytes = 34;
inline constexpr int kMxfp4BlockBytes = 17;

// Where the rows of a matrix being tiled come from: the ggml rows of one to
// three tensors stacked (q, k and v fused into one matrix), or of a gate and
// an up tensor interleaved per tile (gate_up). Pointers may be host or device
// memory, matching where the repack runs.
struct RepackSource {
  const uint8_t* part[3] = {nullptr, nullptr, nullptr};  // matrix 0 of each part
  int64_t part_rows[3] = {0, 0, 0};                      // rows per matrix of each part
  int32_t n_parts = 1;
  bool gate_up = false;   // part 0 = gate, part 1 = up; features = part_rows[0]
  int64_t row_bytes = 0;  // ggml bytes of one row (every part)
};

// The ggml row behind device row `dev_row` of matrix `mat`, or nullptr for
// a padding row (stored as zeros).
OSSGATE_REPACK_HD inline const uint8_t* SourceRow(const RepackSource& s, int64_t mat, int64_t dev_row) {
  if (s.gate_up) {
    const int64_t rt = dev_row / kTileRows, i = dev_row % kTileRows;
    const int64_t f = rt * 8 + (i % 8), features = s.part_rows[0];
    if (f >= features) return nullptr;
    return s.part[i >= 8 ? 1 : 0] + (mat * features + f) * s.row_bytes;
  }
  for (int p = 0; p < s.n_parts; ++p) {
    if (dev_row < s.part_rows[p]) return s.part[p] + (mat * s.part_rows[p] + dev_row) * s.row_bytes;
    dev_row -= s.part_rows[p];
  }
  return nullptr;
}

// Where the magnitude (3 bits) and the sign of the MXFP4 code of pair q,
// half h live in a row's uint32 (layout.h): chosen so that DecodeMxfp4Raw
// moves each pair into fp16 bits 9..11 and 15 (+16 for h = 1) with one or
// two shifts.
OSSGATE_REPACK_HD constexpr int Mxfp4MagBit(int q) { return q == 0 ? 9 : q == 1 ? 1 : q == 2 ? 4 : 12; }
OSSGATE_REPACK_HD constexpr int Mxfp4SignBit(int q) { return q == 0 ? 15 : q == 1 ? 7 : q == 2 ? 8 : 0; }

// Code of element e (0..31) of a ggml MXFP4 block.
OSSGATE_REPACK_HD inline uint32_t Mxfp4BlockCode(const uint8_t* block, int e) {
  return e < 16 ? (block[1 + e] & 0x0Fu) : (block[1 + e - 16] >> 4);
}

// Writes lane `lane` (r = lane / 4, c = lane % 4) of tile k-block `kb` whose
// rows r and r + 8 are `lo` and `hi` (nullptr: padding): its code bytes at
// tile_codes + lane * LaneCodeBytes, and for c == 0 the scale entry of row
// pair r in tile_scales (Q8_0, MXFP4).
OSSGATE_REPACK_HD inline void RepackLane(WFormat fmt, const uint8_t* lo, const uint8_t* hi, int64_t kb, int lane,
                                  uint8_t* tile_codes, uint8_t* tile_scales) {
  const int r = lane / 4, c = lane % 4;
  uint8_t* dst = tile_codes + lane * LaneCodeBytes(fmt);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* row = h ? hi : lo;
    switch (fmt) {
      case WFormat::kQ8_0: {
        const uint8_t* qs = row ? row + kb * kQ8_0BlockBytes + 2 + 8 * c : nullptr;
        for (int j = 0; j < 8; ++j) dst[8 * h + j] = qs ? qs[j] : 0;
        break;
      }
      case WFormat::kMxfp4: {
        uint32_t w = 0;
        if (row) {
          const uint8_t* b = row + kb * kMxfp4BlockBytes;
          for (int q = 0; q < 4; ++q) {
            for (int half = 0; half < 2; ++half) {
              const uint32_t code = Mxfp4BlockCode(b, 8 * c + 2 * q + half);
              w |= (code & 7u) << (Mxfp4MagBit(q) + 16 * half);
              w |= (code >> 3) << (Mxfp4SignBit(q) + 16 * half);
            }
          }
        }
        for (int j = 0; j < 4; ++j) dst[4 * h + j] = static_cast<uint8_t>(w >> (8 * j));
        break;
      }
      case WFormat::kF16:
      case WFormat::kBf16: {
        const uint8_t* v = row ? row + (kb * kBlockK + 8 * c) * 2 : nullptr;
        for (int j = 0; j < 16; ++j) dst[16 * h + j] = v ? v[j] : 0;
        break;
      }
      case WFormat::kF32: break;
    }
  }
  if (c != 0) return;
  if (fmt == WFormat::kQ8_0) {
    // uint32 per r: fp16 d(row r) | fp16 d(row r + 8) << 16, little-endian.
    for (int h = 0; h < 2; ++h) {
      const uint8_t* row = h ? hi : lo;
      const uint8_t* d = row ? row + kb * kQ8_0BlockBytes : nullptr;
      tile_scales[4 * r + 2 * h] = d ? d[0] : 0;
      tile_scales[4 * r + 2 * h + 1] = d ? d[1] : 0;
    }
  } else if (fmt == WFormat::kMxfp4) {
    tile_scales[2 * r] = lo ? lo[kb * kMxfp4BlockBytes] : 0;
    tile_scales[2 * r + 1] = hi ? hi[kb * kMxfp4BlockBytes] : 0;
  }
}

}  // namespace ossgate::kernels
