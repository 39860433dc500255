#include "provenance_service/server/identity.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/core/model_uri.h"

namespace ossgate::provenance {

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kWorker: return "worker";
    case Role::kAdmin: return "admin";
    case Role::kAuditor: return "auditor";
  }
  return "?";
}

absl::StatusOr<CallerIdentity> ParseSpiffeIdentity(std::string_view uri) {
  if (uri.substr(0, kSpiffePrefix.size()) != kSpiffePrefix) {
    return absl::UnauthenticatedError(absl::StrCat("identity ", Sanitize(uri, 128), " is not under ",
                                                   std::string(kSpiffePrefix)));
  }
  std::string_view rest = uri.substr(kSpiffePrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return absl::UnauthenticatedError("identity must be spiffe://ossgate/role/<role>/<id>");
  }
  std::string_view role = rest.substr(0, slash);
  std::string_view id = rest.substr(slash + 1);
  CallerIdentity out;
  if (role == "worker") out.role = Role::kWorker;
  else if (role == "admin") out.role = Role::kAdmin;
  else if (role == "auditor") out.role = Role::kAuditor;
  else return absl::UnauthenticatedError(absl::StrCat("unknown role \"", Sanitize(role, 32), "\""));
  if (auto s = ValidateName(id); !s.ok()) {
    return absl::UnauthenticatedError(absl::StrCat("identity id ", s.message()));
  }
  out.id = std::string(id);
  out.uri = std::string(uri);
  return out;
}

absl::StatusOr<CallerIdentity> IdentityFromCertificatePem(std::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                 BIO_free);
  if (!bio) return absl::ResourceExhaustedError("BIO_new_mem_buf");
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
                                                    X509_free);
  if (!cert) return absl::UnauthenticatedError("cannot parse the client certificate");
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return absl::UnauthenticatedError("client certificate has no subjectAltName");
  std::vector<std::string> uris;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = n->d.uniformResourceIdentifier;
    std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                    static_cast<size_t>(ASN1_STRING_length(s)));
    if (uri.rfind("spiffe://ossgate/", 0) == 0) uris.push_back(std::move(uri));
  }
  GENERAL_NAMES_free(names);
  if (uris.size() != 1) {
    return absl::UnauthenticatedError(absl::StrCat("client certificate must carry exactly one "
                                                   "spiffe://ossgate/ URI SAN, found ",
                                                   uris.size()));
  }
  return ParseSpiffeIdentity(uris.front());
}

}  // namespace ossgate::provenance
