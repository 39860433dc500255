// Every CUDA kernel against the CPU reference (cpu_ops and the GGUF
// dequantizer) on fresh random inputs of several shapes, odd ones included,
// with outputs poisoned before each launch. Tolerances follow the precision
// of each kernel: fp16 GEMM inputs (~2^-11 per element), fp16/bf16 outputs,
// fp32 elsewhere. Kernel variants that must agree bit for bit (the two GEMM
// paths, decode vs prefill attention) are compared exactly.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/model/cpu_ops.h"
#include "inference_worker/model/sampler.h"
#include "inference_worker/model/thread_pool.h"
#include "inference_worker/model/weights.h"
#include "kernels/ops.h"
#include "kernels/repack.h"
#include "tests/gpu/gpu_test_util.h"

namespace ossgate::testing {
namespace {

using gguf::GgmlType;
using kernels::GemmPath;
using kernels::TiledMatrix;
using kernels::WFormat;

// Kernel attributes (the large-batch GEMM's 64 KiB of shared memory) are set
// once per process, as the backend does at creation.
class KernelEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { kernels::InitKernels(); }
};
const ::testing::Environment* const kKernelEnv = ::testing::AddGlobalTestEnvironment(new KernelEnvironment);

model::ThreadPool& Pool() {
  static model::ThreadPool pool(0);
  return pool;
}

// A stack of random matrices in a ggml type, with a model::Matrix view.
struct HostWeights {
  GgmlType type;
  int64_t rows, cols, n_mats;
  std::vector<uint8_t> bytes;
  model::Matrix view;
};

HostWeights RandomWeights(GgmlType type, int64_t rows, int64_t cols, int64_t n_mats, std::mt19937& rng,
                          float stddev) {
  HostWeights w{type, rows, cols, n_mats, {}, {}};
  const int64_t row_bytes = gguf::RowBytes(type, cols);
  w.bytes.resize(row_bytes * rows * n_mats);
  for (int64_t r = 0; r < rows * n_mats; ++r) {
    const std::vector<float> v = RandomFloats(cols, rng, stddev);
    gguf::QuantizeRow(type, v.data(), w.bytes.data() + r * row_bytes, cols);
  }
  w.view.type = type;
  w.view.cols = cols;
  w.view.rows = rows;
  w.view.n_mats = n_mats;
  w.view.row_bytes = row_bytes;
  w.view.data = w.bytes.data();
  return w;
}

// Device copy of a tiled matrix.
struct DeviceTiled {
  DevBuf<uint8_t> codes, scales;
  TiledMatrix t;
};

DeviceTiled Tile(const std::vector<const model::Matrix*>& parts, bool gate_up) {
  const model::Matrix& m = *parts[0];
  const WFormat fmt = *kernels::FormatForType(m.type);
  const int64_t rows = gate_up ? m.rows : m.rows;
  DeviceTiled d;
  TiledMatrix& t = d.t;
  t.fmt = fmt;
  t.rows = static_cast<int32_t>(rows);
  t.cols = static_cast<int32_t>(m.cols);
  t.n_mats = static_cast<int32_t>(m.n_mats);
  t.gate_up = gate_up;
  const kernels::TiledBytes size = kernels::TiledSize(fmt, rows, m.cols, gate_up);
  t.mat_code_bytes = size.codes;
  t.mat_scale_bytes = size.scales;
  std::vector<uint8_t> codes(size.codes * m.n_mats), scales(size.scales * m.n_mats);
  if (fmt == WFormat::kF32) {
    std::memcpy(codes.data(), m.data, codes.size());
  } else {
    t.row_tiles = kernels::RowTilesFor(rows, gate_up);
    t.k_blocks = static_cast<int32_t>(m.cols / kernels::kBlockK);
    for (int64_t mat = 0; mat < m.n_mats; ++mat) {
      kernels::RepackTiles(
          fmt, t.k_blocks,
          [&](int64_t dev_row) -> kernels::RowRef {
            if (gate_up) {
              bool is_up = false;
              const int64_t f = kernels::GateUpSourceRow(dev_row, rows, &is_up);
              const model::Matrix& part = *parts[is_up ? 1 : 0];
              return f < 0 ? kernels::RowRef() : kernels::RowRef(part.Row(mat, f), kernels::EncodingForType(part.type));
            }
            return dev_row < rows ? kernels::RowRef(m.Row(mat, dev_row), kernels::EncodingForType(m.type))
                                  : kernels::RowRef();
          },
          0, t.row_tiles, codes.data() + mat * size.codes, scales.empty() ? nullptr : scales.data() + mat * size.scales);
    }
  }
  d.codes = DevBuf<uint8_t>(codes);
  if (!scales.empty()) d.scales = DevBuf<uint8_t>(scales);
  if (fmt == WFormat::kF32) {
    t.f32 = reinterpret_cast<const float*>(d.codes.get());
  } else {
    t.codes = d.codes.get();
    t.scales = scales.empty() ? nullptr : d.scales.get();
  }
  return d;
}

// Activations rounded to fp16 (what the GEMMs read), as floats and fp16 bits.
struct Acts {
  std::vector<float> f;
  std::vector<uint16_t> h;
};
Acts RandomActs(int64_t n, std::mt19937& rng, float stddev = 1.0f) {
  Acts a;
  a.f = RandomFloats(n, rng, stddev);
  for (float& v : a.f) {
    a.h.push_back(Half(v));
    v = HalfToFloat(a.h.back());
  }
  return a;
}

// ------------------------------------------------------------------ GEMM --

struct GemmCase {
  GgmlType type;
  int rows, cols;
};

class GemmTest : public ::testing::TestWithParam<GgmlType> {};

// The matrix the device holds for w as an F32 matrix (what TiledValue
// decodes from the host repack's tiles): for Q6_K, Q5_K, Q5_0 and Q5_1 its
// Q8_0 re-quantization, for Q4_K (own tiles) its exact values.
std::vector<float> TiledValues(const HostWeights& w) {
  const WFormat fmt = *kernels::FormatForType(w.type);
  const kernels::TiledBytes size = kernels::TiledSize(fmt, w.rows, w.cols, false);
  std::vector<uint8_t> codes(size.codes), scales(size.scales);
  const int64_t kb = w.cols / kernels::kBlockK;
  kernels::RepackTiles(
      fmt, kb,
      [&](int64_t r) {
        return r < w.rows ? kernels::RowRef(w.view.Row(0, r), kernels::EncodingForType(w.type)) : kernels::RowRef();
      },
      0, kernels::RowTilesFor(w.rows, false), codes.data(), scales.empty() ? nullptr : scales.data());
  std::vector<float> v(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) {
      v[r * w.cols + c] = kernels::TiledValue(fmt, kb, codes.data(), scales.empty() ? nullptr : scales.data(), r, c);
    }
  }
  return v;
}

