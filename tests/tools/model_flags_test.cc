#include "tools/make_model/model_flags.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>

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
