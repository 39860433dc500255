// End to end: the real provenance_service and inference_worker (CPU backend,
// the bundled model models/ossgate-small.gguf) with --http_listen, driven by
// the official `openai` npm client (openai_client_test.mjs: every endpoint,
// streaming, reasoning_content, seeds, logprobs, stop strings, errors, a
// full worker, a mid-stream disconnect) and by cpp-httplib for what the npm
// client cannot do (client certificates, SIGHUP, draining, not ready). The
// HTTP answers are compared with the gRPC API's for the same requests, and
// usage counts with the tokenizer's.
//
// If node or the openai package is missing the test fails and says to run
// tools/setup.sh; it never skips.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/http/api_keys.h"
#include "inference_worker/model/model_file.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tool_schema.h"
#include "inference_worker/text/tokenizer.h"
#include "nlohmann/json.hpp"
#include "ossgate/inference/v1/inference.grpc.pb.h"
#include "tests/worker/worker_harness.h"

namespace ossgate::http {
namespace {

namespace pb = ::ossgate::inference::v1;
using json = nlohmann::json;
using worker_test::ClientTls;
using worker_test::ProvenanceProcess;
using worker_test::TempDir;
using worker_test::WorkerProcess;
using worker_test::WorkerSpec;

constexpr char kSource[] = "ossgate://http-tests";
constexpr char kModelUri[] = "ossgate://http-tests/ossgate-small.gguf";
constexpr char kModelId[] = "ossgate-small";
constexpr char kKey[] = "sk-ossgate-test-3f9a1c";
constexpr char kSecondKey[] = "sk-ossgate-test-second-77e0";

worker_test::Binaries Bins() { return {PROVENANCE_SERVICE_BIN, PROVCTL_BIN, INFERENCE_WORKER_BIN}; }

// `name` on $PATH, or "" (no compiled-in path: the test runs where ctest does).
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "", ':', absl::SkipEmpty())) {
    const std::string p = absl::StrCat(dir, "/", name);
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

struct Reply {
  int status = -1;  // -1: no answer
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
};

class HttpE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("http_e2e");
    model_path_ = std::string(OSSGATE_SOURCE_DIR) + "/models/ossgate-small.gguf";
    auto prov = ProvenanceProcess::Start(Bins(), dir_->path(),
                                         {"worker:worker-1", "client:alice", "auditor:auditor-1"});
    if (!prov.ok()) return Fail(prov.status());
    prov_ = prov->release();
    if (auto s = prov_->TrustFile(kSource, "ossgate-small.gguf", model_path_); !s.ok()) return Fail(s);
    keys_path_ = *dir_ / "api_keys";
    if (auto s = WriteKeys({{"e2e", kKey}}); !s.ok()) return Fail(s);
    auto w = StartWorker({"--max_sequences=1", "--max_waiting=1", "--threads=2", "--max_context=4096"},
                         "main-worker.log", &http_port_, &metrics_port_);
    if (!w.ok()) return Fail(w.status());
    worker_ = w->release();
    stub_ = pb::InferenceService::NewStub(worker_->channel()).release();

    auto bytes = model::ReadModelFile(model_path_);
    if (!bytes.ok()) return Fail(bytes.status());
    bytes_ = new model::ModelBytes(*std::move(bytes));
    auto file = gguf::GgufFile::Parse(bytes_->bytes());
    if (!file.ok()) return Fail(file.status());
    file_ = new gguf::GgufFile(*std::move(file));
    auto tok = text::Tokenizer::FromGguf(*file_);
    if (!tok.ok()) return Fail(tok.status());
    tokenizer_ = tok->release();
  }

  static void TearDownTestSuite() {
    delete stub_;
    delete worker_;
    delete prov_;
    delete tokenizer_;
    delete file_;
    delete bytes_;
    delete dir_;
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }
  static void Fail(const absl::Status& s) { setup_error_ = s.ToString(); }

  static absl::Status WriteKeys(const std::vector<std::pair<std::string, std::string>>& keys) {
    std::string content = "# http_e2e_test\n";
    for (const auto& [id, key] : keys) absl::StrAppend(&content, id, " ", Sha256Hex(key), "\n");
    return worker_test::WriteFile(keys_path_, content);
  }

  // A worker of the suite's model with the HTTP API on a free port; waits
  // for SERVING unless `wait` is false.
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> StartWorker(std::vector<std::string> flags,
                                                                    const std::string& log, int* http_port,
                                                                    int* metrics_port = nullptr,
                                                                    bool wait = true) {
    auto hp = worker_test::PickFreePort();
    if (!hp.ok()) return hp.status();
    *http_port = *hp;
    flags.push_back(absl::StrCat("--http_listen=127.0.0.1:", *hp));
    flags.push_back("--http_api_keys=" + keys_path_);
    flags.push_back("--http_max_body_bytes=1048576");
    flags.push_back(absl::StrCat("--model_name=", kModelId));
    if (metrics_port != nullptr) {
      auto mp = worker_test::PickFreePort();
      if (!mp.ok()) return mp.status();
      *metrics_port = *mp;
      flags.push_back(absl::StrCat("--metrics_listen=127.0.0.1:", *mp));
    }
    WorkerSpec spec;
    spec.model_path = model_path_;
    spec.source_uri = kModelUri;
    spec.flags = flags;
    auto w = WorkerProcess::Spawn(Bins(), *prov_, spec, *dir_ / log, prov_->Identity("client-alice"));
    if (!w.ok()) return w.status();
    if (wait) {
      if (auto s = (*w)->WaitServing(absl::Seconds(120)); !s.ok()) return s;
    }
    return w;
  }

  // An HTTPS client that verifies the worker's certificate; with `cert_stem`
  // it presents that client certificate.
  static std::unique_ptr<httplib::SSLClient> Client(int port, const std::string& cert_stem = "") {
    std::unique_ptr<httplib::SSLClient> c;
    if (cert_stem.empty()) {
      c = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    } else {
      const ClientTls tls = prov_->Identity(cert_stem);
      c = std::make_unique<httplib::SSLClient>("127.0.0.1", port, tls.cert_path, tls.key_path);
    }
    c->set_ca_cert_path((prov_->pki() + "/ca.pem").c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(10);
    c->set_read_timeout(60);
    return c;
  }
  static Reply Send(httplib::SSLClient& c, const std::string& method, const std::string& path,
                    const std::string& key = "", const std::string& body = "") {
    httplib::Headers h;
    if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
    httplib::Result r = method == "GET" ? c.Get(path.c_str(), h) : c.Post(path.c_str(), h, body, "application/json");
    if (!r) return Reply{-1, httplib::to_string(r.error())};
    return Reply{r->status, r->body};
  }
  static Reply Get(int port, const std::string& path, const std::string& key = "") {
    return Send(*Client(port), "GET", path, key);
  }
  static Reply Post(int port, const std::string& path, const json& body, const std::string& key = kKey) {
    return Send(*Client(port), "POST", path, key, body.dump());
  }

  // One gRPC Generate, its text by channel.
  struct GrpcOutput {
    std::string final_text, analysis_text, text;
    std::string content_text;  // what the HTTP face returns as content: final, and commentary to nobody
    uint32_t prompt_tokens = 0, generated_tokens = 0;
    pb::FinishReason finish = pb::FINISH_REASON_UNSPECIFIED;
  };
  static GrpcOutput Generate(const pb::GenerateRequest& req) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
    auto reader = stub_->Generate(&ctx, req);
    GrpcOutput out;
    pb::GenerateResponse r;
    while (reader->Read(&r)) {
      out.text += r.text();
      if (r.channel() == "final") out.final_text += r.text();
      if (r.channel() == "analysis") out.analysis_text += r.text();
      if (r.channel() == "final" || (r.channel() == "commentary" && r.recipient().empty())) {
        out.content_text += r.text();
      }
      if (r.has_final()) {
        out.finish = r.final().finish_reason();
        out.prompt_tokens = r.final().usage().prompt_tokens();
        out.generated_tokens = r.final().usage().generated_tokens();
      }
    }
    const grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  static TempDir* dir_;
  static ProvenanceProcess* prov_;
  static WorkerProcess* worker_;
  static pb::InferenceService::Stub* stub_;
  static model::ModelBytes* bytes_;
  static gguf::GgufFile* file_;
  static text::Tokenizer* tokenizer_;
  static std::string model_path_, keys_path_, setup_error_;
  static int http_port_, metrics_port_;
};

