// Tests for ossgate_paseto: encodings, PASETO v4.public (against the
// published test vectors) and approval-token claim checks.
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/ed25519.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/json.h"
#include "provenance_service/token/paseto.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::token {
namespace {

std::string Unhex(std::string_view h) {
  auto v = HexDecode(h);
  EXPECT_TRUE(v.has_value()) << h;
  return v.value_or("");
}

// ---- encodings ----

TEST(EncodingTest, Base64UrlRoundTripAndStrictness) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00\x01"}) {
    auto d = Base64UrlDecode(Base64UrlEncode(s));
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("Zm9vYg==").has_value());  // padding not allowed
  EXPECT_FALSE(Base64UrlDecode("Zm9v+mFy").has_value());  // std alphabet
  EXPECT_FALSE(Base64UrlDecode("Zh").has_value());        // non-zero trailing bits
  EXPECT_FALSE(Base64UrlDecode("Z").has_value());
}

TEST(EncodingTest, Base64StdAndHex) {
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(*Base64Decode("Zm8="), "fo");
  EXPECT_FALSE(Base64Decode("Zm8").has_value());
  EXPECT_FALSE(Base64Decode("Zm=8").has_value());
  EXPECT_EQ(HexEncode("\x01\xab"), "01ab");
  EXPECT_FALSE(HexDecode("01AB").has_value());  // uppercase is not canonical
  EXPECT_FALSE(HexDecode("0").has_value());
}

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256Hasher h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(HexEncode(h.Finish()), Sha256Hex("abc"));
  EXPECT_TRUE(IsSha256Hex(Sha256Hex("x")));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'A')));
  EXPECT_FALSE(IsSha256Hex(std::string(63, 'a')));
}

// ---- JSON ----

