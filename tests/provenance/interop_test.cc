// Interoperability: approval tokens issued by the running service verify
// with an independent PASETO v4.public implementation (npm "paseto" under
// Node.js, installed by tools/setup.sh into tests/provenance/interop), and
// tokens signed by that implementation verify with ours, while tampered
// tokens are rejected by both.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ossgate/provenance/v1/provenance.grpc.pb.h"
#include "provenance_service/server/server.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/json.h"
#include "provenance_service/token/sha256.h"
#include "test_env.h"

namespace ossgate::provenance {
namespace {

namespace pb = ::ossgate::provenance::v1;
using testing::RunCommand;
using testing::TempDir;
using testing::WriteKey;

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out.push_back(c);
  }
  return out + "'";
}

std::string Script() { return std::string(OSSGATE_SOURCE_DIR) + "/tests/provenance/interop/paseto_interop.mjs"; }

int Node(const std::string& args, std::string* out) {
  return RunCommand(absl::StrCat("node ", Script(), " ", args, " 2>&1"), out);
}

std::string Tamper(std::string token, size_t pos) {
  token[pos] = token[pos] == 'A' ? 'B' : 'A';
  return token;
}

class InteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string out;
    ASSERT_EQ(RunCommand("node --version", &out), 0) << "node is required (tools/setup.sh installs it)";
    ASSERT_EQ(RunCommand(absl::StrCat("test -d ", OSSGATE_SOURCE_DIR, "/tests/provenance/interop/node_modules/paseto")),
              0)
        << "npm package missing: run tools/setup.sh (npm ci --prefix tests/provenance/interop)";
    token_key_ = std::make_unique<token::Ed25519PrivateKey>(WriteKey(dir_ / "token.pem"));
    WriteKey(dir_ / "log.pem");
    ServerConfig config;
    config.listen_address = "127.0.0.1:0";
    config.insecure_dev_loopback = true;  // identities from metadata; TLS is not what this test is about
    config.db_path = dir_ / "audit.db";
    config.token_signing_key_file = dir_ / "token.pem";
    config.checkpoint_signing_key_file = dir_ / "log.pem";
    auto server = ProvenanceServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  grpc::Status Call(const std::string& identity, const std::function<grpc::Status(grpc::ClientContext*)>& fn) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("ossgate-dev-identity", identity);
    return fn(&ctx);
  }

  std::string IssueToken(std::string* paserk) {
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials());
    auto registry = pb::RegistryService::NewStub(channel);
    pb::AddFileRequest add;
    add.set_source_uri("ossgate://bundled");
    add.set_path("interop.gguf");
    add.set_sha256(token::Sha256Hex("interop model"));
    add.set_size_bytes(13);
    pb::RegistryChangeResponse change;
    EXPECT_TRUE(Call("spiffe://ossgate/role/admin/ops", [&](auto* ctx) { return registry->AddFile(ctx, add, &change); }).ok());
    auto keys = pb::KeyService::NewStub(channel);
    pb::ListPublicKeysResponse key_list;
    EXPECT_TRUE(Call("spiffe://ossgate/role/worker/node-worker", [&](auto* ctx) {
                  return keys->ListPublicKeys(ctx, pb::ListPublicKeysRequest(), &key_list);
                }).ok());
    *paserk = key_list.token_keys(0).paserk();
    auto verification = pb::VerificationService::NewStub(channel);
    pb::ModelDescriptor d;
    d.set_name("interop");
    d.set_source_uri("ossgate://bundled/interop.gguf");
    d.set_sha256(token::Sha256Hex("interop model"));
    d.set_size_bytes(13);
    d.set_worker_id("node-worker");
    pb::VerifyModelResponse resp;
    EXPECT_TRUE(Call("spiffe://ossgate/role/worker/node-worker", [&](auto* ctx) {
                  return verification->VerifyModel(ctx, d, &resp);
                }).ok());
    EXPECT_TRUE(resp.verified());
    return resp.approval_token();
  }

  TempDir dir_;
  std::unique_ptr<token::Ed25519PrivateKey> token_key_;
  std::unique_ptr<ProvenanceServer> server_;
};

