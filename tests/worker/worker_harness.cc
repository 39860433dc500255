#include "tests/worker/worker_harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "inference_worker/client/health_check.h"
#include "provenance_service/token/ed25519.h"

extern char** environ;

namespace ossgate::worker_test {

namespace {

constexpr char kInferenceService[] = "ossgate.inference.v1.InferenceService";

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// The parent's environment with `extra` ("NAME=value") replacing variables
// of the same name: a duplicate would be ignored, as getenv returns the
// first entry (e.g. a NODE_EXTRA_CA_CERTS set on the machine).
std::vector<std::string> Environment(const std::vector<std::string>& extra) {
  auto name_of = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    const bool replaced =
        std::any_of(extra.begin(), extra.end(), [&](const std::string& x) { return name_of(x) == name_of(kv); });
    if (!replaced) env.push_back(kv);
  }
  for (const std::string& kv : extra) env.push_back(kv);
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base ? base : "/tmp", "/", prefix, "_XXXXXX");
  path_ = mkdtemp(tmpl.data()) ? tmpl : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// ---- Process ---------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Process>> Process::Spawn(const std::vector<std::string>& argv_in,
                                                        const std::string& log_path,
                                                        const std::vector<std::string>& extra_env) {
  // Everything the child needs is prepared before fork: between fork and
  // exec it may only make system calls (other threads may hold locks).
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env = Environment(extra_env);
  std::vector<char*> cargv = CStrings(argv);
  std::vector<char*> cenv = CStrings(env);
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("open ", log_path, ": ", std::strerror(errno)));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // The child dies with the thread that started it, so a crashed or
    // killed test never leaves servers behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(fork_errno)));
  return std::unique_ptr<Process>(new Process(pid, log_path));
}

