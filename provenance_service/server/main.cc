// provenance_service: decides which model files inference workers may load.
// See docs/provenance.md. main() only parses flags and calls RunServer.
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "provenance_service/server/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7443", "host:port to listen on (port 0 = any free port)");
ABSL_FLAG(std::string, health_listen, "",
          "optional plaintext host:port serving only grpc.health.v1 (for Kubernetes gRPC probes)");
ABSL_FLAG(std::string, tls_cert, "", "server certificate chain (PEM)");
ABSL_FLAG(std::string, tls_key, "", "server private key (PEM)");
ABSL_FLAG(std::string, client_ca, "", "CA certificate(s) that sign client certificates (PEM)");
ABSL_FLAG(bool, insecure_dev_loopback, false,
          "DEVELOPMENT ONLY: plaintext on 127.0.0.1/[::1], caller identity from metadata");
ABSL_FLAG(std::string, db, "", "SQLite database holding the audit log");
ABSL_FLAG(std::string, log_origin, "ossgate.local/provenance", "audit log origin / checkpoint key name");
ABSL_FLAG(bool, seed_default_registry, true, "seed the default trusted publishers into a new log");
ABSL_FLAG(std::string, token_signing_key, "", "Ed25519 private key (PKCS#8 PEM) for approval tokens");
ABSL_FLAG(std::string, checkpoint_signing_key, "", "Ed25519 private key (PKCS#8 PEM) for log checkpoints");
ABSL_FLAG(std::vector<std::string>, previous_token_public_keys, {},
          "retired token keys still published: PUBKEY.pem@RFC3339-retirement-time,...");
ABSL_FLAG(std::string, token_issuer, "ossgate-provenance", "approval token issuer (iss)");
ABSL_FLAG(absl::Duration, token_ttl, absl::Minutes(5), "approval token lifetime (10s..15m)");
ABSL_FLAG(std::string, port_file, "", "write the bound port to this file once serving");
ABSL_FLAG(int, max_batch, 1024, "most audit records per group commit");

namespace {
// A flag's file as a path in the repository (the build machine's checkout
// path is not shown).
std::string SourcePath(absl::string_view file) {
  for (absl::string_view top : {"/inference_worker/", "/provenance_service/"}) {
    if (const size_t at = file.rfind(top); at != absl::string_view::npos) return std::string(file.substr(at + 1));
  }
  return std::string(absl::StripPrefix(file, "/"));
}
bool IsMainFile(absl::string_view file) { return absl::EndsWith(file, "server/main.cc"); }
}  // namespace

int main(int argc, char** argv) {
  // --help lists the flags of this file (Abseil's default looks for a file
  // named after the program), after an overview grouped by purpose.
  absl::FlagsUsageConfig usage;
  usage.contains_helpshort_flags = IsMainFile;
  usage.contains_help_flags = IsMainFile;
  usage.normalize_filename = SourcePath;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(R"(the registry of trusted model sources and known-good SHA-256
hashes: answers VerifyModel, signs approval tokens, keeps the tamper-evident audit log (mutual
TLS; roles worker, admin, auditor).

Flags by purpose (descriptions and defaults below):
  Network and TLS   --listen --health_listen --tls_cert --tls_key --client_ca
                    --insecure_dev_loopback --port_file
  Audit log         --db --log_origin --checkpoint_signing_key --max_batch
                    --seed_default_registry
  Approval tokens   --token_signing_key --previous_token_public_keys --token_issuer --token_ttl

Example (keys from provctl keygen, PKI from tools/certs/make_dev_pki.sh):
  provenance_service --listen=127.0.0.1:7443 --db=provenance.db \
    --tls_cert=pki/server.pem --tls_key=pki/server.key --client_ca=pki/ca.pem \
    --token_signing_key=token.pem --checkpoint_signing_key=checkpoint.pem)");
  absl::ParseCommandLine(argc, argv);
  ossgate::provenance::ServerConfig config;
  config.listen_address = absl::GetFlag(FLAGS_listen);
  config.health_listen_address = absl::GetFlag(FLAGS_health_listen);
  config.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  config.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  config.client_ca_file = absl::GetFlag(FLAGS_client_ca);
  config.insecure_dev_loopback = absl::GetFlag(FLAGS_insecure_dev_loopback);
  config.db_path = absl::GetFlag(FLAGS_db);
  config.log_origin = absl::GetFlag(FLAGS_log_origin);
  config.seed_default_registry = absl::GetFlag(FLAGS_seed_default_registry);
  config.token_signing_key_file = absl::GetFlag(FLAGS_token_signing_key);
  config.checkpoint_signing_key_file = absl::GetFlag(FLAGS_checkpoint_signing_key);
  for (const std::string& entry : absl::GetFlag(FLAGS_previous_token_public_keys)) {
    std::vector<std::string> parts = absl::StrSplit(entry, absl::MaxSplits('@', 1));
    absl::Time retired;
    std::string err;
    if (parts.size() != 2 || !absl::ParseTime(absl::RFC3339_full, parts[1], &retired, &err)) {
      fprintf(stderr, "--previous_token_public_keys: expected PUBKEY.pem@RFC3339 time, got %s\n", entry.c_str());
      return 2;
    }
    config.previous_token_keys.push_back({parts[0], retired});
  }
  config.token_issuer = absl::GetFlag(FLAGS_token_issuer);
  config.token_ttl = absl::GetFlag(FLAGS_token_ttl);
  config.port_file = absl::GetFlag(FLAGS_port_file);
  config.max_batch = static_cast<size_t>(absl::GetFlag(FLAGS_max_batch));
  return ossgate::provenance::RunServer(config);
}
