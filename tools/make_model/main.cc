// ossgate-make-model: writes a gpt-oss GGUF with seeded random weights.
//   ossgate-make-model --preset=20b --out=/tmp/20b.gguf
//   ossgate-make-model --preset=tiny --vocab=tiny --layers=3 --out=tiny.gguf
#include <chrono>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "tools/make_model/model_flags.h"
#include "tools/make_model/random_model.h"

ABSL_FLAG(std::string, out, "", "output GGUF path (required)");
ABSL_FLAG(std::string, preset, "tiny", "dimensions: tiny, small, medium (4 layers at 20b width), 20b, 120b");
ABSL_FLAG(std::string, vocab, "tiny",
          "tokenizer: 'tiny' (bytes + a few hundred merges + harmony specials), 'o200k' (the real gpt-oss vocabulary), "
          "'qwen2' (Qwen2.5's), 'phi3' (Phi-3-mini's), 'tiny-qwen2' and 'tiny-phi3' (small vocabularies with those "
          "families' special tokens), "
          "'placeholder:N' (N dummy tokens, for forward-pass fixtures only) or a vocab file path");
ABSL_FLAG(std::string, dense_type, "q8_0",
          "type of attention/embedding matrices: q8_0, q4_k, q6_k, bf16, f16, f32 (the k-quants need the matrices' "
          "input widths, d_model and heads*head_dim, to be multiples of 256)");
ABSL_FLAG(std::string, expert_type, "mxfp4",
          "type of expert matrices: mxfp4, q8_0, q4_k, q6_k, bf16, f16, f32 (k-quants: d_model and d_ff multiples of "
          "256)");
ABSL_FLAG(uint64_t, seed, 1, "random seed");
ABSL_FLAG(int, layers, 0, "override block_count");
ABSL_FLAG(int, d_model, 0, "override embedding_length");
ABSL_FLAG(int, heads, 0, "override attention.head_count");
ABSL_FLAG(int, kv_heads, 0, "override attention.head_count_kv");
ABSL_FLAG(int, head_dim, 0, "override attention.key_length");
ABSL_FLAG(int, experts, 0, "override expert_count");
ABSL_FLAG(int, d_ff, 0, "override expert_feed_forward_length");
ABSL_FLAG(int, window, 0, "override attention.sliding_window");
ABSL_FLAG(int, rope_original_context, 0,
          "override rope.scaling.original_context_length (YaRN; presets use 4096); below ~201 (beta_fast * 2 pi) "
          "the correction range is clamped, as HF transformers does");
ABSL_FLAG(int, threads, 0, "generator threads (0 = all cores)");
ABSL_FLAG(std::string, name, "ossgate-random", "general.name");
ABSL_FLAG(double, residual_scale, 1.0,
          "multiplies the spread of attn_output and ffn_down_exps (weights and biases), the matrices that write into "
          "the residual stream; 1 keeps the default bytes, 'gpt2' style is 1/sqrt(2 * layers)");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Writes a gpt-oss GGUF file with seeded random weights.");
  absl::ParseCommandLine(argc, argv);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::fprintf(stderr, "error: --out is required\n");
    return 2;
  }
  ossgate::tools::RandomModelSpec spec;
  if (auto s = ossgate::tools::ApplyPreset(absl::GetFlag(FLAGS_preset), &spec.config); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  auto& c = spec.config;
  auto override_int = [](int v, int* field) {
    if (v > 0) *field = v;
  };
  override_int(absl::GetFlag(FLAGS_layers), &c.n_layers);
  override_int(absl::GetFlag(FLAGS_d_model), &c.d_model);
  override_int(absl::GetFlag(FLAGS_heads), &c.n_heads);
  override_int(absl::GetFlag(FLAGS_kv_heads), &c.n_kv_heads);
  override_int(absl::GetFlag(FLAGS_head_dim), &c.head_dim);
  override_int(absl::GetFlag(FLAGS_experts), &c.n_experts);
  override_int(absl::GetFlag(FLAGS_d_ff), &c.d_ff);
  override_int(absl::GetFlag(FLAGS_window), &c.sliding_window);
  if (absl::GetFlag(FLAGS_rope_original_context) < 0) {
    std::fprintf(stderr, "error: --rope_original_context must be positive (or 0 for the preset's 4096)\n");
    return 2;
  }
  override_int(absl::GetFlag(FLAGS_rope_original_context), &c.rope_original_context);
  spec.seed = absl::GetFlag(FLAGS_seed);
  spec.threads = absl::GetFlag(FLAGS_threads);
  spec.name = absl::GetFlag(FLAGS_name);
  spec.residual_scale = static_cast<float>(absl::GetFlag(FLAGS_residual_scale));
  auto dense = ossgate::tools::ParseGgmlType(absl::GetFlag(FLAGS_dense_type));
  auto expert = ossgate::tools::ParseGgmlType(absl::GetFlag(FLAGS_expert_type));
  if (!dense.ok() || !expert.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string((dense.ok() ? expert.status() : dense.status()).message()).c_str());
    return 2;
  }
  spec.dense_type = *dense;
  spec.expert_type = *expert;
  auto vocab = ossgate::tools::LoadVocabByName(absl::GetFlag(FLAGS_vocab));
  if (!vocab.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(vocab.status().message()).c_str());
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (auto s = ossgate::tools::WriteRandomModel(spec, *vocab, out); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  c.vocab_size = static_cast<int>(vocab->tokens.size());
  std::printf("wrote %s (%s) in %.1f s\n", out.c_str(), c.DebugString().c_str(), secs);
  return 0;
}
