#include "bench/worker/bench_services.h"

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/make_model/model_flags.h"
#include "tools/make_model/random_model.h"

namespace ossgate::worker_bench {

namespace pb = ::ossgate::inference::v1;

namespace {

constexpr char kPkiScript[] = "tools/certs/make_dev_pki.sh";

bool IsCheckout(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(std::filesystem::path(dir) / kPkiScript, ec);
}

}  // namespace

absl::StatusOr<std::string> ResolveSourceDir(const std::string& flag) {
  std::string dir = flag, from = "--source_dir";
  if (dir.empty()) {
    if (const char* env = std::getenv("OSSGATE_SOURCE_DIR"); env != nullptr && *env != '\0') {
      dir = env;
      from = "$OSSGATE_SOURCE_DIR";
    }
  }
  if (dir.empty()) {
    std::error_code ec;
    const std::string cwd = std::filesystem::current_path(ec).string();
    if (!ec && IsCheckout(cwd)) return cwd;
    return absl::InvalidArgumentError(
        absl::StrCat("no ossgate checkout given (its ", kPkiScript,
                     " makes the test PKI): pass --source_dir=<checkout root>, set OSSGATE_SOURCE_DIR, or run from "
                     "the checkout's root"));
  }
  if (!IsCheckout(dir)) {
    return absl::InvalidArgumentError(absl::StrCat(from, "='", dir, "' is not an ossgate checkout (no ", kPkiScript,
                                                   " under it): give the checkout's root"));
  }
  return dir;
}

worker_test::Binaries ResolveBinaries(const std::string& bin_dir, const std::string& exe_dir) {
  if (!bin_dir.empty()) {
    return {bin_dir + "/provenance_service", bin_dir + "/provctl", bin_dir + "/inference_worker"};
  }
  const auto exists = [](const std::string& p) {
    std::error_code ec;
    return std::filesystem::is_regular_file(p, ec);
  };
  // A bundle or an install keeps the programs side by side.
  const std::string d = exe_dir.empty() ? std::string(".") : exe_dir;
  worker_test::Binaries side{d + "/provenance_service", d + "/provctl", d + "/inference_worker"};
  if (exists(side.provenance_service) && exists(side.provctl) && exists(side.inference_worker)) return side;
  // The build tree: paths relative to this program's folder, from CMake.
  return {d + "/" + PROVENANCE_SERVICE_FROM_BENCH, d + "/" + PROVCTL_FROM_BENCH, d + "/" + INFERENCE_WORKER_FROM_BENCH};
}

absl::StatusOr<std::unique_ptr<BenchServices>> BenchServices::Start(const ServiceOptions& o) {
  std::unique_ptr<BenchServices> s(new BenchServices());
  s->dir_ = std::make_unique<worker_test::TempDir>(o.temp_prefix);
  const worker_test::TempDir& dir = *s->dir_;
  if (dir.path().empty()) return absl::InternalError("cannot create a temporary directory ($TEST_TMPDIR or /tmp)");
  const worker_test::Binaries bins = ResolveBinaries(o.bin_dir, tools::ExecutableDir());
  for (const std::string& b : {bins.provenance_service, bins.provctl, bins.inference_worker}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(b, ec)) {
      return absl::NotFoundError(absl::StrCat("no ", b,
                                              ": --bin_dir must hold provenance_service, provctl and "
                                              "inference_worker"));
    }
  }

  std::string model = o.model_file;
  if (model.empty()) {
    tools::RandomModelSpec spec;
    if (auto st = tools::ApplyPreset(o.preset, &spec.config); !st.ok()) return st;
    spec.seed = 1;
    spec.name = absl::StrCat("bench-", o.preset);
    auto vocab = tools::LoadVocabByName(o.vocab);
    if (!vocab.ok()) return vocab.status();
    model = dir / "bench.gguf";
    if (auto st = tools::WriteRandomModel(spec, *vocab, model); !st.ok()) return st;
    s->model_label_ = absl::StrCat(o.preset, " preset, random weights, MXFP4 experts, Q8_0 dense");
  } else {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(model, ec)) return absl::NotFoundError(absl::StrCat("no model file ", model));
    s->model_label_ = model;
  }

  auto prov =
      worker_test::ProvenanceProcess::Start(bins, dir.path(), {"worker:worker-1", "client:bench"}, o.source_dir);
  if (!prov.ok()) return prov.status();
  s->prov_ = *std::move(prov);
  const std::string file_name = std::filesystem::path(model).filename().string();
  if (auto st = s->prov_->TrustFile("ossgate://bench", file_name, model); !st.ok()) return st;

  worker_test::WorkerSpec ws;
  ws.model_path = model;
  ws.source_uri = "ossgate://bench/" + file_name;
  ws.flags = o.worker_flags;
  // /metrics on loopback, scraped by Steps().
  auto metrics_port = worker_test::PickFreePort();
  if (!metrics_port.ok()) return metrics_port.status();
  s->metrics_port_ = *metrics_port;
  ws.flags.push_back(absl::StrCat("--metrics_listen=127.0.0.1:", s->metrics_port_));
  auto worker =
      worker_test::WorkerProcess::Spawn(bins, *s->prov_, ws, dir / "worker.log", s->prov_->Identity("client-bench"));
  if (!worker.ok()) return worker.status();
  s->worker_ = *std::move(worker);
  // A 20b-shape model takes a while to hash and load.
  if (auto st = s->worker_->WaitServing(absl::Minutes(5)); !st.ok()) return st;
  s->stub_ = pb::InferenceService::NewStub(s->worker_->channel());
  grpc::ClientContext ctx;
  if (grpc::Status st = s->stub_->GetModelInfo(&ctx, pb::GetModelInfoRequest(), &s->info_); !st.ok()) {
    return absl::UnavailableError(absl::StrCat("GetModelInfo: ", st.error_message()));
  }
  return s;
}

