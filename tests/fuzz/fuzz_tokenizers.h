// Tokenizers the text fuzz targets run against, built once per process:
// the built-in tiny vocabulary (no file needed) and the real o200k_harmony
// vocabulary, read from the file named by the environment variable
// OSSGATE_O200K_VOCAB (tools/fuzz.sh and ctest set it to the build's
// decompressed copy). A missing or broken vocabulary aborts with a message:
// the o200k half of a target must never be skipped silently.
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

inline const text::Tokenizer& O200kTokenizer() {
  static const text::Tokenizer* tok = [] {
    const char* path = std::getenv("OSSGATE_O200K_VOCAB");
    if (path == nullptr || *path == '\0') {
      std::fprintf(stderr,
                   "set OSSGATE_O200K_VOCAB to the decompressed o200k_harmony vocabulary "
                   "(<build>/assets/tokenizer/o200k_harmony.vocab; tools/fuzz.sh does)\n");
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
  }();
  return *tok;
}

}  // namespace ossgate::fuzz
