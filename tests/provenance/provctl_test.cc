// provctl's model families against a running service (in process, plaintext
// on loopback with development identities; TLS is not what this is about):
// trust add-file reads the family from the file's GGUF header or takes
// --family (a contradiction is refused before anything is sent), add-source
// and set-family name families, list shows what approvals name, the audit
// query filters by family, and verify / token verify print it.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "provenance_service/server/server.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/sha256.h"
#include "test_env.h"

namespace ossgate::provenance {
namespace {

using testing::RunCommand;
using testing::TempDir;
using testing::WriteKey;

class ProvctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    WriteKey(*dir_ / "token.pem");
    WriteKey(*dir_ / "log.pem");
    ServerConfig config;
    config.listen_address = "127.0.0.1:0";
    config.insecure_dev_loopback = true;
    config.db_path = *dir_ / "audit.db";
    config.token_signing_key_file = *dir_ / "token.pem";
    config.checkpoint_signing_key_file = *dir_ / "log.pem";
    auto server = ProvenanceServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    ASSERT_EQ(RunCommand(absl::StrCat("openssl pkey -in ", *dir_ / "token.pem", " -pubout -out ",
                                      *dir_ / "token.pub.pem", " 2>&1")),
              0);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  // Runs provctl as `role`; returns its exit status, *out its stdout and stderr.
  static int Provctl(const std::string& role, const std::string& args, std::string* out) {
    return RunCommand(absl::StrCat(PROVCTL_BIN, " --server=127.0.0.1:", server_->port(),
                                   " --insecure_dev_loopback --dev_identity=spiffe://ossgate/role/", role, " ", args,
                                   " 2>&1"),
                      out);
  }
  static std::string Admin(const std::string& args, int want = 0) {
    std::string out;
    EXPECT_EQ(Provctl("admin/ops", args, &out), want) << args << "\n" << out;
    return out;
  }

  // A GGUF file with general.architecture = arch (none when empty).
  static std::string Gguf(const std::string& name, const std::string& arch) {
    gguf::GgufWriter w;
    if (!arch.empty()) w.SetString("general.architecture", arch);
    w.SetString("general.name", name);
    const std::string path = *dir_ / name;
    EXPECT_TRUE(w.Begin(path).ok());
    EXPECT_TRUE(w.Finish().ok());
    return path;
  }
  static std::string Write(const std::string& name, const std::string& content) {
    const std::string path = *dir_ / name;
    EXPECT_TRUE(token::WriteFileAtomically(path, content, 0644).ok());
    return path;
  }
  static std::string Sha(const std::string& path) {
    uint64_t size = 0;
    return token::HexEncode(*token::Sha256File(path, &size));
  }

