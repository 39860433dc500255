#include "provenance_service/server/identity.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/core/model_uri.h"
#include "provenance_service/token/encoding.h"

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

CertificateIdentity IdentifyCertificatePem(std::string_view pem) {
  CertificateIdentity out;
  out.identity = absl::UnauthenticatedError("cannot parse the client certificate");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                 BIO_free);
  if (!bio) {
    out.identity = absl::ResourceExhaustedError("BIO_new_mem_buf");
    return out;
  }
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
                                                    X509_free);
  if (!cert) return out;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), digest, &digest_len) == 1) {
    out.sha256_fingerprint = token::HexEncode(std::string(reinterpret_cast<const char*>(digest), digest_len));
  }
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) {
    out.identity = absl::UnauthenticatedError("client certificate has no subjectAltName");
    return out;
  }
  std::vector<std::string> spiffe;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    auto text = [](const ASN1_STRING* s) {
      return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<size_t>(ASN1_STRING_length(s)));
    };
    switch (n->type) {
      case GEN_URI: {
        std::string uri = text(n->d.uniformResourceIdentifier);
        out.subject_alt_names.push_back("URI:" + uri);
        if (uri.rfind("spiffe://ossgate/", 0) == 0) spiffe.push_back(std::move(uri));
        break;
      }
      case GEN_DNS:
        out.subject_alt_names.push_back("DNS:" + text(n->d.dNSName));
        break;
      case GEN_EMAIL:
        out.subject_alt_names.push_back("email:" + text(n->d.rfc822Name));
        break;
      case GEN_IPADD: {
        const std::string raw = text(n->d.iPAddress);
        std::string ip;
        if (raw.size() == 4) {
          for (size_t k = 0; k < 4; ++k) {
            absl::StrAppend(&ip, k ? "." : "", static_cast<unsigned char>(raw[k]));
          }
        } else {
          ip = token::HexEncode(raw);  // IPv6 (or malformed): the address bytes in hex
        }
        out.subject_alt_names.push_back("IP:" + ip);
        break;
      }
      default:
        out.subject_alt_names.push_back(absl::StrCat("other:", n->type));
        break;
    }
  }
  GENERAL_NAMES_free(names);
  if (spiffe.size() != 1) {
    out.identity = absl::UnauthenticatedError(absl::StrCat("client certificate must carry exactly one "
                                                           "spiffe://ossgate/ URI SAN, found ",
                                                           spiffe.size()));
    return out;
  }
  out.identity = ParseSpiffeIdentity(spiffe.front());
  return out;
}

std::string UnidentifiedCaller(const CertificateIdentity& c) {
  if (c.sha256_fingerprint.empty()) return "unidentified (unparsable certificate)";
  std::string out = absl::StrCat("unidentified (certificate sha256:", c.sha256_fingerprint, "; SAN ");
  if (c.subject_alt_names.empty()) out += "none";
  for (size_t i = 0; i < c.subject_alt_names.size(); ++i) absl::StrAppend(&out, i ? "," : "", c.subject_alt_names[i]);
  out += ")";
  return out;
}

}  // namespace ossgate::provenance
