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

}  // namespace ossgate::testing
