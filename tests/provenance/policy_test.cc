// Verification policy: URI grammar, request validation, every decision
// reason, registry change rules, the default registry and LFS pointers.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "provenance_service/core/default_registry.h"
#include "provenance_service/core/lfs_pointer.h"
#include "provenance_service/core/model_uri.h"
#include "provenance_service/core/registry.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::provenance {
namespace {

const std::string kShaA = token::Sha256Hex("model A");
const std::string kShaB = token::Sha256Hex("model B");
constexpr char kRev[] = "0123456789abcdef0123456789abcdef01234567";

// ---- URIs and field grammar ----

TEST(ModelUriTest, ParsesSupportedSchemes) {
  auto hf = ParseModelFileUri(absl::StrCat("hf://openai/gpt-oss-20b@", kRev, "/gpt-oss-20b-MXFP4.gguf"));
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_EQ(hf->revision, kRev);
  EXPECT_EQ(hf->Locator(), "hf://openai/gpt-oss-20b/gpt-oss-20b-MXFP4.gguf");
  EXPECT_EQ(hf->PrefixLocator(2), "hf://openai/gpt-oss-20b");
  auto file = ParseModelFileUri("file:///srv/models/a.gguf");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->Locator(), "file:///srv/models/a.gguf");
  EXPECT_EQ(file->PrefixLocator(2), "file:///srv/models");
  EXPECT_TRUE(ParseModelFileUri("ossgate://bundled/tiny.gguf").ok());
  EXPECT_TRUE(ParseModelFileUri("upload://user-42/x.gguf").ok());
}