TEST_P(GemmTest, DenseMatchesCpuAndBothPathsAgreeBitwise) {
  const GgmlType type = GetParam();
  // Q5_0 and Q5_1 blocks hold 32 elements: any width of whole blocks, like
  // Q8_0's (Qwen2.5-0.5B's 896 among them); the k-quants need super-blocks.
  const bool q5_blocks = type == GgmlType::kQ5_0 || type == GgmlType::kQ5_1;
  const bool k_quant = type == GgmlType::kQ4_K || type == GgmlType::kQ6_K || type == GgmlType::kQ5_K || q5_blocks;
  std::mt19937 rng(FreshSeed());
  const std::vector<std::pair<int, int>> shapes =
      k_quant && !q5_blocks
          ? std::vector<std::pair<int, int>>{{16, 256}, {37, 512}, {257, 768}, {600, 3072}}
          : std::vector<std::pair<int, int>>{{16, 32}, {37, 64}, {100, 96}, {257, 288}, {130, 896}, {600, 2880}};
  for (auto [rows, cols] : shapes) {
    const HostWeights w = RandomWeights(type, rows, cols, 1, rng, 1.0f / std::sqrt(static_cast<float>(cols)));
    DeviceTiled dw = Tile({&w.view}, false);
    const std::vector<float> bias = RandomFloats(rows, rng, 0.1f);
    DevBuf<float> dbias(bias);
    // k-quants and Q5_0 / Q5_1: the device computes Q6_K, Q5_K, Q5_0 and
    // Q5_1 with their Q8_0 re-quantization and Q4_K exactly (its own tiles);
    // the kernels are checked against a CPU matmul of that matrix at the
    // usual tolerance, and against the exact matrix at the one the
    // re-quantization adds (well under 1%: repack_test; for Q4_K the two
    // checks are the same).
    HostWeights tiled_w{GgmlType::kF32, rows, cols, 1, {}, {}};
    if (k_quant) {
      const std::vector<float> v = TiledValues(w);
      tiled_w.bytes.resize(v.size() * sizeof(float));
      std::memcpy(tiled_w.bytes.data(), v.data(), tiled_w.bytes.size());
      tiled_w.view = w.view;
      tiled_w.view.type = GgmlType::kF32;
      tiled_w.view.row_bytes = static_cast<uint64_t>(cols) * sizeof(float);
      tiled_w.view.data = tiled_w.bytes.data();
    }
    for (int T : {1, 3, 8, 17, 64, 130}) {
      const Acts x = RandomActs(static_cast<int64_t>(T) * cols, rng);
      DevBuf<uint16_t> dx(x.h);
      std::vector<float> want(static_cast<size_t>(T) * rows), exact;
      model::cpu::MatMul(k_quant ? tiled_w.view : w.view, 0, x.f.data(), T, bias.data(), want.data(), rows, Pool());
      if (k_quant) {
        exact.resize(want.size());
        model::cpu::MatMul(w.view, 0, x.f.data(), T, bias.data(), exact.data(), rows, Pool());
      }
      std::vector<std::vector<float>> got;
      // The small path with 16-token passes (two n-tiles per decoded tile)
      // where T > 8, then with 8-token passes only, then the large path with
      // 4 and with 8 row tiles per CTA.
      for (int variant = 0; variant < 4; ++variant) {
        const GemmPath path = variant < 2 ? GemmPath::kSmallBatch : GemmPath::kLargeBatch;
        if (type == GgmlType::kF32 && variant > 0) continue;  // one CUDA-core path
        kernels::SetGemmTuning({.pass16_min_avg = variant == 1 ? 1 << 20 : 2, .large_narrow = variant != 3});
        DevBuf<float> out(static_cast<size_t>(T) * rows);
        out.Poison();
        kernels::GemmParams p;
        p.w = dw.t;
        p.x = dx.get();
        p.ldx = cols;
        p.n_b = T;
        p.bias = dbias.get();
        p.out_f32 = out.get();
        p.ldo = rows;
        p.path = path;
        kernels::LaunchGemm(p, nullptr);
        got.push_back(out.Download());
        const double err = RelErr(got.back(), want);
        EXPECT_LT(err, 2e-3) << "rows " << rows << " cols " << cols << " T " << T << " path "
                             << static_cast<int>(path);
        if (k_quant) {
          EXPECT_LT(RelErr(got.back(), exact), 1.5e-2)
              << "against the exact k-quant matrix: rows " << rows << " cols " << cols << " T " << T;
        }
      }
      kernels::SetGemmTuning({});
      for (size_t v = 1; v < got.size(); ++v) {
        ASSERT_EQ(0, std::memcmp(got[0].data(), got[v].data(), got[0].size() * sizeof(float)))
            << "GEMM variant " << v << " differs from the small path: rows " << rows << " cols " << cols << " T " << T;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, GemmTest,
                         ::testing::Values(GgmlType::kQ8_0, GgmlType::kMXFP4, GgmlType::kF16, GgmlType::kBF16,
                                           GgmlType::kF32, GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ5_K,
                                           GgmlType::kQ5_0, GgmlType::kQ5_1),
                         [](const ::testing::TestParamInfo<GgmlType>& p) {
                           return std::string(gguf::GetTypeTraits(static_cast<uint32_t>(p.param))->name);
                         });

float SwiGluRef(float g, float u) {
  float out;
  model::cpu::ClampedSwiGlu(&g, &u, 1, 1.702f, 7.0f, &out);
  return out;
}

// Device buffers of one LaunchRouter: outputs (poisoned) and workspace.
struct DeviceRouting {
  DeviceRouting(int tokens, int experts, int k, int slots = 64)
      : pairs(tokens * k),
        tile_slots(slots),
        max_tiles(kernels::MoeMaxTiles(pairs, experts, slots)),
        ids(pairs),
        wts(pairs),
        offsets(experts + 1),
        active(experts),
        counts(2),
        tiles(3 * max_tiles),
        slot_token(pairs),
        pair_slot(pairs),
        logits(static_cast<size_t>(tokens) * experts),
        done(std::vector<uint32_t>(kernels::RouterCounters(tokens), 0)) {
    ids.Poison();
    wts.Poison();
    for (auto* b : {&offsets, &active, &counts, &tiles, &slot_token, &pair_slot}) b->Poison();
  }
  kernels::RouterParams Params(const float* h, const float* w, const float* b, int tokens, int d, int experts, int k) {
    kernels::RouterParams p;
    p.h = h;
    p.w = w;
    p.b = b;
    p.n_tokens = tokens;
    p.d = d;
    p.n_experts = experts;
    p.k = k;
    p.ids = ids.get();
    p.weights = wts.get();
    p.route.offsets = offsets.get();
    p.route.active = active.get();
    p.route.n_active = counts.get();
    p.route.tiles = tiles.get();
    p.route.n_tiles = counts.get() + 1;
    p.route.max_tiles = max_tiles;
    p.route.tile_slots = tile_slots;
    p.route.slot_token = slot_token.get();
    p.route.pair_slot = pair_slot.get();
    p.logits = logits.get();
    p.done = done.get();
    return p;
  }
  kernels::MoeGroups Groups(int experts) const {
    kernels::MoeGroups g;
    g.offsets = offsets.get();
    g.active = active.get();
    g.n_active = counts.get();
    g.tiles = tiles.get();
    g.n_tiles = counts.get() + 1;
    g.max_active = std::min(experts, pairs);
    g.max_tiles = max_tiles;
    g.tile_slots = tile_slots;
    return g;
  }
  // The grouping is the stable grouping of the first `valid` tokens' pairs
  // by expert (offsets, active list, tiles of tile_slots, slot <-> pair maps), the
  // other pairs have no slot, and the completion counter is back to zero.
  // With an expert range [lo, hi) (an expert-parallel rank: route.expert_begin
  // / expert_end) the active list and the tiles hold only those experts,
  // numbered from lo; offsets and the slot maps still cover every pair.
  void ExpectStableGrouping(int valid, int experts, int k, int lo = 0, int hi = -1) const {
    if (hi < 0) hi = experts;
    const auto id = ids.Download(), off = offsets.Download(), st = slot_token.Download(), ps = pair_slot.Download(),
               act = active.Download(), cnt = counts.Download(), tl = tiles.Download();
    const int n_pairs = valid * k;
    int expect_slot = 0, n_active = 0, n_tiles = 0;
    for (int e = 0; e < experts; ++e) {
      ASSERT_EQ(off[e], expect_slot);
      int c = 0;
      for (int i = 0; i < n_pairs; ++i) {
        if (id[i] != e) continue;
        ASSERT_EQ(ps[i], expect_slot) << "pair " << i;
        ASSERT_EQ(st[expect_slot], i / k);
        ++expect_slot;
        ++c;
      }
      if (c > 0 && e >= lo && e < hi) {
        ASSERT_EQ(act[n_active++], e - lo);
        for (int b = off[e]; b < off[e] + c; b += tile_slots, ++n_tiles) {
          ASSERT_EQ(tl[3 * n_tiles], e - lo);
          ASSERT_EQ(tl[3 * n_tiles + 1], b);
          ASSERT_EQ(tl[3 * n_tiles + 2], std::min(b + tile_slots, off[e] + c));
        }
      }
    }
    ASSERT_EQ(off[experts], n_pairs);
    ASSERT_EQ(cnt[0], n_active);
    ASSERT_EQ(cnt[1], n_tiles);
    for (int i = n_pairs; i < pairs; ++i) ASSERT_EQ(ps[i], -1) << "pair " << i << " beyond the valid rows";
    for (uint32_t v : done.Download()) ASSERT_EQ(v, 0u) << "the router left a completion counter set";
  }
  int pairs, tile_slots, max_tiles;
  DevBuf<int32_t> ids;
  DevBuf<float> wts;
  DevBuf<int32_t> offsets, active, counts, tiles, slot_token, pair_slot;
  DevBuf<float> logits;
  DevBuf<uint32_t> done;
};

// Routing, fused gate/up + SwiGLU, down projection and the weighted combine
// (in AddNorm) against the CPU MoE of cpu_backend.cc.
TEST(MoeTest, ExpertsMatchCpuOnBothPaths) {
  std::mt19937 rng(FreshSeed());
  struct Shape {
    int experts, k, d, f, tokens;
  };
  for (const Shape& s : {Shape{8, 4, 64, 64, 1}, Shape{8, 4, 64, 96, 5}, Shape{32, 4, 128, 160, 40},
                         Shape{4, 2, 96, 64, 70}, Shape{8, 4, 64, 64, 200}}) {
    const HostWeights gate = RandomWeights(GgmlType::kMXFP4, s.f, s.d, s.experts, rng, 3.0f / std::sqrt(1.0f * s.d));
    const HostWeights up = RandomWeights(GgmlType::kMXFP4, s.f, s.d, s.experts, rng, 3.0f / std::sqrt(1.0f * s.d));
    const HostWeights down = RandomWeights(GgmlType::kMXFP4, s.d, s.f, s.experts, rng, 0.5f / std::sqrt(1.0f * s.f));
    DeviceTiled dgu = Tile({&gate.view, &up.view}, true), ddown = Tile({&down.view}, false);
    const std::vector<float> gb = RandomFloats(s.experts * s.f, rng, 0.1f), ub = RandomFloats(s.experts * s.f, rng, 0.1f),
                             db = RandomFloats(s.experts * s.d, rng, 0.1f);
    DevBuf<float> dgb(gb), dub(ub), ddb(db);
    const Acts h = RandomActs(static_cast<int64_t>(s.tokens) * s.d, rng);
    DevBuf<uint16_t> dh(h.h);
    // Routing by a random fp32 router on the tokens' values.
    DevBuf<float> dh32(h.f), drw(RandomFloats(static_cast<size_t>(s.experts) * s.d, rng, 2.0f / std::sqrt(1.0f * s.d))),
        drb(RandomFloats(s.experts, rng, 0.1f));
    DeviceRouting routing(s.tokens, s.experts, s.k);
    kernels::LaunchRouter(routing.Params(dh32.get(), drw.get(), drb.get(), s.tokens, s.d, s.experts, s.k), nullptr);
    ASSERT_NO_FATAL_FAILURE(routing.ExpectStableGrouping(s.tokens, s.experts, s.k));
    const std::vector<int32_t> ids = routing.ids.Download();
    const std::vector<float> wts = routing.wts.Download();
    const std::vector<int32_t> ps = routing.pair_slot.Download();
    const int pairs = s.tokens * s.k;
    DevBuf<int32_t>& pair_slot = routing.pair_slot;
    DevBuf<int32_t>& slot_token = routing.slot_token;
    // The same routing grouped into tiles of 8, 16 and 32 slots (the large
    // path's CTAs of as many tokens): the same slots, other tiles.
    std::vector<std::unique_ptr<DeviceRouting>> tiled;
    for (int slots : {8, 16, 32}) {
      tiled.push_back(std::make_unique<DeviceRouting>(s.tokens, s.experts, s.k, slots));
      kernels::LaunchRouter(tiled.back()->Params(dh32.get(), drw.get(), drb.get(), s.tokens, s.d, s.experts, s.k),
                            nullptr);
      ASSERT_NO_FATAL_FAILURE(tiled.back()->ExpectStableGrouping(s.tokens, s.experts, s.k));
      ASSERT_EQ(tiled.back()->slot_token.Download(), routing.slot_token.Download()) << slots << "-slot tiles";
    }
    std::vector<std::vector<uint16_t>> acts;
    std::vector<std::vector<float>> ys;
    // small: 16-, 8-token passes; large: 4, 8 row tiles of 64 tokens; then
    // 8 row tiles of 8, 16 and 32 tokens.
    for (int variant = 0; variant < 7; ++variant) {
      const GemmPath path = variant < 2 ? GemmPath::kSmallBatch : GemmPath::kLargeBatch;
      kernels::SetGemmTuning(
          {.pass16_min_avg = variant == 1 ? 1 << 20 : 2, .large_narrow = variant == 2 || variant == 5});
      const kernels::MoeGroups groups = (variant < 4 ? routing : *tiled[variant - 4]).Groups(s.experts);
      DevBuf<uint16_t> dact(static_cast<size_t>(pairs) * s.f);
      DevBuf<float> dy(static_cast<size_t>(pairs) * s.d);
      dact.Poison();
      dy.Poison();
      kernels::GemmParams g;
      g.w = dgu.t;
      g.x = dh.get();
      g.ldx = s.d;
      g.gather = slot_token.get();
      g.n_b = pairs;
      g.bias_gate = dgb.get();
      g.bias_up = dub.get();
      g.out_f16 = dact.get();
      g.ldo = s.f;
      g.epilogue = kernels::GemmEpilogue::kSwiGlu;
      g.moe = true;
      g.groups = groups;
      g.path = path;
      kernels::LaunchGemm(g, nullptr);
      kernels::GemmParams dn;
      dn.w = ddown.t;
      dn.x = dact.get();
      dn.ldx = s.f;
      dn.n_b = pairs;
      dn.bias = ddb.get();
      dn.out_f32 = dy.get();
      dn.ldo = s.d;
      dn.moe = true;
      dn.groups = groups;
      dn.routing_ready = true;  // as the backend launches it, right after the gate/up GEMM
      dn.path = path;
      kernels::LaunchGemm(dn, nullptr);
      acts.push_back(dact.Download());
      ys.push_back(dy.Download());
    }
    kernels::SetGemmTuning({});
    for (size_t v = 1; v < acts.size(); ++v) {
      ASSERT_EQ(acts[0], acts[v]) << "gate/up variant " << v << " differs";
      ASSERT_EQ(0, std::memcmp(ys[0].data(), ys[v].data(), ys[0].size() * sizeof(float))) << "down variant " << v << " differs";
    }

    // CPU reference per pair, from the GPU's fp16 activations for the down
    // projection so each stage is checked on its own.
    std::vector<float> act_ref(static_cast<size_t>(pairs) * s.f), act_got(act_ref.size());
    std::vector<float> y_ref(static_cast<size_t>(pairs) * s.d);
    for (int i = 0; i < pairs; ++i) {
      const int slot = ps[i], e = ids[i], t = i / s.k;
      std::vector<float> g(s.f), u(s.f);
      model::cpu::MatMul(gate.view, e, &h.f[static_cast<size_t>(t) * s.d], 1, &gb[e * s.f], g.data(), s.f, Pool());
      model::cpu::MatMul(up.view, e, &h.f[static_cast<size_t>(t) * s.d], 1, &ub[e * s.f], u.data(), s.f, Pool());
      for (int f = 0; f < s.f; ++f) {
        act_ref[static_cast<size_t>(slot) * s.f + f] = SwiGluRef(g[f], u[f]);
        act_got[static_cast<size_t>(slot) * s.f + f] = HalfToFloat(acts[0][static_cast<size_t>(slot) * s.f + f]);
      }
      model::cpu::MatMul(down.view, e, &act_got[static_cast<size_t>(slot) * s.f], 1, &db[e * s.d],
                         &y_ref[static_cast<size_t>(slot) * s.d], s.d, Pool());
    }
    EXPECT_LT(RelErr(act_got, act_ref), 3e-3) << "gate/up, experts " << s.experts << " tokens " << s.tokens;
    EXPECT_LT(RelErr(ys[0], y_ref), 2e-3) << "down, experts " << s.experts << " tokens " << s.tokens;

    // Combine in AddNorm: x += sum_k w y (in increasing expert id).
    DevBuf<float> dy(ys[0]);
    const std::vector<float> x0 = RandomFloats(static_cast<size_t>(s.tokens) * s.d, rng, 2.0f);
    const std::vector<float> norm_w = RandomFloats(s.d, rng, 0.1f, 1.0f);
    DevBuf<float> dx(x0), dnw(norm_w), h32(static_cast<size_t>(s.tokens) * s.d);
    DevBuf<uint16_t> h16(static_cast<size_t>(s.tokens) * s.d);
    h32.Poison();
    h16.Poison();
    kernels::AddNormParams np;
    np.x = dx.get();
    np.d = s.d;
    np.n_tokens = s.tokens;
    np.moe_y = dy.get();
    np.moe_slot = pair_slot.get();
    np.moe_ids = routing.ids.get();
    np.moe_w = routing.wts.get();
    np.moe_k = s.k;
    np.norm_w = dnw.get();
    np.h16 = h16.get();
    np.h32 = h32.get();
    kernels::LaunchAddNorm(np, nullptr);
    const auto x_got = dx.Download(), h_got = h32.Download();
    std::vector<float> x_ref(x0), h_ref(x0.size());
    for (int t = 0; t < s.tokens; ++t) {
      std::vector<float> moe(s.d, 0.0f);
      for (int e = 0; e < s.experts; ++e) {
        for (int i = 0; i < s.k; ++i) {
          if (ids[t * s.k + i] != e) continue;
          const float* y = &ys[0][static_cast<size_t>(ps[t * s.k + i]) * s.d];
          for (int d = 0; d < s.d; ++d) moe[d] += wts[t * s.k + i] * y[d];
        }
      }
      for (int d = 0; d < s.d; ++d) x_ref[t * s.d + d] += moe[d];
      model::cpu::RmsNorm(&x_ref[t * s.d], norm_w.data(), 1e-5f, s.d, &h_ref[t * s.d]);
    }
    ASSERT_EQ(0, std::memcmp(x_got.data(), x_ref.data(), x_ref.size() * sizeof(float))) << "combine is not exact";
    EXPECT_LT(RelErr(h_got, h_ref), 1e-6);
  }
}

// ----------------------------------------------------------- attention --

struct AttnSeq {
  int start, n;
};

struct AttnSetup {
  int n_heads, n_kv_heads, head_dim, window;  // window 0: full layer
  std::vector<AttnSeq> seqs;
};

// Host model of a paged cache with the CPU reference of every row.
class AttnHarness {
 public:
  AttnHarness(const AttnSetup& s, std::mt19937& rng) : s_(s) {
    const int bs = 16;
    ring_ = s.window > 0 ? (s.window + bs - 1) / bs + 1 : 0;
    kv_ = s.n_kv_heads * s.head_dim;
    int rows = 0;
    int next_block = 0;
    for (const AttnSeq& q : s.seqs) {
      first_row_.push_back(rows);
      rows += q.n;
      const int len = q.start + q.n;
      std::vector<int32_t> table;
      if (s.window > 0) {
        for (int i = 0; i < ring_; ++i) table.push_back(next_block++);
      } else {
        for (int i = 0; i < (len + bs - 1) / bs; ++i) table.push_back(next_block++);
      }
      tables_.push_back(table);
      keys_.push_back(RoundedBf16(static_cast<size_t>(len) * kv_, rng));
      values_.push_back(RoundedBf16(static_cast<size_t>(len) * kv_, rng));
    }
    rows_ = rows;
    n_blocks_ = next_block;
    // Shuffle block ids so tables are not the identity.
    std::vector<int32_t> perm(n_blocks_);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (auto& t : tables_) {
      for (int32_t& b : t) b = perm[b];
    }
    q_ = RandomActs(static_cast<int64_t>(rows) * s.n_heads * s.head_dim, rng);
    sinks_ = RandomFloats(s.n_heads, rng);
  }

  // Cache holding positions [0, upto[i]) of each sequence (ring: written in
  // order, later positions overwrite), fresh rows for the step.
  std::vector<uint16_t> Cache(const std::vector<int>& upto) const {
    const int bs = 16;
    std::vector<uint16_t> cache(static_cast<size_t>(n_blocks_) * kv_ * bs, 0x7FC0);  // NaN elsewhere
    for (size_t i = 0; i < s_.seqs.size(); ++i) {
      for (int p = 0; p < upto[i]; ++p) {
        const int blk = s_.window > 0 ? tables_[i][(p / bs) % ring_] : tables_[i][p / bs];
        for (int g = 0; g < s_.n_kv_heads; ++g) {
          for (int d = 0; d < s_.head_dim; ++d) {
            cache[((static_cast<size_t>(blk) * s_.n_kv_heads + g) * bs + p % bs) * s_.head_dim + d] =
                gguf::FloatToBf16(keys_[i][static_cast<size_t>(p) * kv_ + g * s_.head_dim + d]);
          }
        }
      }
    }
    return cache;
  }
  std::vector<uint16_t> CacheV(const std::vector<int>& upto) const {
    AttnHarness copy = *this;
    std::swap(copy.keys_, copy.values_);
    return copy.Cache(upto);
  }

  float RefOut(int seq, int tok, int head, int d_index, std::vector<float>* out_row) const {
    const AttnSeq& q = s_.seqs[seq];
    const int p = q.start + tok;
    const int lo = s_.window > 0 ? std::max(0, p - s_.window + 1) : 0;
    const int g = head / (s_.n_heads / s_.n_kv_heads);
    std::vector<const float*> ks, vs;
    for (int j = lo; j <= p; ++j) {
      ks.push_back(&keys_[seq][static_cast<size_t>(j) * kv_ + g * s_.head_dim]);
      vs.push_back(&values_[seq][static_cast<size_t>(j) * kv_ + g * s_.head_dim]);
    }
    std::vector<float> scratch(ks.size());
    out_row->resize(s_.head_dim);
    const float* qrow = &q_.f[(static_cast<size_t>(first_row_[seq] + tok) * s_.n_heads + head) * s_.head_dim];
    model::cpu::AttentionWithSink(qrow, ks.data(), vs.data(), static_cast<int64_t>(ks.size()), s_.head_dim,
                                  1.0f / std::sqrt(static_cast<float>(s_.head_dim)), sinks_[head], scratch.data(),
                                  out_row->data());
    return (*out_row)[d_index];
  }

  // Runs the step on the GPU: decode kernel for 1-token sequences (splits
  // run as `split_mode` says), prefill for the others, unless force_prefill.
  // Fresh K/V for positions >= start of each sequence; the cache holds
  // `upto` positions.
  std::vector<uint16_t> Run(const std::vector<AttnSeq>& seqs, const std::vector<int>& upto, bool force_prefill,
                            kernels::AttnSplitMode split_mode = kernels::AttnSplitMode::kAuto) const {
    const int bs = 16;
    std::vector<int32_t> start, n, first, full_off, ring_off, tables, tok_items, dec_items, split_off;
    int rows = 0, splits_full = 0, split_total = 0;
    for (size_t i = 0; i < seqs.size(); ++i) {
      start.push_back(seqs[i].start);
      n.push_back(seqs[i].n);
      first.push_back(rows);
      full_off.push_back(static_cast<int32_t>(tables.size()));
      ring_off.push_back(static_cast<int32_t>(tables.size()));
      tables.insert(tables.end(), tables_[i].begin(), tables_[i].end());
      if (seqs[i].n == 1 && !force_prefill) {
        dec_items.push_back(static_cast<int32_t>(i));
        split_off.push_back(split_total);
        const int sp = seqs[i].start / kernels::kAttnSplitKeys + 1;
        split_total += sp;
        splits_full = std::max(splits_full, sp);
      } else {
        const int per = kernels::AttentionPrefillTokensPerItem(s_.n_heads, s_.n_kv_heads);
        for (int qt = 0; qt * per < seqs[i].n; ++qt) {
          tok_items.push_back(static_cast<int32_t>(i));
          tok_items.push_back(qt);
        }
      }
      rows += seqs[i].n;
    }
    // q and fresh k/v rows of this step.
    std::vector<uint16_t> q, kn, vn;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const int orig_tok0 = seqs[i].start - s_.seqs[i].start;
      for (int t = 0; t < seqs[i].n; ++t) {
        const size_t qoff = (static_cast<size_t>(first_row_[i] + orig_tok0 + t) * s_.n_heads) * s_.head_dim;
        q.insert(q.end(), q_.h.begin() + qoff, q_.h.begin() + qoff + s_.n_heads * s_.head_dim);
        const size_t koff = static_cast<size_t>(seqs[i].start + t) * kv_;
        for (int e = 0; e < kv_; ++e) {
          kn.push_back(gguf::FloatToBf16(keys_[i][koff + e]));
          vn.push_back(gguf::FloatToBf16(values_[i][koff + e]));
        }
      }
    }
    DevBuf<uint16_t> dq(q), dkn(kn), dvn(vn), dkc(Cache(upto)), dvc(CacheV(upto));
    DevBuf<int32_t> dstart(start), dn(n), dfirst(first), dfull(full_off), dring(ring_off), dtables(tables);
    DevBuf<int32_t> ditems(tok_items.empty() ? std::vector<int32_t>{0} : tok_items),
        ddec(dec_items.empty() ? std::vector<int32_t>{0} : dec_items),
        dsplit(split_off.empty() ? std::vector<int32_t>{0} : split_off);
    DevBuf<int32_t> dcount(std::vector<int32_t>{static_cast<int32_t>(tok_items.size() / 2),
                                                static_cast<int32_t>(dec_items.size())});
    DevBuf<float> part(static_cast<size_t>(std::max(1, split_total)) * s_.n_heads * (s_.head_dim + 2));
    DevBuf<uint16_t> out(static_cast<size_t>(rows) * s_.n_heads * s_.head_dim);
    out.Poison();
    part.Poison();
    kernels::AttnParams p;
    p.q = dq.get();
    p.k_new = dkn.get();
    p.v_new = dvn.get();
    p.k_cache = dkc.get();
    p.v_cache = dvc.get();
    p.block_size = bs;
    p.sliding = s_.window > 0;
    p.window = s_.window;
    p.ring_blocks = ring_;
    p.seqs.start = dstart.get();
    p.seqs.n = dn.get();
    p.seqs.first_row = dfirst.get();
    p.seqs.full_off = dfull.get();
    p.seqs.ring_off = dring.get();
    p.seqs.tables = dtables.get();
    DevBuf<float> dsinks(sinks_);
    p.sinks = dsinks.get();
    p.scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s_.head_dim)) * 1.4426950408889634);
    p.n_heads = s_.n_heads;
    p.n_kv_heads = s_.n_kv_heads;
    p.head_dim = s_.head_dim;
    p.out = out.get();
    if (!tok_items.empty()) {
      kernels::AttnParams pp = p;
      pp.items = ditems.get();
      pp.n_items = dcount.get();
      pp.max_items = static_cast<int>(tok_items.size() / 2);
      kernels::LaunchAttentionPrefill(pp, nullptr);
    }
    if (!dec_items.empty()) {
      kernels::AttnParams dp = p;
      dp.items = ddec.get();
      dp.n_items = dcount.get() + 1;
      dp.max_items = static_cast<int>(dec_items.size());
      dp.split_off = dsplit.get();
      dp.part = part.get();
      // A larger grid than needed: surplus split CTAs must exit cleanly.
      dp.max_splits = splits_full + 1;
      dp.split_mode = split_mode;
      kernels::LaunchAttentionDecode(dp, nullptr);
    }
    return out.Download();
  }

  const AttnSetup& setup() const { return s_; }
  int first_row(int i) const { return first_row_[i]; }

 private:
  static std::vector<float> RoundedBf16(size_t n, std::mt19937& rng) {
    std::vector<float> v = RandomFloats(n, rng, 1.0f);
    for (float& x : v) x = RoundBf16(x);
    return v;
  }

  AttnSetup s_;
  int ring_ = 0, kv_ = 0, rows_ = 0, n_blocks_ = 0;
  std::vector<int> first_row_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<std::vector<float>> keys_, values_;
  Acts q_;
  std::vector<float> sinks_;
};

