// Runs the real provenance_service and inference_worker binaries on loopback
// with mutual TLS, for the worker's end-to-end test and its load benchmark.
//
//   ProvenanceProcess  a dev PKI made by tools/certs/make_dev_pki.sh, token and
//                      checkpoint keys, the service on 127.0.0.1:0 (--port_file),
//                      provctl as the admin.
//   WorkerProcess      inference_worker on a free loopback port (retried if the
//                      port was taken), serving TLS and requiring client
//                      certificates from the same CA; waits for health SERVING
//                      or for the process to exit.
//
// Errors come back as absl::Status (no gtest here, so the benchmark can use it).
// Child processes get stdout and stderr in a log file; they are killed (by
// pid) when their owner goes away, and by the kernel (PR_SET_PDEATHSIG) when
// the thread that started them ends, so a crashed test leaves no servers
// behind: start them from a thread that outlives them (e.g. the main thread).
// Not thread-safe: one owner thread per object.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace ossgate::worker_test {

// A fresh directory under $TEST_TMPDIR or /tmp, removed recursively on
// destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "ossgate_worker");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

absl::StatusOr<std::string> ReadFile(const std::string& path);
absl::Status WriteFile(const std::string& path, const std::string& content);

// Runs `argv` to completion (no shell), stdout+stderr captured into *output.
// Returns the exit code (or an error if it could not run or was killed).
// `extra_env` entries ("NAME=value") replace inherited variables of that name.
absl::StatusOr<int> RunToCompletion(const std::vector<std::string>& argv, std::string* output,
                                    const std::vector<std::string>& extra_env = {});

// A child process. The destructor SIGKILLs and reaps it if it still runs.
class Process {
 public:
  static absl::StatusOr<std::unique_ptr<Process>> Spawn(const std::vector<std::string>& argv,
                                                        const std::string& log_path,
                                                        const std::vector<std::string>& extra_env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string Log() const;

  // Exit code if the process has exited (reaps it), nullopt while it runs.
  // A death by signal reads as 128 + signal.
  std::optional<int> Poll();
  // Waits up to `timeout` for the exit; DeadlineExceeded if it still runs.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  absl::Status Signal(int sig);

 private:
  Process(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::optional<int> exit_code_;
  const std::string log_path_;
};

// An unused TCP port on 127.0.0.1 at the time of the call.
absl::StatusOr<int> PickFreePort();

// GET http://127.0.0.1:port/metrics (Prometheus text) over a plain socket;
// the body, or "" when nothing answers.
std::string HttpGetMetrics(int port);
// The value of the sample line `name` (with labels, exactly as exposed, e.g.
// `ossgate_worker_step_seconds_count{kind="decode"}`) in a /metrics body.
std::optional<double> MetricValue(const std::string& text, const std::string& name);

// TLS material for one client identity.
struct ClientTls {
  std::string ca_path, cert_path, key_path;
};
// A channel to 127.0.0.1:port with mTLS and quick reconnects (so waiting for
// a server that is still starting does not back off for seconds).
std::shared_ptr<grpc::Channel> MakeTlsChannel(int port, const ClientTls& tls);

struct Binaries {
  std::string provenance_service;
  std::string provctl;
  std::string inference_worker;
};

class ProvenanceProcess {
 public:
  // Makes the PKI under dir/pki for `identities` (role:id, e.g.
  // "worker:worker-1"; an admin "admin:admin-1" is always added) with
  // source_dir/tools/certs/make_dev_pki.sh, the keys, and starts the service.
  // `source_dir` is the ossgate checkout at run time (InvalidArgument, naming
  // the path, when it lacks the script).
  static absl::StatusOr<std::unique_ptr<ProvenanceProcess>> Start(const Binaries& bins, const std::string& dir,
                                                                  const std::vector<std::string>& identities,
                                                                  const std::string& source_dir);
#ifdef OSSGATE_SOURCE_DIR
  // For tests run by ctest in the build tree: the checkout they were built
  // from (ossgate_add_test in tests/CMakeLists.txt defines
  // OSSGATE_SOURCE_DIR). Programs that may run elsewhere, such as the
  // benchmarks in bench/worker, pass the directory given at run time.
  static absl::StatusOr<std::unique_ptr<ProvenanceProcess>> Start(const Binaries& bins, const std::string& dir,
                                                                  const std::vector<std::string>& identities) {
    return Start(bins, dir, identities, OSSGATE_SOURCE_DIR);
  }
#endif

  int port() const { return port_; }
  std::string address() const;
  const std::string& pki() const { return pki_; }
  // PEM public key of the token signer (what workers pin).
  const std::string& token_public_key_path() const { return token_pub_; }
  ClientTls Identity(const std::string& role_id) const;  // "client-test" style file stem
  Process& process() { return *process_; }

  // provctl as admin-admin-1: `provctl <args...> --server=... --ca=... ...`.
  absl::StatusOr<std::string> Provctl(const std::vector<std::string>& args) const;
  // Adds `source` (idempotent) and registers `file`'s hash and size under
  // `path` in it.
  absl::Status TrustFile(const std::string& source, const std::string& path, const std::string& file) const;

 private:
  ProvenanceProcess() = default;
  Binaries bins_;
  std::string dir_, pki_, token_pub_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

struct WorkerSpec {
  std::string model_path;
  std::string source_uri;
  std::string worker_id = "worker-1";
  std::string cert_stem = "worker-worker-1";  // the certificate it presents to the provenance service
  std::vector<std::string> flags;             // extra flags, e.g. "--max_sequences=1"
};

class WorkerProcess {
 public:
  // Spawns the worker on a free port; retries on another port if the port
  // turned out to be taken. Does not wait for readiness.
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Spawn(const Binaries& bins, const ProvenanceProcess& prov,
                                                              const WorkerSpec& spec, const std::string& log_path,
                                                              const ClientTls& client);

  // Waits until health reports the inference service SERVING. Fails early,
  // with the worker's log, if the process exits first.
  absl::Status WaitServing(absl::Duration timeout);

  // Follows the process until it exits, checking health all along. Returns
  // the exit code; *saw_serving tells whether health ever said SERVING.
  absl::StatusOr<int> WatchUntilExit(absl::Duration timeout, bool* saw_serving);

  int port() const { return port_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  Process& process() { return *process_; }
  std::string Log() const { return process_->Log(); }

 private:
  WorkerProcess() = default;
  int port_ = 0;
  std::unique_ptr<Process> process_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace ossgate::worker_test
