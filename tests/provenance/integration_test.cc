// End-to-end test on loopback with mutual TLS: certificates are generated in
// the test by tools/certs/make_dev_pki.sh. An admin registers a source and a
// file, a worker verifies the file and checks its token, an auditor queries
// the log and verifies checkpoints and proofs, callers with the wrong role
// or a foreign certificate are refused, and bad input is rejected with
// INVALID_ARGUMENT naming the field and still recorded.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cctype>
#include <future>
#include <map>
#include <optional>
#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ossgate/provenance/v1/provenance.grpc.pb.h"
#include "provenance_service/core/checkpoint.h"
#include "provenance_service/core/merkle.h"
#include "provenance_service/server/server.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/sha256.h"
#include "test_env.h"

namespace ossgate::provenance {
namespace {

namespace pb = ::ossgate::provenance::v1;
using testing::MakePki;
using testing::RoleClient;
using testing::TempDir;
using testing::WriteKey;

constexpr char kOrigin[] = "test.local/provenance";

class IntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    pki_ = *dir_ / "pki";
    MakePki(pki_, {"worker:worker-1", "worker:worker-2", "admin:admin-1", "auditor:auditor-1", "robot:r2d2"});
    MakePki(*dir_ / "foreign", {"admin:admin-1"});
    WriteKey(*dir_ / "token.pem");
    WriteKey(*dir_ / "log.pem");
    ServerConfig config;
    config.listen_address = "127.0.0.1:0";
    config.tls_cert_file = pki_ + "/server.pem";
    config.tls_key_file = pki_ + "/server.key";
    config.client_ca_file = pki_ + "/ca.pem";
    config.db_path = *dir_ / "audit.db";
    config.log_origin = kOrigin;
    config.token_signing_key_file = *dir_ / "token.pem";
    config.checkpoint_signing_key_file = *dir_ / "log.pem";
    auto server = ProvenanceServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  static std::shared_ptr<grpc::Channel> Channel(const std::string& cert, const std::string& pki = pki_) {
    ClientOptions o = RoleClient(pki, server_->port(), cert);
    o.ca_file = pki_ + "/ca.pem";  // always trust the real server
    auto ch = CreateProvenanceChannel(o);
    EXPECT_TRUE(ch.ok()) << ch.status();
    return *ch;
  }
  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  // Registers `content` as a file of ossgate://test-models (idempotently).
  static void RegisterFile(const std::string& path, const std::string& content) {
    auto admin = pb::RegistryService::NewStub(Channel("admin-admin-1"));
    pb::AddSourceRequest src;
    src.set_uri("ossgate://test-models");
    pb::RegistryChangeResponse resp;
    grpc::Status s = admin->AddSource(Ctx().get(), src, &resp);
    ASSERT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
    pb::AddFileRequest file;
    file.set_source_uri("ossgate://test-models");
    file.set_path(path);
    file.set_sha256(token::Sha256Hex(content));
    file.set_size_bytes(content.size());
    s = admin->AddFile(Ctx().get(), file, &resp);
    ASSERT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  }

  static pb::ModelDescriptor Descriptor(const std::string& path, const std::string& content,
                                        const std::string& worker = "worker-1") {
    pb::ModelDescriptor d;
    d.set_name("tiny");
    d.set_source_uri("ossgate://test-models/" + path);
    d.set_sha256(token::Sha256Hex(content));
    d.set_size_bytes(content.size());
    d.set_worker_id(worker);
    return d;
  }

  static std::vector<pb::AuditEntry> Query(pb::QueryRecordsRequest req) {
    auto auditor = pb::AuditService::NewStub(Channel("auditor-auditor-1"));
    std::vector<pb::AuditEntry> out;
    for (;;) {
      auto ctx = Ctx();
      auto reader = auditor->QueryRecords(ctx.get(), req);
      pb::QueryRecordsResponse msg;
      std::string next;
      while (reader->Read(&msg)) {
        for (const auto& e : msg.entries()) out.push_back(e);
        if (!msg.next_page_token().empty()) next = msg.next_page_token();
      }
      grpc::Status s = reader->Finish();
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (next.empty() || !s.ok()) return out;
      req.set_page_token(next);
    }
  }

  static TempDir* dir_;
  static std::string pki_;
  static ProvenanceServer* server_;
};

TempDir* IntegrationTest::dir_ = nullptr;
std::string IntegrationTest::pki_;
ProvenanceServer* IntegrationTest::server_ = nullptr;

// A unary call with raw request bytes (what a client with another proto
// library, or a broken one, may send).
grpc::Status RawUnary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                      const std::string& bytes) {
  grpc::GenericStub generic(channel);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                    [&done](grpc::Status s) { done.set_value(s); });
  return done.get_future().get();
}

// The index N of a message ending in "(audit record N)".
std::optional<uint64_t> AuditRecordOf(const std::string& message) {
  const std::string marker = "(audit record ";
  const size_t at = message.rfind(marker);
  if (at == std::string::npos || message.back() != ')') return std::nullopt;
  return std::stoull(message.substr(at + marker.size()));
}

