// Whole-model accuracy of the CUDA backend against the CPU reference, with
// the attribution of the difference:
//   gpu      : the backend as it serves (bf16 KV cache) vs the CPU backend;
//   f16kv    : the same GPU with the K/V cache in fp16 (what an fp32 cache
//              gives, since attention reads K/V as fp16): how much the bf16
//              cache contributes;
//   forced   : the GPU vs the CPU reference run with the GPU's expert choices
//              (everything else fp32): the GPU's rounding alone, without the
//              cascade that follows when a near-tie in a router picks
//              another 4th expert;
//   same-routing positions: the GPU vs the CPU at the positions whose expert
//              sets agree in every layer.
// Routing is compared as sets of experts per (layer, token).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/model/model_config.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/cpu_reference.h"

namespace ossgate::testing {

// Per-position comparison of two [positions][vocab] logit arrays.
struct LogitStats {
  int positions = 0;
  double mean = 0, median = 0, p90 = 0, worst = 0;
  int worst_pos = -1;
  int over = 0;  // positions with relative error >= 1e-2
  int argmax_equal = 0;
  std::string Row(const std::string& name) const {
    return absl::StrFormat("| %s | %d | %.2e | %.2e | %.2e | %.2e (pos %d) | %d | %d/%d |", name, positions, mean, median,
                           p90, worst, worst_pos, over, argmax_equal, positions);
  }
};

inline int ArgmaxOf(const float* v, int n) { return static_cast<int>(std::max_element(v, v + n) - v); }

// Positions where keep[t] is true (all when keep is empty).
inline LogitStats CompareLogits(const std::vector<float>& got, const std::vector<float>& want, int vocab,
                                const std::vector<bool>& keep = {}) {
  LogitStats s;
  const int n = static_cast<int>(want.size() / vocab);
  std::vector<double> errs;
  for (int t = 0; t < n; ++t) {
    if (!keep.empty() && !keep[t]) continue;
    const float* a = &got[static_cast<size_t>(t) * vocab];
    const float* b = &want[static_cast<size_t>(t) * vocab];
    const double e = RelErr(a, b, vocab);
    errs.push_back(e);
    s.mean += e;
    s.over += e >= 1e-2;
    if (e > s.worst || s.worst_pos < 0) s.worst = e, s.worst_pos = t;
    s.argmax_equal += ArgmaxOf(a, vocab) == ArgmaxOf(b, vocab);
  }
  s.positions = static_cast<int>(errs.size());
  if (!errs.empty()) {
    s.mean /= static_cast<double>(errs.size());
    std::sort(errs.begin(), errs.end());
    s.median = errs[errs.size() / 2];
    s.p90 = errs[errs.size() * 9 / 10];
  }
  return s;
}

// Expert sets per (layer, token), both [layers][T][k].
struct RoutingStats {
  int token_layers = 0;
  int differing = 0;        // (layer, token) pairs whose expert sets differ
  int positions_any = 0;    // tokens with a difference in some layer
  int first_layer_hist[64] = {};  // tokens by the first layer that differs
  // Largest reference gap between the k-th and (k+1)-th router logit at a
  // token's first differing layer.
  float max_ref_margin = 0;
  std::vector<bool> same;   // per token: equal sets in every layer
  std::string Row(const std::string& name, int layers) const {
    std::string first;
    for (int l = 0; l < layers && l < 64; ++l) absl::StrAppend(&first, l ? "/" : "", first_layer_hist[l]);
    return absl::StrFormat("| %s | %d | %d (%.2f%%) | %d | %s | %.3g |", name, token_layers, differing,
                           token_layers ? 100.0 * differing / token_layers : 0.0, positions_any, first, max_ref_margin);
  }
};

inline RoutingStats CompareRouting(const std::vector<int32_t>& got, const ReferenceResult& ref, int layers, int T,
                                   int k, int n_experts) {
  RoutingStats s;
  s.same.assign(T, true);
  std::vector<int> first(T, -1);
  for (int l = 0; l < layers; ++l) {
    for (int t = 0; t < T; ++t) {
      const size_t o = (static_cast<size_t>(l) * T + t) * k;
      std::vector<int32_t> a(got.begin() + o, got.begin() + o + k), b(ref.ids.begin() + o, ref.ids.begin() + o + k);
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      ++s.token_layers;
      if (a != b) {
        ++s.differing;
        if (s.same[t]) {
          // The token's first differing layer: its inputs differ by rounding
          // only (later layers follow from this difference).
          first[t] = l;
          const float m =
              RouterMargin(&ref.router_logits[(static_cast<size_t>(l) * T + t) * n_experts], n_experts, k);
          s.max_ref_margin = std::max(s.max_ref_margin, m);
        }
        s.same[t] = false;
      }
    }
  }
  for (int t = 0; t < T; ++t) {
    if (!s.same[t]) {
      ++s.positions_any;
      if (first[t] < 64) ++s.first_layer_hist[first[t]];
    }
  }
  return s;
}

// Share of (layer, token) pairs whose reference margin is below `eps` (how
// often a router is that close to a tie).
inline double NearTieShare(const ReferenceResult& ref, int layers, int T, int k, int n_experts, float eps) {
  int64_t n = 0;
  for (int l = 0; l < layers; ++l) {
    for (int t = 0; t < T; ++t) {
      n += RouterMargin(&ref.router_logits[(static_cast<size_t>(l) * T + t) * n_experts], n_experts, k) < eps;
    }
  }
  return static_cast<double>(n) / (static_cast<double>(layers) * T);
}

struct Attribution {
  LogitStats gpu, f16kv, forced, same_routing;
  RoutingStats routing, routing_f16kv;
  double near_tie_1e3 = 0, near_tie_1e2 = 0;
  std::vector<float> cpu_logits, gpu_logits;
};

inline std::unique_ptr<gpu::CudaBackend> MakeAccuracyGpu(const gguf::GgufFile& f, int context, bool kv_fp16) {
  gpu::CudaBackendOptions o;
  o.kv.max_sequences = 2;
  o.max_context = context;
  o.max_step_tokens = std::max(2048, context);
  o.upload_threads = 0;
  o.kv_fp16 = kv_fp16;
  auto b = gpu::CreateCudaBackendImpl(f, o);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *std::move(b) : nullptr;
}

// GPU logits of a one-step prompt with the routing trace.
inline bool GpuPrompt(gpu::CudaBackend& b, const std::vector<int32_t>& tokens, std::vector<float>* logits,
                      std::vector<int32_t>* ids) {
  if (!b.kv().AddSequence(1).ok()) return false;
  b.SetRoutingTrace(true);
  model::SequenceStep step{1, tokens, model::Logits::kAll};
  const absl::Status s = b.Forward({&step, 1}, logits);
  EXPECT_TRUE(s.ok()) << s;
  *ids = b.TakeRoutingTrace();
  b.SetRoutingTrace(false);
  b.kv().RemoveSequence(1);
  return s.ok();
}

// Runs all four comparisons on one prompt and prints them as table rows.
inline Attribution Attribute(const gguf::GgufFile& file, const std::vector<int32_t>& tokens, const std::string& name,
                             bool forced = true) {
  Attribution a;
  auto config = model::ReadModelConfig(file);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return a;
  const model::ModelConfig& c = *config;
  const int T = static_cast<int>(tokens.size()), V = c.vocab_size, L = c.n_layers, K = c.n_experts_used;
  const auto reference = CpuReference(file, tokens);
  EXPECT_TRUE(reference.ok()) << reference.status();
  if (!reference.ok()) return a;
  const ReferenceResult& ref = *reference;
  a.cpu_logits = ref.logits;
  std::vector<int32_t> ids, ids16;
  std::vector<float> lg16;
  {
    auto g = MakeAccuracyGpu(file, T + 64, false);
    if (!g || !GpuPrompt(*g, tokens, &a.gpu_logits, &ids)) return a;
  }
  {
    auto g = MakeAccuracyGpu(file, T + 64, true);
    if (!g || !GpuPrompt(*g, tokens, &lg16, &ids16)) return a;
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(L) * T * K);
  EXPECT_EQ(ids16.size(), static_cast<size_t>(L) * T * K);
  if (ids.size() != static_cast<size_t>(L) * T * K || ids16.size() != ids.size()) return a;
  a.gpu = CompareLogits(a.gpu_logits, ref.logits, V);
  a.f16kv = CompareLogits(lg16, ref.logits, V);
  a.routing = CompareRouting(ids, ref, L, T, K, c.n_experts);
  a.routing_f16kv = CompareRouting(ids16, ref, L, T, K, c.n_experts);
  a.same_routing = CompareLogits(a.gpu_logits, ref.logits, V, a.routing.same);
  a.near_tie_1e3 = NearTieShare(ref, L, T, K, c.n_experts, 1e-3f);
  a.near_tie_1e2 = NearTieShare(ref, L, T, K, c.n_experts, 1e-2f);
  if (forced) {
    const auto fr = CpuReference(file, tokens, &ids);
    EXPECT_TRUE(fr.ok()) << fr.status();
    if (fr.ok()) a.forced = CompareLogits(a.gpu_logits, fr->logits, V);
  }
  std::printf(
      "\n#### accuracy: %s (%d layers, d %d, %d experts, %d tokens)\n\n"
      "| comparison | positions | mean rel err | median | p90 | worst | >= 1e-2 | same argmax |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|\n%s\n%s\n%s\n%s\n\n"
      "| routing vs CPU | token-layers | expert set differs | positions affected | by first differing layer | "
      "largest CPU margin at a first difference |\n|---|---:|---:|---:|---|---:|\n%s\n%s\n\n"
      "CPU router near-ties (k-th vs k+1-th logit): %.2f%% of token-layers within 1e-3, %.2f%% within 1e-2\n",
      name.c_str(), L, c.d_model, c.n_experts, T, a.gpu.Row("GPU (bf16 KV) vs CPU").c_str(),
      a.f16kv.Row("GPU with fp16 KV vs CPU").c_str(),
      forced ? a.forced.Row("GPU vs CPU forced to the GPU's experts").c_str() : "| forced | not run |",
      a.same_routing.Row("GPU vs CPU, positions with equal routing").c_str(), a.routing.Row("GPU (bf16 KV)", L).c_str(),
      a.routing_f16kv.Row("GPU with fp16 KV", L).c_str(), 100 * a.near_tie_1e3, 100 * a.near_tie_1e2);
  std::fflush(stdout);
  return a;
}

// The checks every accuracy comparison must pass. The issue's "relative
// error < 1e-2 at every position" is met by the GPU's arithmetic (the CPU
// run with the GPU's expert choices), not by the served GPU vs the CPU: with
// a bf16 KV cache about 0.2-0.7% of (layer, token) router decisions that the
// CPU takes by a margin < 0.02 go the other way, and a swapped expert moves
// that token's logits by 2-60% (docs/cuda.md, "Precision").
inline void ExpectRoundingOnlyDifferences(const Attribution& a, double max_forced = 1e-2) {
  EXPECT_LT(a.forced.worst, max_forced) << "the GPU's own rounding, with the CPU's experts forced to the GPU's";
  EXPECT_LT(a.routing.max_ref_margin, 0.05f) << "an expert set differs where the CPU router was not near a tie";
  EXPECT_LT(a.routing.differing, a.routing.token_layers / 100 + 1) << "more than 1% of router decisions differ";
}

inline std::string SourceDir() {
  const char* env = std::getenv("OSSGATE_SOURCE_DIR");
  return env ? env : OSSGATE_SOURCE_DIR;
}

}  // namespace ossgate::testing
