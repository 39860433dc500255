// Tokenizers the text fuzz targets run against, built once per process:
// the built-in tiny vocabulary (no file needed) and the real o200k_harmony,
// Qwen2.5 and Phi-3 vocabularies, read from the files named by the
// environment variables OSSGATE_O200K_VOCAB, OSSGATE_QWEN2_VOCAB and
// OSSGATE_PHI3_VOCAB (tools/fuzz.sh and ctest set them to the build's
// decompressed copies). A missing or broken vocabulary aborts with a
// message: no part of a target may be skipped silently.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::fuzz {

inline const text::Tokenizer& TinyTokenizer() {
  static const text::Tokenizer* tok = [] {
    auto t = text::Tokenizer::Create(text::MakeTinyVocab());
    if (!t.ok()) {
      std::fprintf(stderr, "tiny vocabulary: %s\n", std::string(t.status().message()).c_str());
      std::abort();
    }
    return t->release();
  }();
  return *tok;
}

// The tokenizer of the vocabulary file named by environment variable `env`
// (the build's decompressed asset `asset`), built once.
inline const text::Tokenizer* LoadVocabFromEnv(const char* env, const char* asset) {
  const char* path = std::getenv(env);
  if (path == nullptr || *path == '\0') {
    std::fprintf(stderr, "set %s to the decompressed vocabulary (<build>/assets/tokenizer/%s; tools/fuzz.sh does)\n",
                 env, asset);
    std::abort();
  }
  auto spec = text::LoadVocabFile(path);
  if (!spec.ok()) {
    std::fprintf(stderr, "%s: %s\n", path, std::string(spec.status().message()).c_str());
    std::abort();
  }
  auto t = text::Tokenizer::Create(*std::move(spec));
  if (!t.ok()) {
    std::fprintf(stderr, "%s: %s\n", path, std::string(t.status().message()).c_str());
    std::abort();
  }
  return t->release();
}

inline const text::Tokenizer& O200kTokenizer() {
  static const text::Tokenizer* tok = LoadVocabFromEnv("OSSGATE_O200K_VOCAB", "o200k_harmony.vocab");
  return *tok;
}

// Qwen2.5's byte-level BPE and Phi-3's SentencePiece (OSSGATE_QWEN2_VOCAB,
// OSSGATE_PHI3_VOCAB): only the targets built with FAMILIES read them.
inline const text::Tokenizer& Qwen2Tokenizer() {
  static const text::Tokenizer* tok = LoadVocabFromEnv("OSSGATE_QWEN2_VOCAB", "qwen2.5.vocab");
  return *tok;
}

inline const text::Tokenizer& Phi3Tokenizer() {
  static const text::Tokenizer* tok = LoadVocabFromEnv("OSSGATE_PHI3_VOCAB", "phi3-mini.vocab");
  return *tok;
}

}  // namespace ossgate::fuzz