TempDir* HttpE2eTest::dir_ = nullptr;
ProvenanceProcess* HttpE2eTest::prov_ = nullptr;
WorkerProcess* HttpE2eTest::worker_ = nullptr;
pb::InferenceService::Stub* HttpE2eTest::stub_ = nullptr;
model::ModelBytes* HttpE2eTest::bytes_ = nullptr;
gguf::GgufFile* HttpE2eTest::file_ = nullptr;
text::Tokenizer* HttpE2eTest::tokenizer_ = nullptr;
std::string HttpE2eTest::model_path_, HttpE2eTest::keys_path_, HttpE2eTest::setup_error_;
int HttpE2eTest::http_port_ = 0, HttpE2eTest::metrics_port_ = 0;

TEST_F(HttpE2eTest, OpenAiClientMatchesGrpc) {
  const std::string node = FindOnPath("node");
  ASSERT_FALSE(node.empty()) << "node is not on PATH: run tools/setup.sh (it installs nodejs and the openai client)";
  const std::string tests = std::string(OSSGATE_SOURCE_DIR) + "/tests/http";
  ASSERT_TRUE(std::filesystem::exists(tests + "/node_modules/openai/package.json"))
      << "the openai npm package is missing from " << tests << "/node_modules: run tools/setup.sh";
  std::string output;
  auto rc = worker_test::RunToCompletion(
      {node, tests + "/openai_client_test.mjs"}, &output,
      {absl::StrCat("OSSGATE_HTTP_URL=https://127.0.0.1:", http_port_, "/v1"), absl::StrCat("OSSGATE_API_KEY=", kKey),
       absl::StrCat("OSSGATE_MODEL=", kModelId),
       absl::StrCat("OSSGATE_METRICS_URL=http://127.0.0.1:", metrics_port_, "/metrics"),
       "NODE_EXTRA_CA_CERTS=" + prov_->pki() + "/ca.pem"});
  ASSERT_TRUE(rc.ok()) << rc.status() << "\n" << output;
  ASSERT_EQ(*rc, 0) << output << "\nworker log:\n" << worker_->Log();
  const size_t at = output.rfind("RESULT ");
  ASSERT_NE(at, std::string::npos) << output;
  const json result = json::parse(output.substr(at + 7), nullptr, false);
  ASSERT_FALSE(result.is_discarded()) << output;
  std::fprintf(stderr, "%s\n", output.c_str());

  // Provenance in /v1/models is the verified file's.
  EXPECT_EQ(result["models"]["sha256"], bytes_->sha256());
  EXPECT_EQ(result["models"]["source"], kModelUri);

  // The greedy chat answer over HTTP is the gRPC answer for the same
  // conversation (the system message became the developer instructions),
  // and the usage counts are the tokenizer's.
  pb::GenerateRequest chat;
  pb::Conversation* conv = chat.mutable_conversation();
  conv->set_developer_instructions("Answer in the style of 1961 American prose.");
  pb::ChatMessage* user = conv->add_messages();
  user->set_role(pb::ROLE_USER);
  user->set_content("Tell me about the old house by the river.");
  chat.mutable_sampling()->set_temperature(0);
  chat.set_max_tokens(40);
  const GrpcOutput g = Generate(chat);
  EXPECT_EQ(result["chat"]["content"], g.final_text);
  EXPECT_EQ(result["chat"]["reasoning_content"].is_null() ? "" : result["chat"]["reasoning_content"], g.analysis_text);
  text::Conversation tc;
  tc.developer_instructions = "Answer in the style of 1961 American prose.";
  tc.messages.push_back({text::Role::kUser, "Tell me about the old house by the river.", "", "", "", ""});
  auto rendered = text::RenderForCompletion(*tokenizer_, tc);
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_EQ(result["chat"]["usage"]["prompt_tokens"], rendered->size());
  EXPECT_EQ(result["chat"]["usage"]["completion_tokens"], g.generated_tokens);

  // The seeded answer is the gRPC one, with no analysis text on either face
  // (the bundled model answers on the final channel).
  pb::GenerateRequest seeded = chat;
  seeded.mutable_sampling()->set_temperature(1);
  seeded.mutable_sampling()->set_seed(7);
  seeded.set_max_tokens(24);
  const GrpcOutput gs = Generate(seeded);
  EXPECT_EQ(result["seeded"]["content"], gs.final_text);
  EXPECT_EQ(gs.analysis_text, "");

  // An assistant message with reasoning_content went in as the analysis
  // message of the turn in progress.
  text::Conversation in_progress;
  in_progress.messages.push_back({text::Role::kUser, "Tell me about the old house by the river.", "", "", "", ""});
  in_progress.messages.push_back({text::Role::kAssistant, "The user asks about a house.", "analysis", "", "", ""});
  auto in_progress_tokens = text::RenderForCompletion(*tokenizer_, in_progress);
  ASSERT_TRUE(in_progress_tokens.ok()) << in_progress_tokens.status();
  EXPECT_EQ(result["in_progress_prompt_tokens"], in_progress_tokens->size());

  // Tools: the HTTP request's prompt is the one the shared renderer gives
  // (properties in the client's order), and the greedy answer is the gRPC
  // face's for the same conversation with the same tool.
  const std::string schema =
      R"({"type":"object","properties":{"unit":{"type":"string","enum":["celsius","fahrenheit"]},)"
      R"("city":{"type":"string","description":"City name"}},"required":["city"]})";
  auto tool = text::ToolFromJsonSchema("get_weather", "Current weather in a city.", schema);
  ASSERT_TRUE(tool.ok()) << tool.status();
  text::Conversation with_tools;
  with_tools.tools.push_back(*tool);
  with_tools.messages.push_back({text::Role::kUser, "Weather in Oslo?", "", "", "", ""});
  with_tools.messages.push_back(
      {text::Role::kAssistant, R"({"city":"Oslo"})", "commentary", "functions.get_weather", "json", ""});
  with_tools.messages.push_back({text::Role::kTool, R"({"temp": 20})", "commentary", "", "", "functions.get_weather"});
  auto tool_tokens = text::RenderForCompletion(*tokenizer_, with_tools);
  ASSERT_TRUE(tool_tokens.ok()) << tool_tokens.status();
  EXPECT_EQ(result["tools"]["prompt_tokens"], tool_tokens->size()) << result["tools"].dump();
  pb::GenerateRequest tool_req;
  pb::Conversation* tc2 = tool_req.mutable_conversation();
  pb::ToolDefinition* td = tc2->add_tools();
  td->set_name("get_weather");
  td->set_description("Current weather in a city.");
  td->set_parameters_json(schema);
  pb::ChatMessage* q = tc2->add_messages();
  q->set_role(pb::ROLE_USER);
  q->set_content("Weather in Oslo?");
  pb::ChatMessage* call = tc2->add_messages();
  call->set_role(pb::ROLE_ASSISTANT);
  call->set_channel("commentary");
  call->set_recipient("functions.get_weather");
  call->set_content_type("json");
  call->set_content(R"({"city":"Oslo"})");
  pb::ChatMessage* reply = tc2->add_messages();
  reply->set_role(pb::ROLE_TOOL);
  reply->set_author("functions.get_weather");
  reply->set_content(R"({"temp": 20})");
  tool_req.mutable_sampling()->set_temperature(0);
  tool_req.set_max_tokens(16);
  const GrpcOutput gt = Generate(tool_req);
  EXPECT_EQ(gt.prompt_tokens, tool_tokens->size());
  if (gt.finish != pb::FINISH_REASON_TOOL_CALLS) {
    EXPECT_EQ(result["tools"]["content"], gt.content_text) << result["tools"].dump();
    EXPECT_TRUE(result["tools"]["calls"].empty()) << result["tools"].dump();
  } else {
    EXPECT_EQ(result["tools"]["finish"], "tool_calls") << result["tools"].dump();
  }

  // Completions: the same text as gRPC; prompt tokens = the tokenizer's count.
  pb::GenerateRequest completion;
  completion.set_text("The old man walked");
  completion.mutable_sampling()->set_temperature(0);
  completion.set_max_tokens(24);
  const GrpcOutput gc = Generate(completion);
  EXPECT_EQ(result["completion"]["text"], gc.text);
  EXPECT_EQ(result["completion"]["usage"]["prompt_tokens"], tokenizer_->Encode("The old man walked", false).size());
  EXPECT_EQ(result["completion"]["usage"]["completion_tokens"], gc.generated_tokens);
}