Process::~Process() {
  if (!Poll().has_value()) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

std::string Process::Log() const {
  auto s = ReadFile(log_path_);
  return s.ok() ? *s : std::string("(no log)");
}

std::optional<int> Process::Poll() {
  if (exit_code_.has_value()) return exit_code_;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else if (r < 0 && errno == ECHILD) {
    exit_code_ = -1;  // not ours any more; should not happen
  }
  return exit_code_;
}

absl::StatusOr<int> Process::Wait(absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  for (;;) {
    if (auto code = Poll()) return *code;
    if (absl::Now() > end) {
      return absl::DeadlineExceededError(
          absl::StrCat("pid ", pid_, " still running after ", absl::FormatDuration(timeout)));
    }
    SleepMs(10);
  }
}

absl::Status Process::Signal(int sig) {
  if (Poll().has_value()) return absl::FailedPreconditionError(absl::StrCat("pid ", pid_, " has exited"));
  if (::kill(pid_, sig) != 0) return absl::InternalError(absl::StrCat("kill: ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::StatusOr<int> RunToCompletion(const std::vector<std::string>& argv, std::string* output,
                                    const std::vector<std::string>& extra_env) {
  TempDir dir("ossgate_cmd");
  auto p = Process::Spawn(argv, dir / "out", extra_env);
  if (!p.ok()) return p.status();
  auto code = (*p)->Wait(absl::Minutes(2));
  if (output) *output = (*p)->Log();
  return code;
}

absl::StatusOr<int> PickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("bind: ", std::strerror(err)));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::shared_ptr<grpc::Channel> MakeTlsChannel(int port, const ClientTls& tls) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadFile(tls.ca_path).value_or("");
  o.pem_cert_chain = ReadFile(tls.cert_path).value_or("");
  o.pem_private_key = ReadFile(tls.key_path).value_or("");
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  // A separate subchannel per channel, so one test's broken connection
  // never leaks into another channel to the same address.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), grpc::SslCredentials(o), args);
}

// ---- ProvenanceProcess -----------------------------------------------------

absl::StatusOr<std::unique_ptr<ProvenanceProcess>> ProvenanceProcess::Start(
    const Binaries& bins, const std::string& dir, const std::vector<std::string>& identities,
    const std::string& source_dir) {
  const std::string make_pki = source_dir + "/tools/certs/make_dev_pki.sh";
  if (std::error_code ec; !std::filesystem::is_regular_file(make_pki, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("no ", make_pki, ": the source directory '", source_dir,
                                                   "' is not an ossgate checkout (give the checkout's root)"));
  }
  std::unique_ptr<ProvenanceProcess> p(new ProvenanceProcess());
  p->bins_ = bins;
  p->dir_ = dir;
  p->pki_ = dir + "/pki";
  std::vector<std::string> pki_cmd = {"/bin/bash", make_pki, p->pki_, "admin:admin-1"};
  pki_cmd.insert(pki_cmd.end(), identities.begin(), identities.end());
  std::string out;
  auto rc = RunToCompletion(pki_cmd, &out);
  if (!rc.ok() || *rc != 0) return absl::InternalError(absl::StrCat("make_dev_pki.sh failed: ", out));

  for (const char* name : {"token", "checkpoint"}) {
    auto key = token::Ed25519PrivateKey::Generate();
    if (!key.ok()) return key.status();
    if (auto s = token::WriteFileAtomically(absl::StrCat(dir, "/", name, ".pem"), key->ToPem(), 0600); !s.ok()) {
      return s;
    }
    if (std::string(name) == "token") {
      p->token_pub_ = dir + "/token.pub.pem";
      if (auto s = token::WriteFileAtomically(p->token_pub_, key->public_key().ToPem(), 0644); !s.ok()) return s;
    }
  }

  const std::string port_file = dir + "/provenance.port";
  auto proc = Process::Spawn({bins.provenance_service, "--listen=127.0.0.1:0", "--port_file=" + port_file,
                              "--db=" + dir + "/provenance.db", "--tls_cert=" + p->pki_ + "/server.pem",
                              "--tls_key=" + p->pki_ + "/server.key", "--client_ca=" + p->pki_ + "/ca.pem",
                              "--token_signing_key=" + dir + "/token.pem",
                              "--checkpoint_signing_key=" + dir + "/checkpoint.pem",
                              "--log_origin=worker-test.local/provenance"},
                             dir + "/provenance.log");
  if (!proc.ok()) return proc.status();
  p->process_ = *std::move(proc);
  const absl::Time end = absl::Now() + absl::Seconds(60);
  while (p->port_ == 0) {
    if (auto content = ReadFile(port_file); content.ok()) {
      int port = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(*content), &port) && port > 0) p->port_ = port;
    }
    if (p->port_ != 0) break;
    if (auto code = p->process_->Poll()) {
      return absl::InternalError(
          absl::StrCat("provenance_service exited with ", *code, " before serving:\n", p->process_->Log()));
    }
    if (absl::Now() > end) {
      return absl::DeadlineExceededError(absl::StrCat("provenance_service wrote no port file:\n", p->process_->Log()));
    }
    SleepMs(20);
  }
  return p;
}

std::string ProvenanceProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

ClientTls ProvenanceProcess::Identity(const std::string& stem) const {
  return ClientTls{pki_ + "/ca.pem", pki_ + "/" + stem + ".pem", pki_ + "/" + stem + ".key"};
}

absl::StatusOr<std::string> ProvenanceProcess::Provctl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {bins_.provctl};
  argv.insert(argv.end(), args.begin(), args.end());
  const ClientTls admin = Identity("admin-admin-1");
  argv.push_back("--server=" + address());
  argv.push_back("--ca=" + admin.ca_path);
  argv.push_back("--cert=" + admin.cert_path);
  argv.push_back("--key=" + admin.key_path);
  std::string out;
  auto rc = RunToCompletion(argv, &out);
  if (!rc.ok()) return rc.status();
  if (*rc != 0) {
    return absl::InternalError(absl::StrCat("provctl ", absl::StrJoin(args, " "), " exited with ", *rc, ": ", out));
  }
  return out;
}

absl::Status ProvenanceProcess::TrustFile(const std::string& source, const std::string& path,
                                          const std::string& file) const {
  auto added = Provctl({"trust", "add-source", "--uri=" + source, "--description=worker e2e test models"});
  if (!added.ok() && !absl::StrContains(added.status().message(), "ALREADY_EXISTS") &&
      !absl::StrContains(added.status().message(), "already")) {
    return added.status();
  }
  auto file_added = Provctl({"trust", "add-file", "--source=" + source, "--path=" + path, "--file=" + file});
  return file_added.status();
}

