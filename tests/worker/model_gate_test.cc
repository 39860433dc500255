// The worker's provenance gate (LoadVerifiedModel) against a fake
// ProvenanceClient whose approval tokens are signed in the test with the real
// token code. One failure mode per test: every way the token or the verdict
// can be wrong must keep the model bytes out of the caller's hands, with the
// status code the header documents.
#include "inference_worker/worker/model_gate.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_file.h"
#include "inference_worker/worker/grpc_provenance_client.h"
#include "inference_worker/worker/tls_probe.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/ed25519.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/json.h"
#include "provenance_service/token/paseto.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::worker {
namespace {

constexpr char kWorkerId[] = "worker-7";
constexpr char kIssuer[] = "ossgate-provenance";
constexpr char kSource[] = "ossgate://bundled/gate-test.gguf";

// A file under a fresh temporary directory, removed with it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl = absl::StrCat(base ? base : "/tmp", "/model_gate_test_XXXXXX");
    path_ = mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Write(const std::string& name, const std::string& content) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Plays the provenance service: answers from a script of statuses, then signs
// an approval for whatever the worker described (or what `tweak` makes of it).
class FakeProvenance final : public ProvenanceClient {
 public:
  explicit FakeProvenance(const token::ApprovalTokenSigner* signer) : signer_(signer) {}

  absl::StatusOr<Verdict> VerifyModel(const VerifyRequest& request) override {
    requests.push_back(request);
    if (on_call) on_call(request);
    if (!failures.empty()) {
      absl::Status s = failures.front();
      if (failures.size() > 1 || !repeat_last_failure) failures.pop_front();
      return s;
    }
    if (!verdict_override.approval_token.empty() || !verdict_override.reason.empty()) return verdict_override;
    token::ApprovalClaims c;
    c.issuer = kIssuer;
    c.worker_id = request.worker_id;
    c.token_id = "0123456789abcdef0123456789abcdef";
    c.model_sha256 = request.sha256;
    c.model_size = request.size;
    c.source_uri = request.source_uri;
    c.model_name = request.name;
    c.model_family = "gpt-oss";
    c.policy_version = 3;
    c.log_index = 41;
    c.log_origin = "gate.test/provenance";
    c.issued_at = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
    c.not_before = c.issued_at;
    c.expires_at = c.issued_at + absl::Minutes(5);
    if (tweak) tweak(c);
    auto signed_token = signer_->Sign(c);
    if (!signed_token.ok()) return signed_token.status();
    Verdict v;
    v.verified = true;
    v.reason = "REASON_VERIFIED";
    v.approval_token = *signed_token;
    v.log_index = c.log_index;
    v.matched_source = "ossgate://bundled";
    if (mangle_token) mangle_token(v.approval_token);
    return v;
  }

  std::vector<VerifyRequest> requests;
  std::deque<absl::Status> failures;   // returned first, one per call
  bool repeat_last_failure = false;    // keep returning the last failure
  Verdict verdict_override;            // returned as is when set
  std::function<void(token::ApprovalClaims&)> tweak;
  std::function<void(std::string&)> mangle_token;
  std::function<void(const VerifyRequest&)> on_call;

 private:
  const token::ApprovalTokenSigner* signer_;
};

class ModelGateTest : public ::testing::Test {
 protected:
  ModelGateTest()
      : key_(std::make_shared<token::Ed25519PrivateKey>(*token::Ed25519PrivateKey::Generate())),
        signer_(key_),
        fake_(&signer_) {
    content_ = "GGUF fake model bytes for the gate test \x01\x02\x03";
    config_.model_path = dir_.Write("model.gguf", content_);
    config_.model_name = "gate-test";
    config_.source_uri = kSource;
    config_.worker_id = kWorkerId;
    config_.issuer = kIssuer;
    config_.pinned_keys = {signer_.public_key().raw()};
    config_.verify_deadline = absl::Seconds(2);
    config_.initial_backoff = absl::Milliseconds(10);
  }

  absl::StatusOr<VerifiedModel> Run() {
    return LoadVerifiedModel(config_, fake_, [this](const std::string& line) { log_.push_back(line); });
  }