class AttentionTest : public ::testing::TestWithParam<AttnSetup> {};

TEST_P(AttentionTest, MatchesCpuAndDecodeEqualsPrefillBitwise) {
  std::mt19937 rng(FreshSeed());
  const AttnSetup& s = GetParam();
  AttnHarness h(s, rng);
  std::vector<int> upto;
  for (const AttnSeq& q : s.seqs) upto.push_back(q.start);
  const std::vector<uint16_t> got = h.Run(s.seqs, upto, false);
  std::vector<float> got_f, want_f, ref_row;
  for (size_t i = 0; i < s.seqs.size(); ++i) {
    for (int t = 0; t < s.seqs[i].n; ++t) {
      for (int head = 0; head < s.n_heads; ++head) {
        h.RefOut(static_cast<int>(i), t, head, 0, &ref_row);
        const size_t off = (static_cast<size_t>(h.first_row(static_cast<int>(i)) + t) * s.n_heads + head) * s.head_dim;
        for (int d = 0; d < s.head_dim; ++d) {
          got_f.push_back(HalfToFloat(got[off + d]));
          want_f.push_back(ref_row[d]);
        }
      }
    }
  }
  EXPECT_LT(RelErr(got_f, want_f), 3e-3);

  // Every row of a prefill equals the same position decoded on its own, with
  // the earlier positions in the cache (and the 1-token step run through the
  // prefill kernel too).
  for (size_t i = 0; i < s.seqs.size(); ++i) {
    if (s.seqs[i].n == 1) continue;
    for (int t : {0, s.seqs[i].n / 2, s.seqs[i].n - 1}) {
      std::vector<AttnSeq> one = s.seqs;
      std::vector<int> cached = upto;
      for (size_t j = 0; j < one.size(); ++j) {
        // Other sequences keep their step; this one decodes position start + t.
        if (j == i) {
          one[j] = {s.seqs[i].start + t, 1};
          cached[j] = s.seqs[i].start + t;
        }
      }
      using kernels::AttnSplitMode;
      for (auto [force_prefill, mode] : {std::pair{false, AttnSplitMode::kParallel},
                                         std::pair{false, AttnSplitMode::kSerial}, std::pair{true, AttnSplitMode::kAuto}}) {
        const std::vector<uint16_t> dec = h.Run(one, cached, force_prefill, mode);
        int row = 0;
        for (size_t j = 0; j < i; ++j) row += one[j].n;
        const size_t a = (static_cast<size_t>(h.first_row(static_cast<int>(i)) + t) * s.n_heads) * s.head_dim;
        const size_t b = static_cast<size_t>(row) * s.n_heads * s.head_dim;
        for (int e = 0; e < s.n_heads * s.head_dim; ++e) {
          ASSERT_EQ(got[a + e], dec[b + e]) << "seq " << i << " token " << t << " element " << e
                                            << (force_prefill                     ? " (1-token prefill)"
                                                : mode == AttnSplitMode::kSerial ? " (decode, splits in one CTA)"
                                                                                  : " (decode, parallel splits)");
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionTest,
    ::testing::Values(
        // gpt-oss heads, full layer: long cache, multi-split decode (4,400 keys:
        // 18 splits, more than the combine kernel loads at once).
        AttnSetup{64, 8, 64, 0, {{0, 1}, {0, 37}, {300, 1}, {50, 70}, {700, 5}, {1000, 1}, {4400, 2}}},
        // gpt-oss sliding layer (window 128, ring of 9 blocks), chunk longer than the ring.
        AttnSetup{64, 8, 64, 128, {{0, 200}, {130, 1}, {500, 3}, {7, 1}}},
        // tiny/small shapes: window 8, head_dim 16 and 32, groups of 2 and 4.
        AttnSetup{4, 2, 16, 8, {{0, 40}, {9, 1}, {31, 17}}}, AttnSetup{8, 2, 32, 0, {{0, 33}, {5, 1}, {260, 2}}}));

// ------------------------------------------------------ per-token kernels --

TEST(RopeTest, MatchesCpu) {
  std::mt19937 rng(FreshSeed());
  for (auto [heads, kv_heads, hd] : std::vector<std::tuple<int, int, int>>{{64, 8, 64}, {4, 2, 16}, {8, 2, 32}}) {
    model::ModelConfig c;
    c.head_dim = hd;
    c.rope_theta = 150000.0f;
    c.rope_scaling_factor = 32.0f;
    c.rope_original_context = 4096;
    const model::RopeTables rope = model::ComputeRope(c);
    const std::vector<int32_t> pos = {0, 1, 17, 4095, 4096, 100000, 131071};
    const int T = static_cast<int>(pos.size()), Q = heads * hd, KV = kv_heads * hd;
    const std::vector<float> qkv = RandomFloats(static_cast<size_t>(T) * (Q + 2 * KV), rng, 2.0f);
    DevBuf<float> dqkv(qkv);
    DevBuf<int32_t> dpos(pos);
    DevBuf<double> dfreq(rope.inv_freq.size());
    CUDA_CHECK(cudaMemcpy(dfreq.get(), rope.inv_freq.data(), rope.inv_freq.size() * 8, cudaMemcpyHostToDevice));
    DevBuf<uint16_t> q(static_cast<size_t>(T) * Q), k(static_cast<size_t>(T) * KV), v(static_cast<size_t>(T) * KV);
    q.Poison();
    k.Poison();
    v.Poison();
    kernels::RopeParams p;
    p.qkv = dqkv.get();
    p.pos = dpos.get();
    p.n_tokens = T;
    p.n_heads = heads;
    p.n_kv_heads = kv_heads;
    p.head_dim = hd;
    p.inv_freq = dfreq.get();
    p.attention_factor = rope.attention_factor;
    p.q = q.get();
    p.k_new = k.get();
    p.v_new = v.get();
    kernels::LaunchRope(p, nullptr);
    const auto gq = q.Download(), gk = k.Download(), gv = v.Download();
    std::vector<float> rq, rk, wq, wk;
    for (int t = 0; t < T; ++t) {
      std::vector<float> a(qkv.begin() + static_cast<size_t>(t) * (Q + 2 * KV),
                           qkv.begin() + static_cast<size_t>(t) * (Q + 2 * KV) + Q + 2 * KV);
      model::cpu::ApplyRope(a.data(), heads, hd, pos[t], rope);
      model::cpu::ApplyRope(a.data() + Q, kv_heads, hd, pos[t], rope);
      for (int i = 0; i < Q; ++i) {
        rq.push_back(HalfToFloat(gq[static_cast<size_t>(t) * Q + i]));
        wq.push_back(a[i]);
      }
      for (int i = 0; i < KV; ++i) {
        rk.push_back(gguf::Bf16ToFloat(gk[static_cast<size_t>(t) * KV + i]));
        wk.push_back(a[Q + i]);
        ASSERT_EQ(gv[static_cast<size_t>(t) * KV + i], gguf::FloatToBf16(a[Q + KV + i]));
      }
    }
    EXPECT_LT(RelErr(rq, wq), 1e-3);
    EXPECT_LT(RelErr(rk, wk), 5e-3);

    // The precomputed table (what the backend uses) gives the same bits;
    // positions past its end fall back to computing.
    const int table_positions = 4097;
    DevBuf<float> table(static_cast<size_t>(table_positions) * hd);
    table.Poison();
    kernels::LaunchRopeTable(p, table.get(), table_positions, nullptr);
    kernels::RopeParams pt = p;
    pt.table = table.get();
    pt.table_positions = table_positions;
    q.Poison();
    k.Poison();
    kernels::LaunchRope(pt, nullptr);
    EXPECT_EQ(q.Download(), gq) << "q differs with the RoPE table";
    EXPECT_EQ(k.Download(), gk) << "k differs with the RoPE table";
  }
}

TEST(AddNormTest, ResidualAndNormMatchCpu) {
  std::mt19937 rng(FreshSeed());
  for (int d : {64, 100, 2880}) {
    const int T = 7;
    const std::vector<float> x0 = RandomFloats(static_cast<size_t>(T) * d, rng, 3.0f),
                             add = RandomFloats(static_cast<size_t>(T) * d, rng, 1.0f),
                             w = RandomFloats(d, rng, 0.1f, 1.0f);
    DevBuf<float> dx(x0), dadd(add), dw(w), h32(static_cast<size_t>(T) * d);
    DevBuf<uint16_t> h16(static_cast<size_t>(T) * d);
    h32.Poison();
    h16.Poison();
    kernels::AddNormParams p;
    p.x = dx.get();
    p.d = d;
    p.n_tokens = T;
    p.add = dadd.get();
    p.norm_w = dw.get();
    p.h16 = h16.get();
    p.h32 = h32.get();
    kernels::LaunchAddNorm(p, nullptr);
    const auto gx = dx.Download(), gh = h32.Download();
    const auto gh16 = h16.Download();
    std::vector<float> rx(x0), rh(x0.size());
    for (size_t i = 0; i < rx.size(); ++i) rx[i] += add[i];
    for (int t = 0; t < T; ++t) model::cpu::RmsNorm(&rx[static_cast<size_t>(t) * d], w.data(), 1e-5f, d, &rh[static_cast<size_t>(t) * d]);
    ASSERT_EQ(0, std::memcmp(gx.data(), rx.data(), rx.size() * 4));
    EXPECT_LT(RelErr(gh, rh), 1e-6);
    for (size_t i = 0; i < rh.size(); ++i) ASSERT_EQ(gh16[i], Half(gh[i]));
  }
}

TEST(RouterTest, TopKAndWeightsMatchCpu) {
  std::mt19937 rng(FreshSeed());
  for (auto [experts, k, d] : std::vector<std::tuple<int, int, int>>{
           {32, 4, 2880}, {8, 4, 64}, {128, 4, 96}, {5, 2, 32}, {256, 8, 4100}, {3, 3, 8}}) {
    const int T = 50;
    const std::vector<float> h = RandomFloats(static_cast<size_t>(T) * d, rng),
                             w = RandomFloats(static_cast<size_t>(experts) * d, rng, 2.0f / std::sqrt(1.0f * d)),
                             b = RandomFloats(experts, rng, 0.1f);
    DevBuf<float> dh(h), dw(w), db(b);
    DeviceRouting routing(T, experts, k);
    const kernels::RouterParams p = routing.Params(dh.get(), dw.get(), db.get(), T, d, experts, k);
    kernels::LaunchRouter(p, nullptr);
    ASSERT_NO_FATAL_FAILURE(routing.ExpectStableGrouping(T, experts, k)) << experts << " experts, d " << d;
    const auto gids = routing.ids.Download();
    const auto gw = routing.wts.Download();
    int checked = 0;
    for (int t = 0; t < T; ++t) {
      std::vector<double> logits(experts);
      std::vector<float> lf(experts);
      for (int e = 0; e < experts; ++e) {
        double s = b[e];
        for (int i = 0; i < d; ++i) s += static_cast<double>(w[static_cast<size_t>(e) * d + i]) * h[static_cast<size_t>(t) * d + i];
        logits[e] = s;
        lf[e] = static_cast<float>(s);
      }
      std::vector<double> sorted = logits;
      std::sort(sorted.rbegin(), sorted.rend());
      if (k < experts && sorted[k - 1] - sorted[k] < 1e-4) continue;  // a near tie: either choice is right
      std::vector<int32_t> rid(k);
      std::vector<float> rw(k);
      model::cpu::RouterTopK(lf.data(), experts, k, rid.data(), rw.data());
      for (int i = 0; i < k; ++i) {
        ASSERT_EQ(gids[t * k + i], rid[i]) << "token " << t;
        EXPECT_NEAR(gw[t * k + i], rw[i], 1e-5);
      }
      ++checked;
    }
    EXPECT_GT(checked, T / 2);

    // Batch invariance: token 5 alone gives bitwise the same result; a
    // device count of valid rows (graphs) leaves the rows beyond it alone.
    DevBuf<float> h5(std::vector<float>(h.begin() + 5 * d, h.begin() + 6 * d));
    DeviceRouting r5(1, experts, k);
    kernels::LaunchRouter(r5.Params(h5.get(), dw.get(), db.get(), 1, d, experts, k), nullptr);
    ASSERT_NO_FATAL_FAILURE(r5.ExpectStableGrouping(1, experts, k));
    const auto i5 = r5.ids.Download();
    const auto f5 = r5.wts.Download();
    for (int i = 0; i < k; ++i) {
      EXPECT_EQ(i5[i], gids[5 * k + i]);
      EXPECT_EQ(0, std::memcmp(&f5[i], &gw[5 * k + i], sizeof(float)));
    }
    DevBuf<int32_t> n_valid(std::vector<int32_t>{37});
    DeviceRouting rv(T, experts, k);
    kernels::RouterParams pv = rv.Params(dh.get(), dw.get(), db.get(), T, d, experts, k);
    pv.n_valid = n_valid.get();
    kernels::LaunchRouter(pv, nullptr);
    ASSERT_NO_FATAL_FAILURE(rv.ExpectStableGrouping(37, experts, k));
    const auto gv = rv.ids.Download();
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < k; ++i) {
        if (t < 37) {
          EXPECT_EQ(gv[t * k + i], gids[t * k + i]);
        } else {
          EXPECT_EQ(gv[t * k + i], -1) << "row beyond the valid count was written";
        }
      }
    }
  }
}

// An expert-parallel rank's grouping: the same ids, offsets and slots as the
// whole model's, the active experts and tiles only the rank's, numbered from
// its first expert.
TEST(RouterTest, AnExpertRangeGroupsOnlyThoseExpertsNumberedFromTheFirst) {
  std::mt19937 rng(FreshSeed());
  const int experts = 32, k = 4, d = 128, T = 40;
  const std::vector<float> h = RandomFloats(static_cast<size_t>(T) * d, rng),
                           w = RandomFloats(static_cast<size_t>(experts) * d, rng, 2.0f / std::sqrt(1.0f * d)),
                           b = RandomFloats(experts, rng, 0.1f);
  DevBuf<float> dh(h), dw(w), db(b);
  DeviceRouting whole(T, experts, k);
  kernels::LaunchRouter(whole.Params(dh.get(), dw.get(), db.get(), T, d, experts, k), nullptr);
  const auto want_ids = whole.ids.Download(), want_off = whole.offsets.Download();
  for (auto [lo, hi] : std::vector<std::pair<int, int>>{{0, 8}, {8, 16}, {24, 32}, {0, 32}}) {
    DeviceRouting rank(T, experts, k);
    kernels::RouterParams p = rank.Params(dh.get(), dw.get(), db.get(), T, d, experts, k);
    p.route.expert_begin = lo;
    p.route.expert_end = hi;
    kernels::LaunchRouter(p, nullptr);
    ASSERT_NO_FATAL_FAILURE(rank.ExpectStableGrouping(T, experts, k, lo, hi)) << "experts " << lo << ".." << hi;
    EXPECT_EQ(rank.ids.Download(), want_ids);
    EXPECT_EQ(rank.offsets.Download(), want_off);
  }
}

// Exact ties and infinities: the top-k takes the lower expert id among equal
// logits (as the CPU), NaN counts as -inf, and the ids are always distinct.
TEST(RouterTest, TiesGoToTheLowerExpert) {
  const int experts = 40, k = 4, d = 4, T = 3;
  std::vector<float> w(static_cast<size_t>(experts) * d, 0.0f), b(experts, 0.0f);
  std::vector<std::vector<float>> logits(T, std::vector<float>(experts, 0.0f));
  for (int e = 0; e < experts; ++e) logits[0][e] = (e % 3 == 0) ? 2.0f : 1.0f;  // ties among 0, 3, 6, 9, ...
  for (int e = 0; e < experts; ++e) logits[1][e] = (e == 33 || e == 7) ? INFINITY : -1.0f;
  for (int e = 0; e < experts; ++e) logits[2][e] = (e < 35) ? NAN : 5.0f - e;  // only 35..39 are numbers
  // Logits as biases (h = 0 makes every dot product 0).
  std::vector<float> h(static_cast<size_t>(T) * d, 0.0f);
  std::vector<std::vector<int32_t>> want = {{0, 3, 6, 9}, {7, 33, 0, 1}, {35, 36, 37, 38}};
  for (int t = 0; t < T; ++t) {
    DevBuf<float> dh(std::vector<float>(h.begin() + t * d, h.begin() + (t + 1) * d)), dw(w), db(logits[t]);
    DeviceRouting r(1, experts, k);
    kernels::LaunchRouter(r.Params(dh.get(), dw.get(), db.get(), 1, d, experts, k), nullptr);
    ASSERT_NO_FATAL_FAILURE(r.ExpectStableGrouping(1, experts, k));
    EXPECT_EQ(r.ids.Download(), want[t]) << "token " << t;
    if (t == 0) {
      std::vector<int32_t> rid(k);
      std::vector<float> rw(k);
      model::cpu::RouterTopK(logits[0].data(), experts, k, rid.data(), rw.data());
      EXPECT_EQ(rid, want[0]) << "the CPU breaks ties differently";
      const auto gw = r.wts.Download();
      for (int i = 0; i < k; ++i) EXPECT_EQ(gw[i], rw[i]);
    }
  }
}

TEST(EmbedTest, RowsMatchTheDequantizer) {
  std::mt19937 rng(FreshSeed());
  for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0, GgmlType::kMXFP4,
                        GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ5_K, GgmlType::kQ5_0, GgmlType::kQ5_1}) {
    const bool super_blocks = type == GgmlType::kQ4_K || type == GgmlType::kQ6_K || type == GgmlType::kQ5_K;
    const int d = super_blocks ? 512 : 96, vocab = 50;
    const HostWeights w = RandomWeights(type, vocab, d, 1, rng, 1.0f);
    const std::vector<int32_t> tokens = {0, 49, 7, 7, 23};
    DevBuf<uint8_t> table(w.bytes);
    DevBuf<int32_t> dt(tokens);
    DevBuf<float> x(tokens.size() * d);
    x.Poison();
    kernels::EmbedParams p;
    p.table = table.get();
    p.type = static_cast<int>(type);
    p.row_bytes = static_cast<int64_t>(w.view.row_bytes);
    p.d = d;
    p.tokens = dt.get();
    p.n_tokens = static_cast<int>(tokens.size());
    p.x = x.get();
    kernels::LaunchEmbed(p, nullptr);
    const auto got = x.Download();
    std::vector<float> want(d);
    for (size_t t = 0; t < tokens.size(); ++t) {
      gguf::DequantizeRow(type, w.view.Row(0, tokens[t]), want.data(), d);
      ASSERT_EQ(0, std::memcmp(&got[t * d], want.data(), d * 4)) << "type " << static_cast<int>(type);
    }
  }
}

