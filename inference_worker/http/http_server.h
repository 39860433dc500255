// The worker's OpenAI-compatible HTTP face (docs/http.md): HTTPS on
// --http_listen, served by cpp-httplib, in front of the same serving::Engine
// as the gRPC service. openai_api.h decides what requests and responses say;
// this file authenticates, moves bytes and follows the engine's streams.
//
//   GET  /health               no credentials; 200 when serving, else 503 saying why not
//   GET  /v1/models            the loaded model with its provenance
//   POST /v1/chat/completions  JSON or server-sent events (stream: true)
//   POST /v1/completions       likewise, for a text or token prompt
//
// Everything but /health needs credentials: a client certificate with an
// identity of the served roles (verified against the client CA when
// presented; not requested of clients that use keys), or an API key
// ("Authorization: Bearer <key>") from the key file (api_keys.h). The
// identity ("spiffe://..." or "apikey:<id>") owns the engine requests, as a
// gRPC caller's does. Until the model is verified and loaded every other
// path answers 503.
//
// One thread per connection (a pool sized by the caller): a streaming
// request holds its thread. While it waits for output the thread also
// watches the socket, so a client that goes away cancels its generation at
// once (its slot and KV blocks are freed within one engine step).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/http/api_keys.h"
#include "inference_worker/worker/request_builder.h"

namespace httplib {
class SSLServer;
struct Request;
struct Response;
}  // namespace httplib

namespace ossgate::http {

struct HttpOptions {
  std::string listen;  // host:port (port 0: any free port, see HttpServer::port())
  std::string tls_cert, tls_key;
  std::string tls_client_ca;  // empty: client certificates are not requested
  std::vector<std::string> client_roles = {"client"};
  // No credentials needed (--allow_unauthenticated_clients): every caller
  // without a key or certificate is the anonymous owner "".
  bool allow_anonymous = false;
  std::string api_keys_path;  // empty: no API keys
  size_t max_body_bytes = 8 << 20;
  int threads = 96;             // connection threads (each open connection holds one)
  std::string model_id;         // the `model` clients name
};

// Counts requests (metrics). Called on connection threads.
class HttpObserver {
 public:
  virtual ~HttpObserver() = default;
  // Every answered request: `route` is the matched path or "other".
  virtual void OnHttpRequest(const std::string& route, int status) = 0;
};

class HttpServer {
 public:
  // Loads the certificate, key and API keys and binds; the server then
  // answers /health (not ready) until SetModel. InvalidArgument naming the
  // flag for bad configuration.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpOptions& options, HttpObserver* observer,
                                                           std::function<void(const std::string&)> log);
  ~HttpServer();  // Stop()s

  int port() const { return port_; }
  // What /health says while no model is served ("verifying the model with
  // the provenance service", ...).
  void SetNotReady(const std::string& reason);
  // Publishes the loaded model (null: none); must outlive its use, i.e.
  // until Stop() or SetModel(nullptr).
  void SetModel(const worker::LoadedModelView* model);
  // Drain: generation requests get 503; running ones continue.
  void StopAccepting(const std::string& reason);
  // Re-reads the API key file (SIGHUP). On error the old keys stay.
  absl::StatusOr<size_t> ReloadKeys();
  // Stops listening and waits for the connection threads.
  void Stop();

 private:
  struct Caller {
    std::string owner;
    std::string describe;  // for logs
  };
  explicit HttpServer(const HttpOptions& options, HttpObserver* observer,
                      std::function<void(const std::string&)> log);
  void Route();
  absl::StatusOr<Caller> Authenticate(const httplib::Request& req) const;
  void Health(const httplib::Request& req, httplib::Response& res);
  void Models(const httplib::Request& req, httplib::Response& res);
  template <class ContentReader>
  void Generate(int endpoint, const httplib::Request& req, httplib::Response& res, const ContentReader& reader);
  void Log(const std::string& line) const {
    if (log_) log_(line);
  }

  const HttpOptions options_;
  HttpObserver* const observer_;
  const std::function<void(const std::string&)> log_;
  ApiKeyStore keys_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<const worker::LoadedModelView*> model_{nullptr};
  std::atomic<bool> accepting_{true};
  mutable std::mutex mu_;
  std::string not_ready_ = "starting";  // guarded by mu_
  std::string tls_error_;               // set by the SSL_CTX setup
};

}  // namespace ossgate::http
