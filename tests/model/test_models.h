// Helpers that write small random models (gpt-oss, qwen2, phi3) for tests
// and load them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "tools/make_model/random_model.h"

namespace ossgate::testing {

// A vocabulary of n placeholder tokens: enough for forward-pass tests, which
// never tokenize text.
inline text::VocabSpec PlaceholderVocab(int n) {
  text::VocabSpec v;
  for (int i = 0; i < n; ++i) {
    v.tokens.push_back(absl::StrCat("<tok", i, ">"));
    v.token_types.push_back(1);
  }
  return v;
}

// The file bytes and the parsed view over them (which points into bytes).
struct LoadedModel {
  std::vector<uint8_t> bytes;
  std::unique_ptr<gguf::GgufFile> file;
};

inline std::unique_ptr<LoadedModel> LoadModel(const std::string& path) {
  auto m = std::make_unique<LoadedModel>();
  std::ifstream in(path, std::ios::binary);
  m->bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  auto parsed = gguf::GgufFile::Parse(m->bytes);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return nullptr;
  m->file = std::make_unique<gguf::GgufFile>(*std::move(parsed));
  return m;
}

inline std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir ? dir : "/tmp", "/ossgate_", name, "_", ::getpid(), ".gguf");
}

// Writes a random model of `preset` (tools::ApplyPreset: "tiny", "qwen2-tiny",
// "phi3-tiny", ...) with overrides applied by `tweak`.
template <typename Tweak>
std::string WritePresetModel(const std::string& name, const std::string& preset, Tweak tweak, int vocab = 96,
                             uint64_t seed = 7) {
  tools::RandomModelSpec spec;
  EXPECT_TRUE(tools::ApplyPreset(preset, &spec.config).ok()) << preset;
  spec.seed = seed;
  spec.threads = 2;
  tweak(spec);
  const std::string path = TempPath(name);
  const absl::Status s = tools::WriteRandomModel(spec, PlaceholderVocab(vocab), path);
  EXPECT_TRUE(s.ok()) << s;
  return path;
}

// Writes a random model of the gpt-oss "tiny" preset with overrides applied by `tweak`.
template <typename Tweak>
std::string WriteTestModel(const std::string& name, Tweak tweak, int vocab = 96, uint64_t seed = 7) {
  return WritePresetModel(name, "tiny", tweak, vocab, seed);
}

// The narrowest gpt-oss shape whose rows hold whole k-quant super-blocks
// (256 elements): d_model 256, 4 heads over 2 KV heads of 64, d_ff 256, for
// the Q4_K / Q6_K tests.
inline void SetKQuantShape(model::ModelConfig* c) {
  c->d_model = 256;
  c->n_heads = 4;
  c->n_kv_heads = 2;
  c->head_dim = 64;
  c->d_ff = 256;
}

// Dense shapes whose Q4_K_M files (RandomModelSpec::llama_q4_k_m) hold the
// types llama.cpp writes for the real models. qwen2: d_model 384 (6 heads of
// 64 over 2 KV heads), not a multiple of 256 like Qwen2.5-0.5B's 896, so its
// attention and gate/up matrices fall back to Q5_0 (Q8_0 where Q6_K was
// picked) while ffn_down (d_ff 512) stays Q4_K / Q6_K; tied, so the
// embedding is Q8_0. phi3: d_model 256 (4 heads of 64), so attn_qkv is Q5_K
// as in Phi-3-mini. Two layers: layer 1 is use_more_bits' (Q6_K attn_v and
// ffn_down), layer 0 is not.
inline void SetQwen2Q4KMShape(model::ModelConfig* c) {
  c->n_layers = 2, c->d_model = 384, c->n_heads = 6, c->n_kv_heads = 2, c->head_dim = 64, c->d_ff = 512;
  c->tied_embeddings = true;
}
inline void SetPhi3Q4KMShape(model::ModelConfig* c) {
  c->n_layers = 2, c->d_model = 256, c->n_heads = 4, c->n_kv_heads = 4, c->head_dim = 64, c->d_ff = 512;
  c->tied_embeddings = false;
}

}  // namespace ossgate::testing