  TempDir dir_;
  std::shared_ptr<const token::Ed25519PrivateKey> key_;
  token::ApprovalTokenSigner signer_;
  FakeProvenance fake_;
  std::string content_;
  GateConfig config_;
  std::vector<std::string> log_;
};

std::string BytesOf(const VerifiedModel& vm) {
  return std::string(reinterpret_cast<const char*>(vm.bytes.bytes().data()), vm.bytes.bytes().size());
}

TEST_F(ModelGateTest, ApprovedModelYieldsBytesAndClaims) {
  auto vm = Run();
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ(BytesOf(*vm), content_);
  EXPECT_EQ(vm->bytes.sha256(), token::Sha256Hex(content_));
  EXPECT_EQ(vm->claims.model_sha256, token::Sha256Hex(content_));
  EXPECT_EQ(vm->claims.model_size, content_.size());
  EXPECT_EQ(vm->claims.worker_id, kWorkerId);
  EXPECT_EQ(vm->claims.log_index, 41u);
  EXPECT_EQ(vm->claims.key_id, signer_.key_id());
  EXPECT_EQ(vm->matched_source, "ossgate://bundled");
  EXPECT_FALSE(vm->approval_token.empty());
  // The service was asked about exactly this file, once.
  ASSERT_EQ(fake_.requests.size(), 1u);
  const VerifyRequest& r = fake_.requests[0];
  EXPECT_EQ(r.sha256, token::Sha256Hex(content_));
  EXPECT_EQ(r.size, content_.size());
  EXPECT_EQ(r.worker_id, kWorkerId);
  EXPECT_EQ(r.source_uri, kSource);
  EXPECT_EQ(r.name, "gate-test");
}

TEST_F(ModelGateTest, TokenForAnotherWorkerIsUnauthenticated) {
  fake_.tweak = [](token::ApprovalClaims& c) { c.worker_id = "worker-8"; };
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
}

TEST_F(ModelGateTest, TamperedTokenIsUnauthenticated) {
  // Flip one character in the middle of the signed body (payload || signature),
  // which is base64url: every character carries 6 bits of it.
  fake_.mangle_token = [](std::string& t) {
    const size_t body = std::string("v4.public.").size();
    const size_t end = t.find('.', body);
    ASSERT_NE(end, std::string::npos);
    char& c = t[body + (end - body) / 2];
    c = c == 'A' ? 'B' : 'A';
  };
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
}

TEST_F(ModelGateTest, TokenForADifferentHashIsUnauthenticated) {
  fake_.tweak = [](token::ApprovalClaims& c) { c.model_sha256 = token::Sha256Hex("some other model"); };
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
  EXPECT_NE(vm.status().message().find("hash"), std::string::npos) << vm.status();
}

TEST_F(ModelGateTest, TokenForADifferentSizeIsUnauthenticated) {
  fake_.tweak = [](token::ApprovalClaims& c) { c.model_size += 1; };
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
  EXPECT_NE(vm.status().message().find("size"), std::string::npos) << vm.status();
}

TEST_F(ModelGateTest, ExpiredTokenIsRejected) {
  fake_.tweak = [](token::ApprovalClaims& c) {
    c.issued_at -= absl::Minutes(10);
    c.not_before = c.issued_at;
    c.expires_at = c.issued_at + absl::Minutes(5);  // expired 5 minutes ago, beyond any leeway
  };
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
  EXPECT_NE(vm.status().message().find("expired"), std::string::npos) << vm.status();
}

TEST_F(ModelGateTest, ExpiryIsJudgedByTheInjectedClock) {
  // A fresh token, but the worker's clock says it is an hour later.
  auto vm = LoadVerifiedModel(config_, fake_, nullptr, [] { return absl::Now() + absl::Hours(1); });
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
  EXPECT_NE(vm.status().message().find("expired"), std::string::npos) << vm.status();
}

TEST_F(ModelGateTest, TokenSignedByAnUnpinnedKeyIsUnauthenticated) {
  auto other = std::make_shared<token::Ed25519PrivateKey>(*token::Ed25519PrivateKey::Generate());
  token::ApprovalTokenSigner rogue(other);
  FakeProvenance rogue_service(&rogue);
  auto vm = LoadVerifiedModel(config_, rogue_service, nullptr);
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
  // The same service with its key pinned is accepted: the key is what differs.
  config_.pinned_keys.push_back(rogue.public_key().raw());
  EXPECT_TRUE(LoadVerifiedModel(config_, rogue_service, nullptr).ok());
}

TEST_F(ModelGateTest, RejectedVerdictIsPermissionDeniedNamingTheReason) {
  fake_.verdict_override.verified = false;
  fake_.verdict_override.reason = "REASON_UNTRUSTED_SOURCE";
  fake_.verdict_override.detail = "no trusted source covers upload://x";
  fake_.verdict_override.log_index = 17;
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kPermissionDenied) << vm.status();
  EXPECT_NE(vm.status().message().find("REASON_UNTRUSTED_SOURCE"), std::string::npos) << vm.status();
  EXPECT_NE(vm.status().message().find("17"), std::string::npos) << vm.status();
}

