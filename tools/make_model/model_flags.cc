#include "tools/make_model/model_flags.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::tools {
namespace {

constexpr VocabAsset kAssets[] = {
    {"o200k", "o200k_harmony.vocab", "OSSGATE_O200K_VOCAB"},
    {"qwen2", "qwen2.5.vocab", "OSSGATE_QWEN2_VOCAB"},
    {"phi3", "phi3-mini.vocab", "OSSGATE_PHI3_VOCAB"},
};

}  // namespace

const VocabAsset* FindVocabAssetByName(const std::string& name) {
  for (const VocabAsset& a : kAssets) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

std::string ExecutableDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

std::vector<std::string> O200kVocabCandidates(const std::string& exe_dir) {
  return VocabCandidates(kAssets[0].file, exe_dir);
}

std::vector<std::string> VocabCandidates(const std::string& file, const std::string& exe_dir) {
  // The build tree puts the decompressed asset in <build>/assets/tokenizer and
  // the tools one or two folders below <build>; an install puts it in
  // <prefix>/share/ossgate/tokenizer next to <prefix>/bin.
  std::vector<std::string> out;
  if (exe_dir.empty()) return out;
  std::filesystem::path dir(exe_dir);
  for (int up = 0; up < 4 && !dir.empty(); ++up) {
    out.push_back((dir / "assets/tokenizer" / file).string());
    out.push_back((dir / "share/ossgate/tokenizer" / file).string());
    if (dir == dir.parent_path()) break;
    dir = dir.parent_path();
  }
  return out;
}

absl::StatusOr<std::string> FindO200kVocab(const char* env_value, const std::string& exe_dir) {
  return FindVocabAsset(kAssets[0], env_value, exe_dir);
}

absl::StatusOr<std::string> FindVocabAsset(const VocabAsset& asset, const char* env_value, const std::string& exe_dir) {
  if (env_value != nullptr && *env_value != '\0') return std::string(env_value);
  const std::vector<std::string> candidates = VocabCandidates(asset.file, exe_dir);
  for (const std::string& c : candidates) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(c, ec)) return c;
  }
  return absl::NotFoundError(absl::StrCat(
      "the ", asset.name, " vocabulary was not found next to this program (looked for ",
      candidates.empty() ? std::string("nothing: the program's folder is unknown") : absl::StrJoin(candidates, ", "),
      "); set ", asset.env, " to the decompressed assets/tokenizer/", asset.file, ".xz, or pass --vocab=<path>"));
}

absl::StatusOr<gguf::GgmlType> ParseGgmlType(const std::string& name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "q8_0") return gguf::GgmlType::kQ8_0;
  if (n == "q5_0") return gguf::GgmlType::kQ5_0;
  if (n == "q5_1") return gguf::GgmlType::kQ5_1;
  if (n == "q4_k") return gguf::GgmlType::kQ4_K;
  if (n == "q5_k") return gguf::GgmlType::kQ5_K;
  if (n == "q6_k") return gguf::GgmlType::kQ6_K;
  if (n == "mxfp4") return gguf::GgmlType::kMXFP4;
  if (n == "bf16") return gguf::GgmlType::kBF16;
  if (n == "f16") return gguf::GgmlType::kF16;
  if (n == "f32") return gguf::GgmlType::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown tensor type '", name, "' (q8_0, q5_0, q5_1, q4_k, q5_k, q6_k, mxfp4, bf16, f16, f32)"));
}

absl::StatusOr<text::VocabSpec> LoadVocabByName(const std::string& name) {
  if (name == "tiny") return text::MakeTinyVocab();
  if (name == "tiny-qwen2") return text::MakeTinyFamilyVocab("qwen2");
  if (name == "tiny-phi3") return text::MakeTinyFamilyVocab("phi3");
  if (const VocabAsset* asset = FindVocabAssetByName(name)) {
    absl::StatusOr<std::string> path = FindVocabAsset(*asset, std::getenv(asset->env), ExecutableDir());
    if (!path.ok()) return path.status();
    return text::LoadVocabFile(*path);
  }
  if (absl::StartsWith(name, "placeholder:")) {
    int n = 0;
    if (!absl::SimpleAtoi(name.substr(12), &n) || n <= 0 || n > (1 << 24)) {
      return absl::InvalidArgumentError(absl::StrCat("bad vocabulary size in '", name, "'"));
    }
    text::VocabSpec v;
    for (int i = 0; i < n; ++i) {
      v.tokens.push_back(absl::StrCat("<tok", i, ">"));
      v.token_types.push_back(static_cast<int32_t>(text::TokenType::kNormal));
    }
    return v;
  }
  return text::LoadVocabFile(name);
}

}  // namespace ossgate::tools