TEST_F(HttpE2eTest, HealthAndErrorShapes) {
  Reply h = Get(http_port_, "/health");
  EXPECT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.Json()["status"], "ready") << h.body;

  Reply none = Get(http_port_, "/v1/models");
  EXPECT_EQ(none.status, 401) << none.body;
  const json e = none.Json()["error"];
  EXPECT_TRUE(e.contains("message") && e.contains("type") && e.contains("param") && e.contains("code")) << none.body;
  EXPECT_EQ(e["type"], "authentication_error");

  Reply path = Get(http_port_, "/v1/embeddings", kKey);
  EXPECT_EQ(path.status, 404) << path.body;
  EXPECT_EQ(path.Json()["error"]["type"], "not_found_error") << path.body;

  // A 20 MB body (the fixture's limit is 1 MiB) is refused with 413, and the
  // worker keeps serving.
  const std::string huge = json{{"model", kModelId},
                                {"messages", json::array({{{"role", "user"}, {"content", std::string(20 << 20, 'x')}}})}}
                               .dump();
  Reply too_large = Send(*Client(http_port_), "POST", "/v1/chat/completions", kKey, huge);
  EXPECT_EQ(too_large.status, 413) << too_large.body.substr(0, 200);
  Reply after = Post(http_port_, "/v1/completions", {{"model", kModelId}, {"prompt", "x"}, {"max_tokens", 2}});
  EXPECT_EQ(after.status, 200) << after.body;

  Reply malformed = Send(*Client(http_port_), "POST", "/v1/chat/completions", kKey, "{\"model\": ");
  EXPECT_EQ(malformed.status, 400) << malformed.body;
  EXPECT_TRUE(absl::StrContains(malformed.Json()["error"]["message"].get<std::string>(), "not valid JSON"));

  Reply wrong_type = Post(http_port_, "/v1/completions", {{"model", kModelId}, {"prompt", "x"}, {"seed", "7"}});
  EXPECT_EQ(wrong_type.status, 400) << wrong_type.body;
  EXPECT_EQ(wrong_type.Json()["error"]["param"], "seed") << wrong_type.body;

  // Function tools are served; what the worker cannot honour is refused.
  const json f = {{"type", "function"}, {"function", {{"name", "f"}}}};
  Reply tools = Post(http_port_, "/v1/chat/completions",
                     {{"model", kModelId},
                      {"messages", json::array({{{"role", "user"}, {"content", "x"}}})},
                      {"max_tokens", 2},
                      {"tools", json::array({f})}});
  EXPECT_EQ(tools.status, 200) << tools.body;
  Reply forced = Post(http_port_, "/v1/chat/completions",
                      {{"model", kModelId},
                       {"messages", json::array({{{"role", "user"}, {"content", "x"}}})},
                       {"tools", json::array({f})},
                       {"tool_choice", "required"}});
  EXPECT_EQ(forced.status, 400) << forced.body;
  EXPECT_EQ(forced.Json()["error"]["param"], "tool_choice") << forced.body;
  Reply dup = Post(http_port_, "/v1/chat/completions",
                   {{"model", kModelId},
                    {"messages", json::array({{{"role", "user"}, {"content", "x"}}})},
                    {"tools", json::array({f, f})}});
  EXPECT_EQ(dup.status, 400) << dup.body;
  EXPECT_EQ(dup.Json()["error"]["param"], "tools[1].function.name") << dup.body;

  // The scheme is case-insensitive; another scheme is refused.
  auto client = Client(http_port_);
  httplib::Result lower = client->Get("/v1/models", {{"Authorization", std::string("bearer ") + kKey}});
  ASSERT_TRUE(lower);
  EXPECT_EQ(lower->status, 200) << lower->body;
  httplib::Result basic = client->Get("/v1/models", {{"Authorization", "Basic dXNlcjpwYXNz"}});
  ASSERT_TRUE(basic);
  EXPECT_EQ(basic->status, 401) << basic->body;
  EXPECT_TRUE(absl::StrContains(basic->body, "Bearer <API key>")) << basic->body;
}