TEST_F(ModelGateTest, RejectedVerdictWithATokenIsStillRefused) {
  // A verdict that says "no" must win even if a valid token came with it.
  auto good = signer_.Sign([&] {
    token::ApprovalClaims c;
    c.issuer = kIssuer;
    c.worker_id = kWorkerId;
    c.token_id = "0123456789abcdef0123456789abcdef";
    c.model_sha256 = token::Sha256Hex(content_);
    c.model_size = content_.size();
    c.source_uri = kSource;
    c.model_name = "gate-test";
    c.model_family = "gpt-oss";
    c.log_origin = "gate.test/provenance";
    c.issued_at = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
    c.not_before = c.issued_at;
    c.expires_at = c.issued_at + absl::Minutes(5);
    return c;
  }());
  ASSERT_TRUE(good.ok()) << good.status();
  fake_.verdict_override.verified = false;
  fake_.verdict_override.reason = "REASON_REVOKED";
  fake_.verdict_override.approval_token = *good;
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kPermissionDenied) << vm.status();
  EXPECT_NE(vm.status().message().find("REASON_REVOKED"), std::string::npos) << vm.status();
}

TEST_F(ModelGateTest, UnavailableThenOkIsRetried) {
  fake_.failures = {absl::UnavailableError("connection refused"), absl::DeadlineExceededError("slow"),
                    absl::UnavailableError("connection refused")};
  auto vm = Run();
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ(fake_.requests.size(), 4u);
  EXPECT_EQ(BytesOf(*vm), content_);
}

TEST_F(ModelGateTest, UnavailableForeverIsUnavailableAfterTheDeadline) {
  config_.verify_deadline = absl::Milliseconds(300);
  fake_.failures = {absl::UnavailableError("connection refused")};
  fake_.repeat_last_failure = true;
  const absl::Time start = absl::Now();
  auto vm = Run();
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnavailable) << vm.status();
  EXPECT_NE(vm.status().message().find("connection refused"), std::string::npos) << vm.status();
  EXPECT_GE(fake_.requests.size(), 2u);  // it did retry
  // It gave up around the deadline, not after the 10 s backoff cap or never.
  EXPECT_LT(took, absl::Seconds(5));
}

TEST_F(ModelGateTest, NonRetryableServiceErrorIsFinal) {
  fake_.failures = {absl::PermissionDeniedError("worker_id differs from the certificate identity")};
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kPermissionDenied) << vm.status();
  EXPECT_EQ(fake_.requests.size(), 1u);
}

TEST_F(ModelGateTest, SymlinkedModelPathIsRefusedBeforeAskingTheService) {
  const std::string link = dir_.path() + "/link.gguf";
  ASSERT_EQ(::symlink(config_.model_path.c_str(), link.c_str()), 0);
  config_.model_path = link;
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kPermissionDenied) << vm.status();
  EXPECT_NE(vm.status().message().find("symbolic link"), std::string::npos) << vm.status();
  EXPECT_TRUE(fake_.requests.empty());
}

TEST_F(ModelGateTest, NoPinnedKeyIsRefused) {
  config_.pinned_keys.clear();
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kFailedPrecondition) << vm.status();
  EXPECT_TRUE(fake_.requests.empty());
}