  static TempDir* dir_;
  static ProvenanceServer* server_;
};

TempDir* ProvctlTest::dir_ = nullptr;
ProvenanceServer* ProvctlTest::server_ = nullptr;

TEST_F(ProvctlTest, AddFileReadsTheFamilyFromTheGgufHeader) {
  const std::string qwen = Gguf("header-qwen.gguf", "qwen2");
  std::string out = Admin("trust add-file --source=ossgate://bundled --path=header-qwen.gguf --file=" + qwen);
  EXPECT_TRUE(absl::StrContains(out, "approvals of this file name model family qwen2")) << out;
  out = Admin("trust list --files --source=ossgate://bundled --json");
  EXPECT_TRUE(absl::StrContains(out, "\"family\": \"qwen2\"")) << out;
  // The table shows what approvals name.
  out = Admin("trust list --files --sha256=" + Sha(qwen));
  EXPECT_TRUE(absl::StrContains(out, "FAMILY")) << out;
  EXPECT_TRUE(absl::StrContains(out, " qwen2 ")) << out;
}

TEST_F(ProvctlTest, AFamilyTheHeaderContradictsIsRefusedBeforeAnythingIsSent) {
  const std::string gpt = Gguf("header-gpt.gguf", "gpt-oss");
  std::string out = Admin("trust add-file --source=ossgate://bundled --path=header-gpt.gguf --family=qwen2 --file=" + gpt, 1);
  EXPECT_TRUE(absl::StrContains(out, "--family=qwen2 contradicts")) << out;
  EXPECT_TRUE(absl::StrContains(out, "general.architecture is gpt-oss")) << out;
  EXPECT_TRUE(absl::StrContains(Admin("trust list --files --sha256=" + Sha(gpt)), "SOURCE")) << out;
  EXPECT_FALSE(absl::StrContains(Admin("trust list --files --sha256=" + Sha(gpt)), "header-gpt.gguf"));
  // Nothing was sent, so nothing was logged about this hash.
  std::string audit;
  ASSERT_EQ(Provctl("auditor/a", "audit query --sha256=" + Sha(gpt), &audit), 0) << audit;
  EXPECT_FALSE(absl::StrContains(audit, "header-gpt.gguf")) << audit;
  // Agreeing with the header is fine.
  out = Admin("trust add-file --source=ossgate://bundled --path=header-gpt.gguf --family=gpt-oss --file=" + gpt);
  EXPECT_TRUE(absl::StrContains(out, "model family gpt-oss")) << out;
}

TEST_F(ProvctlTest, AFileWithoutAReadableFamilyNeedsAFamilyFlag) {
  const std::string blob = Write("blob.bin", "not a GGUF file");
  std::string out = Admin("trust add-file --source=ossgate://bundled --path=blob.bin --file=" + blob, 1);
  EXPECT_TRUE(absl::StrContains(out, "cannot read the model family from --file")) << out;
  EXPECT_TRUE(absl::StrContains(out, "not a GGUF file")) << out;
  EXPECT_TRUE(absl::StrContains(out, "pass --family=")) << out;
  const std::string anonymous = Gguf("anonymous.gguf", "");
  out = Admin("trust add-file --source=ossgate://bundled --path=anonymous.gguf --file=" + anonymous, 1);
  EXPECT_TRUE(absl::StrContains(out, "general.architecture")) << out;
  out = Admin("trust add-file --source=ossgate://bundled --path=blob.bin --family=phi3 --file=" + blob);
  EXPECT_TRUE(absl::StrContains(out, "model family phi3")) << out;
  // A malformed family is the service's INVALID_ARGUMENT, naming the field.
  out = Admin("trust add-file --source=ossgate://bundled --path=blob2.bin --family=Phi-3 --sha256=" +
                  token::Sha256Hex("x") + " --size=1",
              1);
  EXPECT_TRUE(absl::StrContains(out, "family: not a model family")) << out;
}

TEST_F(ProvctlTest, LfsPointerFilesTakeTheirSourcesFamilyAndSetFamilyChangesIt) {
  const std::string sha = token::Sha256Hex("a qwen2 file");
  const std::string pointer =
      Write("q.pointer", absl::StrCat("version https://git-lfs.github.com/spec/v1\noid sha256:", sha, "\nsize 12\n"));
  std::string out = Admin(
      "trust add-file --source=hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF --path=qwen2.5-0.5b-instruct-q8_0.gguf "
      "--lfs-pointer=" +
      pointer);
  EXPECT_TRUE(absl::StrContains(out, "model family qwen2 (source)")) << out;
  out = Admin(
      "trust set-family --source=hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF --path=qwen2.5-0.5b-instruct-q8_0.gguf "
      "--sha256=" +
      sha + " --family=phi3");
  EXPECT_TRUE(absl::StrContains(out, "model family phi3")) << out;
  out = Admin("trust list --files --sha256=" + sha);
  EXPECT_TRUE(absl::StrContains(out, " phi3 ")) << out;
  // The auditor finds the change by its family.
  ASSERT_EQ(Provctl("auditor/a", "audit query --family=phi3 --kind=registry_change", &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "set_family hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q8_0.gguf "
                                     "family=phi3"))
      << out;
  // set-family without a family names what is missing.
  out = Admin("trust set-family --source=hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF", 1);
  EXPECT_TRUE(absl::StrContains(out, "family: required")) << out;
}

TEST_F(ProvctlTest, SourcesShowTheirFamily) {
  std::string out = Admin("trust add-source --uri=hf://example/phi-repo --family=phi3 --description=test");
  EXPECT_TRUE(absl::StrContains(out, "model family of the source's files: phi3")) << out;
  out = Admin("trust list");
  for (const char* line : {"hf://example/phi-repo", "hf://microsoft/Phi-3-mini-4k-instruct-gguf",
                           "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF", "hf://ggml-org/gpt-oss-20b-GGUF"}) {
    EXPECT_TRUE(absl::StrContains(out, line)) << out;
  }
  // One row per source, with its family column.
  for (const std::string& row : std::vector<std::string>{"hf://example/phi-repo  ", "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF"}) {
    const size_t at = out.find(row);
    ASSERT_NE(at, std::string::npos) << out;
    const std::string line = out.substr(at, out.find('\n', at) - at);
    EXPECT_TRUE(absl::StrContains(line, absl::StartsWith(row, "hf://Qwen") ? " qwen2 " : " phi3 ")) << line;
  }
}

TEST_F(ProvctlTest, VerifyAndTokenVerifyPrintTheApprovedFamily) {
  const std::string qwen = Gguf("verify-qwen.gguf", "qwen2");
  Admin("trust add-file --source=ossgate://bundled --path=verify-qwen.gguf --file=" + qwen);
  std::string out;
  const std::string token = *dir_ / "token.txt";
  ASSERT_EQ(Provctl("worker/w1",
                    "verify --name=q --source=ossgate://bundled/verify-qwen.gguf --worker_id=w1 --file=" + qwen +
                        " --token_out=" + token,
                    &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "model family qwen2")) << out;
  ASSERT_EQ(RunCommand(absl::StrCat(PROVCTL_BIN, " token verify --token_file=", token, " --pubkey=", *dir_ / "token.pub.pem",
                                    " --worker_id=w1 --file=", qwen, " 2>&1"),
                       &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "model family qwen2")) << out;
}

}  // namespace
}  // namespace ossgate::provenance