BenchServices::~BenchServices() {
  if (worker_ != nullptr) {
    stub_.reset();
    (void)worker_->process().Signal(SIGTERM);
    (void)worker_->process().Wait(absl::Seconds(60));
  }
}

std::shared_ptr<grpc::Channel> BenchServices::NewChannel() const {
  return worker_test::MakeTlsChannel(worker_->port(), prov_->Identity("client-bench"));
}

std::string BenchServices::Describe() const {
  return absl::StrFormat("model: %s; %u layers, d_model %u, %u experts top-%u, vocab %u; worker: %s on %s",
                         model_label_, info_.n_layers(), info_.d_model(), info_.n_experts(), info_.n_experts_used(),
                         info_.vocab_size(), info_.backend(), info_.device());
}

std::vector<int32_t> PromptTokenPool(pb::InferenceService::Stub* stub, uint32_t vocab_size) {
  pb::TokenizeRequest req;
  req.set_text(
      "The keeper of the lighthouse wrote in his log every night. Ships passed in the fog, their horns low and "
      "patient; a gull argued with the wind. In March the supply boat brought flour, lamp oil, two letters and a "
      "crate of oranges, which he counted twice.");
  pb::TokenizeResponse resp;
  grpc::ClientContext ctx;
  std::vector<int32_t> pool;
  if (stub->Tokenize(&ctx, req, &resp).ok()) pool.assign(resp.token_ids().begin(), resp.token_ids().end());
  if (pool.empty()) {
    for (uint32_t id = 0; id < std::min<uint32_t>(vocab_size, 1000); ++id) pool.push_back(static_cast<int32_t>(id));
  }
  if (pool.empty()) pool.push_back(0);
  return pool;
}

EngineSteps BenchServices::Steps() const {
  EngineSteps t;
  const std::string text = worker_test::HttpGetMetrics(metrics_port_);
  if (text.empty()) return t;
  auto value = [&](const std::string& name) { return worker_test::MetricValue(text, name).value_or(0.0); };
  for (int k = 0; k < 3; ++k) {
    const std::string label = absl::StrCat("{kind=\"", kStepKinds[k], "\"}");
    t.count[k] = value("ossgate_worker_step_seconds_count" + label);
    t.seconds[k] = value("ossgate_worker_step_seconds_sum" + label);
  }
  t.host_count = value("ossgate_worker_step_host_seconds_count");
  t.host_seconds = value("ossgate_worker_step_host_seconds_sum");
  t.prefill_tokens = value("ossgate_worker_step_tokens_total{kind=\"prefill\"}");
  t.decode_tokens = value("ossgate_worker_step_tokens_total{kind=\"decode\"}");
  t.ok = true;
  return t;
}

EngineSteps StepsBetween(const EngineSteps& a, const EngineSteps& b) {
  EngineSteps d;
  d.ok = a.ok && b.ok;
  for (int k = 0; k < 3; ++k) {
    d.count[k] = b.count[k] - a.count[k];
    d.seconds[k] = b.seconds[k] - a.seconds[k];
  }
  d.host_count = b.host_count - a.host_count;
  d.host_seconds = b.host_seconds - a.host_seconds;
  d.prefill_tokens = b.prefill_tokens - a.prefill_tokens;
  d.decode_tokens = b.decode_tokens - a.decode_tokens;
  return d;
}

std::string StepsCells(const EngineSteps& e) {
  if (!e.ok) return "(no /metrics answer) | | | | | | | | | |";
  auto mean_ms = [](double seconds, double n) { return n > 0 ? absl::StrFormat("%.2f", seconds / n * 1e3) : "—"; };
  const double steps = e.count[0] + e.count[1] + e.count[2];
  const double tokens = e.prefill_tokens + e.decode_tokens;
  return absl::StrCat(absl::StrFormat("%.0f", steps), " | ", absl::StrFormat("%.0f", e.count[0]), " | ",
                      mean_ms(e.seconds[0], e.count[0]), " | ", absl::StrFormat("%.0f", e.count[1]), " | ",
                      mean_ms(e.seconds[1], e.count[1]), " | ", absl::StrFormat("%.0f", e.count[2]), " | ",
                      mean_ms(e.seconds[2], e.count[2]), " | ",
                      e.host_count > 0 ? absl::StrFormat("%.0f", e.host_seconds / e.host_count * 1e6) : "—", " | ",
                      tokens > 0 ? absl::StrFormat("%.1f%%", 100.0 * e.prefill_tokens / tokens) : "—", " | ",
                      steps > 0 ? absl::StrFormat("%.1f", e.decode_tokens / steps) : "—", " |");
}

}  // namespace ossgate::worker_bench