// ---- WorkerProcess ---------------------------------------------------------

absl::StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Spawn(const Binaries& bins,
                                                                    const ProvenanceProcess& prov,
                                                                    const WorkerSpec& spec,
                                                                    const std::string& log_path,
                                                                    const ClientTls& client) {
  const std::string pki = prov.pki();
  for (int attempt = 1;; ++attempt) {
    auto port = PickFreePort();
    if (!port.ok()) return port.status();
    std::vector<std::string> argv = {
        bins.inference_worker,
        absl::StrCat("--listen=127.0.0.1:", *port),
        "--tls_cert=" + pki + "/server.pem",
        "--tls_key=" + pki + "/server.key",
        "--tls_client_ca=" + pki + "/ca.pem",
        "--model=" + spec.model_path,
        "--source_uri=" + spec.source_uri,
        "--worker_id=" + spec.worker_id,
        "--provenance=" + prov.address(),
        "--provenance_ca=" + pki + "/ca.pem",
        "--provenance_cert=" + pki + "/" + spec.cert_stem + ".pem",
        "--provenance_key=" + pki + "/" + spec.cert_stem + ".key",
        "--pinned_keys=" + prov.token_public_key_path(),
        "--verify_deadline_s=20",
    };
    argv.insert(argv.end(), spec.flags.begin(), spec.flags.end());
    auto proc = Process::Spawn(argv, log_path);
    if (!proc.ok()) return proc.status();
    // Wait until it either listens or exits; a taken port is retried.
    const absl::Time end = absl::Now() + absl::Seconds(60);
    bool retry = false;
    for (;;) {
      const std::string log = (*proc)->Log();
      if (absl::StrContains(log, "listening on")) break;
      if (auto code = (*proc)->Poll()) {
        retry = *code == 2 && absl::StrContains(log, "cannot listen on") && attempt < 5;
        break;
      }
      if (absl::Now() > end) return absl::DeadlineExceededError(absl::StrCat("worker never listened:\n", log));
      SleepMs(10);
    }
    if (retry) continue;
    std::unique_ptr<WorkerProcess> w(new WorkerProcess());
    w->port_ = *port;
    w->process_ = *std::move(proc);
    w->channel_ = MakeTlsChannel(*port, client);
    return w;
  }
}

absl::Status WorkerProcess::WaitServing(absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  std::string last = "no answer";
  for (;;) {
    if (auto code = process_->Poll()) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker exited with ", *code, " before SERVING; its log:\n", process_->Log()));
    }
    auto h = client::CheckHealth(channel_, kInferenceService, absl::Seconds(2));
    if (h.ok() && *h == client::HealthStatus::kServing) return absl::OkStatus();
    last = h.ok() ? client::HealthStatusName(*h) : std::string(h.status().message());
    if (absl::Now() > end) {
      return absl::DeadlineExceededError(absl::StrCat("worker not SERVING after ", absl::FormatDuration(timeout),
                                                      " (last: ", last, "); its log:\n", process_->Log()));
    }
    SleepMs(20);
  }
}

absl::StatusOr<int> WorkerProcess::WatchUntilExit(absl::Duration timeout, bool* saw_serving) {
  *saw_serving = false;
  const absl::Time end = absl::Now() + timeout;
  for (;;) {
    auto h = client::CheckHealth(channel_, kInferenceService, absl::Milliseconds(500));
    if (h.ok() && *h == client::HealthStatus::kServing) *saw_serving = true;
    if (auto code = process_->Poll()) return *code;
    if (absl::Now() > end) {
      return absl::DeadlineExceededError(absl::StrCat("worker still running after ", absl::FormatDuration(timeout),
                                                      "; its log:\n", process_->Log()));
    }
    SleepMs(5);
  }
}

std::string HttpGetMetrics(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

std::optional<double> MetricValue(const std::string& text, const std::string& name) {
  size_t at = 0;
  while ((at = text.find(name + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::strtod(text.c_str() + at + name.size() + 1, nullptr);
    at += name.size();
  }
  return std::nullopt;
}

}  // namespace ossgate::worker_test