TEST(JsonTest, ParsesAndRejects) {
  auto v = json::Parse(R"({"a":"x\u00e9\ud83d\ude00","b":12,"c":[true,null]})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->Find("a")->text(), "x\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(*v->Find("b")->AsUint64(), 12u);
  EXPECT_FALSE(json::Parse(R"({"a":1,"a":2})").ok());    // duplicate key
  EXPECT_FALSE(json::Parse(R"({"a":"\ud800"})").ok());   // lone surrogate
  EXPECT_FALSE(json::Parse("{\"a\":\"\xff\"}").ok());    // invalid UTF-8
  EXPECT_FALSE(json::Parse(R"({"a":1} x)").ok());        // trailing data
  EXPECT_FALSE(json::Parse("[[[[[[[[[[[[1]]]]]]]]]]]]").ok());  // too deep
  EXPECT_FALSE(json::Parse(R"({"a":01})").ok());
  EXPECT_FALSE(json::Parse(R"({"a":"x)").ok());
  EXPECT_FALSE(json::Parse("").ok());
  EXPECT_FALSE(v->Find("b")->AsUint64() == std::nullopt);
  EXPECT_FALSE(json::Parse(R"({"b":-1})")->Find("b")->AsUint64().has_value());
}

TEST(JsonTest, WriterQuotes) {
  EXPECT_EQ(json::ObjectWriter().String("k", "a\"b\\c\n").Uint("n", 7).Finish(),
            R"({"k":"a\"b\\c\u000a","n":7})");
}

// ---- PASETO v4.public ----
// PAE examples and test vectors 4-S-1..3 from paseto-standard/paseto-spec
// (docs/01-Protocol-Versions/Common.md) and paseto-standard/test-vectors
// (v4.json).

TEST(PasetoTest, PaeMatchesSpecExamples) {
  EXPECT_EQ(paseto::Pae({}), std::string(8, '\0'));
  EXPECT_EQ(paseto::Pae({""}), std::string("\x01\0\0\0\0\0\0\0", 8) + std::string(8, '\0'));
  EXPECT_EQ(paseto::Pae({"test"}),
            std::string("\x01\0\0\0\0\0\0\0\x04\0\0\0\0\0\0\0test", 20));
}

struct Vector {
  const char* name;
  const char* footer;
  const char* implicit;
  const char* token;
};

constexpr char kVectorSeed[] = "b4cbfb43df4ce210727d953e4a713307fa19bb7d9f85041438d9e11b942a3774";
constexpr char kVectorPublic[] = "1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2";
constexpr char kVectorPayload[] =
    R"({"data":"this is a signed message","exp":"2022-01-01T00:00:00+00:00"})";
constexpr char kVectorFooter[] = R"({"kid":"zVhMiPBP9fRf2snEcT7gFTioeA9COcNy9DfgL1W60haN"})";

const Vector kVectors[] = {
    {"4-S-1", "", "",
     "v4.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIiwiZXhwIjoiMjAyMi0wMS0wMVQwMDowMDowMCswMDowMCJ9bg_XBBzds8lTZShVlwwKSgeKpLT3yukTw6JUz3W4h_ExsQV-P0V54zemZDcAxFaSeef1QlXEFtkqxT1ciiQEDA"},
    {"4-S-2", kVectorFooter, "",
     "v4.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIiwiZXhwIjoiMjAyMi0wMS0wMVQwMDowMDowMCswMDowMCJ9v3Jt8mx_TdM2ceTGoqwrh4yDFn0XsHvvV_D0DtwQxVrJEBMl0F2caAdgnpKlt4p7xBnx1HcO-SPo8FPp214HDw.eyJraWQiOiJ6VmhNaVBCUDlmUmYyc25FY1Q3Z0ZUaW9lQTlDT2NOeTlEZmdMMVc2MGhhTiJ9"},
    {"4-S-3", kVectorFooter, R"({"test-vector":"4-S-3"})",
     "v4.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIiwiZXhwIjoiMjAyMi0wMS0wMVQwMDowMDowMCswMDowMCJ9NPWciuD3d0o5eXJXG5pJy-DiVEoyPYWs1YSTwWHNJq6DZD3je5gf-0M4JR9ipdUSJbIovzmBECeaWmaqcaP0DQ.eyJraWQiOiJ6VmhNaVBCUDlmUmYyc25FY1Q3Z0ZUaW9lQTlDT2NOeTlEZmdMMVc2MGhhTiJ9"},
};

TEST(PasetoTest, SignsAndVerifiesPublishedVectors) {
  auto sk = Ed25519PrivateKey::FromSeed(Unhex(kVectorSeed));
  ASSERT_TRUE(sk.ok());
  EXPECT_EQ(HexEncode(sk->public_key().raw()), kVectorPublic);
  for (const Vector& v : kVectors) {
    SCOPED_TRACE(v.name);
    EXPECT_EQ(paseto::SignV4Public(*sk, kVectorPayload, v.footer, v.implicit), v.token);
    auto ok = paseto::VerifyV4Public(sk->public_key(), v.token, v.implicit);
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_EQ(ok->payload, kVectorPayload);
    EXPECT_EQ(ok->footer, v.footer);
    // Wrong implicit assertion.
    EXPECT_FALSE(paseto::VerifyV4Public(sk->public_key(), v.token, "other").ok());
  }
}

TEST(PasetoTest, PemKeysMatchVector) {
  auto sk = Ed25519PrivateKey::FromPem(
      "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEILTL+0PfTOIQcn2VPkpxMwf6Gbt9n4UEFDjZ4RuUKjd0\n"
      "-----END PRIVATE KEY-----\n");
  ASSERT_TRUE(sk.ok()) << sk.status();
  EXPECT_EQ(HexEncode(sk->Seed()), kVectorSeed);
  auto pk = Ed25519PublicKey::FromPem(sk->public_key().ToPem());
  ASSERT_TRUE(pk.ok());
  EXPECT_EQ(HexEncode(pk->raw()), kVectorPublic);
  auto again = Ed25519PrivateKey::FromPem(sk->ToPem());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->Seed(), sk->Seed());
  EXPECT_FALSE(Ed25519PrivateKey::FromPem("garbage").ok());
}

TEST(PasetoTest, RejectsMalformedTokens) {
  auto sk = Ed25519PrivateKey::FromSeed(Unhex(kVectorSeed));
  const auto& pk = sk->public_key();
  EXPECT_FALSE(paseto::VerifyV4Public(pk, "v4.local.AAAA", "").ok());
  EXPECT_FALSE(paseto::VerifyV4Public(pk, "v3.public.AAAA", "").ok());
  EXPECT_FALSE(paseto::VerifyV4Public(pk, "v4.public.", "").ok());
  EXPECT_FALSE(paseto::VerifyV4Public(pk, "v4.public.AAAA", "").ok());
  EXPECT_FALSE(paseto::VerifyV4Public(pk, std::string(kVectors[1].token) + ".x", "").ok());
  EXPECT_FALSE(paseto::VerifyV4Public(pk, std::string(kVectors[0].token) + ".", "").ok());
  EXPECT_FALSE(paseto::VerifyV4Public(pk, std::string(20000, 'A'), "").ok());
}

// ---- approval tokens ----

class ApprovalTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = Ed25519PrivateKey::Generate();
    ASSERT_TRUE(k.ok());
    key_ = std::make_shared<const Ed25519PrivateKey>(*std::move(k));
    signer_ = std::make_unique<ApprovalTokenSigner>(key_);
    verifier_.AddKey(*Ed25519PublicKey::FromRaw(key_->public_key().raw()));
    claims_.issuer = "ossgate-provenance";
    claims_.worker_id = "worker-1";
    claims_.token_id = "0123456789abcdef0123456789abcdef";
    claims_.model_sha256 = Sha256Hex("model");
    claims_.model_size = 5;
    claims_.source_uri = "hf://openai/gpt-oss-20b/model.gguf";
    claims_.model_name = "gpt-oss-20b";
    claims_.model_family = "gpt-oss";
    claims_.policy_version = 3;
    claims_.log_index = 42;
    claims_.log_origin = "ossgate.local/provenance";
    claims_.issued_at = now_;
    claims_.not_before = now_;
    claims_.expires_at = now_ + absl::Minutes(5);
    expect_.worker_id = "worker-1";
    expect_.issuer = "ossgate-provenance";
    expect_.model_sha256 = claims_.model_sha256;
    expect_.model_size = 5;
  }

  std::string Token() {
    auto t = signer_->Sign(claims_);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.value_or("");
  }

  const absl::Time now_ = absl::FromUnixSeconds(1764136800);  // 2025-11-26T06:00:00Z
  std::shared_ptr<const Ed25519PrivateKey> key_;
  std::unique_ptr<ApprovalTokenSigner> signer_;
  ApprovalTokenVerifier verifier_;
  ApprovalClaims claims_;
  ApprovalExpectations expect_;
};

TEST_F(ApprovalTokenTest, RoundTrip) {
  auto c = verifier_.Verify(Token(), expect_, now_ + absl::Seconds(10));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->key_id, signer_->key_id());
  EXPECT_EQ(c->log_index, 42u);
  EXPECT_EQ(c->policy_version, 3u);
  EXPECT_EQ(c->model_size, 5u);
  EXPECT_EQ(c->expires_at, now_ + absl::Minutes(5));
  EXPECT_EQ(c->source_uri, claims_.source_uri);
  EXPECT_EQ(c->model_family, "gpt-oss");
  EXPECT_FALSE(c->model_family_implied);
  EXPECT_EQ(signer_->key_id().size(), 16u);
}

// Signs `payload` as the service would (footer kid, worker id as implicit
// assertion) but with a payload the signer would not write.
std::string SignRaw(const Ed25519PrivateKey& key, const std::string& kid, const std::string& payload,
                    const std::string& worker_id) {
  return paseto::SignV4Public(key, payload, json::ObjectWriter().String("kid", kid).Finish(), worker_id);
}

TEST_F(ApprovalTokenTest, FamilyClaimRoundTripsForEachFamily) {
  for (const char* family : {"gpt-oss", "qwen2", "phi3"}) {
    claims_.model_family = family;
    const std::string t = Token();
    // In the payload as a claim of its own, between model_name and policy_version.
    const std::string payload = *Base64UrlDecode(t.substr(10, t.find('.', 10) - 10));
    EXPECT_NE(payload.find(absl::StrCat("\"model_name\":\"gpt-oss-20b\",\"model_family\":\"", family,
                                        "\",\"policy_version\"")),
              std::string::npos)
        << payload;
    auto c = verifier_.Verify(t, expect_, now_);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->model_family, family);
    EXPECT_FALSE(c->model_family_implied);
  }
}

TEST_F(ApprovalTokenTest, TokenWithoutFamilyClaimReadsAsGptOss) {
  // What a service older than families signed: the same claims, no family.
  claims_.key_id = signer_->key_id();
  claims_.model_family.clear();
  const std::string payload = EncodeApprovalClaims(claims_);
  ASSERT_EQ(payload.find("model_family"), std::string::npos) << payload;
  auto c = verifier_.Verify(SignRaw(*key_, signer_->key_id(), payload, "worker-1"), expect_, now_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_family, kLegacyModelFamily);
  EXPECT_EQ(c->model_family, "gpt-oss");
  EXPECT_TRUE(c->model_family_implied);
}