TEST_F(HttpE2eTest, BadHttpFlagsStopTheWorker) {
  ASSERT_TRUE(worker_test::WriteFile(*dir_ / "bad_keys", "alice not-a-hash\n").ok());
  struct Case {
    std::vector<std::string> flags;
    std::string problem;
  } cases[] = {
      {{"--http_listen=127.0.0.1:0", "--insecure_dev_loopback"}, "serves HTTPS only"},
      {{"--http_api_keys=" + keys_path_}, "--http_api_keys is only used with --http_listen"},
      {{"--http_listen=127.0.0.1:0", "--http_max_body_bytes=10"}, "--http_max_body_bytes must be >= 1024"},
      {{"--http_listen=localhost"}, "--http_listen must be host:port"},
      {{"--http_listen=127.0.0.1:0", "--http_api_keys=" + *dir_ / "no_such_file"}, "cannot read the API key file"},
      {{"--http_listen=127.0.0.1:0", "--http_api_keys=" + *dir_ / "bad_keys"}, "line 1: the hash has 10 characters"},
  };
  int n = 0;
  for (const Case& c : cases) {
    WorkerSpec spec;
    spec.model_path = model_path_;
    spec.source_uri = kModelUri;
    spec.flags = c.flags;
    auto w = WorkerProcess::Spawn(Bins(), *prov_, spec, *dir_ / absl::StrCat("bad-flags-", n++, ".log"),
                                  prov_->Identity("client-alice"));
    ASSERT_TRUE(w.ok()) << w.status();
    auto code = (*w)->process().Wait(absl::Seconds(60));
    ASSERT_TRUE(code.ok()) << code.status() << "\n" << (*w)->Log();
    const std::string log = (*w)->Log();
    EXPECT_EQ(*code, 2) << log;
    EXPECT_TRUE(absl::StrContains(log, "configuration error")) << log;
    EXPECT_TRUE(absl::StrContains(log, c.problem)) << "expected '" << c.problem << "' in:\n" << log;
    EXPECT_FALSE(absl::StrContains(log, "phase=verifying")) << log;
  }
}

