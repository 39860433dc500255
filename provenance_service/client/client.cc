#include "provenance_service/client/client.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/token/ed25519.h"

namespace ossgate::provenance {

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateProvenanceChannel(const ClientOptions& o) {
  grpc::ChannelArguments args;
  if (o.insecure_dev_loopback) {
    if (o.server.rfind("127.0.0.1:", 0) != 0 && o.server.rfind("[::1]:", 0) != 0 &&
        o.server.rfind("localhost:", 0) != 0) {
      return absl::InvalidArgumentError("--insecure_dev_loopback only talks to 127.0.0.1 / [::1]");
    }
    if (o.dev_identity.empty()) {
      return absl::InvalidArgumentError("--insecure_dev_loopback needs --dev_identity=spiffe://ossgate/role/<role>/<id>");
    }
    return grpc::CreateCustomChannel(o.server, grpc::InsecureChannelCredentials(), args);
  }
  if (o.ca_file.empty() || o.cert_file.empty() || o.key_file.empty()) {
    return absl::InvalidArgumentError("mTLS needs --ca, --cert and --key");
  }
  grpc::SslCredentialsOptions ssl;
  auto ca = token::ReadSmallFile(o.ca_file);
  if (!ca.ok()) return ca.status();
  auto cert = token::ReadSmallFile(o.cert_file);
  if (!cert.ok()) return cert.status();
  auto key = token::ReadSmallFile(o.key_file);
  if (!key.ok()) return key.status();
  ssl.pem_root_certs = *ca;
  ssl.pem_cert_chain = *cert;
  ssl.pem_private_key = *key;
  if (!o.server_name_override.empty()) args.SetSslTargetNameOverride(o.server_name_override);
  return grpc::CreateCustomChannel(o.server, grpc::SslCredentials(ssl), args);
}

void ConfigureContext(const ClientOptions& o, grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(o.timeout));
  if (o.insecure_dev_loopback) context->AddMetadata("ossgate-dev-identity", o.dev_identity);
}

}  // namespace ossgate::provenance
