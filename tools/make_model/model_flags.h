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

// "tiny", "tiny-qwen2", "tiny-phi3" (MakeTinyVocab, MakeTinyFamilyVocab),
// "o200k" (gpt-oss), "qwen2" (Qwen2.5), "phi3" (Phi-3-mini),
// "placeholder:N" or the path of a vocab file. The real vocabularies are
// found at run time (FindVocabAsset), never at a path compiled in: the tools
// run from bundles and installs on other machines.
absl::StatusOr<text::VocabSpec> LoadVocabByName(const std::string& name);

// A vocabulary the build decompresses from assets/tokenizer/*.vocab.xz.
struct VocabAsset {
  const char* name;  // the --vocab value: "o200k", "qwen2", "phi3"
  const char* file;  // e.g. "o200k_harmony.vocab"
  const char* env;   // the environment variable that overrides where it is, e.g. "OSSGATE_O200K_VOCAB"
};
// The assets by name; nullptr for another name.
const VocabAsset* FindVocabAssetByName(const std::string& name);

// The decompressed vocabulary `asset`: `env_value` (the value of asset.env)
// when set, else the first existing candidate of VocabCandidates(asset.file,
// exe_dir). NotFound lists where it looked and names the variable.
absl::StatusOr<std::string> FindVocabAsset(const VocabAsset& asset, const char* env_value, const std::string& exe_dir);

// FindVocabAsset for o200k_harmony.vocab (OSSGATE_O200K_VOCAB).
absl::StatusOr<std::string> FindO200kVocab(const char* env_value, const std::string& exe_dir);

// The folder of the running program (from /proc/self/exe); empty if unknown.
// Tools find their companions relative to it, never at a build path.
std::string ExecutableDir();

// assets/tokenizer/<file> and share/ossgate/tokenizer/<file> in `exe_dir` and
// up to three of its parents, nearest first.
std::vector<std::string> VocabCandidates(const std::string& file, const std::string& exe_dir);
std::vector<std::string> O200kVocabCandidates(const std::string& exe_dir);  // file o200k_harmony.vocab

}  // namespace ossgate::tools