TEST(ModelUriTest, RejectsTricks) {
  for (const char* bad : {
           "", "gopher://x/y/z", "HF://openai/gpt/x", "hf:/openai/x", "hf://openai/../x/y",
           "hf://openai/%2e%2e/x/y", "hf://openai/repo/./x", "hf://openai//x", "hf://openai/repo/x/",
           "hf://openai/repo@main/x", "hf://openai/repo/x?download=1", "hf://openai/repo/x#f",
           "hf://openai/repo/x\\y", "hf://openai/repo/a b", "file://relative/x", "hf://openai/repo",
           "ossgate://bundled", "hf://op\x01enai/repo/x",
       }) {
    EXPECT_FALSE(ParseModelFileUri(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseModelFileUri(std::string(2000, 'a')).ok());
  EXPECT_FALSE(ParseSourceUri("upload://x").ok());
  EXPECT_FALSE(ParseSourceUri("https://example.com/x").ok());
  EXPECT_FALSE(ParseSourceUri(absl::StrCat("hf://openai/gpt-oss-20b@", kRev)).ok());
  EXPECT_TRUE(ParseSourceUri("hf://openai").ok());
}

TEST(ModelUriTest, NamesAndSanitize) {
  EXPECT_TRUE(ValidateName("gpt-oss-20b.Q4_K").ok());
  EXPECT_FALSE(ValidateName("").ok());
  EXPECT_FALSE(ValidateName("..").ok());
  EXPECT_FALSE(ValidateName("../etc/passwd").ok());
  EXPECT_FALSE(ValidateName("a%2e").ok());
  EXPECT_FALSE(ValidateName(std::string(129, 'a')).ok());
  EXPECT_EQ(Sanitize("a\\b\n\xff"), "a\\x5cb\\x0a\\xff");
  EXPECT_EQ(Sanitize(std::string(300, 'x'), 10), std::string(10, 'x') + "...[truncated 290 bytes]");
}

TEST(ValidateVerifyRequestTest, NamesTheBadField) {
  VerifyRequest ok{"m", "hf://openai/gpt-oss-20b/x.gguf", kShaA, 10, "w1"};
  EXPECT_TRUE(ValidateVerifyRequest(ok).ok());
  auto expect_field = [](VerifyRequest r, const std::string& field) {
    absl::Status s = ValidateVerifyRequest(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_EQ(std::string(s.message()).substr(0, field.size() + 1), field + ":") << s;
  };
  VerifyRequest r = ok;
  r.sha256 = "ABC";
  expect_field(r, "sha256");
  r = ok;
  r.sha256 = std::string(64, 'G');
  expect_field(r, "sha256");
  r = ok;
  r.name = "../../x";
  expect_field(r, "name");
  r = ok;
  r.source_uri = "gopher://x/y/z";
  expect_field(r, "source_uri");
  r = ok;
  r.size = 0;
  expect_field(r, "size_bytes");
  r = ok;
  r.worker_id = "";
  expect_field(r, "worker_id");
}

// ---- policy ----

class PolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Apply({ChangeAction::kAddSource, "hf://openai/gpt-oss-20b"});
    Apply({ChangeAction::kAddSource, "hf://Qwen"});
    Apply({ChangeAction::kAddSource, "file:///srv/models"});
    Apply({ChangeAction::kAddFile, "hf://openai/gpt-oss-20b", "model.gguf", kShaA, 100});
    Apply({ChangeAction::kAddFile, "hf://Qwen", "", kShaB, 200});
    Apply({ChangeAction::kAddFile, "file:///srv/models", "a.gguf", kShaA, 100});
  }
  void Apply(RegistryChange c) {
    ASSERT_TRUE(ValidateRegistryChange(c).ok()) << ValidateRegistryChange(c);
    ChangeResult r = ApplyChange(&state_, c, "admin", 1, 0);
    ASSERT_TRUE(r.status.ok()) << r.status;
  }
  Decision Check(const std::string& uri, const std::string& sha, uint64_t size) {
    VerifyRequest req{"m", uri, sha, size, "w1"};
    EXPECT_TRUE(ValidateVerifyRequest(req).ok()) << ValidateVerifyRequest(req);
    return Evaluate(state_, req);
  }
  RegistryState state_;
};

TEST_F(PolicyTest, Verified) {
  Decision d = Check(absl::StrCat("hf://openai/gpt-oss-20b@", kRev, "/model.gguf"), kShaA, 100);
  EXPECT_EQ(d.reason, VerifyReason::kVerified) << d.detail;
  ASSERT_TRUE(d.source && d.file);
  EXPECT_EQ(d.source->uri, "hf://openai/gpt-oss-20b");
  EXPECT_EQ(d.relative_path, "model.gguf");
  // Publisher-level source, path-less file entry.
  EXPECT_EQ(Check("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/q.gguf", kShaB, 200).reason, VerifyReason::kVerified);
  EXPECT_EQ(Check("file:///srv/models/a.gguf", kShaA, 100).reason, VerifyReason::kVerified);
}

TEST_F(PolicyTest, UntrustedSourceEvenWithKnownHash) {
  EXPECT_EQ(Check("upload://user/model.gguf", kShaA, 100).reason, VerifyReason::kUntrustedSource);
  EXPECT_EQ(Check("https://example.com/model.gguf", kShaA, 100).reason, VerifyReason::kUntrustedSource);
  EXPECT_EQ(Check("file:///tmp/model.gguf", kShaA, 100).reason, VerifyReason::kUntrustedSource);
  EXPECT_EQ(Check("hf://openai/gpt-oss-20b-evil/model.gguf", kShaA, 100).reason, VerifyReason::kUntrustedSource);
  EXPECT_EQ(Check("hf://evil/gpt-oss-20b/model.gguf", kShaA, 100).reason, VerifyReason::kUntrustedSource);
}

TEST_F(PolicyTest, UnknownHash) {
  Decision d = Check("hf://openai/gpt-oss-20b/other.gguf", kShaB, 200);
  EXPECT_EQ(d.reason, VerifyReason::kUnknownHash);
  EXPECT_FALSE(d.file.has_value());
  // Hash registered for another source does not count.
  EXPECT_EQ(Check("hf://Qwen/x/y.gguf", kShaA, 100).reason, VerifyReason::kUnknownHash);
}

TEST_F(PolicyTest, HashMismatch) {
  Decision d = Check("hf://openai/gpt-oss-20b/model.gguf", kShaB, 100);
  EXPECT_EQ(d.reason, VerifyReason::kHashMismatch);
  ASSERT_TRUE(d.file.has_value());
  EXPECT_EQ(d.file->key.sha256, kShaA);
}

TEST_F(PolicyTest, SizeMismatch) {
  Decision d = Check("hf://openai/gpt-oss-20b/model.gguf", kShaA, 101);
  EXPECT_EQ(d.reason, VerifyReason::kSizeMismatch);
}

TEST_F(PolicyTest, RevokedFileAndSource) {
  Apply({ChangeAction::kRevokeFile, "hf://openai/gpt-oss-20b", "model.gguf", kShaA, 0, "", "CVE"});
  EXPECT_EQ(Check("hf://openai/gpt-oss-20b/model.gguf", kShaA, 100).reason, VerifyReason::kRevoked);
  Apply({ChangeAction::kRevokeSource, "file:///srv/models", "", "", 0, "", "disk compromised"});
  Decision d = Check("file:///srv/models/a.gguf", kShaA, 100);
  EXPECT_EQ(d.reason, VerifyReason::kRevoked);
  EXPECT_NE(d.detail.find("disk compromised"), std::string::npos);
}

TEST_F(PolicyTest, MoreSpecificRevocationWins) {
  Apply({ChangeAction::kAddSource, "hf://Qwen/bad-repo"});
  Apply({ChangeAction::kRevokeSource, "hf://Qwen/bad-repo", "", "", 0, "", "hijacked"});
  EXPECT_EQ(Check("hf://Qwen/bad-repo/q.gguf", kShaB, 200).reason, VerifyReason::kRevoked);
  EXPECT_EQ(Check("hf://Qwen/good-repo/q.gguf", kShaB, 200).reason, VerifyReason::kVerified);
}

TEST_F(PolicyTest, ChangeRules) {
  RegistryChange dup{ChangeAction::kAddSource, "hf://openai/gpt-oss-20b"};
  EXPECT_EQ(ApplyChange(&state_, dup, "a", 1, 0).status.code(), absl::StatusCode::kAlreadyExists);
  RegistryChange orphan{ChangeAction::kAddFile, "hf://nobody", "", kShaA, 1};
  EXPECT_EQ(ApplyChange(&state_, orphan, "a", 1, 0).status.code(), absl::StatusCode::kNotFound);
  RegistryChange revoke{ChangeAction::kRevokeSource, "hf://Qwen", "", "", 0, "", "r"};
  uint64_t v = state_.policy_version;
  EXPECT_TRUE(ApplyChange(&state_, revoke, "a", 1, 0).status.ok());
  EXPECT_EQ(state_.policy_version, v + 1);
  EXPECT_EQ(ApplyChange(&state_, revoke, "a", 1, 0).status.code(), absl::StatusCode::kFailedPrecondition);
  RegistryChange readd{ChangeAction::kAddSource, "hf://Qwen"};
  EXPECT_EQ(ApplyChange(&state_, readd, "a", 1, 0).status.code(), absl::StatusCode::kFailedPrecondition);
  RegistryChange file_on_revoked{ChangeAction::kAddFile, "hf://Qwen", "", kShaA, 1};
  EXPECT_EQ(ApplyChange(&state_, file_on_revoked, "a", 1, 0).status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(state_.policy_version, v + 1);
}

TEST(RegistryValidationTest, NamesTheBadField) {
  auto field_of = [](RegistryChange c) { return std::string(ValidateRegistryChange(c).message()).substr(0, 12); };
  EXPECT_EQ(field_of({ChangeAction::kAddSource, "upload://x"}).substr(0, 4), "uri:");
  EXPECT_EQ(field_of({ChangeAction::kAddFile, "hf://a", "../x", token::Sha256Hex("")}).substr(0, 5), "path:");
  EXPECT_EQ(field_of({ChangeAction::kAddFile, "hf://a", "x", "nothex", 1}).substr(0, 7), "sha256:");
  EXPECT_EQ(field_of({ChangeAction::kAddFile, "hf://a", "x", token::Sha256Hex(""), 0}).substr(0, 11), "size_bytes:");
  EXPECT_EQ(field_of({ChangeAction::kRevokeSource, "hf://a", "", "", 0, "", ""}).substr(0, 7), "reason:");
}

TEST(RegistryValidationTest, FamiliesHaveTheFormOfAnArchitecture) {
  auto message = [](RegistryChange c) { return std::string(ValidateRegistryChange(c).message()); };
  // Optional when adding, of the form of a GGUF general.architecture if given.
  EXPECT_TRUE(ValidateRegistryChange({ChangeAction::kAddSource, "hf://a", "", "", 0, "", "", ""}).ok());
  EXPECT_TRUE(ValidateRegistryChange({ChangeAction::kAddSource, "hf://a", "", "", 0, "", "", "qwen2"}).ok());
  EXPECT_TRUE(ValidateRegistryChange({ChangeAction::kAddFile, "hf://a", "x", kShaA, 1, "", "", "phi3"}).ok());
  for (const char* bad : {"Qwen2", "qwen 2", "-x", "phi3\n"}) {
    EXPECT_EQ(message({ChangeAction::kAddSource, "hf://a", "", "", 0, "", "", bad}).substr(0, 24),
              "family: not a model fami")
        << bad;
    EXPECT_EQ(message({ChangeAction::kAddFile, "hf://a", "x", kShaA, 1, "", "", bad}).substr(0, 7), "family:") << bad;
  }
  // set_family: the source (no sha256, no path) or a file entry; family required.
  EXPECT_TRUE(ValidateRegistryChange({ChangeAction::kSetFamily, "hf://a", "", "", 0, "", "", "qwen2"}).ok());
  EXPECT_TRUE(ValidateRegistryChange({ChangeAction::kSetFamily, "hf://a", "x.gguf", kShaA, 0, "", "", "qwen2"}).ok());
  EXPECT_TRUE(ValidateRegistryChange({ChangeAction::kSetFamily, "hf://a", "", kShaA, 0, "", "", "qwen2"}).ok());
  EXPECT_EQ(message({ChangeAction::kSetFamily, "hf://a", "", "", 0, "", "", ""}).substr(0, 16), "family: required");
  EXPECT_EQ(message({ChangeAction::kSetFamily, "hf://a", "x.gguf", "", 0, "", "", "qwen2"}).substr(0, 5), "path:");
  EXPECT_EQ(message({ChangeAction::kSetFamily, "hf://a", "x", "nothex", 0, "", "", "qwen2"}).substr(0, 7), "sha256:");
  EXPECT_EQ(message({ChangeAction::kSetFamily, "upload://a", "", "", 0, "", "", "qwen2"}).substr(0, 11), "source_uri:");
  EXPECT_EQ(ChangeActionName(ChangeAction::kSetFamily), "set_family");
  EXPECT_EQ(ChangeActionFromName("set_family"), ChangeAction::kSetFamily);
}

// The family an approval names: the file entry's, else its source's, else
// gpt-oss (entries written before families, and entries added without one).
TEST_F(PolicyTest, ApprovedFamilyIsTheFilesElseItsSourcesElseGptOss) {
  Apply({ChangeAction::kAddSource, "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF", "", "", 0, "", "", "qwen2"});
  const std::string q4 = token::Sha256Hex("q4"), q8 = token::Sha256Hex("q8");
  Apply({ChangeAction::kAddFile, "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF", "q4.gguf", q4, 10});
  // A file of a family of its own in a source of another (the admin's word).
  Apply({ChangeAction::kAddFile, "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF", "odd.gguf", q8, 11, "", "", "phi3"});
  Decision d = Check("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/q4.gguf", q4, 10);
  ASSERT_EQ(d.reason, VerifyReason::kVerified) << d.detail;
  EXPECT_EQ(d.family, "qwen2");  // from the source
  d = Check("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/odd.gguf", q8, 11);
  ASSERT_EQ(d.reason, VerifyReason::kVerified) << d.detail;
  EXPECT_EQ(d.family, "phi3");  // the file's own
  // Neither names one: gpt-oss. (hf://Qwen is a publisher-level source
  // without a family, and its entry has none.)
  d = Check("hf://Qwen/Qwen2.5-0.5B-Instruct/q.gguf", kShaB, 200);
  ASSERT_EQ(d.reason, VerifyReason::kVerified) << d.detail;
  EXPECT_EQ(d.family, "gpt-oss");
  EXPECT_EQ(Check("hf://openai/gpt-oss-20b/model.gguf", kShaA, 100).family, "gpt-oss");
  // Only approvals name a family.
  EXPECT_EQ(Check("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/q4.gguf", q4, 11).family, "");
  EXPECT_EQ(Check("upload://x/q4.gguf", q4, 10).family, "");
}

TEST_F(PolicyTest, SetFamilyNamesTheFamilyOfASourceOrAFileEntry) {
  const uint64_t v = state_.policy_version;
  // A file entry: its approvals name the new family at once.
  RegistryChange file{ChangeAction::kSetFamily, "hf://Qwen", "", kShaB, 0, "", "", "qwen2"};
  ChangeResult r = ApplyChange(&state_, file, "admin", 2, 7);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.reason, "applied");
  ASSERT_TRUE(r.file.has_value());
  EXPECT_EQ(r.file->family, "qwen2");
  EXPECT_EQ(r.file->size, 200u);              // the rest of the entry is kept
  EXPECT_EQ(r.file->added_log_index, 0u);     // as added, not as changed
  EXPECT_EQ(state_.policy_version, v + 1);
  EXPECT_EQ(Check("hf://Qwen/Qwen2.5-0.5B-Instruct/q.gguf", kShaB, 200).family, "qwen2");
  // The same family again: already so, nothing changes.
  r = ApplyChange(&state_, file, "admin", 3, 8);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kAlreadyExists) << r.status;
  EXPECT_EQ(r.reason, "already_exists");
  EXPECT_EQ(state_.policy_version, v + 1);
  // A source: files without a family of their own follow it.
  r = ApplyChange(&state_, {ChangeAction::kSetFamily, "hf://openai/gpt-oss-20b", "", "", 0, "", "", "phi3"}, "admin",
                  4, 9);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_TRUE(r.source.has_value());
  EXPECT_EQ(r.source->family, "phi3");
  EXPECT_EQ(Check("hf://openai/gpt-oss-20b/model.gguf", kShaA, 100).family, "phi3");
  // Unknown entries, revoked ones.
  EXPECT_EQ(ApplyChange(&state_, {ChangeAction::kSetFamily, "hf://nobody", "", "", 0, "", "", "qwen2"}, "a", 5, 10)
                .status.code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ApplyChange(&state_, {ChangeAction::kSetFamily, "hf://Qwen", "x.gguf", kShaB, 0, "", "", "qwen2"}, "a", 5, 10)
                .reason,
            "not_found");
  Apply({ChangeAction::kRevokeFile, "file:///srv/models", "a.gguf", kShaA, 0, "", "bad"});
  r = ApplyChange(&state_, {ChangeAction::kSetFamily, "file:///srv/models", "a.gguf", kShaA, 0, "", "", "qwen2"}, "a",
                  6, 11);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition) << r.status;
  EXPECT_EQ(r.reason, "revoked");
  Apply({ChangeAction::kRevokeSource, "file:///srv/models", "", "", 0, "", "gone"});
  r = ApplyChange(&state_, {ChangeAction::kSetFamily, "file:///srv/models", "", "", 0, "", "", "qwen2"}, "a", 7, 12);
  EXPECT_EQ(r.reason, "revoked");
}

