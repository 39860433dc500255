#include "inference_worker/http/http_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "httplib.h"
#include "inference_worker/http/openai_api.h"
#include "inference_worker/worker/client_identity.h"
#include "inference_worker/worker/worker_log.h"

namespace ossgate::http {

using json = nlohmann::json;

namespace {

constexpr char kJson[] = "application/json";

// An eventfd the engine's notify callback signals. Shared with the
// callback, which the engine may still run after the waiter is gone.
class Doorbell {
 public:
  Doorbell() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Doorbell() {
    if (fd_ >= 0) ::close(fd_);
  }
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;
  int fd() const { return fd_; }
  void Ring() const {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
  }
  void Clear() const {
    uint64_t v = 0;
    [[maybe_unused]] ssize_t n = ::read(fd_, &v, sizeof v);
  }

 private:
  const int fd_;
};

// Follows one engine stream for a connection thread: the next chunk, or
// nothing once the client has hung up (the generation is then cancelled).
class StreamWaiter {
 public:
  StreamWaiter(std::shared_ptr<serving::RequestStream> stream, int socket_fd)
      : stream_(std::move(stream)), socket_fd_(socket_fd), bell_(std::make_shared<Doorbell>()) {
    std::shared_ptr<const Doorbell> bell = bell_;
    stream_->SetNotify([bell] { bell->Ring(); });
  }
  ~StreamWaiter() { Cancel(); }

  const std::string& request_id() const { return stream_->request_id(); }

