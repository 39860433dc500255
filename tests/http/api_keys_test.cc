// API keys of the HTTP face (inference_worker/http/api_keys.h): the key
// file's format and every refusal, matching, and a reload that keeps the old
// keys when the new file is bad.
#include "inference_worker/http/api_keys.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ossgate::http {
namespace {

TEST(ApiKeysTest, Sha256HexKnownAnswer) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ApiKeysTest, ParsesEntriesCommentsAndBlankLines) {
  const std::string content = absl::StrCat("# keys\n\n  alice ", Sha256Hex("k1"), "  \nbob.2_x-y\t",
                                           Sha256Hex("k2"), "\n# end\n");
  auto entries = ParseApiKeyFile(content);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].id, "alice");
  EXPECT_EQ((*entries)[1].id, "bob.2_x-y");
  // Upper-case hex is the same hash.
  std::string upper = Sha256Hex("k1");
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto u = ParseApiKeyFile("alice " + upper);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ((*u)[0].sha256, (*entries)[0].sha256);
}

TEST(ApiKeysTest, RefusesBadLinesNamingTheLine) {
  const std::string h = Sha256Hex("k");
  struct Case {
    std::string content;
    std::string expect;
  } cases[] = {
      {"alice", "line 1: 1 fields"},
      {"# c\nalice " + h + " extra", "line 2: 3 fields"},
      {"al/ice " + h, "line 1: the key id"},
      {std::string(65, 'a') + " " + h, "line 1: the key id"},
      {"alice " + h.substr(1), "63 characters"},
      {"alice " + h.substr(0, 63) + "g", "not hexadecimal"},
      {"alice " + h + "\nalice " + Sha256Hex("other"), "line 2: key id alice appears twice"},
      {"alice " + h + "\nbob " + h, "line 2: this hash appears twice"},
  };
  for (const Case& c : cases) {
    auto r = ParseApiKeyFile(c.content);
    ASSERT_FALSE(r.ok()) << c.content;
    EXPECT_TRUE(absl::StrContains(r.status().message(), c.expect)) << r.status();
    // The hash itself is never echoed.
    EXPECT_FALSE(absl::StrContains(r.status().message(), h.substr(0, 16))) << r.status();
  }
}

TEST(ApiKeysTest, MatchesOnlyTheRightKey) {
  ApiKeyStore store;
  EXPECT_FALSE(store.Match("anything").has_value());
  auto entries = ParseApiKeyFile(absl::StrCat("alice ", Sha256Hex("sk-alice"), "\nbob ", Sha256Hex("sk-bob")));
  ASSERT_TRUE(entries.ok());
  store.Set(*entries);
  EXPECT_EQ(store.Size(), 2u);
  EXPECT_EQ(store.Match("sk-alice"), "alice");
  EXPECT_EQ(store.Match("sk-bob"), "bob");
  EXPECT_FALSE(store.Match("sk-alic").has_value());
  EXPECT_FALSE(store.Match("").has_value());
  EXPECT_FALSE(store.Match(Sha256Hex("sk-alice")).has_value());  // the hash is not the key
}

TEST(ApiKeysTest, ReloadKeepsOldKeysOnABadFile) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(tmp ? tmp : "/tmp", "/ossgate_api_keys_test_", ::getpid());
  auto write = [&](const std::string& s) {
    std::ofstream out(path, std::ios::trunc);
    out << s;
  };
  ApiKeyStore store;
  write(absl::StrCat("alice ", Sha256Hex("sk-alice"), "\n"));
  auto n = store.Load(path);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1u);
  write("broken line\n");
  auto bad = store.Load(path);
  EXPECT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), path)) << bad.status();
  EXPECT_EQ(store.Match("sk-alice"), "alice");
  write(absl::StrCat("bob ", Sha256Hex("sk-bob"), "\n"));
  ASSERT_TRUE(store.Load(path).ok());
  EXPECT_FALSE(store.Match("sk-alice").has_value());  // revoked
  EXPECT_EQ(store.Match("sk-bob"), "bob");
  std::remove(path.c_str());
  EXPECT_EQ(store.Load(path).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ossgate::http