TEST(PreviousVersionTokenTest, TokenIssuedBeforeFamiliesVerifiesAsGptOss) {
  // Issued by the provenance service of the version before families
  // (tests/provenance/fixtures/schema_v1: the approval of record 16).
  const std::string dir = std::string(OSSGATE_SOURCE_DIR) + "/tests/provenance/fixtures/schema_v1/";
  auto text = ReadSmallFile(dir + "token.txt", 4096);
  ASSERT_TRUE(text.ok()) << text.status();
  auto key = Ed25519PublicKey::LoadPemFile(dir + "token.pub.pem");
  ASSERT_TRUE(key.ok()) << key.status();
  ApprovalTokenVerifier verifier;
  verifier.AddKey(*std::move(key));
  ApprovalExpectations expect;
  expect.worker_id = "w1";
  expect.model_sha256 = Sha256Hex("previous-version gpt-oss model");
  expect.model_size = 30;
  // Judged at the time it was valid (issued 2026-12-07T05:38:32Z for 5 minutes).
  auto c = verifier.Verify(*text, expect, *ParseTokenTime("2026-12-07T05:39:00Z"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_family, "gpt-oss");
  EXPECT_TRUE(c->model_family_implied);
  EXPECT_EQ(c->log_index, 16u);
}

TEST_F(ApprovalTokenTest, FamilyClaimThatIsNoFamilyIsInvalidEvenWhenSigned) {
  // Signed with the pinned key, so only the claim's form can be wrong.
  claims_.key_id = signer_->key_id();
  claims_.model_family = "qwen2";
  const std::string good = EncodeApprovalClaims(claims_);
  const std::string field = "\"model_family\":\"qwen2\"";
  ASSERT_NE(good.find(field), std::string::npos);
  for (const std::string& bad : {std::string("\"model_family\":\"\""), std::string("\"model_family\":\"Qwen2\""),
                                 std::string("\"model_family\":\"qwen 2\""), std::string("\"model_family\":2"),
                                 std::string("\"model_family\":null"), std::string("\"model_family\":\"-qwen2\"")}) {
    std::string payload = good;
    payload.replace(payload.find(field), field.size(), bad);
    auto c = verifier_.Verify(SignRaw(*key_, signer_->key_id(), payload, "worker-1"), expect_, now_);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << bad << ": " << c.status();
    EXPECT_NE(c.status().message().find("model_family"), std::string::npos) << c.status();
  }
}

TEST_F(ApprovalTokenTest, FamilyClaimCannotBeChangedOrRemovedAfterSigning) {
  claims_.model_family = "qwen2";
  const std::string t = Token();
  const std::string body = *Base64UrlDecode(t.substr(10, t.find('.', 10) - 10));
  const std::string sig = body.substr(body.size() - 64);
  const std::string rest = t.substr(t.find('.', 10));
  ApprovalClaims altered = claims_;
  altered.key_id = signer_->key_id();
  // Relabelled as gpt-oss, and stripped (which would read as gpt-oss).
  for (const char* family : {"gpt-oss", ""}) {
    altered.model_family = family;
    const std::string forged = absl::StrCat("v4.public.", Base64UrlEncode(EncodeApprovalClaims(altered) + sig), rest);
    auto c = verifier_.Verify(forged, expect_, now_);
    ASSERT_FALSE(c.ok()) << family;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated) << c.status();
  }
}

