// gRPC callback-API implementations of the four provenance services
// (proto/ossgate/provenance/v1/provenance.proto). Each handler
// authenticates the caller from its mTLS certificate (or, in development
// mode, from metadata), checks the role, decodes and validates the request
// (requests.h; the methods take raw bytes so that an undecodable request
// gets INVALID_ARGUMENT naming the problem) and hands decisions and registry
// changes to the ledger; the reply is sent from the ledger's completion
// callback, i.e. after the audit record is durable. Callers whose
// certificate has no usable identity are recorded with its fingerprint and
// subject alternative names.
//
// Thread-safety: handlers run concurrently on gRPC's callback threads; all
// shared state is immutable or owned by the (thread-safe) ledger.
#ifndef OSSGATE_PROVENANCE_SERVICE_SERVER_SERVICES_H_
#define OSSGATE_PROVENANCE_SERVICE_SERVER_SERVICES_H_

#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "ossgate/provenance/v1/provenance.grpc.pb.h"
#include "provenance_service/core/clock.h"
#include "provenance_service/core/ledger.h"
#include "provenance_service/server/identity.h"
#include "provenance_service/token/approval_token.h"

namespace ossgate::provenance {

// Metadata key carrying the caller identity in --insecure_dev_loopback mode.
inline constexpr char kDevIdentityMetadata[] = "ossgate-dev-identity";

struct PublishedKey {
  std::shared_ptr<const token::Ed25519PublicKey> key;
  bool current = false;
  absl::Time publish_until = absl::InfiniteFuture();  // previous keys only
};

// Caches the identity parsed from each distinct client certificate: parsing
// X.509 with OpenSSL 3 costs tens of microseconds, and a caller presents the
// same certificate on every call. Keyed by the full PEM, so a different
// certificate can never hit another's entry. Thread-safe.
class IdentityCache {
 public:
  CertificateIdentity Lookup(std::string_view pem);

 private:
  static constexpr size_t kMaxEntries = 4096;
  std::mutex mu_;
  std::unordered_map<std::string, CertificateIdentity> entries_;  // GUARDED_BY(mu_)
};

struct ServiceContext {
  Ledger* ledger = nullptr;                          // not owned
  const Clock* clock = nullptr;                      // not owned
  std::shared_ptr<const token::ApprovalTokenSigner> signer;
  std::vector<PublishedKey> token_keys;              // current first
  std::string token_issuer;
  absl::Duration token_ttl = absl::Minutes(5);
  // Development mode: identities come from kDevIdentityMetadata.
  bool dev_identities = false;
  std::shared_ptr<IdentityCache> identities = std::make_shared<IdentityCache>();
};

class ProvenanceServices {
 public:
  explicit ProvenanceServices(ServiceContext context);
  ~ProvenanceServices();

  std::vector<grpc::Service*> services();

 private:
  class Verification;
  class Registry;
  class Audit;
  class Keys;
  const ServiceContext ctx_;
  std::unique_ptr<Verification> verification_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Audit> audit_;
  std::unique_ptr<Keys> keys_;
};

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_SERVER_SERVICES_H_