TEST_F(IntegrationTest, AdminAddsWorkerVerifiesAuditorProves) {
  const std::string content = "tiny gguf bytes";
  RegisterFile("tiny.gguf", content);

  // Worker: verify and check the token with a key learned from KeyService.
  auto worker_channel = Channel("worker-worker-1");
  auto keys = pb::KeyService::NewStub(worker_channel);
  pb::ListPublicKeysResponse key_list;
  ASSERT_TRUE(keys->ListPublicKeys(Ctx().get(), pb::ListPublicKeysRequest(), &key_list).ok());
  ASSERT_EQ(key_list.token_keys_size(), 1);
  EXPECT_EQ(key_list.token_keys(0).status(), pb::KEY_STATUS_CURRENT);

  auto verifier_stub = pb::VerificationService::NewStub(worker_channel);
  pb::VerifyModelResponse resp;
  grpc::Status s = verifier_stub->VerifyModel(Ctx().get(), Descriptor("tiny.gguf", content), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(resp.verified()) << resp.detail();
  EXPECT_EQ(resp.reason(), pb::REASON_VERIFIED);
  EXPECT_EQ(resp.matched_source().uri(), "ossgate://test-models");
  EXPECT_EQ(resp.matched_file().path(), "tiny.gguf");
  EXPECT_EQ(resp.token_key_id(), key_list.token_keys(0).key_id());

  token::ApprovalTokenVerifier tv;
  tv.AddKey(*token::Ed25519PublicKey::FromRaw(key_list.token_keys(0).ed25519_public_key()));
  token::ApprovalExpectations expect{"worker-1", "ossgate-provenance", token::Sha256Hex(content), content.size()};
  auto claims = tv.Verify(resp.approval_token(), expect, absl::Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->log_index, resp.log_index());
  EXPECT_EQ(claims->log_origin, kOrigin);
  EXPECT_EQ(claims->policy_version, resp.policy_version());
  // The same token presented by another worker fails (audience + implicit assertion).
  token::ApprovalExpectations other = expect;
  other.worker_id = "worker-2";
  EXPECT_FALSE(tv.Verify(resp.approval_token(), other, absl::Now()).ok());

  // Auditor: checkpoint signature, inclusion of the decision, consistency.
  auto auditor = pb::AuditService::NewStub(Channel("auditor-auditor-1"));
  auto log_verifier = NoteVerifier::FromVerifierKey(key_list.log_verifier_key());
  ASSERT_TRUE(log_verifier.ok()) << log_verifier.status();
  pb::Checkpoint cp;
  ASSERT_TRUE(auditor->GetCheckpoint(Ctx().get(), pb::GetCheckpointRequest(), &cp).ok());
  auto body = OpenCheckpoint(*log_verifier, cp.note(), kOrigin);
  ASSERT_TRUE(body.ok()) << body.status();
  ASSERT_GT(body->size, resp.log_index());

  pb::GetInclusionProofRequest ireq;
  ireq.set_index(resp.log_index());
  ireq.set_tree_size(body->size);
  pb::InclusionProof proof;
  ASSERT_TRUE(auditor->GetInclusionProof(Ctx().get(), ireq, &proof).ok());
  std::vector<Hash> path;
  for (const auto& h : proof.hashes()) path.push_back(*HashFromBytes(h));
  EXPECT_TRUE(VerifyInclusion(resp.log_index(), body->size, LeafHash(proof.record()), path, body->root).ok());
  EXPECT_NE(proof.record().find(claims->token_id), std::string::npos);

  // Query the decision by model hash, then check consistency from an older
  // checkpoint to a newer one after more activity.
  pb::QueryRecordsRequest q;
  q.set_model_sha256(token::Sha256Hex(content));
  q.set_kind(pb::RECORD_KIND_VERIFY_MODEL);
  q.set_verdict(pb::VERDICT_ACCEPTED);
  auto entries = Query(q);
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.back().index(), resp.log_index());
  EXPECT_EQ(entries.back().decoded().caller(), "spiffe://ossgate/role/worker/worker-1");
  EXPECT_EQ(entries.back().leaf_hash(), HashBytes(LeafHash(entries.back().record())));

  ASSERT_TRUE(verifier_stub->VerifyModel(Ctx().get(), Descriptor("tiny.gguf", content), &resp).ok());
  pb::Checkpoint cp2;
  ASSERT_TRUE(auditor->GetCheckpoint(Ctx().get(), pb::GetCheckpointRequest(), &cp2).ok());
  auto body2 = OpenCheckpoint(*log_verifier, cp2.note(), kOrigin);
  ASSERT_TRUE(body2.ok());
  pb::GetConsistencyProofRequest creq;
  creq.set_from_size(body->size);
  creq.set_to_size(body2->size);
  pb::ConsistencyProof cproof;
  ASSERT_TRUE(auditor->GetConsistencyProof(Ctx().get(), creq, &cproof).ok());
  std::vector<Hash> cpath;
  for (const auto& h : cproof.hashes()) cpath.push_back(*HashFromBytes(h));
  EXPECT_TRUE(VerifyConsistency(body->size, body2->size, body->root, body2->root, cpath).ok());
  // Historical checkpoint lookup returns the same note.
  pb::GetCheckpointRequest old_req;
  old_req.set_tree_size(body->size);
  pb::Checkpoint old_cp;
  ASSERT_TRUE(auditor->GetCheckpoint(Ctx().get(), old_req, &old_cp).ok());
  EXPECT_EQ(old_cp.note(), cp.note());
}