TEST(KvWriteTest, FullTablesAndRingsKeepTheRightPositions) {
  std::mt19937 rng(FreshSeed());
  const int bs = 16, hkv = 2, hd = 16, kv = hkv * hd, window = 8, ring = 2;
  // One sequence, 40 new tokens after 3 cached: the ring keeps the last 32.
  const int start = 3, n = 40;
  std::vector<float> kf = RandomFloats(static_cast<size_t>(n) * kv, rng), vf = RandomFloats(static_cast<size_t>(n) * kv, rng);
  std::vector<uint16_t> k, v;
  for (size_t i = 0; i < kf.size(); ++i) {
    k.push_back(gguf::FloatToBf16(kf[i]));
    v.push_back(gguf::FloatToBf16(vf[i]));
  }
  std::vector<int32_t> pos(n), tok_seq(n, 0);
  std::iota(pos.begin(), pos.end(), start);
  for (bool sliding : {false, true}) {
    const std::vector<int32_t> table = sliding ? std::vector<int32_t>{5, 2} : std::vector<int32_t>{4, 0, 6};
    const int n_blocks = 7;
    DevBuf<uint16_t> dk(k), dv(v), kc(static_cast<size_t>(n_blocks) * kv * bs), vc(static_cast<size_t>(n_blocks) * kv * bs);
    kc.Poison();
    vc.Poison();
    DevBuf<int32_t> dpos(pos), dseq(tok_seq), dstart(std::vector<int32_t>{start}), dn(std::vector<int32_t>{n}),
        dfirst(std::vector<int32_t>{0}), doff(std::vector<int32_t>{0}), dtab(table);
    kernels::KvWriteParams p;
    p.k_new = dk.get();
    p.v_new = dv.get();
    p.k_cache = kc.get();
    p.v_cache = vc.get();
    p.tok_seq = dseq.get();
    p.pos = dpos.get();
    p.n_tokens = n;
    p.seqs.start = dstart.get();
    p.seqs.n = dn.get();
    p.seqs.first_row = dfirst.get();
    p.seqs.full_off = doff.get();
    p.seqs.ring_off = doff.get();
    p.seqs.tables = dtab.get();
    p.sliding = sliding;
    p.ring_blocks = ring;
    p.block_size = bs;
    p.n_kv_heads = hkv;
    p.head_dim = hd;
    (void)window;
    kernels::LaunchKvWrite(p, nullptr);
    const auto gk = kc.Download(), gv = vc.Download();
    for (int t = 0; t < n; ++t) {
      const int pp = start + t;
      if (sliding && pp + ring * bs <= start + n - 1) continue;  // overwritten by a later token
      const int blk = sliding ? table[(pp / bs) % ring] : table[pp / bs];
      for (int g = 0; g < hkv; ++g) {
        for (int d = 0; d < hd; ++d) {
          const size_t c = ((static_cast<size_t>(blk) * hkv + g) * bs + pp % bs) * hd + d;
          ASSERT_EQ(gk[c], k[static_cast<size_t>(t) * kv + g * hd + d]) << "pos " << pp << (sliding ? " ring" : " full");
          ASSERT_EQ(gv[c], v[static_cast<size_t>(t) * kv + g * hd + d]);
        }
      }
    }
  }
}

