#include "inference_worker/worker/grpc_provenance_client.h"

#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "inference_worker/worker/tls_probe.h"
#include "ossgate/provenance/v1/provenance.grpc.pb.h"

namespace ossgate::worker {

namespace pv = ::ossgate::provenance::v1;

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > (1u << 20)) return absl::InvalidArgumentError(absl::StrCat("'", path, "' is over 1 MiB"));
  return ss.str();
}

namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace

namespace {

class GrpcProvenanceClient final : public ProvenanceClient {
 public:
  // `probe` is empty in plaintext mode (no TLS to diagnose).
  GrpcProvenanceClient(std::shared_ptr<grpc::Channel> channel, std::optional<TlsProbeConfig> probe,
                       absl::Duration timeout)
      : stub_(pv::VerificationService::NewStub(channel)), probe_(std::move(probe)), timeout_(timeout) {}

  absl::StatusOr<Verdict> VerifyModel(const VerifyRequest& r) override {
    pv::ModelDescriptor d;
    d.set_name(r.name);
    d.set_source_uri(r.source_uri);
    d.set_sha256(r.sha256);
    d.set_size_bytes(r.size);
    d.set_worker_id(r.worker_id);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    pv::VerifyModelResponse resp;
    const grpc::Status s = stub_->VerifyModel(&ctx, d, &resp);
    if (!s.ok() && s.error_code() == grpc::StatusCode::UNAVAILABLE && probe_) {
      // gRPC reports a refused certificate as UNAVAILABLE, like a service
      // that is down; but retrying the same certificates cannot help, and
      // "unreachable" would send the operator looking at the network.
      TlsProbeResult tls;
      if (auto marker = TlsVerificationFailure(s.error_message())) {
        tls.failure = std::string(*marker);
        tls.refused_by_service = absl::StrContains(tls.failure, "alert");
      } else {
        tls = ProbeTlsCertificates(*probe_);
      }
      if (!tls.failure.empty()) {
        return absl::UnauthenticatedError(absl::StrCat(
            "TLS with the provenance service at ", probe_->address, " failed (", tls.failure, "): ",
            tls.refused_by_service
                ? "the service does not accept this worker's certificate (check --provenance_cert and "
                  "--provenance_key: a role worker certificate from the CA the service trusts)"
                : "this worker does not accept the service's certificate (check --provenance_ca and "
                  "--provenance_server_name)",
            "; retrying cannot help, the same certificates fail the same way (gRPC: ", s.error_message(), ")"));
      }
    }
    if (!s.ok()) return FromGrpc(s);
    Verdict v;
    v.verified = resp.verified();
    v.reason = pv::Reason_Name(resp.reason());
    v.detail = resp.detail();
    v.approval_token = resp.approval_token();
    v.log_index = resp.log_index();
    v.matched_source = resp.matched_source().uri();
    return v;
  }

 private:
  std::unique_ptr<pv::VerificationService::Stub> stub_;
  const std::optional<TlsProbeConfig> probe_;
  const absl::Duration timeout_;
};

}  // namespace

bool IsLoopbackAddress(const std::string& address) {
  return absl::StartsWith(address, "127.") || absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]");
}

absl::StatusOr<std::unique_ptr<ProvenanceClient>> MakeGrpcProvenanceClient(const ProvenanceClientConfig& c) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  std::optional<TlsProbeConfig> probe;
  if (c.insecure_loopback) {
    if (!IsLoopbackAddress(c.address)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "plaintext to the provenance service is allowed only on loopback, not '", c.address, "'; configure TLS"));
    }
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions o;
    auto ca = ReadSmallFile(c.ca_cert_path);
    if (!ca.ok()) return absl::InvalidArgumentError(absl::StrCat("provenance CA certificate: ", ca.status().message()));
    auto cert = ReadSmallFile(c.cert_path);
    if (!cert.ok()) return absl::InvalidArgumentError(absl::StrCat("worker certificate: ", cert.status().message()));
    auto key = ReadSmallFile(c.key_path);
    if (!key.ok()) return absl::InvalidArgumentError(absl::StrCat("worker private key: ", key.status().message()));
    o.pem_root_certs = *ca;
    o.pem_cert_chain = *cert;
    o.pem_private_key = *key;
    creds = grpc::SslCredentials(o);
    if (!c.tls_server_name.empty()) args.SetSslTargetNameOverride(c.tls_server_name);
    probe = TlsProbeConfig{c.address, c.tls_server_name, *ca, *cert, *key};
  }
  auto channel = grpc::CreateCustomChannel(c.address, creds, args);
  return std::unique_ptr<ProvenanceClient>(new GrpcProvenanceClient(channel, std::move(probe), c.rpc_timeout));
}

}  // namespace ossgate::worker