TEST_F(ModelGateTest, FileIsReadOnceAndTheHashedBytesAreReturned) {
  // The file is replaced while the service is deciding (after hashing,
  // before loading). The gate must hand out the bytes it hashed, which are
  // the bytes the token approves, never the new content.
  const std::string swapped = "EVIL replacement written after hashing, longer than the original";
  fake_.on_call = [&](const VerifyRequest&) {
    const std::string tmp = dir_.Write("replacement", swapped);
    ASSERT_EQ(std::rename(tmp.c_str(), config_.model_path.c_str()), 0);
  };
  auto vm = Run();
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ(BytesOf(*vm), content_);
  EXPECT_EQ(vm->bytes.sha256(), vm->claims.model_sha256);
  EXPECT_EQ(vm->claims.model_sha256, token::Sha256Hex(content_));
  EXPECT_EQ(vm->bytes.size(), content_.size());
  // And the file on disk did change, so a second read would have seen it.
  std::ifstream in(config_.model_path, std::ios::binary);
  std::string now((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(now, swapped);
}

// ---- model family ----

// A GGUF file whose general.architecture is `arch` (none when empty), with
// one small tensor so it looks like a model.
std::string WriteGguf(const TempDir& dir, const std::string& name, const std::string& arch) {
  gguf::GgufWriter w;
  if (!arch.empty()) w.SetString("general.architecture", arch);
  w.SetString("general.name", name);
  EXPECT_TRUE(w.AddTensor("token_embd.weight", gguf::GgmlType::kF32, {4, 2}).ok());
  const std::string path = dir.path() + "/" + name + ".gguf";
  EXPECT_TRUE(w.Begin(path).ok());
  const std::vector<uint8_t> data(4 * 2 * sizeof(float), 0);
  EXPECT_TRUE(w.WriteTensorData(data).ok());
  EXPECT_TRUE(w.Finish().ok());
  return path;
}

// What the worker does with approved bytes before binding anything to them:
// parse, then check the family.
absl::Status ParseAndCheckFamily(const VerifiedModel& vm) {
  auto file = gguf::GgufFile::Parse(vm.bytes.bytes());
  if (!file.ok()) return file.status();
  return CheckApprovedFamily(vm.claims, *file);
}

TEST_F(ModelGateTest, FileOfAnotherFamilyThanApprovedIsRefusedNamingBoth) {
  struct Case {
    const char* file_arch;
    const char* approved;
  } cases[] = {{"qwen2", "gpt-oss"}, {"gpt-oss", "qwen2"}, {"phi3", "qwen2"}, {"qwen2", "phi3"}};
  for (const Case& c : cases) {
    config_.model_path = WriteGguf(dir_, c.file_arch, c.file_arch);
    fake_.tweak = [&](token::ApprovalClaims& claims) { claims.model_family = c.approved; };
    auto vm = Run();
    ASSERT_TRUE(vm.ok()) << vm.status();  // the token is valid: it is the file that differs
    EXPECT_EQ(vm->claims.model_family, c.approved);
    const absl::Status s = ParseAndCheckFamily(*vm);
    ASSERT_FALSE(s.ok()) << c.file_arch << " approved as " << c.approved;
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
    const std::string msg(s.message());
    EXPECT_TRUE(absl::StrContains(msg, absl::StrCat("is for model family \"", c.approved, "\""))) << msg;
    EXPECT_TRUE(absl::StrContains(msg, absl::StrCat("general.architecture is \"", c.file_arch, "\""))) << msg;
    EXPECT_TRUE(absl::StrContains(msg, "model not loaded")) << msg;
    EXPECT_TRUE(absl::StrContains(msg, "audit log index 41")) << msg;
    EXPECT_TRUE(absl::StrContains(msg, absl::StrCat("--family=", c.file_arch))) << msg;
    EXPECT_TRUE(absl::StrContains(msg, vm->digest.sha256)) << msg;
  }
}

TEST_F(ModelGateTest, FileOfTheApprovedFamilyPasses) {
  for (const char* family : {"gpt-oss", "qwen2", "phi3"}) {
    config_.model_path = WriteGguf(dir_, family, family);
    fake_.tweak = [&](token::ApprovalClaims& claims) { claims.model_family = family; };
    auto vm = Run();
    ASSERT_TRUE(vm.ok()) << vm.status();
    EXPECT_TRUE(ParseAndCheckFamily(*vm).ok()) << family << ": " << ParseAndCheckFamily(*vm);
    // The log names the approved family.
    EXPECT_TRUE(std::any_of(log_.begin(), log_.end(), [&](const std::string& line) {
      return absl::StartsWith(line, "phase=verified") && absl::StrContains(line, absl::StrCat(" family=", family, " "));
    }));
  }
}

TEST_F(ModelGateTest, TokenWithoutAFamilyApprovesGptOssOnly) {
  // A token of a provenance service older than families: no family claim.
  auto legacy_token = [&](const std::string& path) {
    auto bytes = model::ReadModelFile(path);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    token::ApprovalClaims c;
    c.issuer = kIssuer;
    c.worker_id = kWorkerId;
    c.token_id = "0123456789abcdef0123456789abcdef";
    c.key_id = signer_.key_id();
    c.model_sha256 = bytes->sha256();
    c.model_size = bytes->size();
    c.source_uri = kSource;
    c.model_name = "gate-test";
    c.log_index = 12;
    c.log_origin = "gate.test/provenance";
    c.issued_at = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
    c.not_before = c.issued_at;
    c.expires_at = c.issued_at + absl::Minutes(5);
    Verdict v;
    v.verified = true;
    v.reason = "REASON_VERIFIED";
    v.approval_token = token::paseto::SignV4Public(
        *key_, token::EncodeApprovalClaims(c), token::json::ObjectWriter().String("kid", c.key_id).Finish(), kWorkerId);
    return v;
  };
  config_.model_path = WriteGguf(dir_, "old-gpt-oss", "gpt-oss");
  fake_.verdict_override = legacy_token(config_.model_path);
  auto vm = Run();
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ(vm->claims.model_family, "gpt-oss");
  EXPECT_TRUE(vm->claims.model_family_implied);
  EXPECT_TRUE(ParseAndCheckFamily(*vm).ok()) << ParseAndCheckFamily(*vm);

  config_.model_path = WriteGguf(dir_, "old-qwen2", "qwen2");
  fake_.verdict_override = legacy_token(config_.model_path);
  vm = Run();
  ASSERT_TRUE(vm.ok()) << vm.status();
  const absl::Status s = ParseAndCheckFamily(*vm);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "is for model family \"gpt-oss\" (the token names no family")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "general.architecture is \"qwen2\"")) << s;
}