TEST_F(HttpE2eTest, ClientCertificatesAuthenticate) {
  auto alice = Client(http_port_, "client-alice");
  Reply ok = Send(*alice, "GET", "/v1/models");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.Json()["data"][0]["id"], kModelId) << ok.body;
  Reply gen = Send(*alice, "POST", "/v1/completions", "",
                   json{{"model", kModelId}, {"prompt", "The"}, {"max_tokens", 2}}.dump());
  EXPECT_EQ(gen.status, 200) << gen.body;
  EXPECT_TRUE(absl::StrContains(worker_->Log(), "owner=spiffe://ossgate/role/client/alice"));

  // A CA-signed certificate of another role is not a client.
  auto auditor = Client(http_port_, "auditor-auditor-1");
  Reply denied = Send(*auditor, "GET", "/v1/models");
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_TRUE(absl::StrContains(denied.body, "auditor")) << denied.body;
  // ... but its key still works.
  Reply with_key = Send(*auditor, "GET", "/v1/models", kKey);
  EXPECT_EQ(with_key.status, 200) << with_key.body;
}

TEST_F(HttpE2eTest, KeysAreReloadedOnSighupAndNeverLogged) {
  ASSERT_EQ(Get(http_port_, "/v1/models", kKey).status, 200);
  ASSERT_EQ(Get(http_port_, "/v1/models", kSecondKey).status, 401);
  ASSERT_TRUE(WriteKeys({{"second", kSecondKey}}).ok());
  ASSERT_TRUE(worker_->process().Signal(SIGHUP).ok());
  // The reload runs on the worker's signal thread: wait for the log line.
  const absl::Time end = absl::Now() + absl::Seconds(30);
  while (!absl::StrContains(worker_->Log(), "SIGHUP: reloaded 1 HTTP API key") && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Get(http_port_, "/v1/models", kSecondKey).status, 200);
  EXPECT_EQ(Get(http_port_, "/v1/models", kKey).status, 401);  // revoked
  // A broken file keeps the keys in force.
  ASSERT_TRUE(worker_test::WriteFile(keys_path_, "not a key line\n").ok());
  ASSERT_TRUE(worker_->process().Signal(SIGHUP).ok());
  const absl::Time end2 = absl::Now() + absl::Seconds(30);
  while (!absl::StrContains(worker_->Log(), "HTTP API keys NOT reloaded") && absl::Now() < end2) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Get(http_port_, "/v1/models", kSecondKey).status, 200);
  EXPECT_EQ(worker_->process().Poll(), std::nullopt) << "SIGHUP ended the worker";
  // Restore the suite's key.
  ASSERT_TRUE(WriteKeys({{"e2e", kKey}}).ok());
  ASSERT_TRUE(worker_->process().Signal(SIGHUP).ok());
  const absl::Time end3 = absl::Now() + absl::Seconds(30);
  while (Get(http_port_, "/v1/models", kKey).status != 200 && absl::Now() < end3) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(Get(http_port_, "/v1/models", kKey).status, 200);
  const std::string log = worker_->Log();
  for (const char* secret : {kKey, kSecondKey, "sk-wrong"}) EXPECT_FALSE(absl::StrContains(log, secret)) << secret;
}

