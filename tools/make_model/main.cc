// ossgate-make-model: writes a GGUF (gpt-oss, qwen2 or phi3) with seeded
// random weights.
//   ossgate-make-model --preset=20b --out=/tmp/20b.gguf
//   ossgate-make-model --preset=tiny --vocab=tiny --layers=3 --out=tiny.gguf
//   ossgate-make-model --family=qwen2 --vocab=tiny --out=qwen2-tiny.gguf
//   ossgate-make-model --preset=phi3-mini --dense_type=bf16 --out=phi3-mini.gguf
#include <chrono>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "tools/make_model/model_flags.h"
#include "tools/make_model/random_model.h"

ABSL_FLAG(std::string, out, "", "output GGUF path (required)");
ABSL_FLAG(std::string, preset, "tiny",
          "dimensions: gpt-oss tiny, small, medium (4 layers at 20b width), 20b, 120b; qwen2-tiny, qwen2.5-0.5b; "
          "phi3-tiny, phi3-mini (Phi-3-mini-4k)");
ABSL_FLAG(std::string, family, "",
          "model family: gpt-oss, qwen2 or phi3 (empty: the preset's); with --preset=tiny, the family's tiny preset");
ABSL_FLAG(std::string, tied, "",
          "qwen2/phi3: 'yes' writes no output.weight (the unembedding is token_embd, as Qwen2.5-0.5B), 'no' writes "
          "one; empty: the preset's choice");
ABSL_FLAG(std::string, vocab, "tiny",
          "tokenizer: 'tiny' (bytes + a few hundred merges + harmony specials), 'o200k' (the real gpt-oss vocabulary), "
          "'qwen2' (Qwen2.5's), 'phi3' (Phi-3-mini's), 'tiny-qwen2' and 'tiny-phi3' (small vocabularies with those "
          "families' special tokens), "
          "'placeholder:N' (N dummy tokens, for forward-pass fixtures only) or a vocab file path");
ABSL_FLAG(std::string, dense_type, "q8_0",
          "type of the attention/embedding matrices (qwen2, phi3: of every matrix): q8_0, q5_0, q5_1, q4_k, q5_k, "
          "q6_k, bf16, f16, f32 (the k-quants need the matrices' input widths to be multiples of 256); qwen2, phi3: "
          "also q4_k_m, the types llama.cpp's Q4_K_M quantization picks per matrix (Q4_K, Q5_K, Q6_K, with its "
          "Q5_0 / Q5_1 / Q8_0 fallbacks for widths that are not multiples of 256)");
ABSL_FLAG(std::string, expert_type, "mxfp4",
          "gpt-oss: type of expert matrices: mxfp4, q8_0, q5_0, q5_1, q4_k, q5_k, q6_k, bf16, f16, f32 (k-quants: "
          "d_model and d_ff multiples of 256)");
ABSL_FLAG(uint64_t, seed, 1, "random seed");
ABSL_FLAG(int, layers, 0, "override block_count");
ABSL_FLAG(int, d_model, 0, "override embedding_length");
ABSL_FLAG(int, heads, 0, "override attention.head_count");
ABSL_FLAG(int, kv_heads, 0, "override attention.head_count_kv");
ABSL_FLAG(int, head_dim, 0,
          "override the head size (qwen2/phi3 write attention.key_length only if it is not d_model / heads)");
ABSL_FLAG(int, experts, 0, "gpt-oss: override expert_count");
ABSL_FLAG(int, d_ff, 0, "override expert_feed_forward_length (qwen2/phi3: feed_forward_length)");
ABSL_FLAG(int, window, 0, "override attention.sliding_window (gpt-oss, phi3)");
ABSL_FLAG(int, rope_original_context, 0,
          "gpt-oss: override rope.scaling.original_context_length (YaRN; presets use 4096); below ~201 "
          "(beta_fast * 2 pi) "
          "the correction range is clamped, as HF transformers does");
ABSL_FLAG(int, threads, 0, "generator threads (0 = all cores)");
ABSL_FLAG(std::string, name, "ossgate-random", "general.name");
ABSL_FLAG(double, residual_scale, 1.0,
          "multiplies the spread of attn_output and ffn_down_exps (weights and biases), the matrices that write into "
          "the residual stream; 1 keeps the default bytes, 'gpt2' style is 1/sqrt(2 * layers)");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Writes a gpt-oss, qwen2 or phi3 GGUF file with seeded random weights.");
  absl::ParseCommandLine(argc, argv);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::fprintf(stderr, "error: --out is required\n");
    return 2;
  }
  ossgate::tools::RandomModelSpec spec;
  const std::string family = absl::GetFlag(FLAGS_family);
  std::string preset = absl::GetFlag(FLAGS_preset);
  if (!family.empty() && family != "gpt-oss" && preset == "tiny") preset = family + "-tiny";
  if (auto s = ossgate::tools::ApplyPreset(preset, &spec.config); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  auto& c = spec.config;
  const bool gpt_oss = c.family == ossgate::model::Family::kGptOss;
  if (!family.empty() && family != ossgate::model::FamilyName(c.family)) {
    std::fprintf(stderr, "error: --family=%s but --preset=%s is a %s preset\n", family.c_str(), preset.c_str(),
                 ossgate::model::FamilyName(c.family));
    return 2;
  }
  auto only_for = [&](bool ok, const char* flag, const char* families) {
    if (!ok) std::fprintf(stderr, "error: %s applies to %s models only\n", flag, families);
    return ok;
  };
  if (!only_for(gpt_oss || absl::GetFlag(FLAGS_experts) == 0, "--experts", "gpt-oss") ||
      !only_for(gpt_oss || absl::GetFlag(FLAGS_rope_original_context) == 0, "--rope_original_context", "gpt-oss") ||
      !only_for(c.family != ossgate::model::Family::kQwen2 || absl::GetFlag(FLAGS_window) == 0, "--window",
                "gpt-oss and phi3") ||
      !only_for(!gpt_oss || absl::GetFlag(FLAGS_tied).empty(), "--tied", "qwen2 and phi3")) {
    return 2;
  }
  if (const std::string tied = absl::GetFlag(FLAGS_tied); !tied.empty()) {
    if (tied != "yes" && tied != "no") {
      std::fprintf(stderr, "error: --tied must be yes or no, not '%s'\n", tied.c_str());
      return 2;
    }
    c.tied_embeddings = tied == "yes";
  }
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
  const bool q4_k_m = absl::AsciiStrToLower(absl::GetFlag(FLAGS_dense_type)) == "q4_k_m";
  if (q4_k_m && c.family == ossgate::model::Family::kGptOss) {
    std::fprintf(stderr, "error: --dense_type=q4_k_m is for the qwen2 and phi3 families\n");
    return 2;
  }
  spec.llama_q4_k_m = q4_k_m;
  auto dense = ossgate::tools::ParseGgmlType(q4_k_m ? std::string("q8_0") : absl::GetFlag(FLAGS_dense_type));
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