TEST_F(ModelGateTest, FileWithoutArchitectureCannotBeMatchedToTheApproval) {
  config_.model_path = WriteGguf(dir_, "anonymous", "");
  auto vm = Run();
  ASSERT_TRUE(vm.ok()) << vm.status();
  const absl::Status s = ParseAndCheckFamily(*vm);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "model family \"gpt-oss\"")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "no general.architecture")) << s;
}

TEST_F(ModelGateTest, ArchitectureTextOfTheFileIsQuotedInTheRefusal) {
  config_.model_path = WriteGguf(dir_, "odd", "qwen2\nphase=verified family=gpt-oss");
  auto vm = Run();
  ASSERT_TRUE(vm.ok()) << vm.status();
  const absl::Status s = ParseAndCheckFamily(*vm);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "\"qwen2\\x0aphase=verified")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "--family=<family>")) << s;  // not a family: no command to paste
  for (char ch : std::string(s.message())) EXPECT_NE(ch, '\n');
}

// Whether `s` holds a byte that would break a log line or a terminal.
bool HasControlBytes(const std::string& s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// Replaces the token's (unauthenticated) footer.
std::function<void(std::string&)> ForgeFooter(const std::string& footer_json) {
  return [footer_json](std::string& t) {
    const size_t body = std::string("v4.public.").size();
    const size_t dot = t.find('.', body);
    ASSERT_NE(dot, std::string::npos);
    t = t.substr(0, dot) + "." + token::Base64UrlEncode(footer_json);
  };
}

TEST_F(ModelGateTest, ForgedFooterKeyIdCannotWriteALogLine) {
  // A key id that, echoed verbatim, would start a log line of its own
  // claiming the model was verified.
  fake_.mangle_token = ForgeFooter(
      "{\"kid\":\"0123\\n2025-11-26T05:45:00.000Z worker: phase=verified token_id=forged key_id=x log_index=1\"}");
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
  const std::string msg(vm.status().message());
  EXPECT_TRUE(absl::StrContains(msg, "16 lowercase hex digits")) << msg;
  EXPECT_FALSE(HasControlBytes(msg)) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "\\x0a")) << msg;  // shown escaped
  for (const std::string& line : log_) {
    EXPECT_FALSE(HasControlBytes(line)) << line;
    EXPECT_FALSE(absl::StartsWith(line, "phase=verified")) << line;
  }
}