TEST_F(HttpE2eTest, HealthSaysWhyBeforeTheModelIsReady) {
  int port = 0;
  auto w = StartWorker({"--testonly_pause_at_phase=verifying", "--testonly_pause_s=60", "--threads=1"},
                       "paused-worker.log", &port, nullptr, /*wait=*/false);
  ASSERT_TRUE(w.ok()) << w.status();
  Reply h;
  const absl::Time end = absl::Now() + absl::Seconds(60);
  do {
    h = Get(port, "/health");
    if (h.status == 503 && absl::StrContains(h.body, "verifying")) break;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < end);
  EXPECT_EQ(h.status, 503) << h.body << "\n" << (*w)->Log();
  EXPECT_EQ(h.Json()["status"], "not_ready") << h.body;
  EXPECT_TRUE(absl::StrContains(h.Json()["reason"].get<std::string>(), "verifying the model")) << h.body;
  Reply models = Get(port, "/v1/models", kKey);
  EXPECT_EQ(models.status, 503) << models.body;
  EXPECT_EQ(models.Json()["error"]["code"], "model_not_ready") << models.body;
  Reply chat = Post(port, "/v1/chat/completions",
                    {{"model", kModelId}, {"messages", json::array({{{"role", "user"}, {"content", "x"}}})}});
  EXPECT_EQ(chat.status, 503) << chat.body;
  // Credentials are checked first, ready or not.
  EXPECT_EQ(Get(port, "/v1/models", "sk-wrong").status, 401);
}

