#include "inference_worker/worker/client_identity.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "inference_worker/worker/worker_log.h"

namespace ossgate::worker {

namespace {

constexpr absl::string_view kSpiffePrefix = "spiffe://ossgate/";
constexpr absl::string_view kRolePrefix = "spiffe://ossgate/role/";

bool ValidRole(absl::string_view role) {
  return !role.empty() && role.size() <= 32 &&
         std::all_of(role.begin(), role.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

bool ValidId(absl::string_view id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
  return out;
}

}  // namespace

PeerCertificate PeerCertificateFromPem(absl::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, X509_free);
  if (!cert) {
    PeerCertificate out;
    out.present = true;
    out.parse_error = "the client certificate cannot be parsed";
    return out;
  }
  return PeerCertificateFromX509(cert.get());
}

PeerCertificate PeerCertificateFromX509(const X509* cert) {
  PeerCertificate out;
  if (cert == nullptr) return out;
  out.present = true;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1) out.sha256 = Hex(md, md_len);
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type != GEN_URI) continue;
      const ASN1_IA5STRING* s = n->d.uniformResourceIdentifier;
      out.uri_sans.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                static_cast<size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(names);
  }
  return out;
}

PeerCertificate PeerCertificateOf(const grpc::AuthContext* auth) {
  if (auth == nullptr) return {};
  const std::vector<grpc::string_ref> pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.empty()) return {};
  return PeerCertificateFromPem(absl::string_view(pems.front().data(), pems.front().size()));
}

absl::StatusOr<ClientIdentity> IdentityOf(const PeerCertificate& cert, const std::vector<std::string>& roles) {
  if (!cert.present) return absl::UnauthenticatedError("a client certificate is required");
  if (!cert.parse_error.empty()) return absl::UnauthenticatedError(cert.parse_error);
  std::vector<const std::string*> ours;
  for (const std::string& san : cert.uri_sans) {
    if (absl::StartsWith(san, kSpiffePrefix)) ours.push_back(&san);
  }
  if (ours.size() != 1) {
    return absl::UnauthenticatedError(
        absl::StrCat("the client certificate must carry exactly one spiffe://ossgate/role/<role>/<id> URI SAN, found ",
                     ours.size()));
  }
  const absl::string_view uri = *ours.front();
  if (!absl::StartsWith(uri, kRolePrefix)) {
    return absl::UnauthenticatedError(
        absl::StrCat("client identity ", Quote(uri, 160), " is not of the form spiffe://ossgate/role/<role>/<id>"));
  }
  const absl::string_view rest = uri.substr(kRolePrefix.size());
  const size_t slash = rest.find('/');
  ClientIdentity id;
  if (slash == absl::string_view::npos || !ValidRole(rest.substr(0, slash)) || !ValidId(rest.substr(slash + 1))) {
    return absl::UnauthenticatedError(absl::StrCat("client identity ", Quote(uri, 160),
                                                   " is malformed: the role must be [a-z]+ and the id 1..128 of "
                                                   "[A-Za-z0-9._-]"));
  }
  id.uri = std::string(uri);
  id.role = std::string(rest.substr(0, slash));
  id.id = std::string(rest.substr(slash + 1));
  if (std::find(roles.begin(), roles.end(), id.role) == roles.end()) {
    return absl::PermissionDeniedError(absl::StrCat("client identity ", id.uri, " has role '", id.role,
                                                    "'; this worker serves role(s) ", absl::StrJoin(roles, ", "),
                                                    " (--client_roles)"));
  }
  return id;
}

std::string DescribePeer(const PeerCertificate& cert) {
  if (!cert.present) return "no client certificate";
  std::vector<std::string> sans;
  for (const std::string& s : cert.uri_sans) sans.push_back(Quote(s, 160));
  return absl::StrCat("san=[", absl::StrJoin(sans, ","), "] sha256=", cert.sha256.empty() ? "?" : cert.sha256);
}

}  // namespace ossgate::worker
