#include "inference_worker/worker/tls_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ossgate::worker {

namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

// Closes the descriptor on every path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool SplitHostPort(const std::string& address, std::string* host, std::string* port) {
  if (!address.empty() && address[0] == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') return false;
    *host = address.substr(1, close - 1);
    *port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) return false;
    *host = address.substr(0, colon);
    *port = address.substr(colon + 1);
  }
  return !host->empty() && !port->empty();
}

// A connected TCP socket with send/receive timeouts, or -1.
int Connect(const std::string& host, const std::string& port, absl::Duration timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return -1;
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(res, freeaddrinfo);
  const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    bool ok = ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = ::poll(&p, 1, timeout_ms) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    if (!ok) {
      ::close(fd);
      continue;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{};
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
  }
  return -1;
}

// The SSL context with the worker's credentials; null if they do not load
// (then gRPC could not have used them either, and the channel reports it).
std::unique_ptr<SSL_CTX, SslCtxFree> MakeContext(const TlsProbeConfig& c) {
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return nullptr;
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  std::unique_ptr<BIO, BioFree> ca(BIO_new_mem_buf(c.ca_pem.data(), static_cast<int>(c.ca_pem.size())));
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  int cas = 0;
  while (X509* x = PEM_read_bio_X509(ca.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, x);
    X509_free(x);
    ++cas;
  }
  ERR_clear_error();  // the end of the PEM list reads as an error
  if (cas == 0) return nullptr;
  if (!c.cert_pem.empty()) {
    std::unique_ptr<BIO, BioFree> chain(BIO_new_mem_buf(c.cert_pem.data(), static_cast<int>(c.cert_pem.size())));
    std::unique_ptr<X509, X509Free> leaf(PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr));
    if (!leaf || SSL_CTX_use_certificate(ctx.get(), leaf.get()) != 1) return nullptr;
    while (X509* x = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add_extra_chain_cert(ctx.get(), x) != 1) X509_free(x);  // taken over on success
    }
    ERR_clear_error();
    std::unique_ptr<BIO, BioFree> key_bio(BIO_new_mem_buf(c.key_pem.data(), static_cast<int>(c.key_pem.size())));
    std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
    if (!key || SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1) return nullptr;
  }
  static const unsigned char kAlpn[] = {2, 'h', '2'};  // gRPC servers negotiate HTTP/2
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn);
  return ctx;
}

// The reason of the last OpenSSL error if it is about a certificate, else "".
std::string CertificateReason(SSL* ssl) {
  const unsigned long err = ERR_peek_last_error();
  const char* reason = err != 0 ? ERR_reason_error_string(err) : nullptr;
  ERR_clear_error();
  if (reason == nullptr || !TlsVerificationFailure(reason)) return "";
  if (absl::StrContains(reason, "certificate verify failed")) {
    return absl::StrCat(reason, " (", X509_verify_cert_error_string(SSL_get_verify_result(ssl)), ")");
  }
  return reason;
}

}  // namespace

std::optional<absl::string_view> TlsVerificationFailure(absl::string_view message) {
  static constexpr std::array<absl::string_view, 10> kMarkers = {
      "certificate verify failed",   // we reject the service's certificate (OpenSSL)
      "CERTIFICATE_VERIFY_FAILED",   // the same (BoringSSL)
      "is not in peer certificate",  // gRPC: the certificate does not name the address / --provenance_server_name
      "alert unknown ca",            // the service does not know our certificate's CA
      "alert bad certificate",       // the service rejects our certificate
      "alert certificate required",  // we sent none
      "alert certificate unknown",  "alert certificate expired",
      "alert certificate revoked",  "alert unsupported certificate",
  };
  for (absl::string_view marker : kMarkers) {
    if (absl::StrContains(message, marker)) return marker;
  }
  return std::nullopt;
}

namespace {

// One probe; `closed_after_handshake` is set when the service completed the
// handshake and closed without sending anything.
TlsProbeResult ProbeOnce(const TlsProbeConfig& c, bool* closed_after_handshake) {
  *closed_after_handshake = false;
  std::string host, port;
  if (!SplitHostPort(c.address, &host, &port)) return {};
  auto ctx = MakeContext(c);
  if (!ctx) return {};
  Fd fd(Connect(host, port, c.timeout));
  if (fd.get() < 0) return {};  // not reachable: a network matter, retried
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1) return {};
  // The name the service's certificate must carry, as gRPC checks it.
  const std::string name = c.server_name.empty() ? host : c.server_name;
  in6_addr ip6;
  in_addr ip4;
  const bool is_ip = inet_pton(AF_INET, name.c_str(), &ip4) == 1 || inet_pton(AF_INET6, name.c_str(), &ip6) == 1;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
    SSL_set_tlsext_host_name(ssl.get(), name.c_str());
  }
  ERR_clear_error();
  if (SSL_connect(ssl.get()) != 1) {
    TlsProbeResult r;
    r.failure = CertificateReason(ssl.get());
    r.refused_by_service = absl::StrContains(r.failure, "alert");
    return r;
  }
  // The service's first answer: its HTTP/2 settings, an alert, or a close.
  char byte;
  ERR_clear_error();
  const int n = SSL_read(ssl.get(), &byte, 1);
  if (n > 0) return {};
  const int err = SSL_get_error(ssl.get(), n);
  TlsProbeResult r;
  r.failure = CertificateReason(ssl.get());
  if (!r.failure.empty()) {
    r.refused_by_service = absl::StrContains(r.failure, "alert");
    return r;
  }
  const bool timed_out = err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK);
  *closed_after_handshake =
      !timed_out && (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL);
  return {};
}

}  // namespace

TlsProbeResult ProbeTlsCertificates(const TlsProbeConfig& c) {
  bool closed = false;
  TlsProbeResult r = ProbeOnce(c, &closed);
  if (!r.failure.empty() || !closed) return r;
  absl::SleepFor(absl::Milliseconds(200));
  r = ProbeOnce(c, &closed);
  if (!r.failure.empty() || !closed) return r;
  r.failure =
      "the service completed the TLS handshake and closed the connection without a byte, twice (a gRPC server does "
      "that when it rejects the client certificate)";
  r.refused_by_service = true;
  return r;
}

}  // namespace ossgate::worker
