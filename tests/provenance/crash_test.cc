// Crash test: concurrent VerifyModel load over mTLS against the real
// provenance_service binary, SIGKILL mid-load, restart on the same
// database. Every decision a client received an answer for must be in the
// log with the same content, the restarted service must come up on the
// recovered log, and the whole log must verify against its signed
// checkpoints.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ossgate/provenance/v1/provenance.grpc.pb.h"
#include "provenance_service/core/audit_record.h"
#include "provenance_service/core/checkpoint.h"
#include "provenance_service/core/log_verifier.h"
#include "provenance_service/core/store.h"
#include "provenance_service/token/sha256.h"
#include "test_env.h"

extern char** environ;

namespace ossgate::provenance {
namespace {

namespace pb = ::ossgate::provenance::v1;
using testing::MakePki;
using testing::RoleClient;
using testing::TempDir;
using testing::WriteKey;

constexpr char kOrigin[] = "crash.test/provenance";
constexpr int kClients = 8;

struct Answer {
  uint64_t index;
  bool verified;
  std::string sha256;
  std::string token;
};

class ServerProcess {
 public:
  ServerProcess(const TempDir& dir, const std::string& port_file) {
    std::vector<std::string> args = {
        PROVENANCE_SERVICE_BIN,
        "--listen=127.0.0.1:0",
        "--port_file=" + port_file,
        "--tls_cert=" + dir / "pki/server.pem",
        "--tls_key=" + dir / "pki/server.key",
        "--client_ca=" + dir / "pki/ca.pem",
        "--db=" + dir / "audit.db",
        "--log_origin=" + std::string(kOrigin),
        "--token_signing_key=" + dir / "token.pem",
        "--checkpoint_signing_key=" + dir / "log.pem",
    };
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ), 0);
    for (int i = 0; i < 200 && port_ == 0; ++i) {
      std::ifstream in(port_file);
      if (!(in >> port_)) port_ = 0;
      if (port_ == 0) usleep(50 * 1000);
    }
    EXPECT_NE(port_, 0) << "server did not start";
  }
  ~ServerProcess() { Stop(SIGTERM); }
  void Stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

TEST(CrashTest, AnsweredDecisionsSurviveSigkill) {
  TempDir dir;
  MakePki(dir / "pki", {"worker:crasher", "admin:admin-1", "auditor:auditor-1"});
  token::Ed25519PrivateKey log_key = WriteKey(dir / "log.pem");
  WriteKey(dir / "token.pem");
  const std::string content = "model under load";
  const std::string good_sha = token::Sha256Hex(content);

  auto server = std::make_unique<ServerProcess>(dir, dir / "port1");
  ASSERT_NE(server->port(), 0);
  {
    auto admin = pb::RegistryService::NewStub(
        *CreateProvenanceChannel(RoleClient(dir / "pki", server->port(), "admin-admin-1")));
    grpc::ClientContext ctx;
    pb::AddFileRequest add;
    add.set_source_uri("ossgate://bundled");
    add.set_path("load.gguf");
    add.set_sha256(good_sha);
    add.set_size_bytes(content.size());
    pb::RegistryChangeResponse resp;
    grpc::Status s = admin->AddFile(&ctx, add, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  std::atomic<bool> stop{false};
  std::atomic<int> answered{0};
  std::mutex mu;
  std::vector<Answer> answers;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto stub = pb::VerificationService::NewStub(
          *CreateProvenanceChannel(RoleClient(dir / "pki", server->port(), "worker-crasher")));
      for (int i = 0; !stop.load(); ++i) {
        pb::ModelDescriptor d;
        d.set_name("load");
        d.set_source_uri("ossgate://bundled/load.gguf");
        // Mix accepted and rejected decisions.
        bool good = (i + c) % 3 != 0;
        d.set_sha256(good ? good_sha : token::Sha256Hex(absl::StrCat("bad ", c, " ", i)));
        d.set_size_bytes(content.size());
        d.set_worker_id("crasher");
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        pb::VerifyModelResponse resp;
        grpc::Status s = stub->VerifyModel(&ctx, d, &resp);
        if (!s.ok()) {
          if (stop.load()) return;
          usleep(1000);
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        answers.push_back({resp.log_index(), resp.verified(), d.sha256(), resp.approval_token()});
        ++answered;
      }
    });
  }
  // Load for a while, then kill without warning.
  for (int i = 0; i < 100 && answered.load() < 1500; ++i) usleep(20 * 1000);
  ASSERT_GT(answered.load(), 50) << "too little load before the kill";
  server->Stop(SIGKILL);
  stop = true;
  for (auto& t : clients) t.join();
  size_t n_answers;
  {
    std::lock_guard<std::mutex> lock(mu);
    n_answers = answers.size();
  }
  std::printf("answered %zu decisions before SIGKILL\n", n_answers);

  // Restart on the same database: recovery checks the log against its
  // latest checkpoint and rebuilds the registry.
  server = std::make_unique<ServerProcess>(dir, dir / "port2");
  ASSERT_NE(server->port(), 0) << "service did not restart on the recovered log";

  // 1. The whole log verifies against its signed checkpoints.
  auto signer = NoteSigner::Create(kOrigin, std::make_shared<const token::Ed25519PrivateKey>(std::move(log_key)));
  auto verifier = NoteVerifier::FromVerifierKey(signer->VerifierKey());
  ASSERT_TRUE(verifier.ok());
  auto store = Store::Open(dir / "audit.db", /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  auto report = VerifyStoredLog(**store, *verifier, kOrigin);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok) << report->problem;

  // 2. Every answered decision is there, as answered.
  uint64_t max_index = 0;
  for (const Answer& a : answers) {
    auto row = (*store)->GetRecord(a.index);
    ASSERT_TRUE(row.ok() && row->has_value()) << "answered decision " << a.index << " missing after crash";
    auto rec = DecodeRecord((*row)->record);
    ASSERT_TRUE(rec.ok());
    EXPECT_EQ(rec->kind, RecordKind::kVerifyModel);
    EXPECT_EQ(rec->caller, "spiffe://ossgate/role/worker/crasher");
    EXPECT_EQ(rec->req_sha256, a.sha256) << a.index;
    EXPECT_EQ(rec->verdict == Verdict::kAccepted, a.verified) << a.index;
    if (a.verified) {
      EXPECT_NE(a.token.find("v4.public."), std::string::npos);
    }
    max_index = std::max(max_index, a.index);
  }
  EXPECT_LT(max_index, report->records);

  // 3. The restarted service serves proofs for answered decisions.
  auto auditor = pb::AuditService::NewStub(
      *CreateProvenanceChannel(RoleClient(dir / "pki", server->port(), "auditor-auditor-1")));
  pb::Checkpoint cp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(auditor->GetCheckpoint(&ctx, pb::GetCheckpointRequest(), &cp).ok());
  }
  auto body = OpenCheckpoint(*verifier, cp.note(), kOrigin);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(body->size, report->records);
  for (size_t i = 0; i < answers.size(); i += std::max<size_t>(1, answers.size() / 20)) {
    grpc::ClientContext ctx;
    pb::GetInclusionProofRequest req;
    req.set_index(answers[i].index);
    req.set_tree_size(body->size);
    pb::InclusionProof proof;
    ASSERT_TRUE(auditor->GetInclusionProof(&ctx, req, &proof).ok());
    std::vector<Hash> path;
    for (const auto& h : proof.hashes()) path.push_back(*HashFromBytes(h));
    EXPECT_TRUE(VerifyInclusion(answers[i].index, body->size, LeafHash(proof.record()), path, body->root).ok());
  }
  // 4. And keeps taking decisions, appended after the recovered log.
  auto worker = pb::VerificationService::NewStub(
      *CreateProvenanceChannel(RoleClient(dir / "pki", server->port(), "worker-crasher")));
  grpc::ClientContext ctx;
  pb::ModelDescriptor d;
  d.set_name("load");
  d.set_source_uri("ossgate://bundled/load.gguf");
  d.set_sha256(good_sha);
  d.set_size_bytes(content.size());
  d.set_worker_id("crasher");
  pb::VerifyModelResponse resp;
  ASSERT_TRUE(worker->VerifyModel(&ctx, d, &resp).ok());
  EXPECT_TRUE(resp.verified());
  EXPECT_EQ(resp.log_index(), body->size);
}

}  // namespace
}  // namespace ossgate::provenance