TEST_F(ModelGateTest, FooterKeyIdOfTheWrongFormIsRefusedBeforeTheLookup) {
  // The pinned key's id, in uppercase: the same key for a case-insensitive
  // lookup, but not the form of a key id.
  std::string upper = signer_.key_id();
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_NE(upper, signer_.key_id());
  for (const std::string& kid : {upper, signer_.key_id() + "0", signer_.key_id().substr(1), std::string()}) {
    fake_.mangle_token = ForgeFooter(absl::StrCat("{\"kid\":\"", kid, "\"}"));
    auto vm = Run();
    ASSERT_FALSE(vm.ok()) << kid;
    EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
    EXPECT_TRUE(absl::StrContains(vm.status().message(), "16 lowercase hex digits")) << vm.status();
  }
  // No key id at all.
  fake_.mangle_token = ForgeFooter("{\"key\":1}");
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
  // A well-formed id that is not pinned reaches the lookup.
  fake_.mangle_token = ForgeFooter("{\"kid\":\"0123456789abcdef\"}");
  vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnauthenticated) << vm.status();
  EXPECT_TRUE(absl::StrContains(vm.status().message(), "unknown token key id 0123456789abcdef")) << vm.status();
}

TEST_F(ModelGateTest, UntrustedTextOfTheServiceIsEscapedInMessagesAndLogLines) {
  // A rejection whose detail carries a line break and a fake log line.
  fake_.verdict_override.verified = false;
  fake_.verdict_override.reason = "REASON_UNTRUSTED_SOURCE";
  fake_.verdict_override.detail = "no\r\nphase=verified token_id=forged";
  auto vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kPermissionDenied) << vm.status();
  EXPECT_FALSE(HasControlBytes(std::string(vm.status().message()))) << vm.status();
  EXPECT_TRUE(absl::StrContains(vm.status().message(), "\"no\\x0d\\x0aphase=verified")) << vm.status();

  // Retry lines and the final error quote the service's error messages.
  log_.clear();
  fake_.verdict_override = Verdict();
  config_.verify_deadline = absl::Milliseconds(100);
  fake_.failures = {absl::UnavailableError("down\nphase=verified token_id=forged")};
  fake_.repeat_last_failure = true;
  vm = Run();
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kUnavailable) << vm.status();
  EXPECT_FALSE(HasControlBytes(std::string(vm.status().message()))) << vm.status();
  for (const std::string& line : log_) EXPECT_FALSE(HasControlBytes(line)) << line;
}

TEST_F(ModelGateTest, PhaseHookSeesHashingThenEachVerifyAttempt) {
  fake_.failures = {absl::UnavailableError("connection refused")};
  std::vector<std::string> phases;
  config_.phase_hook = [&](absl::string_view phase) {
    phases.emplace_back(phase);
    // By "verifying" the file has been read, and the call comes after.
    if (phase == "verifying") {
      EXPECT_EQ(fake_.requests.size(), phases.size() - 2);
    }
  };
  auto vm = Run();
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ(phases, (std::vector<std::string>{"hashing", "verifying", "verifying"}));
}

// A file rewritten in place while it is read (another process writing into
// the same inode) is refused, whether or not its modification time is put
// back; an untouched file reads with its hash. The rewrite happens in the
// progress callback, which runs once the last byte was read and hashed.
void Rewrite(const std::string& path, off_t at, bool keep_mtime) {
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "X", 1, at), 1);
  ::close(fd);
  if (keep_mtime) {
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  }
}