TEST(DefaultRegistryTest, SeedsPublishersWithoutHashes) {
  RegistryState state;
  for (const RegistryChange& c : DefaultRegistryChanges()) {
    ASSERT_TRUE(ValidateRegistryChange(c).ok()) << c.uri;
    ASSERT_TRUE(ApplyChange(&state, c, kDefaultRegistryCaller, 0, 0).status.ok()) << c.uri;
  }
  EXPECT_TRUE(state.files.empty());
  // The official repositories of the three families, each with its family
  // (the GGUF general.architecture of its files); the bundled collection none.
  const std::pair<const char*, const char*> seeds[] = {
      {"hf://openai/gpt-oss-20b", "gpt-oss"},
      {"hf://openai/gpt-oss-120b", "gpt-oss"},
      {"hf://ggml-org/gpt-oss-20b-GGUF", "gpt-oss"},
      {"hf://ggml-org/gpt-oss-120b-GGUF", "gpt-oss"},
      {"hf://Qwen/Qwen2.5-0.5B-Instruct", "qwen2"},
      {"hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2"},
      {"hf://microsoft/Phi-3-mini-4k-instruct", "phi3"},
      {"hf://microsoft/Phi-3-mini-4k-instruct-gguf", "phi3"},
      {"hf://microsoft/Phi-3-mini-128k-instruct", "phi3"},
      {"ossgate://bundled", ""},
  };
  EXPECT_EQ(state.sources.size(), std::size(seeds));
  for (const auto& [uri, family] : seeds) {
    auto it = state.sources.find(uri);
    ASSERT_NE(it, state.sources.end()) << uri;
    EXPECT_EQ(it->second.family, family) << uri;
    EXPECT_FALSE(it->second.revoked) << uri;
  }
  VerifyRequest req{"gpt-oss-20b", "hf://openai/gpt-oss-20b/gpt-oss-20b-MXFP4.gguf", kShaA, 1, "w"};
  EXPECT_EQ(Evaluate(state, req).reason, VerifyReason::kUnknownHash);
}