// An approval names its family in the response and the signed token; the
// admin sets families (the worker may not); auditors see and query them.
TEST_F(IntegrationTest, ApprovalsNameTheFamilyTheRegistryGivesTheFile) {
  auto admin = pb::RegistryService::NewStub(Channel("admin-admin-1"));
  // The seeded Qwen GGUF source names qwen2, so its files are qwen2 models.
  pb::TrustedSource qwen_source;
  pb::GetSourceRequest get;
  get.set_uri("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF");
  ASSERT_TRUE(admin->GetSource(Ctx().get(), get, &qwen_source).ok());
  EXPECT_EQ(qwen_source.family(), "qwen2");
  const std::string content = "a qwen2 gguf";
  pb::AddFileRequest add;
  add.set_source_uri("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF");
  add.set_path("qwen2.5-0.5b-instruct-q4_k_m.gguf");
  add.set_sha256(token::Sha256Hex(content));
  add.set_size_bytes(content.size());
  pb::RegistryChangeResponse change;
  ASSERT_TRUE(admin->AddFile(Ctx().get(), add, &change).ok());
  EXPECT_EQ(change.file().family(), "");
  EXPECT_EQ(change.file().approved_family(), "qwen2");

  auto worker_channel = Channel("worker-worker-1");
  auto verify = [&](pb::VerifyModelResponse* resp) {
    pb::ModelDescriptor d;
    d.set_name("qwen");
    d.set_source_uri("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf");
    d.set_sha256(token::Sha256Hex(content));
    d.set_size_bytes(content.size());
    d.set_worker_id("worker-1");
    grpc::Status s = pb::VerificationService::NewStub(worker_channel)->VerifyModel(Ctx().get(), d, resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_TRUE(resp->verified()) << resp->detail();
  };
  pb::ListPublicKeysResponse keys;
  ASSERT_TRUE(pb::KeyService::NewStub(worker_channel)->ListPublicKeys(Ctx().get(), {}, &keys).ok());
  token::ApprovalTokenVerifier tv;
  tv.AddKey(*token::Ed25519PublicKey::FromRaw(keys.token_keys(0).ed25519_public_key()));
  const token::ApprovalExpectations expect{"worker-1", "ossgate-provenance", token::Sha256Hex(content),
                                           content.size()};
  pb::VerifyModelResponse resp;
  verify(&resp);
  EXPECT_EQ(resp.model_family(), "qwen2");
  EXPECT_EQ(resp.matched_file().approved_family(), "qwen2");
  auto claims = tv.Verify(resp.approval_token(), expect, absl::Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->model_family, "qwen2");
  EXPECT_FALSE(claims->model_family_implied);

  // A worker may not set a family; the refusal is recorded.
  pb::SetFamilyRequest set;
  set.set_source_uri(add.source_uri());
  set.set_path(add.path());
  set.set_sha256(add.sha256());
  set.set_family("phi3");
  grpc::Status s = pb::RegistryService::NewStub(worker_channel)->SetFamily(Ctx().get(), set, &change);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_NE(s.error_message().find("audit record"), std::string::npos) << s.error_message();
  // The admin may; later approvals name the new family.
  s = admin->SetFamily(Ctx().get(), set, &change);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(change.file().family(), "phi3");
  EXPECT_EQ(change.file().approved_family(), "phi3");
  const uint64_t set_index = change.log_index();
  EXPECT_EQ(admin->SetFamily(Ctx().get(), set, &change).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  set.set_family("Phi-3");
  s = admin->SetFamily(Ctx().get(), set, &change);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("family: not a model family", 0), 0u) << s.error_message();
  verify(&resp);
  EXPECT_EQ(resp.model_family(), "phi3");
  claims = tv.Verify(resp.approval_token(), expect, absl::Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->model_family, "phi3");
  pb::ListFilesRequest list;
  list.set_sha256(add.sha256());
  pb::ListFilesResponse files;
  ASSERT_TRUE(admin->ListFiles(Ctx().get(), list, &files).ok());
  ASSERT_EQ(files.files_size(), 1);
  EXPECT_EQ(files.files(0).approved_family(), "phi3");

  // The auditor finds by family what was done to or with phi3: the three
  // seeded phi3 sources, the change and the approval (and, among refused
  // records, the worker's attempt and the repeated change).
  pb::QueryRecordsRequest q;
  q.set_family("phi3");
  q.set_verdict(pb::VERDICT_ACCEPTED);
  auto entries = Query(q);
  ASSERT_EQ(entries.size(), 5u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(entries[i].decoded().caller(), "system:default-registry");
    EXPECT_EQ(entries[i].decoded().target_uri().rfind("hf://microsoft/Phi-3-mini-", 0), 0u);
  }
  EXPECT_EQ(entries[3].index(), set_index);
  EXPECT_EQ(entries[3].decoded().action(), "set_family");
  EXPECT_EQ(entries[3].decoded().family(), "phi3");
  EXPECT_EQ(entries[4].index(), resp.log_index());
  EXPECT_EQ(entries[4].decoded().family(), "phi3");
  EXPECT_NE(entries[4].record().find("\"family\":\"phi3\""), std::string::npos) << entries[4].record();
  q.set_verdict(pb::VERDICT_REJECTED);
  entries = Query(q);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].decoded().reason(), "permission_denied");
  EXPECT_EQ(entries[1].decoded().reason(), "already_exists");
  q.set_family("not a family");
  auto ctx = Ctx();
  auto reader = pb::AuditService::NewStub(Channel("auditor-auditor-1"))->QueryRecords(ctx.get(), q);
  pb::QueryRecordsResponse msg;
  while (reader->Read(&msg)) {
  }
  s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("family:", 0), 0u) << s.error_message();
}

