#include "inference_worker/worker/worker_server.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "inference_worker/backend_factory.h"
#include "inference_worker/cuda/memory_plan.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/http/http_server.h"
#include "inference_worker/serving/engine.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/worker/inference_service.h"
#include "inference_worker/worker/metrics.h"
#include "inference_worker/worker/worker_log.h"

namespace ossgate::worker {

namespace pb = ::ossgate::inference::v1;

namespace {

void Log(const std::string& msg) { LogLine(msg); }

// Waits for SIGTERM/SIGINT on a dedicated thread (the signals are blocked in
// every other thread). Until StartServing(), a signal ends the process at
// once with status 0: the model is still loading (a multi-GB hash, the
// provenance call and its retries, the upload), nothing is served, and
// Kubernetes' grace period (30 s by default) must not run out on a worker
// that goes on to ask for an approval it will never use. Exiting from this
// thread is what makes it prompt wherever the main thread is (inside a read,
// a blocking RPC or a backend upload); the phase lock makes "loading" and
// "serving" exclusive, so a signal is either an exit or a drain.
class SignalWatcher {
 public:
  SignalWatcher() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] {
      for (;;) {
        int sig = 0;
        sigwait(&set_, &sig);
        if (sig == SIGHUP) {  // reload, never exit (SIGHUP's default action would end the process)
          std::function<void()> on_hup;
          {
            std::lock_guard<std::mutex> lock(mu_);
            on_hup = on_hup_;
          }
          if (on_hup) {
            on_hup();
          } else {
            Log("signal 1 (SIGHUP): nothing to reload");
          }
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (!serving_) {
            Log(absl::StrCat("signal ", sig, " while loading the model: exiting now (nothing is served yet)"));
            _exit(0);  // no destructors: other threads are mid-load; the kernel closes sockets and files
          }
          signalled_ = sig;
        }
        cv_.notify_all();
        return;
      }
    });
    thread_.detach();
  }
  // Runs on SIGHUP (on the watcher thread); must stay valid until exit.
  void OnHangup(std::function<void()> f) {
    std::lock_guard<std::mutex> lock(mu_);
    on_hup_ = std::move(f);
  }
  // From now on a signal is recorded for Wait() (a drain) instead of ending
  // the process.
  void StartServing() {
    std::lock_guard<std::mutex> lock(mu_);
    serving_ = true;
  }
  // Waits for a signal after StartServing(); returns it.
  int Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return signalled_ != 0; });
    return signalled_;
  }

 private:
  sigset_t set_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool serving_ = false;  // guarded by mu_
  int signalled_ = 0;     // guarded by mu_
  std::function<void()> on_hup_;  // guarded by mu_
  std::thread thread_;
};

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const WorkerConfig& c) {
  if (c.insecure_dev_loopback) {
    if (!IsLoopbackAddress(c.listen)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--insecure_dev_loopback allows only loopback listen addresses, not '", c.listen, "'"));
    }
    return grpc::InsecureServerCredentials();
  }
  if (c.tls_cert.empty() || c.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "TLS is required: pass --tls_cert and --tls_key (or --insecure_dev_loopback for local development)");
  }
  auto cert = ReadSmallFile(c.tls_cert);
  if (!cert.ok()) return cert.status();
  auto key = ReadSmallFile(c.tls_key);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions o(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  o.pem_key_cert_pairs.push_back({*key, *cert});
  if (!c.allow_unauthenticated_clients) {  // ValidateWorkerConfig: then tls_client_ca is set
    auto ca = ReadSmallFile(c.tls_client_ca);
    if (!ca.ok()) return ca.status();
    o.pem_root_certs = *ca;
    o.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(o);
}

pb::ModelInfo BuildModelInfo(const gguf::GgufFile& file, const model::ModelConfig& c, const VerifiedModel& vm,
                             const model::Backend& backend, int context, int max_seqs, absl::Time loaded_at) {
  pb::ModelInfo info;
  info.set_architecture(model::FamilyName(c.family));
  if (auto name = file.GetString("general.name"); name.ok()) info.set_name(*name);
  info.set_n_layers(c.n_layers);
  info.set_d_model(c.d_model);
  info.set_n_heads(c.n_heads);
  info.set_n_kv_heads(c.n_kv_heads);
  info.set_head_dim(c.head_dim);
  info.set_n_experts(c.n_experts);
  info.set_n_experts_used(c.n_experts_used);
  info.set_d_ff(c.d_ff);
  info.set_vocab_size(c.vocab_size);
  info.set_sliding_window(c.sliding_window);
  info.set_context_length(context);
  info.set_model_context_length(c.context_length);
  for (const gguf::TensorInfo& t : file.tensors()) {
    pb::TensorQuantization* q = info.add_tensors();
    q->set_name(t.name);
    q->set_type(gguf::GgmlTypeName(static_cast<uint32_t>(t.type)));
    for (int d = 0; d < t.n_dims; ++d) q->add_shape(t.ne[d]);
  }
  pb::Provenance* p = info.mutable_provenance();
  p->set_source_uri(vm.claims.source_uri);
  p->set_sha256(vm.digest.sha256);
  p->set_size_bytes(vm.digest.size);
  p->set_token_id(vm.claims.token_id);
  p->set_key_id(vm.claims.key_id);
  p->set_audit_log_index(vm.claims.log_index);
  p->mutable_verified_at()->set_seconds(absl::ToUnixSeconds(vm.verified_at));
  p->mutable_loaded_at()->set_seconds(absl::ToUnixSeconds(loaded_at));
  p->set_registry_entry(vm.matched_source);
  info.set_backend("cpu");
  info.set_device(backend.Description());
  info.set_max_sequences(max_seqs);
  info.set_kv_block_size(const_cast<model::Backend&>(backend).kv().block_size());
  info.set_kv_blocks(const_cast<model::Backend&>(backend).kv().num_full_blocks());
  return info;
}

bool ValidRole(const std::string& role) {
  return !role.empty() && role.size() <= 32 &&
         std::all_of(role.begin(), role.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

}  // namespace

absl::Status ValidateWorkerConfig(const WorkerConfig& c) {
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  if (c.max_sequences <= 0) {
    return bad(absl::StrCat("--max_sequences must be >= 1 (concurrent sequences), got ", c.max_sequences));
  }
  if (c.max_context <= 0) {
    return bad(absl::StrCat("--max_context must be >= 1 (tokens per sequence), got ", c.max_context));
  }
  if (c.kv_blocks < 0) {
    return bad(absl::StrCat("--kv_blocks must be >= 0 (0 = sized from --max_sequences and --max_context), got ",
                            c.kv_blocks));
  }
  if (absl::Status s = gpu::ValidateGpuMemoryFraction(c.gpu_memory_fraction); !s.ok()) return s;
  if (c.max_waiting < 0) return bad(absl::StrCat("--max_waiting must be >= 0, got ", c.max_waiting));
  if (c.step_token_budget <= 0) {
    return bad(absl::StrCat("--step_token_budget must be >= 1, got ", c.step_token_budget));
  }
  if (c.threads < 0) return bad(absl::StrCat("--threads must be >= 0 (0 = all cores), got ", c.threads));
  if (c.cuda_device < 0) return bad(absl::StrCat("--cuda_device must be >= 0, got ", c.cuda_device));
  if (c.tensor_parallel < 1 || c.tensor_parallel > 64) {
    return bad(absl::StrCat("--tensor_parallel must be in [1, 64] (GPUs to split the model over), got ",
                            c.tensor_parallel));
  }
  if (c.expert_parallel < 1 || c.tensor_parallel % c.expert_parallel != 0) {
    return bad(absl::StrCat("--expert_parallel must divide --tensor_parallel=", c.tensor_parallel, ", got ",
                            c.expert_parallel));
  }
  if (c.backend != "auto" && c.backend != "cpu" && c.backend != "cuda") {
    return bad(absl::StrCat("--backend must be auto, cpu or cuda, got ", Quote(c.backend, 32)));
  }
  if (c.stall_timeout <= absl::ZeroDuration() || c.stall_timeout == absl::InfiniteDuration()) {
    return bad(absl::StrCat("--stall_timeout_s must be a finite number of seconds > 0, got ",
                            absl::FormatDuration(c.stall_timeout)));
  }
  if (c.drain_timeout < absl::ZeroDuration()) {
    return bad(absl::StrCat("--drain_timeout_s must be >= 0, got ", absl::FormatDuration(c.drain_timeout)));
  }
  if (c.gate.verify_deadline <= absl::ZeroDuration()) {
    return bad(absl::StrCat("--verify_deadline_s must be > 0, got ", absl::FormatDuration(c.gate.verify_deadline)));
  }
  if (c.client_roles.empty()) return bad("--client_roles must name at least one role, e.g. client");
  for (const std::string& role : c.client_roles) {
    if (!ValidRole(role)) return bad(absl::StrCat("--client_roles: ", Quote(role, 40), " is not a role ([a-z]+)"));
  }
  if (!c.insecure_dev_loopback) {
    if (c.allow_unauthenticated_clients && !c.tls_client_ca.empty()) {
      return bad("--allow_unauthenticated_clients contradicts --tls_client_ca; pass one of them");
    }
    if (!c.allow_unauthenticated_clients && c.tls_client_ca.empty()) {
      return bad(
          "client authentication is required: pass --tls_client_ca (the CA of the clients' certificates), or "
          "--allow_unauthenticated_clients to serve any TLS client anonymously");
    }
  }
  if (!c.http_listen.empty()) {
    if (c.insecure_dev_loopback) {
      return bad("--http_listen serves HTTPS only; it needs --tls_cert and --tls_key, not --insecure_dev_loopback");
    }
    if (c.tls_client_ca.empty() && c.http_api_keys.empty() && !c.allow_unauthenticated_clients) {
      return bad("--http_listen needs --tls_client_ca (client certificates) and/or --http_api_keys (API keys)");
    }
    if (c.http_max_body_bytes < 1024) {
      return bad(absl::StrCat("--http_max_body_bytes must be >= 1024, got ", c.http_max_body_bytes));
    }
  } else if (!c.http_api_keys.empty()) {
    return bad("--http_api_keys is only used with --http_listen");
  }
  if (!c.testonly_pause_phase.empty() && c.testonly_pause_phase != "hashing" && c.testonly_pause_phase != "verifying" &&
      c.testonly_pause_phase != "uploading") {
    return bad(absl::StrCat("--testonly_pause_at_phase must be hashing, verifying or uploading, got ",
                            Quote(c.testonly_pause_phase, 32)));
  }
  return absl::OkStatus();
}

int RunWorker(const WorkerConfig& config) {
  SignalWatcher signals;  // before any thread starts, so all inherit the mask

  // Bad flags end the process before it listens or calls anyone.
  if (absl::Status s = ValidateWorkerConfig(config); !s.ok()) {
    Log(absl::StrCat("configuration error: ", s.message()));
    return 2;
  }
  auto creds = ServerCredentials(config);
  if (!creds.ok()) {
    Log(absl::StrCat("configuration error: ", creds.status().message()));
    return 2;
  }
  GateConfig gate = config.gate;
  for (const std::string& path : config.pinned_key_paths) {
    auto key = token::Ed25519PublicKey::LoadPemFile(path);
    if (!key.ok()) {
      Log(absl::StrCat("configuration error: pinned provenance key '", path, "': ", key.status().message()));
      return 2;
    }
    gate.pinned_keys.push_back(key->raw());
  }
  // Tests only: hold the main thread in a load phase so a test can signal it.
  auto pause_at = [&config](absl::string_view phase) {
    if (phase != config.testonly_pause_phase) return;
    Log(absl::StrCat("testonly: pausing ", absl::FormatDuration(config.testonly_pause), " at phase=", phase));
    absl::SleepFor(config.testonly_pause);
  };
  if (!config.testonly_pause_phase.empty()) gate.phase_hook = pause_at;
  auto client = MakeGrpcProvenanceClient(config.provenance);
  if (!client.ok()) {
    Log(absl::StrCat("configuration error: ", client.status().message()));
    return 2;
  }

  if (config.allow_unauthenticated_clients && !config.insecure_dev_loopback) {
    Log(absl::StrCat("WARNING: --allow_unauthenticated_clients: any TLS client that reaches ", config.listen,
                     " can generate, and all clients share one anonymous owner (each can Abort the others' "
                     "requests); use --tls_client_ca in production"));
  }

  // Serve health (and UNAVAILABLE for inference) while the model loads.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  WorkerMetrics metrics;
  ClientAuthPolicy policy;
  policy.require_identity = !config.insecure_dev_loopback && !config.allow_unauthenticated_clients;
  policy.roles = config.client_roles;
  InferenceServiceImpl service(policy, &metrics, [](const std::string& line) { Log(line); });
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second worker (or a stale one) would
  // then bind the same port and clients would be spread over both. A taken
  // port must be a startup error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(config.listen, *creds);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    Log(absl::StrCat("cannot listen on ", config.listen));
    return 2;
  }
  std::unique_ptr<grpc::Server> health_server;
  if (!config.health_listen.empty()) {
    grpc::ServerBuilder hb;
    hb.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    hb.AddListeningPort(config.health_listen, grpc::InsecureServerCredentials());
    health_server = hb.BuildAndStart();
    if (!health_server) {
      Log(absl::StrCat("cannot listen on health port ", config.health_listen));
      return 2;
    }
  }
  auto set_health = [&](bool serving) {
    for (grpc::Server* s : {server.get(), health_server.get()}) {
      if (!s) continue;
      s->GetHealthCheckService()->SetServingStatus("", true);  // the process is alive
      s->GetHealthCheckService()->SetServingStatus(kInferenceServiceName, serving);
    }
  };
  set_health(false);
  Log(absl::StrCat("listening on ", config.listen,
                   config.insecure_dev_loopback           ? " (plaintext, loopback)"
                   : config.allow_unauthenticated_clients ? " (TLS, clients not authenticated)"
                                                          : " (mutual TLS)",
                   "; model not loaded yet (health NOT_SERVING)"));
  if (!config.metrics_listen.empty() && !metrics.Expose(config.metrics_listen)) return 2;

  // The HTTP face answers /health (not ready, and why) from here on.
  std::unique_ptr<http::HttpServer> http_server;
  if (!config.http_listen.empty()) {
    http::HttpOptions ho;
    ho.listen = config.http_listen;
    ho.tls_cert = config.tls_cert;
    ho.tls_key = config.tls_key;
    ho.tls_client_ca = config.allow_unauthenticated_clients ? "" : config.tls_client_ca;
    ho.client_roles = config.client_roles;
    ho.allow_anonymous = config.allow_unauthenticated_clients;
    ho.api_keys_path = config.http_api_keys;
    ho.max_body_bytes = config.http_max_body_bytes;
    // Each open connection holds a thread: enough for every running and
    // queued request plus idle keep-alive connections and probes.
    ho.threads = config.max_sequences + config.max_waiting + 16;
    ho.model_id = config.gate.model_name;
    auto started = http::HttpServer::Start(ho, &metrics, [](const std::string& line) { Log(line); });
    if (!started.ok()) {
      Log(absl::StrCat("configuration error: ", started.status().message()));
      server->Shutdown();
      return 2;
    }
    http_server = *std::move(started);
    http_server->SetNotReady("verifying the model with the provenance service");
    signals.OnHangup([srv = http_server.get()] {
      auto n = srv->ReloadKeys();
      Log(n.ok() ? absl::StrCat("SIGHUP: reloaded ", *n, " HTTP API key(s)")
                 : absl::StrCat("SIGHUP: HTTP API keys NOT reloaded (the previous keys stay): ", n.status().message()));
    });
    Log(absl::StrCat("http: listening on ", config.http_listen, " (HTTPS", config.tls_client_ca.empty() ? "" : ", client certificates",
                     config.http_api_keys.empty() ? "" : ", API keys", "); model not loaded yet (/health 503)"));
  }
  // The SIGHUP callback must not outlive the HTTP server on any return path.
  struct HangupReset {
    SignalWatcher& s;
    ~HangupReset() { s.OnHangup(nullptr); }
  } hangup_reset{signals};
  auto not_ready = [&](const std::string& why) {
    if (http_server) http_server->SetNotReady(why);
  };
  {
    auto hook = gate.phase_hook;
    gate.phase_hook = [hook, not_ready](absl::string_view phase) {
      not_ready(phase == "hashing" ? "hashing the model file" : "verifying the model with the provenance service");
      if (hook) hook(phase);
    };
  }

  BackendChoice choice;
  choice.kind = config.backend;
  choice.cuda_device = config.cuda_device;
  choice.tensor_parallel = config.tensor_parallel;
  choice.expert_parallel = config.expert_parallel;
  choice.cpu_threads = config.threads;
  choice.max_sequences = config.max_sequences;
  choice.max_context = config.max_context;
  choice.kv_blocks = config.kv_blocks;
  choice.gpu_memory_fraction = config.gpu_memory_fraction;
  // The file streams straight into device memory when the CUDA backend may
  // run (one read, no host copy of the model), else into host memory.
  std::string image_note;
  std::unique_ptr<gpu::DeviceModelImage> image;
  if (config.load_to_device) {
    image = DeviceImageFor(choice, &image_note);
  } else if (choice.kind != "cpu") {
    image_note = "the model is read into host memory (--load_to_device=false)";
  }
  if (!image_note.empty()) Log(image_note);

  // The gate, retried on rejection only when asked to wait for a new model.
  const auto t_load = std::chrono::steady_clock::now();
  absl::StatusOr<VerifiedModel> vm;
  std::optional<gguf::GgufFile> file;
  for (;;) {
    vm = LoadVerifiedModel(gate, **client, [](const std::string& line) { Log(line); }, absl::Now, image.get());
    if (vm.ok()) {
      // Parsed only now, from exactly the bytes the token approved, and
      // checked to be of the family the approval names before anything is
      // bound to them.
      Log("phase=parsing");
      absl::Status family;
      {
        auto parsed = image ? image->ParseHeader() : gguf::GgufFile::Parse(vm->bytes.bytes());
        if (!parsed.ok()) {
          Log(absl::StrCat("MODEL NOT LOADED: ", parsed.status().message()));
          server->Shutdown();
          return 4;
        }
        family = CheckApprovedFamily(vm->claims, *parsed);
        if (family.ok()) file.emplace(*std::move(parsed));
      }
      if (family.ok()) break;
      if (family.code() != absl::StatusCode::kPermissionDenied) {  // no architecture at all: a broken file
        Log(absl::StrCat("MODEL NOT LOADED: ", family.message()));
        server->Shutdown();
        return 4;
      }
      vm = family;  // approved as another family: refused like a rejection (the registry can fix it)
    }
    Log(absl::StrCat("MODEL NOT LOADED: ", vm.status().message()));
    not_ready(absl::StrCat("the model was not approved: ", vm.status().message(),
                           config.wait_for_model ? " (retrying)" : ""));
    if (!config.wait_for_model) {
      server->Shutdown();
      return 3;
    }
    Log(absl::StrCat("waiting for an approvable model; retrying in ", absl::FormatDuration(config.retry_interval)));
    absl::SleepFor(config.retry_interval);  // a signal meanwhile ends the process (SignalWatcher)
  }

  auto tokenizer = text::Tokenizer::FromGguf(*file);
  if (!tokenizer.ok()) {
    Log(absl::StrCat("MODEL NOT LOADED: tokenizer: ", tokenizer.status().message()));
    server->Shutdown();
    return 4;
  }
  Log(absl::StrCat("phase=uploading backend=", config.backend, image ? " from=device" : " from=host"));
  not_ready("loading the verified model into the backend");
  pause_at("uploading");
  std::optional<gguf::GgufFile> host_file;  // the CPU fallback's parse of the bytes copied back
  auto created = image ? CreateBackendFromImage(*image, *file, choice, vm->digest, &vm->bytes, &host_file)
                       : CreateBackend(*file, choice);
  image.reset();  // the device copy of the file, if any, is no longer needed
  if (host_file) file.swap(host_file);
  if (!created.ok()) {
    Log(absl::StrCat("MODEL NOT LOADED: ", created.status().message()));
    server->Shutdown();
    return 4;
  }
  if (!created->note.empty()) Log(created->note);
  std::unique_ptr<model::Backend>* backend = &created->backend;
  {
    // Full-attention layers draw from this pool; sliding layers have rings
    // of their own, so it bounds the tokens all sequences hold together.
    model::KvBlockManager& kv = (*backend)->kv();
    const int64_t pool_tokens = static_cast<int64_t>(kv.num_full_blocks()) * kv.block_size();
    Log(absl::StrCat("kv_cache: blocks=", kv.num_full_blocks(), " block_size=", kv.block_size(),
                     " max_concurrent_tokens=", pool_tokens, " max_sequences=", config.max_sequences,
                     " max_context=", std::min(config.max_context, (*backend)->config().context_length),
                     config.kv_blocks > 0 ? " (from --kv_blocks)"
                     : created->kind == "cuda"
                         ? absl::StrCat(" (from --gpu_memory_fraction=", config.gpu_memory_fraction, ")")
                         : " (max_sequences x max_context)"));
  }
  serving::EngineOptions eo;
  eo.scheduler.max_running = config.max_sequences;
  eo.scheduler.max_waiting = config.max_waiting;
  eo.scheduler.step_token_budget = config.step_token_budget;
  eo.stall_timeout_seconds = absl::ToDoubleSeconds(config.stall_timeout);
  serving::Engine engine(**backend, **tokenizer, eo, &metrics);
  metrics.WatchEngine(&engine);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  metrics.SetModelLoadSeconds(load_s);

  LoadedModelView view;
  view.file = &*file;
  view.tokenizer = tokenizer->get();
  view.engine = &engine;
  view.config = &(*backend)->config();
  view.context_length = std::min(config.max_context, (*backend)->config().context_length);
  view.info = BuildModelInfo(*file, (*backend)->config(), *vm, **backend, view.context_length, config.max_sequences,
                             absl::Now());
  view.info.set_backend(created->kind);
  // Loading is over: from here a signal drains instead of exiting.
  signals.StartServing();
  service.SetModel(&view);
  if (http_server) http_server->SetModel(&view);
  set_health(true);
  // The name comes from the file and the claims from the token: quoted
  // unless plain.
  Log(absl::StrCat("ready: model ", LogValue(view.info.name(), 128), " architecture=", view.info.architecture(),
                   " source=", LogValue(vm->claims.source_uri),
                   " sha256=", vm->digest.sha256, " size=", vm->digest.size, " token_id=",
                   LogValue(vm->claims.token_id, 64),
                   " audit_log_index=", vm->claims.log_index, " verified_at=", absl::FormatTime(vm->verified_at),
                   " load_seconds=", load_s, " peak_host_rss_mib=", model::PeakResidentBytes() >> 20, " backend=",
                   (*backend)->Description(), " (health SERVING)"));

  const int sig = signals.Wait();
  Log(absl::StrCat("signal ", sig, ": NOT_SERVING, draining for up to ", absl::FormatDuration(config.drain_timeout)));
  set_health(false);
  service.StopAccepting();
  if (http_server) http_server->StopAccepting("the worker is shutting down (draining)");
  const absl::Time drain_deadline = absl::Now() + config.drain_timeout;
  while (absl::Now() < drain_deadline) {
    const serving::EngineStats s = engine.Stats();
    if (s.running == 0 && s.waiting == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  metrics.StopWatching();
  engine.Stop();  // cancels whatever is left
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (health_server) health_server->Shutdown();
  if (http_server) http_server->Stop();  // its streams ended with the engine
  service.SetModel(nullptr);
  Log("stopped");
  return 0;
}

}  // namespace ossgate::worker