// An old modification time, so a write now moves it even on a coarse clock.
void Age(const std::string& path) {
  const struct timespec times[2] = {{1700000000, 0}, {1700000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

TEST(ReadModelFileTest, FileRewrittenInPlaceWhileReadIsRefused) {
  TempDir dir;
  struct Case {
    size_t size;
    off_t at;
    bool keep_mtime;
  } cases[] = {
      {300000, 250001, false},  // the modification time moved
      {100000, 77777, true},    // time put back: the second read (whole, for a small file) differs
      {300000, 0, true},        // time put back: the first sample differs
  };
  for (const Case& c : cases) {
    const std::string path = dir.Write("rewritten.gguf", std::string(c.size, 'a'));
    Age(path);
    bool rewritten = false;
    auto bytes = model::ReadModelFile(path, uint64_t{1} << 40, [&](const model::ReadProgress& p) {
      if (p.bytes_done == p.bytes_total && !rewritten) {
        Rewrite(path, c.at, c.keep_mtime);
        rewritten = true;
      }
    });
    ASSERT_TRUE(rewritten);
    ASSERT_FALSE(bytes.ok()) << "size " << c.size << " at " << c.at;
    EXPECT_EQ(bytes.status().code(), absl::StatusCode::kDataLoss) << bytes.status();
    EXPECT_TRUE(absl::StrContains(bytes.status().message(), "changed while it was read")) << bytes.status();
    EXPECT_TRUE(absl::StrContains(bytes.status().message(), path)) << bytes.status();
  }
  const std::string content(300000, 'b');
  const std::string path = dir.Write("untouched.gguf", content);
  Age(path);
  auto bytes = model::ReadModelFile(path);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->sha256(), token::Sha256Hex(content));
}

// A sink that takes the bytes in buffers of its own size (smaller than the
// reader asks for), copies them out on Commit, and can fail on a chosen call.
class RecordingSink : public model::ModelSink {
 public:
  explicit RecordingSink(size_t buffer_bytes, int fail_commit = -1, int outstanding = 1)
      : buffers_{std::vector<uint8_t>(buffer_bytes), std::vector<uint8_t>(buffer_bytes)},
        fail_commit_(fail_commit),
        outstanding_(outstanding) {}
  int MaxOutstanding() const override { return outstanding_; }
  absl::Status Begin(uint64_t size) override {
    size_ = size;
    ++begins;
    return absl::OkStatus();
  }
  absl::StatusOr<std::span<uint8_t>> Next(uint64_t offset, uint64_t max) override {
    // The next buffer starts where the ones lent so far end.
    EXPECT_EQ(offset, lent_end_ > 0 ? lent_end_ : received.size());
    asked_max = std::max(asked_max, max);
    ++nexts_;
    most_outstanding = std::max(most_outstanding, nexts_ - commits);
    EXPECT_LE(nexts_ - commits, outstanding_);
    std::vector<uint8_t>& b = buffers_[(nexts_ - 1) % 2];
    const uint64_t n = std::min<uint64_t>(max, b.size());
    lent_end_ = offset + n;
    return std::span<uint8_t>(b.data(), n);
  }
  absl::Status Commit(uint64_t offset, uint64_t n) override {
    EXPECT_EQ(offset, received.size());
    if (commits++ == fail_commit_) return absl::ResourceExhaustedError("sink full");
    received.append(reinterpret_cast<const char*>(buffers_[(commits - 1) % 2].data()), n);
    return absl::OkStatus();
  }
  absl::Status Finish() override {
    EXPECT_EQ(received.size(), size_);
    ++finishes;
    return absl::OkStatus();
  }
  std::string received;
  uint64_t asked_max = 0;
  int begins = 0, commits = 0, finishes = 0, most_outstanding = 0;

 private:
  std::vector<uint8_t> buffers_[2];
  uint64_t size_ = 0;
  uint64_t lent_end_ = 0;
  int nexts_ = 0;
  int fail_commit_;
  int outstanding_;
};

TEST(StreamModelFileTest, EveryByteReachesTheSinkInOrderAndIsHashed) {
  TempDir dir;
  std::string content(1000003, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 2654435761u) >> 13);
  const std::string path = dir.Write("streamed.gguf", content);
  // One buffer at a time, and two (the next chunk read while one is hashed).
  for (int outstanding : {1, 2}) {
    RecordingSink sink(/*buffer_bytes=*/70000, /*fail_commit=*/-1, outstanding);
    auto digest = model::StreamModelFile(path, uint64_t{1} << 40, sink, nullptr, /*chunk_bytes=*/100000);
    ASSERT_TRUE(digest.ok()) << digest.status();
    EXPECT_EQ(sink.received, content);
    EXPECT_EQ(digest->sha256, token::Sha256Hex(content));
    EXPECT_EQ(digest->size, content.size());
    EXPECT_EQ(digest->path, path);
    EXPECT_EQ(sink.asked_max, 100000u);
    EXPECT_EQ(sink.commits, (1000003 + 69999) / 70000);
    EXPECT_EQ(sink.most_outstanding, outstanding);
    EXPECT_EQ(sink.begins, 1);
    EXPECT_EQ(sink.finishes, 1);
  }
}

TEST(StreamModelFileTest, ASinkErrorStopsTheReadAndIsReturned) {
  TempDir dir;
  const std::string path = dir.Write("streamed.gguf", std::string(500000, 'x'));
  for (int outstanding : {1, 2}) {
    RecordingSink sink(/*buffer_bytes=*/100000, /*fail_commit=*/2, outstanding);
    auto digest = model::StreamModelFile(path, uint64_t{1} << 40, sink);
    ASSERT_FALSE(digest.ok());
    EXPECT_EQ(digest.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(sink.received.size(), 200000u);
    EXPECT_EQ(sink.finishes, 0);
  }
}

TEST(StreamModelFileTest, ARewriteIsCaughtWhateverTheSinkKept) {
  // The sink keeps nothing (like the device sink, whose bytes are not on the
  // host), yet the sampled second read still compares with what was hashed.
  TempDir dir;
  const std::string path = dir.Write("rewritten.gguf", std::string(300000, 'a'));
  Age(path);
  class Forgetful : public model::ModelSink {
   public:
    absl::Status Begin(uint64_t) override { return absl::OkStatus(); }
    absl::StatusOr<std::span<uint8_t>> Next(uint64_t, uint64_t max) override {
      buf_.assign(max, 0);
      return std::span<uint8_t>(buf_);
    }
    absl::Status Commit(uint64_t, uint64_t) override {
      std::fill(buf_.begin(), buf_.end(), 0);  // gone from the host
      return absl::OkStatus();
    }
    absl::Status Finish() override { return absl::OkStatus(); }

   private:
    std::vector<uint8_t> buf_;
  } sink;
  bool rewritten = false;
  auto digest = model::StreamModelFile(path, uint64_t{1} << 40, sink, [&](const model::ReadProgress& p) {
    if (p.bytes_done == p.bytes_total && !rewritten) {
      Rewrite(path, 0, /*keep_mtime=*/true);
      rewritten = true;
    }
  });
  ASSERT_TRUE(rewritten);
  ASSERT_FALSE(digest.ok());
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kDataLoss) << digest.status();
  // Untouched, the same forgetful sink passes: the samples were kept by the reader.
  const std::string path2 = dir.Write("untouched.gguf", std::string(300000, 'a'));
  Age(path2);
  auto ok = model::StreamModelFile(path2, uint64_t{1} << 40, sink);
  ASSERT_TRUE(ok.ok()) << ok.status();
}

TEST(PeakResidentBytesTest, GrowsWithMemoryTheProcessTouches) {
  const int64_t before = model::PeakResidentBytes();
  ASSERT_GT(before, 0);
  const size_t n = size_t{96} << 20;
  std::vector<uint8_t> touched(n);
  for (size_t i = 0; i < n; i += 4096) touched[i] = static_cast<uint8_t>(i / 4096 % 255 + 1);
  const int64_t after = model::PeakResidentBytes();
  // A peak: never lower, and at least the 96 MiB now resident (in bytes, not KiB).
  EXPECT_GE(after, before);
  EXPECT_GE(after, static_cast<int64_t>(n)) << before << " -> " << after;
  EXPECT_LT(after, int64_t{64} << 30);
  EXPECT_GT(touched[4096], 0);  // keeps the writes
}

TEST(TlsVerificationFailureTest, NamesCertificateFailuresOnly) {
  // Messages as gRPC (with OpenSSL) reports them.
  EXPECT_TRUE(TlsVerificationFailure(
                  "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:4000: Ssl handshake "
                  "failed: SSL_ERROR_SSL: error:0A000086:SSL routines::certificate verify failed")
                  .has_value());
  EXPECT_TRUE(
      TlsVerificationFailure("... SSL_ERROR_SSL: error:0A000418:SSL routines::tlsv1 alert unknown ca").has_value());
  EXPECT_TRUE(TlsVerificationFailure("Peer name prov.example is not in peer certificate").has_value());
  // A service that is down or restarting is worth retrying.
  EXPECT_FALSE(TlsVerificationFailure("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:4000: "
                                      "Failed to connect to remote host: Connection refused")
                   .has_value());
  EXPECT_FALSE(TlsVerificationFailure("Socket closed").has_value());
}

}  // namespace
}  // namespace ossgate::worker
