// Command-line helpers shared by the model tools.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::tools {

// "q8_0", "mxfp4", "bf16", "f16", "f32" (case-insensitive).
absl::StatusOr<gguf::GgmlType> ParseGgmlType(const std::string& name);

// "tiny", "o200k", "placeholder:N" or the path of a vocab file. "o200k" is
// found at run time (FindO200kVocab), never at a path compiled in: the tools
// run from bundles and installs on other machines.
absl::StatusOr<text::VocabSpec> LoadVocabByName(const std::string& name);

// The decompressed o200k_harmony vocabulary: `env_value` (the environment
// variable OSSGATE_O200K_VOCAB) when set, else the first existing candidate
// of O200kVocabCandidates(exe_dir). NotFound lists where it looked.
absl::StatusOr<std::string> FindO200kVocab(const char* env_value, const std::string& exe_dir);

// The folder of the running program (from /proc/self/exe); empty if unknown.
// Tools find their companions relative to it, never at a build path.
std::string ExecutableDir();

// assets/tokenizer/ and share/ossgate/tokenizer/ in `exe_dir` and up to three
// of its parents, nearest first.
std::vector<std::string> O200kVocabCandidates(const std::string& exe_dir);

}  // namespace ossgate::tools