// The GPU sampler against model::Sampler on the same rows: the same token
// (or kNoToken) every time, over vocabulary sizes (multiples of 4 or not),
// every kind of truncation (any top_k), rows with ties at the top and at the
// cut, -inf and +inf entries, NaN rows, and ids excluded by the unsampled
// mask (which the host path sees as -inf). Several launches reuse one
// workspace, so a state left behind by one launch would show in the next.
TEST(SampleTest, SameTokensAsTheCpuSampler) {
  std::mt19937 rng(FreshSeed());
  const float kInf = std::numeric_limits<float>::infinity();
  for (int vocab : {1000, 1001, 4105, 201088}) {
    std::vector<model::SamplingParams> params;
    auto add = [&](float temp, int top_k, float top_p, float min_p) {
      model::SamplingParams p;
      p.temperature = temp;
      p.top_k = top_k;
      p.top_p = top_p;
      p.min_p = min_p;
      p.seed = rng();
      params.push_back(p);
    };
    add(0.0f, 0, 1.0f, 0.0f);
    add(1.0f, 0, 1.0f, 0.0f);  // gpt-oss's default: plain temperature
    add(0.05f, 0, 1.0f, 0.0f);
    add(3.0f, 0, 1.0f, 0.0f);
    add(0.7f, 50, 1.0f, 0.0f);
    add(1.0f, 1, 1.0f, 0.0f);
    add(1.0f, vocab / 2, 1.0f, 0.0f);  // beyond any fixed candidate buffer
    add(1.0f, vocab - 1, 1.0f, 0.0f);
    add(1.0f, 0, 0.9f, 0.0f);
    add(0.8f, 0, 0.999f, 0.0f);
    add(1.2f, 0, 0.01f, 0.0f);
    add(1.1f, 0, 1.0f, 0.05f);
    add(1.0f, 1024, 0.9f, 0.0f);
    add(1.3f, 200, 1.0f, 0.05f);
    add(0.5f, 40, 0.5f, 0.1f);
    add(0.7f, 0, 0.6f, 0.01f);
    const int rows_per_param = 6;
    const int n = static_cast<int>(params.size()) * rows_per_param;
    // Per-id exclusion mask (about 1 in 50 ids, and a run at the end).
    std::vector<uint32_t> mask((vocab + 31) / 32, 0u);
    std::vector<char> masked(vocab, 0);
    for (int id = 0; id < vocab; ++id) {
      if (rng() % 50 == 0 || id >= vocab - 37) masked[id] = 1, mask[id >> 5] |= 1u << (id & 31);
    }
    std::vector<kernels::SampleRow> rows(n);
    DevBuf<kernels::SampleRow> drows(n);
    DevBuf<int32_t> out(n);
    DevBuf<uint8_t> ws(kernels::SampleWorkspaceBytes(n));
    CUDA_CHECK(cudaMemset(ws.get(), 0, kernels::SampleWorkspaceBytes(n)));
    DevBuf<uint32_t> dmask(mask);
    for (int round = 0; round < 3; ++round) {
      const bool use_mask = round == 1;
      std::vector<float> logits = RandomFloats(static_cast<size_t>(n) * vocab, rng, 3.0f);
      for (int r = 0; r < n; ++r) {
        float* l = logits.data() + static_cast<size_t>(r) * vocab;
        switch ((r + round) % 7) {
          case 1:  // ties on the top value: lower ids first
            for (int j = 0; j < 5; ++j) l[(j * 97 + r) % vocab] = 20.0f;
            break;
          case 2:  // coarse values: ties everywhere, also at any cut
            for (int i = 0; i < vocab; ++i) l[i] = std::round(l[i] * 2.0f) / 2.0f;
            break;
          case 3:  // -inf entries and one +inf
            for (int i = 0; i < vocab; i += 3) l[i] = -kInf;
            if (r % 2) l[(r * 31) % vocab] = kInf;
            break;
          case 4:  // a NaN: refused
            if (r % 3 == 0) l[(r * 13) % vocab] = std::numeric_limits<float>::quiet_NaN();
            break;
          case 5:  // no logit above -inf: refused
            if (r % 4 == 0) std::fill(l, l + vocab, -kInf);
            break;
          default:
            break;
        }
      }
      for (int r = 0; r < n; ++r) {
        const model::SamplingParams& p = params[r / rows_per_param];
        rows[r] = {p.temperature, p.top_k, p.top_p, p.min_p, p.seed + round, static_cast<uint64_t>(r * 7 + round)};
      }
      DevBuf<float> dl(logits);
      CUDA_CHECK(cudaMemcpy(drows.get(), rows.data(), n * sizeof(kernels::SampleRow), cudaMemcpyHostToDevice));
      CUDA_CHECK(cudaMemset(out.get(), 0x7F, n * sizeof(int32_t)));  // not kNoToken (-1)
      kernels::SampleParams sp;
      sp.logits = dl.get();
      sp.vocab = vocab;
      sp.n_rows = n;
      sp.rows = drows.get();
      sp.rows_host = rows.data();
      sp.unsampled = use_mask ? dmask.get() : nullptr;
      sp.workspace = ws.get();
      sp.out = out.get();
      kernels::LaunchSample(sp, nullptr);
      CUDA_CHECK(cudaDeviceSynchronize());
      const auto got = out.Download();
      int refused = 0;
      for (int r = 0; r < n; ++r) {
        model::SamplingParams p = params[r / rows_per_param];
        p.seed = rows[r].seed;
        std::vector<float> row(logits.begin() + static_cast<size_t>(r) * vocab,
                               logits.begin() + static_cast<size_t>(r + 1) * vocab);
        if (use_mask) {
          for (int id = 0; id < vocab; ++id) {
            if (masked[id]) row[id] = -kInf;
          }
        }
        const int32_t want = model::Sampler(p).Sample(row, {}, rows[r].step);
        refused += want == model::kNoToken;
        ASSERT_EQ(got[r], want) << "row " << r << " vocab " << vocab << " round " << round << " T "
                                << p.temperature << " k " << p.top_k << " p " << p.top_p << " min_p " << p.min_p;
        if (use_mask && want >= 0) {
          ASSERT_FALSE(masked[want]);
        }
      }
      EXPECT_GT(refused, 0);  // the NaN and all -inf rows were there
    }
  }
}

}  // namespace
}  // namespace ossgate::testing
