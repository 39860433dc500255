// The streaming load's device-side work on the verified file image: the
// repack of ggml matrices into the tiled layout (the same per-lane function
// as the host repacker, repack_tile.h, so the bytes are identical; k-quant
// blocks re-quantized into Q8_0 tiles on the way) and the
// scan for non-finite scales that BindWeights does on the host for host
// files. Both run once per load; they are bandwidth-bound byte shuffles.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda_check.h"
#include "kernels/ops.h"
#include "kernels/repack_tile.h"

namespace ossgate::kernels {

namespace {

constexpr int kRepackThreads = 256;  // 8 tiles per block, a warp per tile
constexpr int kScanThreads = 256;

__global__ void RepackTilesKernel(WFormat fmt, RepackSource src, int64_t n_mats, int64_t row_tiles,
                                  int64_t k_blocks, uint8_t* codes, uint8_t* scales) {
  const int64_t tiles = n_mats * row_tiles * k_blocks;
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t tile = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; tile < tiles;
       tile += warps) {
    const int64_t kb = tile % k_blocks, rt = (tile / k_blocks) % row_tiles, mat = tile / (k_blocks * row_tiles);
    const int r = lane / 4;
    const RowRef lo = SourceRow(src, mat, rt * kTileRows + r);
    const RowRef hi = SourceRow(src, mat, rt * kTileRows + r + 8);
    // Tiles are ordered [matrix][row tile][k block] (layout.h).
    RepackLane(fmt, lo, hi, kb, lane, codes + tile * TileCodeBytes(fmt),
               scales ? scales + tile * TileScaleBytes(fmt) : nullptr);
  }
}

__device__ __forceinline__ bool Fp16IsBad(const uint8_t* p) { return ((p[0] | (p[1] << 8)) & 0x7C00) == 0x7C00; }

__device__ __forceinline__ bool BlockIsBad(WFormat fmt, RowEncoding enc, const uint8_t* data, int64_t b) {
  // k-quant super-blocks: Q4_K's and Q5_K's fp16 d and dmin lead the block,
  // Q6_K's d ends it; Q5_0's d and Q5_1's d and m lead their 32-element blocks.
  switch (enc) {
    case RowEncoding::kQ4_K: {
      const uint8_t* p = data + b * kQ4_KBlockBytes;
      return Fp16IsBad(p) || Fp16IsBad(p + 2);
    }
    case RowEncoding::kQ5_K: {
      const uint8_t* p = data + b * kQ5_KBlockBytes;
      return Fp16IsBad(p) || Fp16IsBad(p + 2);
    }
    case RowEncoding::kQ6_K: return Fp16IsBad(data + b * kQ6_KBlockBytes + 208);
    case RowEncoding::kQ5_0: return Fp16IsBad(data + b * kQ5_0BlockBytes);
    case RowEncoding::kQ5_1: {
      const uint8_t* p = data + b * kQ5_1BlockBytes;
      return Fp16IsBad(p) || Fp16IsBad(p + 2);
    }
    case RowEncoding::kTileFormat: break;
  }
  switch (fmt) {
    case WFormat::kQ8_0: {
      const uint8_t* p = data + b * kQ8_0BlockBytes;
      return ((p[0] | (p[1] << 8)) & 0x7C00) == 0x7C00;
    }
    case WFormat::kMxfp4: return data[b * kMxfp4BlockBytes] == 0xFF;
    case WFormat::kF16: {
      const uint8_t* p = data + b * 2;
      return ((p[0] | (p[1] << 8)) & 0x7C00) == 0x7C00;
    }
    case WFormat::kBf16: {
      const uint8_t* p = data + b * 2;
      return ((p[0] | (p[1] << 8)) & 0x7F80) == 0x7F80;
    }
    case WFormat::kF32: {
      const uint8_t* p = data + b * 4;
      const uint32_t v = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
      return (v & 0x7F800000u) == 0x7F800000u;
    }
    case WFormat::kQ4K: break;  // Q4_K rows: checked by their encoding above
  }
  return false;
}

__global__ void FirstBadBlockKernel(WFormat fmt, RowEncoding enc, const uint8_t* data, int64_t blocks,
                                    unsigned long long* first) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += stride) {
    if (BlockIsBad(fmt, enc, data, b)) {
      atomicMin(first, static_cast<unsigned long long>(b));
      return;  // later blocks of this thread are larger
    }
  }
}

int GridFor(int64_t items_per_block, int64_t items) {
  int device = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t want = (items + items_per_block - 1) / items_per_block;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(want, int64_t{sms} * 16)));
}

}  // namespace

void LaunchRepackTiles(const RepackParams& p, cudaStream_t stream) {
  const int64_t tiles = p.n_mats * p.row_tiles * p.k_blocks;
  if (tiles == 0) return;
  RepackTilesKernel<<<GridFor(kRepackThreads / 32, tiles), kRepackThreads, 0, stream>>>(
      p.fmt, p.src, p.n_mats, p.row_tiles, p.k_blocks, p.codes, p.scales);
  CUDA_CHECK_LAUNCH();
}

void LaunchFirstBadBlock(WFormat fmt, RowEncoding enc, const uint8_t* data, int64_t blocks,
                         unsigned long long* first, cudaStream_t stream) {
  if (blocks == 0) return;
  FirstBadBlockKernel<<<GridFor(kScanThreads, blocks), kScanThreads, 0, stream>>>(fmt, enc, data, blocks, first);
  CUDA_CHECK_LAUNCH();
}

}  // namespace ossgate::kernels
