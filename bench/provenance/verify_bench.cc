// VerifyModel throughput and latency over mutual TLS with durability on
// (SQLite WAL, synchronous=FULL, group commit), at several client
// concurrencies. Starts an in-process server on loopback with a fresh dev
// PKI (tools/certs/make_dev_pki.sh), registers one file, then runs closed-loop
// clients (one thread and one TLS channel each) that verify it. Every call is
// a real decision: policy, audit record, Merkle append, checkpoint
// signature, fsync'd commit, token signature.
//
//   provenance_verify_bench [--concurrency=1,16,64] [--seconds=5] [--warmup_seconds=1]
//
// Prints a markdown table for docs/perf.md.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ossgate/provenance/v1/provenance.grpc.pb.h"
#include "provenance_service/client/client.h"
#include "provenance_service/server/server.h"
#include "provenance_service/token/ed25519.h"
#include "provenance_service/token/sha256.h"

ABSL_FLAG(std::vector<std::string>, concurrency, std::vector<std::string>({"1", "16", "64"}),
          "client counts to run");
ABSL_FLAG(double, seconds, 5, "measured seconds per concurrency level");
ABSL_FLAG(double, warmup_seconds, 1, "unmeasured warm-up seconds per level");
ABSL_FLAG(std::string, dir, "", "work directory (default: a new /tmp directory, removed afterwards)");

namespace ossgate::provenance {
namespace {

namespace pb = ::ossgate::provenance::v1;

int Run() {
  std::string dir = absl::GetFlag(FLAGS_dir);
  bool remove_dir = false;
  if (dir.empty()) {
    char tmpl[] = "/tmp/provenance_bench_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 1;
    dir = tmpl;
    remove_dir = true;
  }
  const std::string pki = dir + "/pki";
  if (std::system(absl::StrCat("bash ", OSSGATE_SOURCE_DIR, "/tools/certs/make_dev_pki.sh ", pki,
                               " worker:bench admin:admin >/dev/null")
                      .c_str()) != 0) {
    std::fprintf(stderr, "make_dev_pki.sh failed\n");
    return 1;
  }
  for (const char* name : {"token", "log"}) {
    auto key = token::Ed25519PrivateKey::Generate();
    if (!token::WriteFileAtomically(absl::StrCat(dir, "/", name, ".pem"), key->ToPem(), 0600).ok()) return 1;
  }
  ServerConfig config;
  config.listen_address = "127.0.0.1:0";
  config.tls_cert_file = pki + "/server.pem";
  config.tls_key_file = pki + "/server.key";
  config.client_ca_file = pki + "/ca.pem";
  config.db_path = dir + "/audit.db";
  config.token_signing_key_file = dir + "/token.pem";
  config.checkpoint_signing_key_file = dir + "/log.pem";
  auto server = ProvenanceServer::Start(config);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  auto client = [&](const char* cert) {
    ClientOptions o;
    o.server = absl::StrCat("127.0.0.1:", (*server)->port());
    o.ca_file = pki + "/ca.pem";
    o.cert_file = absl::StrCat(pki, "/", cert, ".pem");
    o.key_file = absl::StrCat(pki, "/", cert, ".key");
    return *CreateProvenanceChannel(o);
  };

  const std::string content = "benchmark model bytes";
  {
    auto admin = pb::RegistryService::NewStub(client("admin-admin"));
    grpc::ClientContext ctx;
    pb::AddFileRequest add;
    add.set_source_uri("ossgate://bundled");
    add.set_path("bench.gguf");
    add.set_sha256(token::Sha256Hex(content));
    add.set_size_bytes(content.size());
    pb::RegistryChangeResponse resp;
    grpc::Status s = admin->AddFile(&ctx, add, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "AddFile: %s\n", s.error_message().c_str());
      return 1;
    }
  }
  pb::ModelDescriptor d;
  d.set_name("bench");
  d.set_source_uri("ossgate://bundled/bench.gguf");
  d.set_sha256(token::Sha256Hex(content));
  d.set_size_bytes(content.size());
  d.set_worker_id("bench");

  std::printf("| clients | verified decisions/s | p50 ms | p99 ms | max ms | errors |\n");
  std::printf("|--------:|---------------------:|-------:|-------:|-------:|-------:|\n");
  for (const std::string& level : absl::GetFlag(FLAGS_concurrency)) {
    const int n = std::atoi(level.c_str());
    if (n <= 0) continue;
    std::atomic<bool> measuring{false}, stop{false};
    std::atomic<uint64_t> errors{0};
    std::vector<std::vector<double>> latencies(static_cast<size_t>(n));
    std::vector<std::thread> threads;
    for (int t = 0; t < n; ++t) {
      threads.emplace_back([&, t] {
        auto stub = pb::VerificationService::NewStub(client("worker-bench"));
        auto& lat = latencies[static_cast<size_t>(t)];
        lat.reserve(1 << 16);
        while (!stop.load(std::memory_order_relaxed)) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          pb::VerifyModelResponse resp;
          absl::Time start = absl::Now();
          grpc::Status s = stub->VerifyModel(&ctx, d, &resp);
          double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
          if (!measuring.load(std::memory_order_relaxed)) continue;
          if (!s.ok() || !resp.verified()) {
            ++errors;
            continue;
          }
          lat.push_back(ms);
        }
      });
    }
    absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_warmup_seconds)));
    measuring = true;
    absl::Time begin = absl::Now();
    absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_seconds)));
    measuring = false;
    double elapsed = absl::ToDoubleSeconds(absl::Now() - begin);
    stop = true;
    for (auto& th : threads) th.join();
    std::vector<double> all;
    for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    auto pct = [&all](double p) {
      return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * static_cast<double>(all.size())))];
    };
    std::printf("| %7d | %20.0f | %6.2f | %6.2f | %6.2f | %6llu |\n", n, static_cast<double>(all.size()) / elapsed,
                pct(0.50), pct(0.99), all.empty() ? 0.0 : all.back(), static_cast<unsigned long long>(errors.load()));
    std::fflush(stdout);
  }
  (*server)->Shutdown();
  if (remove_dir) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace ossgate::provenance

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return ossgate::provenance::Run();
}