  std::optional<serving::OutputChunk> Next() {
    for (;;) {
      if (std::optional<serving::OutputChunk> c = stream_->Pop()) {
        if (c->final) done_ = true;
        return c;
      }
      // POLLRDHUP: the peer closed its side (also when unread data such as
      // a TLS close_notify is pending, which a peek would call "alive").
      pollfd fds[2] = {{bell_->fd(), POLLIN, 0}, {socket_fd_, POLLRDHUP, 0}};
      const int n = ::poll(fds, socket_fd_ >= 0 ? 2 : 1, /*timeout_ms=*/1000);
      if (n > 0 && socket_fd_ >= 0 && (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0) {
        Cancel();
        return std::nullopt;
      }
      if (n > 0 && (fds[0].revents & POLLIN) != 0) bell_->Clear();
    }
  }

  // Frees the request's capacity unless it finished (idempotent).
  void Cancel() {
    if (!done_) stream_->Cancel();
    done_ = true;
  }

 private:
  std::shared_ptr<serving::RequestStream> stream_;
  const int socket_fd_;
  std::shared_ptr<Doorbell> bell_;
  bool done_ = false;
};

int SocketOf(const httplib::Request& req) { return req.ssl != nullptr ? SSL_get_fd(req.ssl) : -1; }

void SendError(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(Dump(ErrorJson(e)), kJson);
}

ApiError NotReady(const std::string& reason) {
  ApiError e;
  e.status = 503;
  e.type = "service_unavailable";
  e.code = "model_not_ready";
  e.message = absl::StrCat("the model is not ready: ", reason, " (GET /health says when it is)");
  return e;
}

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_listen must be host:port (e.g. 0.0.0.0:8443), got ", worker::Quote(listen, 64)));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::make_pair(host, port);
}

std::string RouteName(const std::string& path) {
  for (const char* r : {"/health", "/v1/models", "/v1/chat/completions", "/v1/completions"}) {
    if (path == r) return r;
  }
  return "other";
}

}  // namespace

HttpServer::HttpServer(const HttpOptions& options, HttpObserver* observer,
                       std::function<void(const std::string&)> log)
    : options_(options), observer_(observer), log_(std::move(log)) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options, HttpObserver* observer,
                                                              std::function<void(const std::string&)> log) {
  auto hp = SplitHostPort(options.listen);
  if (!hp.ok()) return hp.status();
  if (options.tls_cert.empty() || options.tls_key.empty()) {
    return absl::InvalidArgumentError("--http_listen needs --tls_cert and --tls_key: the HTTP API is served over TLS only");
  }
  if (options.tls_client_ca.empty() && options.api_keys_path.empty() && !options.allow_anonymous) {
    return absl::InvalidArgumentError(
        "--http_listen needs a way to authenticate clients: --tls_client_ca (client certificates) and/or "
        "--http_api_keys (a key hash file)");
  }
  if (options.max_body_bytes < 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_max_body_bytes must be >= 1024, got ", options.max_body_bytes));
  }
  if (options.threads < 2) {
    return absl::InvalidArgumentError(absl::StrCat("the HTTP server needs >= 2 threads, got ", options.threads));
  }
  std::unique_ptr<HttpServer> s(new HttpServer(options, observer, std::move(log)));
  if (!options.api_keys_path.empty()) {
    auto n = s->keys_.Load(options.api_keys_path);
    if (!n.ok()) return absl::InvalidArgumentError(absl::StrCat("--http_api_keys: ", n.status().message()));
    s->Log(absl::StrCat("http: ", *n, " API key(s) from ", options.api_keys_path));
  }
  HttpServer* self = s.get();
  s->server_ = std::make_unique<httplib::SSLServer>([self](SSL_CTX& ctx) {
    ERR_clear_error();
    SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    const HttpOptions& o = self->options_;
    if (SSL_CTX_use_certificate_chain_file(&ctx, o.tls_cert.c_str()) != 1) {
      self->tls_error_ = absl::StrCat("--tls_cert ", o.tls_cert, ": ", OpenSslError());
      return false;
    }
    if (SSL_CTX_use_PrivateKey_file(&ctx, o.tls_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(&ctx) != 1) {
      self->tls_error_ = absl::StrCat("--tls_key ", o.tls_key, ": ", OpenSslError());
      return false;
    }
    if (!o.tls_client_ca.empty()) {
      if (SSL_CTX_load_verify_locations(&ctx, o.tls_client_ca.c_str(), nullptr) != 1) {
        self->tls_error_ = absl::StrCat("--tls_client_ca ", o.tls_client_ca, ": ", OpenSslError());
        return false;
      }
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.tls_client_ca.c_str());
      if (names != nullptr) SSL_CTX_set_client_CA_list(&ctx, names);
      // Verify a certificate when one is presented, but do not require one:
      // API-key clients have none. An invalid certificate fails the handshake.
      SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
      static const unsigned char kSessionContext[] = "ossgate-http";
      SSL_CTX_set_session_id_context(&ctx, kSessionContext, sizeof kSessionContext - 1);
    }
    return true;
  });
  if (!s->server_->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat("HTTP TLS setup failed: ", s->tls_error_));
  }
  const int threads = options.threads;
  s->server_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s->server_->set_payload_max_length(options.max_body_bytes);
  // One small write per token: Nagle's algorithm would hold each behind the
  // client's delayed ACK (httplib leaves it on by default; gRPC turns it off).
  s->server_->set_tcp_nodelay(true);
  // An idle keep-alive connection holds a pool thread: let it go after 5 s.
  s->server_->set_keep_alive_timeout(5);
  s->server_->set_keep_alive_max_count(1000);
  s->server_->set_read_timeout(10);
  // A stream whose client stops reading fails its write after this and is
  // cancelled (the engine's stall timeout, 30 s by default, is the backstop).
  s->server_->set_write_timeout(30);
  s->Route();
  if (hp->second == 0) {
    s->port_ = s->server_->bind_to_any_port(hp->first);
  } else {
    s->port_ = s->server_->bind_to_port(hp->first, hp->second) ? hp->second : -1;
  }
  if (s->port_ < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot listen on --http_listen=", options.listen));
  }
  s->thread_ = std::thread([self] { self->server_->listen_after_bind(); });
  // Stop() before the loop runs would not end it (httplib's stop() acts on
  // a running server only): wait for it.
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (!s->server_->is_running() && absl::Now() < end) absl::SleepFor(absl::Milliseconds(1));
  if (!s->server_->is_running()) return absl::InternalError("the HTTP server did not start");
  return s;
}

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpServer::SetNotReady(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  not_ready_ = reason;
}

