#include "provenance_service/server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/core/ledger.h"
#include "provenance_service/server/services.h"
#include "provenance_service/token/ed25519.h"

namespace ossgate::provenance {
namespace {

constexpr int kMaxRequestBytes = 64 * 1024;

bool IsLoopbackAddress(const std::string& address) {
  return address.rfind("127.0.0.1:", 0) == 0 || address.rfind("[::1]:", 0) == 0;
}

absl::Status FlagError(const char* flag, std::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", std::string(msg)));
}

}  // namespace

absl::Status ValidateConfig(const ServerConfig& c) {
  if (c.listen_address.empty()) return FlagError("listen", "required");
  if (c.insecure_dev_loopback) {
    if (!IsLoopbackAddress(c.listen_address)) {
      return FlagError("insecure_dev_loopback",
                       "plaintext is only allowed on 127.0.0.1:<port> or [::1]:<port>, not " + c.listen_address);
    }
  } else {
    if (c.tls_cert_file.empty()) return FlagError("tls_cert", "required (or --insecure_dev_loopback for development)");
    if (c.tls_key_file.empty()) return FlagError("tls_key", "required");
    if (c.client_ca_file.empty()) return FlagError("client_ca", "required: callers authenticate with client certificates");
  }
  if (c.db_path.empty()) return FlagError("db", "required");
  if (c.token_signing_key_file.empty()) return FlagError("token_signing_key", "required (provctl keygen)");
  if (c.checkpoint_signing_key_file.empty()) return FlagError("checkpoint_signing_key", "required (provctl keygen)");
  if (c.token_ttl < absl::Seconds(10) || c.token_ttl > absl::Minutes(15)) {
    return FlagError("token_ttl", "must be between 10s and 15m");
  }
  if (c.token_issuer.empty()) return FlagError("token_issuer", "required");
  if (c.max_batch == 0) return FlagError("max_batch", "must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ProvenanceServer>> ProvenanceServer::Start(const ServerConfig& config,
                                                                          const Clock* clock) {
  if (auto s = ValidateConfig(config); !s.ok()) return s;
  if (clock == nullptr) clock = SystemClock::Get();

  auto token_key = token::Ed25519PrivateKey::LoadPemFile(config.token_signing_key_file);
  if (!token_key.ok()) return token_key.status();
  auto checkpoint_key = token::Ed25519PrivateKey::LoadPemFile(config.checkpoint_signing_key_file);
  if (!checkpoint_key.ok()) return checkpoint_key.status();
  if (token_key->public_key().raw() == checkpoint_key->public_key().raw()) {
    return FlagError("checkpoint_signing_key", "must differ from the token signing key");
  }
  auto token_private = std::make_shared<const token::Ed25519PrivateKey>(*std::move(token_key));

  ServiceContext ctx;
  ctx.clock = clock;
  ctx.signer = std::make_shared<const token::ApprovalTokenSigner>(token_private);
  ctx.token_issuer = config.token_issuer;
  ctx.token_ttl = config.token_ttl;
  ctx.dev_identities = config.insecure_dev_loopback;
  ctx.token_keys.push_back(PublishedKey{
      std::make_shared<const token::Ed25519PublicKey>(*token::Ed25519PublicKey::FromRaw(token_private->public_key().raw())),
      true, absl::InfiniteFuture()});
  for (const PreviousTokenKey& prev : config.previous_token_keys) {
    auto pk = token::Ed25519PublicKey::LoadPemFile(prev.public_key_file);
    if (!pk.ok()) return pk.status();
    ctx.token_keys.push_back(PublishedKey{std::make_shared<const token::Ed25519PublicKey>(*std::move(pk)), false,
                                          prev.retired_at + config.token_ttl + config.token_leeway});
  }

  std::unique_ptr<ProvenanceServer> server(new ProvenanceServer());
  LedgerOptions lo;
  lo.db_path = config.db_path;
  lo.log_origin = config.log_origin;
  lo.seed_default_registry = config.seed_default_registry;
  lo.max_batch = config.max_batch;
  auto ledger = Ledger::Open(lo, clock,
                             std::make_shared<const token::Ed25519PrivateKey>(*std::move(checkpoint_key)));
  if (!ledger.ok()) return ledger.status();
  server->ledger_ = *std::move(ledger);
  ctx.ledger = server->ledger_.get();
  server->services_ = std::make_unique<ProvenanceServices>(std::move(ctx));

  std::shared_ptr<grpc::ServerCredentials> creds;
  if (config.insecure_dev_loopback) {
    creds = grpc::InsecureServerCredentials();
  } else {
    auto cert = token::ReadSmallFile(config.tls_cert_file);
    if (!cert.ok()) return cert.status();
    auto key = token::ReadSmallFile(config.tls_key_file);
    if (!key.ok()) return key.status();
    auto ca = token::ReadSmallFile(config.client_ca_file);
    if (!ca.ok()) return ca.status();
    grpc::SslServerCredentialsOptions opts(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    opts.pem_root_certs = *ca;
    opts.pem_key_cert_pairs.push_back({*key, *cert});
    creds = grpc::SslServerCredentials(opts);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen_address, creds, &server->port_);
  builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
  // gRPC enables SO_REUSEPORT by default: a second service on a taken port
  // would start and split the traffic (and the audit log) with the first.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (grpc::Service* s : server->services_->services()) builder.RegisterService(s);
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen_address));
  }
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  if (!config.health_listen_address.empty()) {
    grpc::ServerBuilder hb;
    hb.AddListeningPort(config.health_listen_address, grpc::InsecureServerCredentials());
    hb.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    server->health_server_ = hb.BuildAndStart();
    if (!server->health_server_) {
      return absl::UnavailableError(absl::StrCat("cannot listen on health address ", config.health_listen_address));
    }
    server->health_server_->GetHealthCheckService()->SetServingStatus(true);
  }

  if (!config.port_file.empty()) {
    if (auto s = token::WriteFileAtomically(config.port_file, absl::StrCat(server->port_, "\n"), 0644); !s.ok()) {
      return s;
    }
  }
  return server;
}

void ProvenanceServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  server_->GetHealthCheckService()->SetServingStatus(false);
  if (health_server_) {
    health_server_->GetHealthCheckService()->SetServingStatus(false);
    health_server_->Shutdown();
  }
  // In-flight VerifyModel calls complete through the ledger, which is still
  // running here; only then is the ledger closed.
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMicroseconds(grace));
  server_->Wait();
  ledger_.reset();
}

void ProvenanceServer::Wait() { server_->Wait(); }

ProvenanceServer::~ProvenanceServer() { Shutdown(); }

int RunServer(const ServerConfig& config) {
  // Block the signals in every thread (gRPC's threads inherit the mask) and
  // take them synchronously below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = ProvenanceServer::Start(config);
  if (!server.ok()) {
    std::fprintf(stderr, "provenance_service: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "provenance_service: serving on port %d (%s)\n", (*server)->port(),
               config.insecure_dev_loopback ? "PLAINTEXT development mode" : "mTLS");
  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "provenance_service: signal %d, shutting down\n", sig);
  (*server)->Shutdown();
  return 0;
}

}  // namespace ossgate::provenance
