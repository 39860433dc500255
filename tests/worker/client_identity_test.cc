// Client identities of the InferenceService (client_identity.h): what a
// certificate must carry to be served, and how a refusal names the
// certificate. The PEM below was made once with (one command line)
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 36500
//     -subj "/O=ossgate/CN=client:alice" -addext
//     "subjectAltName=URI:spiffe://ossgate/role/client/alice,URI:https://example.com/x,DNS:alice.example"
// and its fingerprint taken with `openssl x509 -noout -fingerprint -sha256`.
#include "inference_worker/worker/client_identity.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ossgate::worker {
namespace {

constexpr char kAlicePem[] = R"(-----BEGIN CERTIFICATE-----
MIICATCCAaagAwIBAgIUG7tESImv5x8GW+atq2oJAHb8M3wwCgYIKoZIzj0EAwIw
KTEQMA4GA1UECgwHb3NzZ2F0ZTEVMBMGA1UEAwwMY2xpZW50OmFsaWNlMCAXDTI2
MTIwNjIwMDczNFoYDzIxMjYxMTEyMjAwNzM0WjApMRAwDgYDVQQKDAdvc3NnYXRl
MRUwEwYDVQQDDAxjbGllbnQ6YWxpY2UwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AASW25jAt5xy3MuxREQNdZ3vr5ajca8jUBNw9+bXPZLIqcUf8aKd+mqPGcjEqOst
upKEK34HSuPSuOJfVQMC85O6o4GpMIGmMB0GA1UdDgQWBBTQsoBCe+tZqFPDW+FQ
s10+NNXwcTAfBgNVHSMEGDAWgBTQsoBCe+tZqFPDW+FQs10+NNXwcTAPBgNVHRMB
Af8EBTADAQH/MFMGA1UdEQRMMEqGInNwaWZmZTovL29zc2dhdGUvcm9sZS9jbGll
bnQvYWxpY2WGFWh0dHBzOi8vZXhhbXBsZS5jb20veIINYWxpY2UuZXhhbXBsZTAK
BggqhkjOPQQDAgNJADBGAiEAgd3pB9L7ainXPBLIJPDoCdDfbWE12c5lOJAHOOlr
K/oCIQCZO15sF/gW37oku5t6o3FUjfmFYaO1l5rDSO7Ar2Xayw==
-----END CERTIFICATE-----
)";
constexpr char kAliceSha256[] = "07208df0980cc9423e7c944fbf477747994c8e5c370afa049389a93c12b6e4b3";

PeerCertificate WithSans(std::vector<std::string> sans) {
  PeerCertificate c;
  c.present = true;
  c.uri_sans = std::move(sans);
  c.sha256 = std::string(64, 'a');
  return c;
}

TEST(ClientIdentityTest, PemGivesEveryUriSanAndTheFingerprint) {
  const PeerCertificate c = PeerCertificateFromPem(kAlicePem);
  ASSERT_TRUE(c.present);
  EXPECT_TRUE(c.parse_error.empty()) << c.parse_error;
  EXPECT_EQ(c.uri_sans, (std::vector<std::string>{"spiffe://ossgate/role/client/alice", "https://example.com/x"}));
  EXPECT_EQ(c.sha256, kAliceSha256);
  auto id = IdentityOf(c, {"client"});
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->uri, "spiffe://ossgate/role/client/alice");
  EXPECT_EQ(id->role, "client");
  EXPECT_EQ(id->id, "alice");
  EXPECT_EQ(DescribePeer(c), absl::StrCat("san=[\"spiffe://ossgate/role/client/alice\",\"https://example.com/x\"] "
                                          "sha256=",
                                          kAliceSha256));
}

TEST(ClientIdentityTest, UnparsablePemHasNoIdentity) {
  const PeerCertificate c = PeerCertificateFromPem("-----BEGIN CERTIFICATE-----\nnot base64\n");
  EXPECT_TRUE(c.present);
  EXPECT_FALSE(c.parse_error.empty());
  EXPECT_EQ(IdentityOf(c, {"client"}).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(ClientIdentityTest, NoCertificateIsUnauthenticated) {
  auto id = IdentityOf(PeerCertificate(), {"client"});
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(DescribePeer(PeerCertificate()), "no client certificate");
}

TEST(ClientIdentityTest, RoleOutsideTheServedRolesIsPermissionDenied) {
  auto id = IdentityOf(WithSans({"spiffe://ossgate/role/worker/worker-1"}), {"client"});
  EXPECT_EQ(id.status().code(), absl::StatusCode::kPermissionDenied) << id.status();
  EXPECT_TRUE(absl::StrContains(id.status().message(), "role 'worker'")) << id.status();
  // Served when the worker is told to serve that role too.
  EXPECT_TRUE(IdentityOf(WithSans({"spiffe://ossgate/role/worker/worker-1"}), {"client", "worker"}).ok());
}

TEST(ClientIdentityTest, MissingSeveralOrMalformedIdentitiesAreUnauthenticated) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"https://example.com/client"},
      {"spiffe://ossgate/role/client/a", "spiffe://ossgate/role/client/b"},
      {"spiffe://ossgate/client/a"},
      {"spiffe://ossgate/role/client"},
      {"spiffe://ossgate/role/Client/a"},
      {"spiffe://ossgate/role/client/"},
      {"spiffe://ossgate/role/client/.."},
      {"spiffe://ossgate/role/client/a/b"},
      {"spiffe://ossgate/role/client/a\nphase=verified"},
  };
  for (const auto& sans : bad) {
    auto id = IdentityOf(WithSans(sans), {"client"});
    EXPECT_EQ(id.status().code(), absl::StatusCode::kUnauthenticated) << (sans.empty() ? "" : sans[0]);
    // Untrusted SAN text is quoted: no raw control byte in the message.
    EXPECT_EQ(std::string(id.status().message()).find('\n'), std::string::npos) << id.status();
  }
}

TEST(ClientIdentityTest, DescribePeerQuotesUntrustedSans) {
  const std::string d = DescribePeer(WithSans({"spiffe://x\n2025 worker: phase=verified", "a\"b"}));
  EXPECT_EQ(d.find('\n'), std::string::npos) << d;
  EXPECT_TRUE(absl::StrContains(d, "\"spiffe://x\\x0a2025 worker: phase=verified\"")) << d;
  EXPECT_TRUE(absl::StrContains(d, "\"a\\x22b\"")) << d;
}

}  // namespace
}  // namespace ossgate::worker