void HttpServer::SetModel(const worker::LoadedModelView* model) { model_.store(model); }

void HttpServer::StopAccepting(const std::string& reason) {
  SetNotReady(reason);
  accepting_.store(false);
}

absl::StatusOr<size_t> HttpServer::ReloadKeys() {
  if (options_.api_keys_path.empty()) return absl::FailedPreconditionError("no --http_api_keys file to reload");
  return keys_.Load(options_.api_keys_path);
}

absl::StatusOr<HttpServer::Caller> HttpServer::Authenticate(const httplib::Request& req) const {
  // A certificate with an identity of the served roles wins; otherwise a
  // key. A presented certificate was verified in the handshake.
  absl::Status cert_refusal;
  if (req.ssl != nullptr && !options_.tls_client_ca.empty()) {
    X509* peer = SSL_get1_peer_certificate(req.ssl);
    if (peer != nullptr) {
      const worker::PeerCertificate cert = worker::PeerCertificateFromX509(peer);
      X509_free(peer);
      if (SSL_get_verify_result(req.ssl) == X509_V_OK) {
        absl::StatusOr<worker::ClientIdentity> id = worker::IdentityOf(cert, options_.client_roles);
        if (id.ok()) return Caller{id->uri, id->uri};
        cert_refusal = absl::Status(id.status().code(),
                                    absl::StrCat(id.status().message(), "; ", worker::DescribePeer(cert)));
      }
    }
  }
  const std::string auth = req.get_header_value("Authorization");
  if (!auth.empty()) {
    // The scheme is case-insensitive (RFC 9110).
    if (auth.size() < 7 || !absl::EqualsIgnoreCase(absl::string_view(auth).substr(0, 7), "Bearer ")) {
      return absl::UnauthenticatedError("the Authorization header must be \"Bearer <API key>\"");
    }
    const absl::string_view key = absl::StripAsciiWhitespace(absl::string_view(auth).substr(7));
    if (std::optional<std::string> id = keys_.Match(key)) return Caller{absl::StrCat("apikey:", *id), "apikey:" + *id};
    return absl::UnauthenticatedError("invalid API key");
  }
  if (!cert_refusal.ok()) return cert_refusal;
  if (options_.allow_anonymous) return Caller{"", "anonymous"};
  return absl::UnauthenticatedError(
      "credentials are required: an API key (Authorization: Bearer <key>) or a client certificate");
}

void HttpServer::Route() {
  server_->Get("/health", [this](const httplib::Request& req, httplib::Response& res) { Health(req, res); });
  server_->Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) { Models(req, res); });
  server_->Post("/v1/chat/completions",
                [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
                  Generate(static_cast<int>(Endpoint::kChatCompletions), req, res, reader);
                });
  server_->Post("/v1/completions",
                [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
                  Generate(static_cast<int>(Endpoint::kCompletions), req, res, reader);
                });
  // Statuses httplib sets itself (no route, a body over the limit, a
  // malformed request line) get the OpenAI error shape too.
  server_->set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                     httplib::Response& res) {
    if (!res.body.empty() || res.content_provider_) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e;
    e.status = res.status;
    if (res.status == 404) {
      e.type = "not_found_error";
      e.message = absl::StrCat("no route ", req.method, " ", worker::Quote(req.path, 128),
                               "; the API serves GET /health, GET /v1/models, POST /v1/chat/completions and POST "
                               "/v1/completions");
    } else if (res.status == 413) {
      e.message = "the request body is larger than the worker's limit (--http_max_body_bytes)";
      e.code = "request_too_large";
    } else {
      e.type = res.status >= 500 ? "server_error" : "invalid_request_error";
      e.message = absl::StrCat("HTTP ", res.status);
    }
    SendError(res, e);
    return httplib::Server::HandlerResponse::Handled;
  }));
  server_->set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    Log(absl::StrCat("http: internal error on ", worker::Quote(req.path, 128), ": ", worker::Quote(what)));
    ApiError e;
    e.status = 500;
    e.type = "server_error";
    e.message = "internal error";
    SendError(res, e);
  });
  server_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (observer_) observer_->OnHttpRequest(RouteName(req.path), res.status);
  });
}

