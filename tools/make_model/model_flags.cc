#include "tools/make_model/model_flags.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::tools {

absl::StatusOr<gguf::GgmlType> ParseGgmlType(const std::string& name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "q8_0") return gguf::GgmlType::kQ8_0;
  if (n == "mxfp4") return gguf::GgmlType::kMXFP4;
  if (n == "bf16") return gguf::GgmlType::kBF16;
  if (n == "f16") return gguf::GgmlType::kF16;
  if (n == "f32") return gguf::GgmlType::kF32;
  return absl::InvalidArgumentError(absl::StrCat("unknown tensor type '", name, "' (q8_0, mxfp4, bf16, f16, f32)"));
}

absl::StatusOr<text::VocabSpec> LoadVocabByName(const std::string& name) {
  if (name == "tiny") return text::MakeTinyVocab();
  if (name == "o200k") return text::LoadVocabFile(OSSGATE_O200K_VOCAB_PATH);
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
