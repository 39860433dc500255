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

constexpr char kO200kEnv[] = "OSSGATE_O200K_VOCAB";

}  // namespace

std::string ExecutableDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

std::vector<std::string> O200kVocabCandidates(const std::string& exe_dir) {
  // The build tree puts the decompressed asset in <build>/assets/tokenizer and
  // the tools one or two folders below <build>; an install puts it in
  // <prefix>/share/ossgate/tokenizer next to <prefix>/bin.
  std::vector<std::string> out;
  if (exe_dir.empty()) return out;
  std::filesystem::path dir(exe_dir);
  for (int up = 0; up < 4 && !dir.empty(); ++up) {
    out.push_back((dir / "assets/tokenizer/o200k_harmony.vocab").string());
    out.push_back((dir / "share/ossgate/tokenizer/o200k_harmony.vocab").string());
    if (dir == dir.parent_path()) break;
    dir = dir.parent_path();
  }
  return out;
}

absl::StatusOr<std::string> FindO200kVocab(const char* env_value, const std::string& exe_dir) {
  if (env_value != nullptr && *env_value != '\0') return std::string(env_value);
  const std::vector<std::string> candidates = O200kVocabCandidates(exe_dir);
  for (const std::string& c : candidates) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(c, ec)) return c;
  }
  return absl::NotFoundError(absl::StrCat(
      "the o200k vocabulary was not found next to this program (looked for ",
      candidates.empty() ? std::string("nothing: the program's folder is unknown") : absl::StrJoin(candidates, ", "),
      "); set ", kO200kEnv, " to the decompressed assets/tokenizer/o200k_harmony.vocab.xz, or pass --vocab=<path>"));
}

absl::StatusOr<gguf::GgmlType> ParseGgmlType(const std::string& name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "q8_0") return gguf::GgmlType::kQ8_0;
  if (n == "mxfp4") return gguf::GgmlType::kMXFP4;
  if (n == "bf16") return gguf::GgmlType::kBF16;
  if (n == "f16") return gguf::GgmlType::kF16;
  if (n == "f32") return gguf::GgmlType::kF32;
  // The k-quants (q4_k, q6_k) belong here once gguf::GgmlType and
  // gguf::QuantizeRow have them: the generator asks the type for its block
  // size and quantizes float rows through QuantizeRow, so nothing else in
  // it changes.
  return absl::InvalidArgumentError(absl::StrCat("unknown tensor type '", name, "' (q8_0, mxfp4, bf16, f16, f32)"));
}

absl::StatusOr<text::VocabSpec> LoadVocabByName(const std::string& name) {
  if (name == "tiny") return text::MakeTinyVocab();
  if (name == "o200k") {
    absl::StatusOr<std::string> path = FindO200kVocab(std::getenv(kO200kEnv), ExecutableDir());
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