TEST(DefaultRegistryTest, FilesAddedToTheSeededSourcesAreApprovedForTheirFamily) {
  RegistryState state;
  for (const RegistryChange& c : DefaultRegistryChanges()) ApplyChange(&state, c, kDefaultRegistryCaller, 0, 0);
  // The file names of the official repositories; hashes made up (the real
  // ones are registered by operators from the LFS pointers).
  const struct {
    const char* source;
    const char* path;
    const char* family;
  } files[] = {
      {"hf://ggml-org/gpt-oss-20b-GGUF", "gpt-oss-20b-MXFP4.gguf", "gpt-oss"},
      {"hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf", "qwen2"},
      {"hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q8_0.gguf", "qwen2"},
      {"hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-fp16.gguf", "qwen2"},
      {"hf://microsoft/Phi-3-mini-4k-instruct-gguf", "Phi-3-mini-4k-instruct-q4.gguf", "phi3"},
      {"hf://microsoft/Phi-3-mini-4k-instruct-gguf", "Phi-3-mini-4k-instruct-fp16.gguf", "phi3"},
      {"ossgate://bundled", "ossgate-small.gguf", "gpt-oss"},  // no family anywhere: gpt-oss
  };
  for (const auto& f : files) {
    const std::string sha = token::Sha256Hex(f.path);
    RegistryChange add{ChangeAction::kAddFile, f.source, f.path, sha, 1000};
    ASSERT_TRUE(ValidateRegistryChange(add).ok());
    ASSERT_TRUE(ApplyChange(&state, add, "admin", 1, 1).status.ok()) << f.path;
    const std::string revision = "0123456789abcdef0123456789abcdef01234567";
    const std::string uri = absl::StrCat(f.source, absl::StartsWith(f.source, "hf://") ? "@" + revision : "", "/",
                                         f.path);
    Decision d = Evaluate(state, {"m", uri, sha, 1000, "w"});
    ASSERT_EQ(d.reason, VerifyReason::kVerified) << uri << ": " << d.detail;
    EXPECT_EQ(d.family, f.family) << uri;
  }
}

TEST(LfsPointerTest, ParsesHuggingFacePointer) {
  std::string text = absl::StrCat("version https://git-lfs.github.com/spec/v1\noid sha256:", kShaA,
                                  "\nsize 13793000000\n");
  auto p = ParseLfsPointer(text);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->sha256, kShaA);
  EXPECT_EQ(p->size, 13793000000u);
  EXPECT_FALSE(ParseLfsPointer("oid sha256:" + kShaA + "\nsize 1\n").ok());
  EXPECT_FALSE(ParseLfsPointer(absl::StrCat("version https://git-lfs.github.com/spec/v1\nsize 1\noid sha256:", kShaA, "\n")).ok());
  EXPECT_FALSE(ParseLfsPointer(absl::StrCat("version https://git-lfs.github.com/spec/v1\noid sha256:", kShaA, "\nsize 01\n")).ok());
  EXPECT_FALSE(ParseLfsPointer(absl::StrCat("version https://git-lfs.github.com/spec/v1\noid md5:abc\nsize 1\n")).ok());
  EXPECT_FALSE(ParseLfsPointer(std::string(2000, 'x')).ok());
}

}  // namespace
}  // namespace ossgate::provenance
