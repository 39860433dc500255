// Device layout of weight matrices for the CUDA kernels, shared by the host
// repacker (layout.cc, plain C++) and the device code (no CUDA types here).
//
// Matrices keep their file format on the GPU: the same codes and scales,
// only moved so that one warp loads one tile with one coalesced access and
// each lane receives exactly the operands of its tensor-core fragments.
//
// A tiled matrix is cut into tiles of 16 rows x 32 columns (one Q8_0/MXFP4
// block wide). Lane l of a warp (r = l / 4, c = l % 4) owns rows r and r + 8
// of the tile and the 8 "physical" columns 8c .. 8c+7 of the block. The lane
// feeds them to m16n8k16 mma A fragments as two k-steps; activations (the B
// operand) are read with the same column mapping, so the products pair up and
// each block's dot product is complete. Tiles are ordered
// [matrix][row tile][k block]; within a tile, lane-major.
//
//   Q8_0  : 16 B per lane (8 int8 of row r, 8 int8 of row r + 8) = 512 B/tile;
//           scales: uint32 per r = fp16 d(row r) | fp16 d(row r + 8) << 16 (32 B/tile).
//   MXFP4 : 8 B per lane: one uint32 per row holding 8 E2M1 codes = 256 B/tile.
//           Code (q, h) is column 8c + 2q + h (q = 0..3, h = 0..1); its 3
//           magnitude bits start at bit {9, 1, 4, 12}[q] + 16h and its sign
//           is bit {15, 7, 8, 0}[q] + 16h, so the fp16 pair q (column 2q in
//           the low half, 2q + 1 in the high half) is one or two shifts and
//           masks away (common.cuh: DecodeMxfp4Raw);
//           scales: uint16 per r = e8m0(row r) | e8m0(row r + 8) << 8 (16 B/tile).
//   Q4_K  : the k-quant's own bits (ggml block_q4_K: value d * sc * q - dmin * m
//           with q a 4-bit code, sc and m 6-bit per 32 columns, fp16 d and dmin
//           per 256 columns = per chunk of 8 tiles, see kChunkBlocks).
//           8 B per lane: one uint32 per row holding 8 codes; the code of
//           column 8c + 2q + h sits at bit 4q + 16h, so ((w >> 4q) & 0x000F000F)
//           is the pair q as two fp16 subnormals q * 2^-24 (common.cuh:
//           DecodeQ4KPair) = 256 B/tile;
//           scales, 40 B/tile: uint32 per r = sc(row r) | sc(row r + 8) << 8 |
//           m(row r) << 16 | m(row r + 8) << 24 (32 B), then fp16 d, fp16 dmin of
//           row 2i and of row 2i + 1, where i is the tile's place in its chunk
//           (8 B), so a chunk's 8 tiles carry the super-block scales of all 16
//           rows.
//   F16, BF16: 32 B per lane (8 values of row r, 8 of row r + 8) = 1 KiB/tile.
//   F32   : not tiled; row-major floats, used by the CUDA-core kernels.
//
// Fused gate/up expert matrices (gate_up = true): tile rt holds gate rows
// (features 8rt .. 8rt+7) in its rows 0..7 and the up rows of the same
// features in rows 8..15, so one thread holds the gate and the up value of a
// feature and applies the clamped SwiGLU in registers.
#pragma once

#include <cstdint>

namespace ossgate::kernels {

enum class WFormat : int32_t { kQ8_0 = 0, kMxfp4 = 1, kF16 = 2, kBf16 = 3, kF32 = 4, kQ4K = 5 };

inline constexpr int kTileRows = 16;
inline constexpr int kBlockK = 32;
// Canonical accumulation: a row's dot product is summed per chunk of
// kChunkBlocks blocks (mma chain from zero; MXFP4: each block's partial
// scaled into the chunk sum in block order; Q4_K: two mma chains, codes times
// sc and m alone, combined with the chunk's d and dmin; see gemm.cu), then the chunk sums
// are added in order. Every GEMM kernel follows it, so results do not depend on the kernel
// chosen, the batch, or the other rows (batch invariance).
inline constexpr int kChunkBlocks = 8;

constexpr int TileCodeBytes(WFormat f) {
  return f == WFormat::kQ8_0                            ? 512
         : f == WFormat::kMxfp4 || f == WFormat::kQ4K  ? 256
         : (f == WFormat::kF16 || f == WFormat::kBf16) ? 1024
                                                       : 0;
}
constexpr int TileScaleBytes(WFormat f) {
  return f == WFormat::kQ8_0 ? 32 : f == WFormat::kMxfp4 ? 16 : f == WFormat::kQ4K ? 40 : 0;
}
// Q4_K tiles: columns per super-block (one chunk), where d and dmin live.
inline constexpr int kQ4KSuperBlockCols = 256;
inline constexpr int kQ4KSuperScaleOffset = 32;  // byte offset of the d/dmin pairs in a tile's scales
static_assert(kChunkBlocks * kBlockK == kQ4KSuperBlockCols, "a Q4_K super-block is one chunk");
constexpr int LaneCodeBytes(WFormat f) { return TileCodeBytes(f) / 32; }
static_assert(TileCodeBytes(WFormat::kQ8_0) == kTileRows * kBlockK, "Q8_0 tile: one int8 per element");
static_assert(TileCodeBytes(WFormat::kMxfp4) == kTileRows * kBlockK / 2, "MXFP4 tile: one nibble per element");
static_assert(TileScaleBytes(WFormat::kQ8_0) == kTileRows * 2, "Q8_0: one fp16 scale per row and block");
static_assert(TileScaleBytes(WFormat::kMxfp4) == kTileRows, "MXFP4: one e8m0 byte per row and block");
static_assert(TileScaleBytes(WFormat::kQ4K) == kTileRows * 2 + 2 * 4, "Q4_K: sc and m per row, d and dmin of 2 rows");

// A stack of n_mats matrices of rows x cols in device memory (not owned).
struct TiledMatrix {
  WFormat fmt = WFormat::kF32;
  int32_t rows = 0;       // logical output rows per matrix (features for gate_up)
  int32_t cols = 0;       // K, the input features
  int32_t n_mats = 1;
  int32_t row_tiles = 0;  // tiles of 16 device rows per matrix
  int32_t k_blocks = 0;   // cols / 32 (tiled formats)
  bool gate_up = false;   // fused gate/up (rows = d_ff features, 2 * rows device rows)
  int64_t mat_code_bytes = 0;   // per matrix
  int64_t mat_scale_bytes = 0;  // per matrix
  const uint8_t* codes = nullptr;   // tiled formats
  const uint8_t* scales = nullptr;  // Q8_0, MXFP4, Q4_K
  const float* f32 = nullptr;       // kF32: [n_mats][rows][cols]
};

// Bytes of the tiled form of one matrix (codes, scales).
struct TiledBytes {
  int64_t codes = 0;
  int64_t scales = 0;
};
inline int32_t RowTilesFor(int64_t rows, bool gate_up) {
  return static_cast<int32_t>(gate_up ? (rows + 7) / 8 : (rows + kTileRows - 1) / kTileRows);
}
inline TiledBytes TiledSize(WFormat f, int64_t rows, int64_t cols, bool gate_up) {
  if (f == WFormat::kF32) return {rows * cols * 4, 0};
  const int64_t tiles = static_cast<int64_t>(RowTilesFor(rows, gate_up)) * (cols / kBlockK);
  return {tiles * TileCodeBytes(f), tiles * TileScaleBytes(f)};
}

}  // namespace ossgate::kernels