TEST_F(HttpE2eTest, DrainRefusesNewRequestsAndFinishesRunningOnes) {
  int port = 0;
  auto w = StartWorker({"--threads=2", "--drain_timeout_s=60", "--max_sequences=2"}, "drain-worker.log", &port);
  ASSERT_TRUE(w.ok()) << w.status();
  // A request that runs while the worker drains: 1500 tokens over HTTP
  // (seconds on the CPU backend; the drain waits for it).
  Reply running;
  std::thread t([&] {
    running = Post(port, "/v1/completions",
                   {{"model", kModelId}, {"prompt", "Once"}, {"max_tokens", 1500}, {"ignore_eos", true}});
  });
  // Once the worker has admitted it (its log line), SIGTERM.
  const absl::Time end = absl::Now() + absl::Seconds(30);
  while (!absl::StrContains((*w)->Log(), "http: completions id=") && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE((*w)->process().Signal(SIGTERM).ok());
  Reply h;
  const absl::Time end2 = absl::Now() + absl::Seconds(30);
  do {
    h = Get(port, "/health");
  } while (h.status != 503 && absl::Now() < end2);
  EXPECT_EQ(h.status, 503) << h.body;
  EXPECT_TRUE(absl::StrContains(h.body, "draining")) << h.body;
  Reply refused = Post(port, "/v1/completions", {{"model", kModelId}, {"prompt", "x"}, {"max_tokens", 2}});
  EXPECT_EQ(refused.status, 503) << refused.body;
  t.join();
  EXPECT_EQ(running.status, 200) << running.body;
  EXPECT_EQ(running.Json()["usage"]["completion_tokens"], 1500) << running.body;
  auto code = (*w)->process().Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*w)->Log();
}

}  // namespace
}  // namespace ossgate::http
