#include "tools/make_model/model_flags.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ossgate::tools {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  fs::path dir = fs::path(base != nullptr ? base : fs::temp_directory_path().string()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void Touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "x";
}

TEST(ParseGgmlTypeTest, NamesEveryWritableTypeCaseInsensitively) {
  const std::pair<const char*, gguf::GgmlType> names[] = {
      {"q8_0", gguf::GgmlType::kQ8_0}, {"q4_k", gguf::GgmlType::kQ4_K}, {"Q4_K", gguf::GgmlType::kQ4_K},
      {"q6_k", gguf::GgmlType::kQ6_K}, {"Q6_K", gguf::GgmlType::kQ6_K}, {"mxfp4", gguf::GgmlType::kMXFP4},
      {"q5_0", gguf::GgmlType::kQ5_0}, {"Q5_1", gguf::GgmlType::kQ5_1}, {"q5_k", gguf::GgmlType::kQ5_K},
      {"bf16", gguf::GgmlType::kBF16}, {"f16", gguf::GgmlType::kF16},   {"F32", gguf::GgmlType::kF32}};
  for (const auto& [name, type] : names) {
    absl::StatusOr<gguf::GgmlType> got = ParseGgmlType(name);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status();
    EXPECT_EQ(*got, type) << name;
  }
  for (const char* bad : {"q3_k", "q4_k_m", "q4", ""}) {
    absl::StatusOr<gguf::GgmlType> got = ParseGgmlType(bad);
    ASSERT_FALSE(got.ok()) << bad;
    EXPECT_THAT(std::string(got.status().message()),
                HasSubstr("(q8_0, q5_0, q5_1, q4_k, q5_k, q6_k, mxfp4, bf16, f16, f32)"));
  }
}

TEST(FindO200kVocabTest, EnvironmentWins) {
  absl::StatusOr<std::string> path = FindO200kVocab("/somewhere/o200k.vocab", "/nonexistent/bin");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, "/somewhere/o200k.vocab");
}

TEST(FindO200kVocabTest, FindsTheBuildTreeAssetAboveTheProgram) {
  // build/tools/ossgate-make-model next to build/assets/tokenizer/.
  const fs::path root = TempDir("o200k_build_tree");
  Touch(root / "assets/tokenizer/o200k_harmony.vocab");
  fs::create_directories(root / "tools");
  absl::StatusOr<std::string> path = FindO200kVocab(nullptr, (root / "tools").string());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(fs::path(*path), root / "assets/tokenizer/o200k_harmony.vocab");
  // An empty variable counts as unset.
  path = FindO200kVocab("", (root / "tools").string());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(fs::path(*path), root / "assets/tokenizer/o200k_harmony.vocab");
}

TEST(FindO200kVocabTest, FindsTheInstalledAsset) {
  const fs::path prefix = TempDir("o200k_install");
  Touch(prefix / "share/ossgate/tokenizer/o200k_harmony.vocab");
  fs::create_directories(prefix / "bin");
  absl::StatusOr<std::string> path = FindO200kVocab(nullptr, (prefix / "bin").string());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(fs::path(*path), prefix / "share/ossgate/tokenizer/o200k_harmony.vocab");
}

TEST(FindO200kVocabTest, NotFoundSaysWhereItLookedAndWhatToDo) {
  const fs::path empty = TempDir("o200k_nowhere");
  fs::create_directories(empty / "a/b");
  absl::StatusOr<std::string> path = FindO200kVocab(nullptr, (empty / "a/b").string());
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(path.status().message(), HasSubstr((empty / "a/b/assets/tokenizer/o200k_harmony.vocab").string()));
  EXPECT_THAT(path.status().message(), HasSubstr("OSSGATE_O200K_VOCAB"));
  EXPECT_THAT(path.status().message(), HasSubstr("--vocab=<path>"));
}

TEST(O200kVocabCandidatesTest, NearestFirstAndBounded) {
  const std::vector<std::string> c = O200kVocabCandidates("/a/b/c/d/e");
  ASSERT_EQ(c.size(), 8u);
  EXPECT_EQ(c[0], "/a/b/c/d/e/assets/tokenizer/o200k_harmony.vocab");
  EXPECT_EQ(c[1], "/a/b/c/d/e/share/ossgate/tokenizer/o200k_harmony.vocab");
  EXPECT_EQ(c[6], "/a/b/assets/tokenizer/o200k_harmony.vocab");
  EXPECT_TRUE(O200kVocabCandidates("").empty());
}

TEST(FindVocabAssetTest, EveryFamilyHasItsFileAndVariable) {
  const fs::path prefix = TempDir("family_install");
  fs::create_directories(prefix / "bin");
  for (const auto& [name, file, env] : {std::tuple{"qwen2", "qwen2.5.vocab", "OSSGATE_QWEN2_VOCAB"},
                                        std::tuple{"phi3", "phi3-mini.vocab", "OSSGATE_PHI3_VOCAB"}}) {
    const VocabAsset* asset = FindVocabAssetByName(name);
    ASSERT_NE(asset, nullptr) << name;
    absl::StatusOr<std::string> path = FindVocabAsset(*asset, nullptr, (prefix / "bin").string());
    ASSERT_FALSE(path.ok());
    EXPECT_THAT(path.status().message(), HasSubstr(env));
    EXPECT_THAT(path.status().message(), HasSubstr(file));
    Touch(prefix / "share/ossgate/tokenizer" / file);
    path = FindVocabAsset(*asset, nullptr, (prefix / "bin").string());
    ASSERT_TRUE(path.ok()) << path.status();
    EXPECT_EQ(fs::path(*path), prefix / "share/ossgate/tokenizer" / file);
  }
  EXPECT_EQ(FindVocabAssetByName("llama"), nullptr);
}

}  // namespace
}  // namespace ossgate::tools
