// Host launchers of the gpt-oss CUDA kernels. Each kernel family lives in one
// .cu file (kernels first, launchers after); this header is what the backend
// and the tests call. Every launcher takes one params struct (passed to the
// kernel by value), computes the grid, checks its shapes, launches on the given
// stream and checks the launch. Pointers are device pointers; fp16 and bf16
// tensors are declared as uint16_t here so host code needs no CUDA headers
// beyond the runtime API.
//
// Precision: the residual stream, norms, router, softmax and attention
// statistics are fp32; GEMM inputs are fp16 with fp32 accumulation; the KV
// cache is bf16.
//
// Batch invariance: every kernel computes each output row from that row's
// inputs alone, in an order fixed by the shapes of the model (never by the
// number of tokens, sequences or the kernel variant picked), so a sequence's
// results are bitwise the same whatever else runs in its step and however its
// prompt is chunked.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/gemm_tuning.h"
#include "kernels/layout.h"
#include "kernels/repack_tile.h"

namespace ossgate::kernels {

using half_t = uint16_t;  // fp16 bits
using bf16_t = uint16_t;  // bf16 bits

// ---------------------------------------------------------------- GEMM ----

enum class GemmEpilogue : int32_t {
  kStoreF32,  // out_f32[b][row] = acc + bias[row]
  kSwiGlu,    // gate/up matrix: out_f16[b][f] = swiglu(gate + bg[f], up + bu[f])
};

enum class GemmPath : int32_t { kAuto, kSmallBatch, kLargeBatch };

// Token groups of a mixture-of-experts GEMM (device arrays written by
// LaunchRouter: MoeRouting). B row i (a pair slot) belongs to the expert whose
// [offsets[e], offsets[e+1]) holds i.
struct MoeGroups {
  const int32_t* offsets = nullptr;   // [E + 1]
  const int32_t* active = nullptr;    // [E] experts with pairs, ascending
  const int32_t* n_active = nullptr;  // [1]
  const int32_t* tiles = nullptr;     // [max_tiles][3]: expert, first slot, end slot (<= tile_slots slots)
  const int32_t* n_tiles = nullptr;   // [1]
  int32_t max_active = 0;             // grid bounds
  int32_t max_tiles = 0;
  // Slots per tile, as the router was told (MoeRouting::tile_slots): 8, 16,
  // 32 or 64. The large-batch path stages that many tokens per CTA.
  int32_t tile_slots = 64;
};

// y = W x for the rows of B: out[b][row] for b in [0, n_b).
struct GemmParams {
  TiledMatrix w;
  const half_t* x = nullptr;       // activations fp16, row stride ldx (a multiple of 8)
  int32_t ldx = 0;
  const int32_t* gather = nullptr;  // optional: B row b reads x row gather[b]
  int32_t n_b = 0;                  // rows of B (tokens, or pair slots for MoE)
  const float* bias = nullptr;      // [n_mats][rows] (kStoreF32)
  const float* bias_gate = nullptr;  // [n_mats][features] (kSwiGlu)
  const float* bias_up = nullptr;
  float* out_f32 = nullptr;
  half_t* out_f16 = nullptr;
  int32_t ldo = 0;
  GemmEpilogue epilogue = GemmEpilogue::kStoreF32;
  float swiglu_alpha = 1.702f;
  float swiglu_limit = 7.0f;
  // kSwiGlu of the dense families (qwen2, phi3): silu(gate) * up, no clamp;
  // bias_gate / bias_up may then be null.
  bool silu_glu = false;
  bool moe = false;  // use `groups` (w.n_mats experts)
  MoeGroups groups;
  // MoE: the routing was complete when the previous kernel started (e.g. the
  // down projection after the gate/up GEMM, which waited for the router), so
  // it and the first weights are read before waiting for that kernel.
  bool routing_ready = false;
  GemmPath path = GemmPath::kAuto;
};
void LaunchGemm(const GemmParams& p, cudaStream_t stream);
// Which path kAuto picks for n_b rows (for reports).
GemmPath ChooseGemmPath(const GemmParams& p);
// SetGemmTuning / GetGemmTuning: kernels/gemm_tuning.h.

// ------------------------------------------------- elementwise kernels ----

// x[t] = dequantized row tokens[t] of the raw GGUF embedding matrix.
struct EmbedParams {
  const uint8_t* table = nullptr;  // raw ggml rows
  int32_t type = 0;                // gguf::GgmlType id: F32, F16, BF16, Q8_0, Q5_0, Q5_1, Q4_K, Q5_K,
                                   // Q6_K, MXFP4
  int64_t row_bytes = 0;
  int32_t d = 0;
  const int32_t* tokens = nullptr;
  int32_t n_tokens = 0;
  float* x = nullptr;  // [n][d]
};
void LaunchEmbed(const EmbedParams& p, cudaStream_t stream);

// Residual update and RMSNorm, one block per token:
//   x[t] += add[t] + sum_k moe_w[t][k] * moe_y[moe_slot[t][k]]   (each term optional)
//   h = x[t] * rsqrt(mean(x[t]^2) + eps) * norm_w
// written as fp16 (h16) and optionally fp32 (h32). The expert terms are added
// in increasing expert id, as the CPU reference does.
struct AddNormParams {
  float* x = nullptr;  // [n][d], updated in place
  int32_t d = 0;
  int32_t n_tokens = 0;
  const float* add = nullptr;       // [n][d] or null
  const float* moe_y = nullptr;     // [slots][d] or null
  const int32_t* moe_slot = nullptr;  // [n][k]
  const int32_t* moe_ids = nullptr;   // [n][k]
  const float* moe_w = nullptr;       // [n][k]
  int32_t moe_k = 0;
  const float* norm_w = nullptr;  // [d]
  float eps = 1e-5f;
  half_t* h16 = nullptr;  // [n][d]
  float* h32 = nullptr;   // [n][d] or null
};
void LaunchAddNorm(const AddNormParams& p, cudaStream_t stream);

// Splits the fused q|k|v projection, applies YaRN RoPE (NeoX halves) to q and
// k, and writes q as fp16 and the new k, v as bf16.
struct RopeParams {
  const float* qkv = nullptr;  // [n][q_dim + 2 kv_dim]
  const int32_t* pos = nullptr;
  int32_t n_tokens = 0;
  int32_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  const double* inv_freq = nullptr;  // [head_dim / 2]
  double attention_factor = 1.0;
  half_t* q = nullptr;      // [n][q_dim]
  bf16_t* k_new = nullptr;  // [n][kv_dim]
  bf16_t* v_new = nullptr;
  // Precision experiment (CudaBackendOptions::kv_fp16): k_new/v_new as fp16
  // instead of bf16 (same bytes, 3 more mantissa bits).
  int32_t kv_f16 = 0;
  // Optional table of the rotation for positions [0, table_positions):
  // [pos][cos x head_dim/2, sin x head_dim/2] floats, filled by
  // LaunchRopeTable with exactly the values the kernel would compute.
  const float* table = nullptr;
  int32_t table_positions = 0;
};
void LaunchRope(const RopeParams& p, cudaStream_t stream);
// Fills `table` ([positions][head_dim] floats) for p's frequencies.
void LaunchRopeTable(const RopeParams& p, float* table, int positions, cudaStream_t stream);

// ----------------------------------------------------------- attention ----

// Keys are tiled in 64s and grouped in splits of kAttnSplitKeys, both aligned
// at absolute positions; a row's result is the left-to-right merge of its
// splits. The decode kernel runs splits in parallel and merges them in
// LaunchAttentionCombine; the prefill kernel merges them in registers. Both
// give the same bits.
inline constexpr int kAttnTileKeys = 64;
inline constexpr int kAttnSplitKeys = 256;

// Per-step sequence tables (device arrays, indexed by the step's sequence i).
struct SeqTables {
  const int32_t* start = nullptr;      // KV length before this step
  const int32_t* n = nullptr;          // tokens in this step
  const int32_t* first_row = nullptr;  // row of its first token in the step
  const int32_t* full_off = nullptr;   // offset of its full-layer block table in `tables`
  const int32_t* ring_off = nullptr;   // offset of its sliding ring in `tables`
  const int32_t* tables = nullptr;
};

enum class AttnSplitMode : int32_t { kAuto, kSerial, kParallel };

struct AttnParams {
  const half_t* q = nullptr;      // [rows][n_heads][head_dim]
  const bf16_t* k_new = nullptr;  // [rows][n_kv_heads][head_dim], this step's keys
  const bf16_t* v_new = nullptr;
  const bf16_t* k_cache = nullptr;  // this layer: [blocks][n_kv_heads][block_size][head_dim]
  const bf16_t* v_cache = nullptr;
  int32_t block_size = 16;
  int32_t sliding = 0;  // window layer: ring tables, keys p - window < j <= p
  int32_t window = 0;
  int32_t ring_blocks = 0;
  SeqTables seqs;
  const float* sinks = nullptr;  // [n_heads]
  float scale_log2 = 0.0f;       // softmax scale * log2(e)
  int32_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int32_t kv_f16 = 0;     // K/V (cache and new) hold fp16 instead of bf16 (precision experiment)
  half_t* out = nullptr;  // [rows][n_heads][head_dim]
  // Work: prefill items (sequence, query tile) or decode items (sequence).
  const int32_t* items = nullptr;   // prefill: [2 * n]; decode: [n]
  const int32_t* n_items = nullptr;  // [1]
  int32_t max_items = 0;
  // Decode only: scratch for split states and each item's first split slot.
  const int32_t* split_off = nullptr;  // [items]
  float* part = nullptr;               // [slots][n_heads][head_dim + 2]
  int32_t max_splits = 0;              // grid bound on splits per item
  // How decode runs a row's splits: kAuto = in one CTA (no combine launch)
  // when max_splits <= 2 (sliding layers, short contexts), else in parallel
  // CTAs + a combine kernel. Both give the same bits (tests force each).
  AttnSplitMode split_mode = AttnSplitMode::kAuto;
};
// Query tokens per prefill item (= per CTA).
int AttentionPrefillTokensPerItem(int n_heads, int n_kv_heads);
void LaunchAttentionPrefill(const AttnParams& p, cudaStream_t stream);
void LaunchAttentionDecode(const AttnParams& p, cudaStream_t stream);

// Writes this step's K/V rows into the cache (skipping ring positions that a
// later token of the same step overwrites).
struct KvWriteParams {
  const bf16_t* k_new = nullptr;
  const bf16_t* v_new = nullptr;
  bf16_t* k_cache = nullptr;
  bf16_t* v_cache = nullptr;
  const int32_t* tok_seq = nullptr;  // [rows] sequence index of each row, -1 = padding
  const int32_t* pos = nullptr;
  int32_t n_tokens = 0;
  SeqTables seqs;
  int32_t sliding = 0;
  int32_t ring_blocks = 0;
  int32_t block_size = 16;
  int32_t n_kv_heads = 0, head_dim = 0;
};
void LaunchKvWrite(const KvWriteParams& p, cudaStream_t stream);

// ----------------------------------------------------------------- MoE ----

// The routing of a step: the (token, k) pairs grouped by expert (stable: by
// token within an expert), which the expert GEMMs read (MoeGroups).
struct MoeRouting {
  int32_t tile_slots = 64;      // slots per large-batch tile: 8, 16, 32 or 64 (MoeTileSlots)
  int32_t* offsets = nullptr;   // [E + 1]
  int32_t* active = nullptr;    // [E]
  int32_t* n_active = nullptr;  // [1]
  int32_t* tiles = nullptr;     // [max_tiles][3]
  int32_t* n_tiles = nullptr;   // [1]
  int32_t max_tiles = 0;
  int32_t* slot_token = nullptr;  // [n * k] token of each slot
  int32_t* pair_slot = nullptr;   // [n][k] slot of each pair (-1 beyond the valid rows)
  // An expert-parallel rank's experts [expert_begin, expert_end) (end -1: all):
  // active and tiles list only those, numbered from expert_begin (the rank's
  // weight matrices); offsets, slot_token and pair_slot cover every pair.
  int32_t expert_begin = 0;
  int32_t expert_end = -1;
};

// The whole routing of a MoE layer in one launch: router logits (fp32, from
// fp32 activations), top-k and softmax of the chosen logits (ids/weights in
// rank order), and the grouping. Rows beyond *n_valid are not written.
struct RouterParams {
  const float* h = nullptr;  // [n][d]
  const float* w = nullptr;  // [E][d] fp32
  const float* b = nullptr;  // [E]
  int32_t n_tokens = 0;
  const int32_t* n_valid = nullptr;  // optional device count (graphs); rows beyond it are skipped
  int32_t d = 0, n_experts = 0, k = 0;
  int32_t* ids = nullptr;  // [n][k]
  float* weights = nullptr;
  MoeRouting route;
  // Workspace: logits [n][E], and RouterCounters(n) counters that must be
  // zero before the first launch (each launch leaves them zero).
  float* logits = nullptr;
  uint32_t* done = nullptr;
};
void LaunchRouter(const RouterParams& p, cudaStream_t stream);
int RouterCounters(int n_tokens);
inline int32_t MoeMaxTiles(int32_t pairs, int32_t experts, int32_t tile_slots) {
  return pairs / tile_slots + experts;
}
// The smallest tile a routing may use (MoeMaxTiles(pairs, experts,
// kMinMoeTileSlots) bounds every choice of MoeTileSlots).
inline constexpr int32_t kMinMoeTileSlots = 8;
// Slots per tile for the routing of `pairs` (token, expert) pairs over
// `experts` experts, as GemmTuning::moe_tile_slots says (kernels/gemm_tuning.h).
int32_t MoeTileSlots(int32_t pairs, int32_t experts);

// ------------------------------------------------------------ sampling ----

// Per row: model::Sampler's result for the row's logits, bit for bit
// (greedy, or temperature with top-k / top-p / min-p by the Gumbel-max trick
// over the kept candidate prefix; sampling_math.h): the token id, or
// model::kNoToken (-1) for a row holding NaN or no logit above -inf. Ids
// whose bit is set in `unsampled` are never returned (their logits count as
// -inf, as SuppressUnsampled makes them on the host path). One launch for
// greedy and plain temperature rows; top-k and top-p add three launches each
// and one more for the draw (sampling.cu). No vocabulary sort, any top_k.
struct SampleRow {
  float temperature = 0.0f;  // <= 0: greedy
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  uint64_t seed = 0;
  uint64_t step = 0;
};
struct SampleParams {
  const float* logits = nullptr;  // [rows][vocab]
  int32_t vocab = 0;
  int32_t n_rows = 0;
  const SampleRow* rows = nullptr;       // device [n_rows]
  const SampleRow* rows_host = nullptr;  // the same rows on the host (which passes to launch)
  const uint32_t* unsampled = nullptr;   // device bit per id (ModelConfig::unsampled_tokens), or null
  void* workspace = nullptr;             // SampleWorkspaceBytes(n_rows or more), zeroed before the first launch
  int32_t* out = nullptr;                // [n_rows]
};
// Device scratch of LaunchSample for up to `rows` rows; every launch leaves
// it zeroed again.
size_t SampleWorkspaceBytes(int rows);
void LaunchSample(const SampleParams& p, cudaStream_t stream);

// Sets the shared-memory limits of every kernel; call once per device before
// launching (and before capturing graphs).
void InitKernels();

// ---------------------------------------------------------- load-time ----

// Tiles n_mats matrices of row_tiles x k_blocks tiles from the ggml rows of
// `src` (device pointers, repack_tile.h; k-quant parts re-quantized into
// Q8_0 tiles) into codes/scales laid out as [matrix][row tile][k block]
// (scales null for F16/BF16). Byte-identical to the host RepackTiles.
struct RepackParams {
  WFormat fmt = WFormat::kQ8_0;
  RepackSource src;
  int64_t n_mats = 1;
  int64_t row_tiles = 0;
  int64_t k_blocks = 0;
  uint8_t* codes = nullptr;
  uint8_t* scales = nullptr;
};
void LaunchRepackTiles(const RepackParams& p, cudaStream_t stream);

// Lowers *first (initialise it to ~0) to the index of the first block of
// `data` (a matrix of `blocks` blocks in ggml's row-major block sequence, in
// format fmt: F32/F16/BF16 blocks are single values; with a k-quant `enc`
// the blocks are its 256-element super-blocks, with Q5_0 / Q5_1 its blocks
// of 32) whose scale (Q8_0 and Q5_0 fp16 d, Q5_1 fp16 d or m, Q4_K and Q5_K
// fp16 d or dmin, Q6_K fp16 d, MXFP4 E8M0 0xFF) or value is not finite.
void LaunchFirstBadBlock(WFormat fmt, RowEncoding enc, const uint8_t* data, int64_t blocks,
                         unsigned long long* first, cudaStream_t stream);

}  // namespace ossgate::kernels