TEST_F(InteropTest, ServiceTokenVerifiesWithNpmPaseto) {
  std::string paserk;
  std::string tok = IssueToken(&paserk);
  ASSERT_FALSE(tok.empty());
  std::string out;
  ASSERT_EQ(Node(absl::StrCat("verify ", Quote(tok), " ", Quote(paserk), " node-worker ossgate-provenance"), &out), 0)
      << out;
  auto parsed = token::json::Parse(out.substr(0, out.find('\n')), 4);
  ASSERT_TRUE(parsed.ok()) << out;
  const token::json::Value* claims = parsed->Find("claims");
  ASSERT_NE(claims, nullptr);
  EXPECT_EQ(claims->Find("aud")->text(), "node-worker");
  EXPECT_EQ(claims->Find("model_sha256")->text(), token::Sha256Hex("interop model"));
  EXPECT_EQ(claims->Find("typ")->text(), token::kApprovalTokenType);
  // A file registered without a family, in a source without one: gpt-oss.
  ASSERT_NE(claims->Find("model_family"), nullptr) << out;
  EXPECT_EQ(claims->Find("model_family")->text(), "gpt-oss");
  EXPECT_EQ(parsed->Find("footer")->text(), absl::StrCat("{\"kid\":\"", token::TokenKeyId(token_key_->public_key()), "\"}"));

  // Wrong implicit assertion / audience: another worker.
  EXPECT_NE(Node(absl::StrCat("verify ", Quote(tok), " ", Quote(paserk), " other-worker ossgate-provenance"), &out), 0);
  // Tampered payload and signature bytes.
  for (size_t pos : {size_t{20}, tok.size() / 2, tok.rfind('.') - 3}) {
    EXPECT_NE(Node(absl::StrCat("verify ", Quote(Tamper(tok, pos)), " ", Quote(paserk), " node-worker ossgate-provenance"), &out), 0)
        << "position " << pos;
  }
}

TEST_F(InteropTest, NpmSignedTokenVerifiesWithOursAndTamperingIsRejected) {
  token::ApprovalClaims c;
  c.issuer = "ossgate-provenance";
  c.worker_id = "node-worker";
  c.token_id = "0123456789abcdef0123456789abcdef";
  c.key_id = token::TokenKeyId(token_key_->public_key());
  c.model_sha256 = token::Sha256Hex("interop model");
  c.model_size = 13;
  c.source_uri = "ossgate://bundled/interop.gguf";
  c.model_name = "interop";
  c.model_family = "qwen2";
  c.policy_version = 1;
  c.log_index = 7;
  c.log_origin = "ossgate.local/provenance";
  absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  c.issued_at = now;
  c.not_before = now;
  c.expires_at = now + absl::Minutes(5);
  std::string secret = "k4.secret." + token::Base64UrlEncode(token_key_->Seed() + token_key_->public_key().raw());
  std::string footer = absl::StrCat("{\"kid\":\"", c.key_id, "\"}");
  std::string out;
  ASSERT_EQ(Node(absl::StrCat("sign ", Quote(secret), " node-worker ", Quote(token::EncodeApprovalClaims(c)), " ",
                              Quote(footer)),
                 &out),
            0)
      << out;
  std::string tok = out.substr(0, out.find('\n'));

  token::ApprovalTokenVerifier verifier;
  verifier.AddKey(*token::Ed25519PublicKey::FromRaw(token_key_->public_key().raw()));
  token::ApprovalExpectations expect{"node-worker", "ossgate-provenance", c.model_sha256, 13};
  auto claims = verifier.Verify(tok, expect, absl::Now());
  ASSERT_TRUE(claims.ok()) << claims.status() << "\n" << tok;
  EXPECT_EQ(claims->log_index, 7u);
  EXPECT_EQ(claims->model_family, "qwen2");
  // Same bytes as our own signer (Ed25519 is deterministic, payload identical).
  token::ApprovalTokenSigner signer(std::make_shared<const token::Ed25519PrivateKey>(
      *token::Ed25519PrivateKey::FromSeed(token_key_->Seed())));
  EXPECT_EQ(*signer.Sign(c), tok);
  for (size_t pos = 10; pos < tok.size(); pos += 7) {
    EXPECT_FALSE(verifier.Verify(Tamper(tok, pos), expect, absl::Now()).ok()) << "position " << pos;
  }
}

}  // namespace
}  // namespace ossgate::provenance