TEST_F(ApprovalTokenTest, ExpiredWithinAndBeyondLeeway) {
  std::string t = Token();
  EXPECT_TRUE(verifier_.Verify(t, expect_, now_ + absl::Minutes(5) + absl::Seconds(29)).ok());
  auto late = verifier_.Verify(t, expect_, now_ + absl::Minutes(5) + absl::Seconds(30));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ApprovalTokenTest, NotYetValid) {
  claims_.not_before = now_ + absl::Minutes(2);
  auto r = verifier_.Verify(Token(), expect_, now_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  claims_.not_before = now_;
  claims_.issued_at = now_ + absl::Minutes(1);
  EXPECT_EQ(verifier_.Verify(Token(), expect_, now_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ApprovalTokenTest, LifetimeAboveMaximum) {
  claims_.expires_at = now_ + absl::Hours(2);
  EXPECT_EQ(verifier_.Verify(Token(), expect_, now_).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(ApprovalTokenTest, WrongAudience) {
  std::string t = Token();
  ApprovalExpectations other = expect_;
  other.worker_id = "worker-2";
  auto r = verifier_.Verify(t, other, now_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
}

TEST_F(ApprovalTokenTest, WrongKey) {
  std::string t = Token();
  ApprovalTokenVerifier other;
  other.AddKey(*Ed25519PublicKey::FromRaw(Ed25519PrivateKey::Generate()->public_key().raw()));
  EXPECT_EQ(other.Verify(t, expect_, now_).status().code(), absl::StatusCode::kUnauthenticated);
  // A forged token signed by another key but claiming our key id.
  auto attacker = Ed25519PrivateKey::Generate();
  std::string forged = paseto::SignV4Public(
      *attacker, EncodeApprovalClaims([&] {
        ApprovalClaims c = claims_;
        c.key_id = signer_->key_id();
        return c;
      }()),
      json::ObjectWriter().String("kid", signer_->key_id()).Finish(), expect_.worker_id);
  EXPECT_EQ(verifier_.Verify(forged, expect_, now_).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(ApprovalTokenTest, AlteredClaimsKeepOldSignature) {
  std::string t = Token();
  // Re-encode the payload with another hash but keep the original signature.
  std::string body = *Base64UrlDecode(t.substr(10, t.find('.', 10) - 10));
  std::string sig = body.substr(body.size() - 64);
  ApprovalClaims altered = claims_;
  altered.key_id = signer_->key_id();
  altered.model_sha256 = Sha256Hex("evil");
  altered.issued_at = absl::FromUnixSeconds(absl::ToUnixSeconds(altered.issued_at));
  std::string forged = absl::StrCat("v4.public.", Base64UrlEncode(EncodeApprovalClaims(altered) + sig),
                                    t.substr(t.find('.', 10)));
  EXPECT_EQ(verifier_.Verify(forged, expect_, now_).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(ApprovalTokenTest, EveryTamperedCharacterIsRejected) {
  std::string t = Token();
  for (size_t i = 0; i < t.size(); ++i) {
    std::string bad = t;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(verifier_.Verify(bad, expect_, now_).ok()) << "position " << i;
  }
  EXPECT_FALSE(verifier_.Verify(t.substr(0, t.size() - 1), expect_, now_).ok());
}

TEST_F(ApprovalTokenTest, WrongModelOrIssuer) {
  std::string t = Token();
  ApprovalExpectations e = expect_;
  e.model_sha256 = Sha256Hex("other");
  EXPECT_EQ(verifier_.Verify(t, e, now_).status().code(), absl::StatusCode::kUnauthenticated);
  e = expect_;
  e.model_size = 6;
  EXPECT_EQ(verifier_.Verify(t, e, now_).status().code(), absl::StatusCode::kUnauthenticated);
  e = expect_;
  e.issuer = "someone-else";
  EXPECT_EQ(verifier_.Verify(t, e, now_).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(ApprovalTokenTest, SignerRejectsIncompleteClaims) {
  claims_.model_sha256 = "ABC";
  EXPECT_FALSE(signer_->Sign(claims_).ok());
  SetUp();
  claims_.worker_id.clear();
  EXPECT_FALSE(signer_->Sign(claims_).ok());
  SetUp();
  claims_.expires_at = claims_.issued_at;
  EXPECT_FALSE(signer_->Sign(claims_).ok());
  // A family is required and must have the form of one.
  for (const char* family : {"", "GPT-OSS", "gpt oss", ".qwen2"}) {
    SetUp();
    claims_.model_family = family;
    auto t = signer_->Sign(claims_);
    ASSERT_FALSE(t.ok()) << family;
    EXPECT_NE(t.status().message().find("model_family"), std::string::npos) << t.status();
  }
}

TEST(ModelFamilyTest, Form) {
  for (const char* ok : {"gpt-oss", "qwen2", "phi3", "llama", "qwen2moe", "command-r", "a", "x.y_z"}) {
    EXPECT_TRUE(IsModelFamily(ok)) << ok;
  }
  for (const char* bad : {"", "Qwen2", "-qwen", ".x", "qwen 2", "qwen/2", "qwen2\n", "\xc3\xa9"}) {
    EXPECT_FALSE(IsModelFamily(bad)) << bad;
  }
  EXPECT_TRUE(IsModelFamily(std::string(64, 'a')));
  EXPECT_FALSE(IsModelFamily(std::string(65, 'a')));
}

TEST(TokenTimeTest, ParsesRfc3339Forms) {
  EXPECT_EQ(*ParseTokenTime("2022-01-01T00:00:00Z"), absl::FromUnixSeconds(1640995200));
  EXPECT_EQ(*ParseTokenTime("2022-01-01T00:00:00+00:00"), absl::FromUnixSeconds(1640995200));
  EXPECT_EQ(*ParseTokenTime("2022-01-01T01:00:00.500+01:00"),
            absl::FromUnixSeconds(1640995200) + absl::Milliseconds(500));
  EXPECT_FALSE(ParseTokenTime("2022-01-01").ok());
  EXPECT_FALSE(ParseTokenTime("yesterday at noon, roughly").ok());
  EXPECT_EQ(FormatTokenTime(absl::FromUnixSeconds(1640995200)), "2022-01-01T00:00:00Z");
}

}  // namespace
}  // namespace ossgate::token