void HttpServer::Health(const httplib::Request&, httplib::Response& res) {
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reason = not_ready_;
  }
  const bool ready = model_.load() != nullptr && accepting_.load();
  json j = {{"status", ready ? "ready" : "not_ready"}};
  if (!ready) j["reason"] = reason;
  res.status = ready ? 200 : 503;
  res.set_content(Dump(j), kJson);
}

void HttpServer::Models(const httplib::Request& req, httplib::Response& res) {
  absl::StatusOr<Caller> caller = Authenticate(req);
  if (!caller.ok()) {
    Log(absl::StrCat("http: refused GET /v1/models from ", req.remote_addr, ": ", caller.status().message()));
    SendError(res, ErrorFromStatus(caller.status()));
    return;
  }
  const worker::LoadedModelView* m = model_.load();
  if (m == nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    SendError(res, NotReady(not_ready_));
    return;
  }
  const auto& info = m->info;
  const auto& p = info.provenance();
  json model = {{"id", options_.model_id},
                {"object", "model"},
                {"created", p.loaded_at().seconds()},
                {"owned_by", "ossgate"},
                {"max_model_len", info.context_length()},
                // Provenance: what was verified before the model was loaded.
                {"source", p.source_uri()},
                {"sha256", p.sha256()},
                {"size_bytes", p.size_bytes()},
                {"audit_log_index", p.audit_log_index()},
                {"verified_at", absl::FormatTime(absl::RFC3339_full, absl::FromUnixSeconds(p.verified_at().seconds()),
                                                 absl::UTCTimeZone())},
                {"token_id", p.token_id()},
                {"key_id", p.key_id()},
                {"registry_entry", p.registry_entry()},
                {"name", info.name()},
                {"backend", info.backend()}};
  res.status = 200;
  res.set_content(Dump(json{{"object", "list"}, {"data", json::array({std::move(model)})}}), kJson);
}