TEST_F(IntegrationTest, PolicyRejectionsAreAnswersNotErrors) {
  const std::string content = "another model";
  RegisterFile("other.gguf", content);
  auto stub = pb::VerificationService::NewStub(Channel("worker-worker-1"));
  struct Case {
    pb::ModelDescriptor d;
    pb::Reason want;
  };
  std::vector<Case> cases;
  cases.push_back({Descriptor("other.gguf", content), pb::REASON_VERIFIED});
  auto d = Descriptor("other.gguf", content);
  d.set_source_uri("upload://someone/other.gguf");
  cases.push_back({d, pb::REASON_UNTRUSTED_SOURCE});
  d = Descriptor("other.gguf", "unknown bytes");
  d.set_source_uri("ossgate://test-models/unregistered.gguf");
  cases.push_back({d, pb::REASON_UNKNOWN_HASH});
  cases.push_back({Descriptor("other.gguf", "tampered bytes"), pb::REASON_HASH_MISMATCH});
  d = Descriptor("other.gguf", content);
  d.set_size_bytes(content.size() + 1);
  cases.push_back({d, pb::REASON_SIZE_MISMATCH});
  for (const Case& c : cases) {
    pb::VerifyModelResponse resp;
    grpc::Status s = stub->VerifyModel(Ctx().get(), c.d, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.reason(), c.want) << pb::Reason_Name(c.want) << ": " << resp.detail();
    EXPECT_EQ(resp.verified(), c.want == pb::REASON_VERIFIED);
    EXPECT_EQ(resp.approval_token().empty(), c.want != pb::REASON_VERIFIED);
  }
  // Revocation.
  auto admin = pb::RegistryService::NewStub(Channel("admin-admin-1"));
  pb::RevokeFileRequest revoke;
  revoke.set_source_uri("ossgate://test-models");
  revoke.set_path("other.gguf");
  revoke.set_sha256(token::Sha256Hex(content));
  revoke.set_reason("found a backdoor in the chat template");
  pb::RegistryChangeResponse change;
  ASSERT_TRUE(admin->RevokeFile(Ctx().get(), revoke, &change).ok());
  EXPECT_TRUE(change.file().revoked());
  pb::VerifyModelResponse resp;
  ASSERT_TRUE(stub->VerifyModel(Ctx().get(), Descriptor("other.gguf", content), &resp).ok());
  EXPECT_EQ(resp.reason(), pb::REASON_REVOKED);
  EXPECT_EQ(resp.policy_version(), change.policy_version());
  EXPECT_EQ(admin->RevokeFile(Ctx().get(), revoke, &change).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(IntegrationTest, WrongRolesAreRefusedAndRecorded) {
  const std::string content = "tiny gguf bytes";
  RegisterFile("tiny.gguf", content);
  pb::RegistryChangeResponse change;
  pb::AddSourceRequest add;
  add.set_uri("hf://attacker/model");
  grpc::Status s = pb::RegistryService::NewStub(Channel("worker-worker-1"))->AddSource(Ctx().get(), add, &change);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("audit record"), std::string::npos);
  s = pb::RegistryService::NewStub(Channel("auditor-auditor-1"))->AddSource(Ctx().get(), add, &change);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  pb::VerifyModelResponse resp;
  s = pb::VerificationService::NewStub(Channel("admin-admin-1"))
          ->VerifyModel(Ctx().get(), Descriptor("tiny.gguf", content, "admin-1"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // A worker claiming another worker's id.
  s = pb::VerificationService::NewStub(Channel("worker-worker-2"))
          ->VerifyModel(Ctx().get(), Descriptor("tiny.gguf", content, "worker-1"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("worker_id"), std::string::npos);

  // Workers and admins cannot read the audit log.
  pb::Checkpoint cp;
  EXPECT_EQ(pb::AuditService::NewStub(Channel("worker-worker-1"))
                ->GetCheckpoint(Ctx().get(), pb::GetCheckpointRequest(), &cp)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(pb::AuditService::NewStub(Channel("admin-admin-1"))
                ->GetCheckpoint(Ctx().get(), pb::GetCheckpointRequest(), &cp)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // An unknown role in a CA-signed certificate authenticates at TLS level
  // but has no identity.
  pb::ListPublicKeysResponse keys;
  EXPECT_EQ(pb::KeyService::NewStub(Channel("robot-r2d2"))
                ->ListPublicKeys(Ctx().get(), pb::ListPublicKeysRequest(), &keys)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // Every refused attempt above is in the log, with the caller's identity.
  pb::QueryRecordsRequest q;
  q.set_verdict(pb::VERDICT_REJECTED);
  bool worker_add = false, admin_verify = false, spoof = false;
  for (const auto& e : Query(q)) {
    const auto& d = e.decoded();
    if (d.reason() != "permission_denied") continue;
    worker_add |= d.caller() == "spiffe://ossgate/role/worker/worker-1" && d.target_uri() == "hf://attacker/model";
    admin_verify |= d.caller() == "spiffe://ossgate/role/admin/admin-1" && d.kind() == pb::RECORD_KIND_VERIFY_MODEL;
    spoof |= d.caller() == "spiffe://ossgate/role/worker/worker-2" && d.request().worker_id() == "worker-1";
  }
  EXPECT_TRUE(worker_add);
  EXPECT_TRUE(admin_verify);
  EXPECT_TRUE(spoof);
}

// The SHA-256 fingerprint of a certificate file as openssl computes it, in
// lowercase hex without colons.
std::string OpensslFingerprint(const std::string& pem_file) {
  std::string out;
  EXPECT_EQ(testing::RunCommand("openssl x509 -noout -fingerprint -sha256 -in " + pem_file, &out), 0) << out;
  std::string hex;
  for (char c : out.substr(out.find('=') + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(c))) hex.push_back(static_cast<char>(std::tolower(c)));
  }
  return hex;
}

// Issues a client certificate signed by the test CA with the given
// subjectAltName value (make_dev_pki.sh only makes well-formed identities).
void IssueClientCert(const std::string& pki, const std::string& name, const std::string& san) {
  const std::string key = pki + "/" + name + ".key", csr = pki + "/" + name + ".csr", ext = pki + "/" + name + ".ext";
  std::string out;
  ASSERT_EQ(testing::RunCommand(absl::StrCat(
                "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ", key, " 2>&1 && ",
                "openssl req -new -key ", key, " -subj /O=ossgate/CN=", name, " -out ", csr, " 2>&1 && ",
                "printf 'extendedKeyUsage=clientAuth\\nsubjectAltName=", san, "\\n' > ", ext, " && ",
                "openssl x509 -req -in ", csr, " -CA ", pki, "/ca.pem -CAkey ", pki, "/ca.key -CAcreateserial -CAserial ",
                pki, "/", name, ".srl -days 2 -sha256 -extfile ", ext, " -out ", pki, "/", name, ".pem 2>&1"),
                                &out),
            0)
      << out;
}

TEST_F(IntegrationTest, UnidentifiedCallersAreRecordedWithTheirCertificate) {
  // CA-signed certificates without a usable identity: an unknown role, and
  // no spiffe://ossgate/ URI but other names.
  IssueClientCert(pki_, "no-identity", "DNS:robot.example,URI:https://example.com/robot,email:ops@example.com");
  struct Case {
    std::string cert;
    std::vector<std::string> sans;
  };
  const std::vector<Case> cases = {
      {"robot-r2d2", {"URI:spiffe://ossgate/role/robot/r2d2"}},
      {"no-identity", {"DNS:robot.example", "URI:https://example.com/robot", "email:ops@example.com"}},
  };
  std::map<uint64_t, const Case*> records;
  for (const Case& c : cases) {
    pb::RegistryChangeResponse change;
    pb::AddSourceRequest add;
    add.set_uri("hf://robot/model");
    grpc::Status s = pb::RegistryService::NewStub(Channel(c.cert))->AddSource(Ctx().get(), add, &change);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
    std::optional<uint64_t> index = AuditRecordOf(s.error_message());
    ASSERT_TRUE(index.has_value()) << s.error_message();
    records[*index] = &c;
    pb::VerifyModelResponse resp;
    s = pb::VerificationService::NewStub(Channel(c.cert))
            ->VerifyModel(Ctx().get(), Descriptor("tiny.gguf", "x", "r2d2"), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
    index = AuditRecordOf(s.error_message());
    ASSERT_TRUE(index.has_value()) << s.error_message();
    records[*index] = &c;
  }
  pb::QueryRecordsRequest q;
  q.set_verdict(pb::VERDICT_REJECTED);
  size_t seen = 0;
  for (const auto& e : Query(q)) {
    auto it = records.find(e.index());
    if (it == records.end()) continue;
    ++seen;
    const std::string& caller = e.decoded().caller();
    const std::string fingerprint = OpensslFingerprint(pki_ + "/" + it->second->cert + ".pem");
    ASSERT_EQ(fingerprint.size(), 64u);
    EXPECT_EQ(caller.rfind("unidentified", 0), 0u) << caller;
    EXPECT_NE(caller.find("sha256:" + fingerprint), std::string::npos) << caller << " lacks " << fingerprint;
    for (const std::string& san : it->second->sans) EXPECT_NE(caller.find(san), std::string::npos) << caller;
    EXPECT_EQ(e.decoded().reason(), "permission_denied");
  }
  EXPECT_EQ(seen, records.size());
}

TEST_F(IntegrationTest, ForeignCertificateFailsTheHandshake) {
  ClientOptions o = RoleClient(*dir_ / "foreign", server_->port(), "admin-admin-1");
  o.ca_file = pki_ + "/ca.pem";
  auto stub = pb::KeyService::NewStub(*CreateProvenanceChannel(o));
  pb::ListPublicKeysResponse keys;
  auto ctx = Ctx();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  grpc::Status s = stub->ListPublicKeys(ctx.get(), pb::ListPublicKeysRequest(), &keys);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.error_code() == grpc::StatusCode::UNAVAILABLE ||
              s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_code() << " " << s.error_message();
}

TEST_F(IntegrationTest, BadInputIsInvalidArgumentNamingTheFieldAndRecorded) {
  auto stub = pb::VerificationService::NewStub(Channel("worker-worker-1"));
  auto base = Descriptor("tiny.gguf", "x");
  struct Case {
    std::function<void(pb::ModelDescriptor*)> mutate;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](auto* d) { d->set_sha256("not-a-hash"); }, "sha256"},
      {[](auto* d) { d->set_sha256(std::string(64, 'A')); }, "sha256"},
      {[](auto* d) { d->set_name(""); }, "name"},
      {[](auto* d) { d->set_name(std::string(20000, 'n')); }, "name"},
      {[](auto* d) { d->set_name("../../etc/passwd"); }, "name"},
      {[](auto* d) { d->set_source_uri("gopher://x/y/z.gguf"); }, "source_uri"},
      {[](auto* d) { d->set_source_uri("ossgate://test-models/%2e%2e/secret.gguf"); }, "source_uri"},
      {[](auto* d) { d->set_source_uri("ossgate://test-models/../secret.gguf"); }, "source_uri"},
      {[](auto* d) { d->set_source_uri(std::string(5000, '/')); }, "source_uri"},
      {[](auto* d) { d->set_size_bytes(0); }, "size_bytes"},
      {[](auto* d) { d->set_worker_id(""); }, "worker_id"},
  };
  for (const Case& c : cases) {
    pb::ModelDescriptor d = base;
    c.mutate(&d);
    pb::VerifyModelResponse resp;
    grpc::Status s = stub->VerifyModel(Ctx().get(), d, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_EQ(s.error_message().rfind(c.field + ":", 0), 0u) << s.error_message();
    EXPECT_NE(s.error_message().find("audit record"), std::string::npos);
  }
  pb::QueryRecordsRequest q;
  q.set_caller("spiffe://ossgate/role/worker/worker-1");
  q.set_verdict(pb::VERDICT_REJECTED);
  int malformed = 0;
  bool truncated = false;
  for (const auto& e : Query(q)) {
    if (e.decoded().reason() != "malformed_request") continue;
    ++malformed;
    truncated |= e.decoded().request().name().find("[truncated") != std::string::npos;
    EXPECT_LT(e.record().size(), 4096u);
  }
  EXPECT_GE(malformed, static_cast<int>(cases.size()));
  EXPECT_TRUE(truncated);

  // Audit query input.
  auto auditor = pb::AuditService::NewStub(Channel("auditor-auditor-1"));
  pb::QueryRecordsRequest huge;
  huge.set_page_size(1000000);
  auto ctx = Ctx();
  auto reader = auditor->QueryRecords(ctx.get(), huge);
  pb::QueryRecordsResponse msg;
  while (reader->Read(&msg)) {
  }
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("page_size:", 0), 0u) << s.error_message();
  pb::QueryRecordsRequest bad_token;
  bad_token.set_page_token("!!!");
  auto ctx2 = Ctx();
  auto reader2 = auditor->QueryRecords(ctx2.get(), bad_token);
  while (reader2->Read(&msg)) {
  }
  EXPECT_EQ(reader2->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  pb::GetInclusionProofRequest far;
  far.set_index(1u << 30);
  pb::InclusionProof proof;
  EXPECT_EQ(auditor->GetInclusionProof(Ctx().get(), far, &proof).error_code(), grpc::StatusCode::OUT_OF_RANGE);

  // Registry input.
  auto admin = pb::RegistryService::NewStub(Channel("admin-admin-1"));
  pb::AddSourceRequest src;
  src.set_uri("upload://anything");
  pb::RegistryChangeResponse change;
  s = admin->AddSource(Ctx().get(), src, &change);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("uri:", 0), 0u) << s.error_message();
  pb::ListSourcesRequest list;
  list.set_page_size(5000);
  pb::ListSourcesResponse sources;
  EXPECT_EQ(admin->ListSources(Ctx().get(), list, &sources).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(IntegrationTest, RandomGarbageNeverCrashesTheService) {
  auto stub = pb::VerificationService::NewStub(Channel("worker-worker-1"));
  std::mt19937 rng(42);
  // ASCII garbage including control characters. (Invalid UTF-8 and bytes
  // that are no protobuf: UndecodableRequestsAreInvalidArgumentNamingTheProblem.)
  auto garbage = [&rng](size_t max) {
    std::string s(rng() % max, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 128);
    return s;
  };
  for (int i = 0; i < 100; ++i) {
    pb::ModelDescriptor d;
    d.set_name(garbage(300));
    d.set_source_uri(i % 2 ? garbage(300) : "hf://openai/gpt-oss-20b/" + garbage(50));
    d.set_sha256(garbage(80));
    d.set_size_bytes(rng());
    d.set_worker_id(i % 3 ? "worker-1" : garbage(40));
    pb::VerifyModelResponse resp;
    grpc::Status s = stub->VerifyModel(Ctx().get(), d, &resp);
    ASSERT_TRUE(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                s.error_code() == grpc::StatusCode::PERMISSION_DENIED || s.ok())
        << s.error_code() << " " << s.error_message();
  }
  // Still healthy and the log still proves.
  auto auditor = pb::AuditService::NewStub(Channel("auditor-auditor-1"));
  pb::Checkpoint cp;
  ASSERT_TRUE(auditor->GetCheckpoint(Ctx().get(), pb::GetCheckpointRequest(), &cp).ok());
}

TEST_F(IntegrationTest, UndecodableRequestsAreInvalidArgumentNamingTheProblem) {
  // Invalid UTF-8 in a proto3 string field: the C++ client sends it (after
  // logging a complaint), the service must say which field is wrong.
  auto stub = pb::VerificationService::NewStub(Channel("worker-worker-1"));
  pb::ModelDescriptor d = Descriptor("tiny.gguf", "x");
  d.set_name("\xff\xfe");
  pb::VerifyModelResponse resp;
  grpc::Status s = stub->VerifyModel(Ctx().get(), d, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(s.error_message().rfind("name: not valid UTF-8", 0), 0u) << s.error_message();
  const std::optional<uint64_t> utf8_record = AuditRecordOf(s.error_message());
  EXPECT_TRUE(utf8_record.has_value()) << s.error_message();

  // Bytes that are no protobuf message at all (a truncated varint tag).
  s = RawUnary(Channel("worker-worker-1"), "/ossgate.provenance.v1.VerificationService/VerifyModel",
               std::string("\xff\xff\xff", 3));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(s.error_message().rfind("request: ", 0), 0u) << s.error_message();
  EXPECT_NE(s.error_message().find("ossgate.provenance.v1.ModelDescriptor"), std::string::npos) << s.error_message();
  const std::optional<uint64_t> garbage_record = AuditRecordOf(s.error_message());
  EXPECT_TRUE(garbage_record.has_value()) << s.error_message();

  // Registry changes are logged too; reads are answered without a record.
  s = RawUnary(Channel("admin-admin-1"), "/ossgate.provenance.v1.RegistryService/AddSource",
               std::string("\x0a\x06hf://", 7));  // uri: length 6 but 5 bytes follow
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_code() << " " << s.error_message();
  EXPECT_NE(s.error_message().find("ossgate.provenance.v1.AddSourceRequest"), std::string::npos) << s.error_message();
  EXPECT_TRUE(AuditRecordOf(s.error_message()).has_value()) << s.error_message();
  const std::vector<std::tuple<std::string, std::string, std::string>> reads = {
      {"/ossgate.provenance.v1.RegistryService/ListFiles", std::string("\x0a\x02\xc3\x28", 4), "source_uri: "},
      {"/ossgate.provenance.v1.KeyService/ListPublicKeys", std::string("\xff\xff\xff", 3), "request: "},
  };
  for (const auto& [method, bytes, prefix] : reads) {
    s = RawUnary(Channel("admin-admin-1"), method, bytes);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method << " " << s.error_message();
    EXPECT_EQ(s.error_message().rfind(prefix, 0), 0u) << method << " " << s.error_message();
    EXPECT_FALSE(AuditRecordOf(s.error_message()).has_value()) << s.error_message();
  }
  // Server streaming.
  auto auditor_stub = pb::AuditService::NewStub(Channel("auditor-auditor-1"));
  pb::QueryRecordsRequest q_bad;
  q_bad.set_caller("\xc0\xaf");  // overlong "/"
  auto qctx = Ctx();
  auto reader = auditor_stub->QueryRecords(qctx.get(), q_bad);
  pb::QueryRecordsResponse msg;
  while (reader->Read(&msg)) {
  }
  s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(s.error_message().rfind("caller: not valid UTF-8", 0), 0u) << s.error_message();

  // The logged attempts name the caller and the problem.
  pb::QueryRecordsRequest q;
  q.set_caller("spiffe://ossgate/role/worker/worker-1");
  q.set_verdict(pb::VERDICT_REJECTED);
  bool utf8_logged = false, garbage_logged = false;
  for (const auto& e : Query(q)) {
    if (utf8_record && e.index() == *utf8_record) {
      utf8_logged = e.decoded().reason() == "malformed_request" &&
                    e.decoded().detail().rfind("name: not valid UTF-8", 0) == 0;
    }
    if (garbage_record && e.index() == *garbage_record) {
      garbage_logged = e.decoded().reason() == "malformed_request" &&
                       e.decoded().detail().find("ModelDescriptor") != std::string::npos;
    }
  }
  EXPECT_TRUE(utf8_logged);
  EXPECT_TRUE(garbage_logged);
  // The server keeps serving.
  ASSERT_TRUE(stub->VerifyModel(Ctx().get(), Descriptor("tiny.gguf", "x"), &resp).ok());
}

// grpc.health.v1.Health/Check and server reflection, spoken with a generic
// stub (the Debian packages ship neither proto): an empty HealthCheckRequest
// is zero bytes, SERVING is field 1 = 1.
TEST_F(IntegrationTest, HealthAndReflection) {
  grpc::GenericStub generic(Channel("worker-worker-1"));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  auto ctx = Ctx();
  generic.UnaryCall(ctx.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                    [&done](grpc::Status s) { done.set_value(s); });
  grpc::Status s = done.get_future().get();
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));

  // ServerReflectionRequest{list_services: ""} = field 7, length 0.
  class ReflectionCall : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    ReflectionCall() : slice_(std::string("\x3a\x00", 2)), request_(&slice_, 1) {}
    void Start() {
      StartWrite(&request_);
      StartRead(&response_);
      StartCall();
    }
    void OnWriteDone(bool) override { StartWritesDone(); }
    void OnReadDone(bool ok) override {
      if (ok) {
        std::vector<grpc::Slice> slices;
        (void)response_.Dump(&slices);
        for (const auto& sl : slices) text_.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
        StartRead(&response_);
      }
    }
    void OnDone(const grpc::Status& s) override { done_.set_value(s); }
    std::string text_;
    std::promise<grpc::Status> done_;

   private:
    grpc::Slice slice_;
    grpc::ByteBuffer request_, response_;
  };
  ReflectionCall call;
  auto rctx = Ctx();
  generic.PrepareBidiStreamingCall(rctx.get(), "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                   grpc::StubOptions(), &call);
  call.Start();
  grpc::Status rs = call.done_.get_future().get();
  ASSERT_TRUE(rs.ok()) << rs.error_message();
  for (const char* svc : {"ossgate.provenance.v1.VerificationService", "ossgate.provenance.v1.RegistryService",
                          "ossgate.provenance.v1.AuditService", "ossgate.provenance.v1.KeyService"}) {
    EXPECT_NE(call.text_.find(svc), std::string::npos) << svc;
  }
}

TEST(ServerConfigTest, PlaintextOnlyOnLoopback) {
  ServerConfig c;
  c.insecure_dev_loopback = true;
  c.db_path = "x";
  c.token_signing_key_file = "a";
  c.checkpoint_signing_key_file = "b";
  c.listen_address = "0.0.0.0:7443";
  EXPECT_EQ(ValidateConfig(c).code(), absl::StatusCode::kInvalidArgument);
  c.listen_address = "10.1.2.3:7443";
  EXPECT_EQ(ValidateConfig(c).code(), absl::StatusCode::kInvalidArgument);
  c.listen_address = "localhost:7443";  // names can resolve anywhere
  EXPECT_EQ(ValidateConfig(c).code(), absl::StatusCode::kInvalidArgument);
  c.listen_address = "127.0.0.1:7443";
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.listen_address = "[::1]:7443";
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.insecure_dev_loopback = false;  // TLS by default: certificates required
  EXPECT_EQ(ValidateConfig(c).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ossgate::provenance