template <class ContentReader>
void HttpServer::Generate(int endpoint_int, const httplib::Request& req, httplib::Response& res,
                          const ContentReader& reader) {
  const Endpoint endpoint = static_cast<Endpoint>(endpoint_int);
  const char* name = endpoint == Endpoint::kChatCompletions ? "chat.completions" : "completions";
  // Refusals before the body is read still read it (discarding it, up to
  // the limit), so the connection stays in step for the next request.
  auto drain = [&] {
    size_t seen = 0;
    reader([&](const char*, size_t n) {
      seen += n;
      return seen <= options_.max_body_bytes;
    });
  };
  absl::StatusOr<Caller> caller = Authenticate(req);
  if (!caller.ok()) {
    drain();
    Log(absl::StrCat("http: refused ", name, " from ", req.remote_addr, ": ", caller.status().message()));
    SendError(res, ErrorFromStatus(caller.status()));
    return;
  }
  const worker::LoadedModelView* m = model_.load();
  if (m == nullptr || !accepting_.load()) {
    drain();
    std::string reason;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reason = not_ready_;
    }
    SendError(res, NotReady(reason));
    return;
  }

  std::string body;
  bool too_large = false;
  const bool read = reader([&](const char* data, size_t n) {
    if (body.size() + n > options_.max_body_bytes) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (!read) {
    if (too_large || res.status == 413) {
      ApiError e = BadParam("", absl::StrCat("the request body is larger than ", options_.max_body_bytes,
                                             " bytes (--http_max_body_bytes)"));
      e.status = 413;
      e.code = "request_too_large";
      // The rest of a chunked body was not read: this connection is done.
      res.set_header("Connection", "close");
      SendError(res, e);
    } else {
      SendError(res, BadParam("", "the request body could not be read"));
    }
    return;
  }

  auto parsed = ParseRequest(endpoint, body);
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    SendError(res, *e);
    return;
  }
  OpenAiRequest& r = std::get<OpenAiRequest>(parsed);
  if (r.model != options_.model_id) {
    ApiError e;
    e.status = 404;
    e.type = "not_found_error";
    e.param = "model";
    e.code = "model_not_found";
    e.message = absl::StrCat("the model ", worker::Quote(r.model, 128), " is not served here; this worker serves ",
                             worker::Quote(options_.model_id, 128));
    SendError(res, e);
    return;
  }
  auto built = worker::BuildGenerationRequest(r.spec, *m, r.names);
  if (!built.ok()) {
    SendError(res, ErrorFromStatus(built.status()));
    return;
  }
  built->owner = caller->owner;
  auto stream = m->engine->Submit(*std::move(built));
  if (!stream.ok()) {
    SendError(res, ErrorFromStatus(stream.status()));
    return;
  }
  // The user field is the client's word, not an identity: quoted, for
  // correlation only.
  Log(absl::StrCat("http: ", name, " id=", (*stream)->request_id(), " owner=", worker::LogValue(caller->describe),
                   r.user.empty() ? "" : absl::StrCat(" user=", worker::Quote(r.user, 128)),
                   r.stream ? " stream" : ""));
  const std::string id =
      absl::StrCat(endpoint == Endpoint::kChatCompletions ? "chatcmpl-" : "cmpl-", (*stream)->request_id());
  const int64_t created = absl::ToUnixSeconds(absl::Now());
  auto waiter = std::make_shared<StreamWaiter>(*stream, SocketOf(req));
  auto builder = std::make_shared<ResponseBuilder>(r, id, created, options_.model_id, *m->tokenizer);

  if (!r.stream) {
    for (;;) {
      std::optional<serving::OutputChunk> c = waiter->Next();
      if (!c) {  // the client went away; nobody reads this answer
        SendError(res, BadParam("", "client disconnected"));
        return;
      }
      builder->Add(*c);
      if (c->final) break;
    }
    auto out = builder->Response();
    if (auto* e = std::get_if<ApiError>(&out)) {
      SendError(res, *e);
      return;
    }
    res.status = 200;
    res.set_content(Dump(std::get<json>(out)), kJson);
    return;
  }

  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto started = std::make_shared<bool>(false);
  res.set_chunked_content_provider(
      "text/event-stream",  // exactly: httplib never compresses this type, which would hold chunks back
      [waiter, builder, started](size_t, httplib::DataSink& sink) {
        std::string out;
        auto add = [&out](const json& j) { absl::StrAppend(&out, "data: ", Dump(j), "\n\n"); };
        if (!*started) {
          *started = true;
          for (const json& j : builder->Begin()) add(j);
          if (!out.empty() && !sink.write(out.data(), out.size())) {
            waiter->Cancel();
            return false;
          }
          return true;
        }
        std::optional<serving::OutputChunk> c = waiter->Next();
        if (!c) return false;  // the client hung up; Next cancelled the generation
        for (const json& j : builder->Stream(*c)) add(j);
        if (c->final) out += "data: [DONE]\n\n";
        if (!out.empty() && !sink.write(out.data(), out.size())) {
          waiter->Cancel();
          return false;
        }
        if (c->final) sink.done();
        return true;
      },
      [waiter](bool) { waiter->Cancel(); });
}

}  // namespace ossgate::http
