// ossgate-client: command-line client of the inference worker. Streams a
// chat answer (--chat) or a completion (--prompt), prints model info
// (--info), or waits until the worker is ready (--wait_ready_s).
//
//   ossgate-client --server 127.0.0.1:50061 --ca ca.pem --cert c.pem --key c.key --chat "Hello"
#include <chrono>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "grpcpp/grpcpp.h"
#include "inference_worker/worker/grpc_provenance_client.h"
#include "ossgate/inference/v1/inference.grpc.pb.h"
#include "inference_worker/client/health_check.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50061", "worker address");
ABSL_FLAG(std::string, ca, "", "PEM CA of the worker's certificate");
ABSL_FLAG(std::string, cert, "", "PEM client certificate (when the worker requires mTLS)");
ABSL_FLAG(std::string, key, "", "PEM private key of --cert");
ABSL_FLAG(std::string, server_name, "", "expected TLS name of the worker (default: host of --server)");
ABSL_FLAG(bool, insecure_dev_loopback, false, "development only: plaintext to a loopback worker");
ABSL_FLAG(std::string, chat, "", "user message (rendered in the loaded model's chat format)");
ABSL_FLAG(std::string, instructions, "", "developer instructions for --chat (the system message of ChatML / Phi-3)");
ABSL_FLAG(std::string, reasoning, "",
          "reasoning effort for --chat: low, medium or high (gpt-oss's harmony format only); empty: low for a "
          "gpt-oss model, none for other families (which refuse one)");
ABSL_FLAG(std::string, prompt, "", "raw text prompt (completion)");
ABSL_FLAG(int, max_tokens, 128, "maximum generated tokens");
ABSL_FLAG(float, temperature, 0.0f, "sampling temperature (0 = greedy)");
ABSL_FLAG(float, top_p, 1.0f, "top-p");
ABSL_FLAG(uint64_t, seed, 0, "sampling seed");
ABSL_FLAG(bool, show_analysis, true, "print the analysis channel of chat answers");
ABSL_FLAG(bool, info, false, "print GetModelInfo and exit");
ABSL_FLAG(int, wait_ready_s, 0, "wait up to this many seconds for the worker's model to be SERVING, then exit");

namespace pb = ::ossgate::inference::v1;

namespace {

std::shared_ptr<grpc::Channel> MakeChannel() {
  const std::string server = absl::GetFlag(FLAGS_server);
  if (absl::GetFlag(FLAGS_insecure_dev_loopback)) return grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  grpc::SslCredentialsOptions o;
  auto read = [](const std::string& path) -> std::string {
    if (path.empty()) return "";
    auto s = ossgate::worker::ReadSmallFile(path);
    if (!s.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(s.status().message()).c_str());
      std::exit(2);
    }
    return *s;
  };
  o.pem_root_certs = read(absl::GetFlag(FLAGS_ca));
  o.pem_cert_chain = read(absl::GetFlag(FLAGS_cert));
  o.pem_private_key = read(absl::GetFlag(FLAGS_key));
  grpc::ChannelArguments args;
  if (!absl::GetFlag(FLAGS_server_name).empty()) args.SetSslTargetNameOverride(absl::GetFlag(FLAGS_server_name));
  return grpc::CreateCustomChannel(server, grpc::SslCredentials(o), args);
}

int WaitReady(const std::shared_ptr<grpc::Channel>& channel, int seconds) {
  const absl::Status s =
      ossgate::client::WaitUntilServing(channel, "ossgate.inference.v1.InferenceService", absl::Seconds(seconds));
  if (!s.ok()) {
    std::fprintf(stderr, "worker not ready: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Client of the ossgate inference worker.");
  absl::ParseCommandLine(argc, argv);
  auto channel = MakeChannel();
  if (absl::GetFlag(FLAGS_wait_ready_s) > 0) return WaitReady(channel, absl::GetFlag(FLAGS_wait_ready_s));
  auto stub = pb::InferenceService::NewStub(channel);
  if (absl::GetFlag(FLAGS_info)) {
    grpc::ClientContext ctx;
    pb::ModelInfo info;
    const grpc::Status s = stub->GetModelInfo(&ctx, pb::GetModelInfoRequest(), &info);
    if (!s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.error_message().c_str());
      return 1;
    }
    info.clear_tensors();  // hundreds of lines; the rest is the summary
    std::printf("%s\n", info.DebugString().c_str());
    return 0;
  }
  pb::GenerateRequest req;
  const std::string chat = absl::GetFlag(FLAGS_chat);
  if (!chat.empty()) {
    pb::Conversation* c = req.mutable_conversation();
    pb::ChatMessage* m = c->add_messages();
    m->set_role(pb::ROLE_USER);
    m->set_content(chat);
    c->set_developer_instructions(absl::GetFlag(FLAGS_instructions));
    std::string r = absl::GetFlag(FLAGS_reasoning);
    if (r.empty()) {
      // Harmony's reasoning effort exists only for gpt-oss; ask which family
      // the worker serves.
      grpc::ClientContext ctx;
      pb::ModelInfo info;
      const grpc::Status s = stub->GetModelInfo(&ctx, pb::GetModelInfoRequest(), &info);
      if (!s.ok()) {
        std::fprintf(stderr, "error: GetModelInfo (to pick the reasoning effort; pass --reasoning to skip it): %s\n",
                     s.error_message().c_str());
        return 1;
      }
      if (info.architecture() == "gpt-oss") r = "low";
    }
    if (r == "low") {
      c->set_reasoning_effort(pb::REASONING_EFFORT_LOW);
    } else if (r == "medium") {
      c->set_reasoning_effort(pb::REASONING_EFFORT_MEDIUM);
    } else if (r == "high") {
      c->set_reasoning_effort(pb::REASONING_EFFORT_HIGH);
    } else if (!r.empty()) {
      std::fprintf(stderr, "error: --reasoning must be low, medium or high, got \"%s\"\n", r.c_str());
      return 2;
    }
  } else {
    req.set_text(absl::GetFlag(FLAGS_prompt));
  }
  req.set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  req.mutable_sampling()->set_temperature(absl::GetFlag(FLAGS_temperature));
  req.mutable_sampling()->set_top_p(absl::GetFlag(FLAGS_top_p));
  req.mutable_sampling()->set_seed(absl::GetFlag(FLAGS_seed));

  grpc::ClientContext ctx;
  auto reader = stub->Generate(&ctx, req);
  pb::GenerateResponse resp;
  std::string channel_shown;
  const bool show_analysis = absl::GetFlag(FLAGS_show_analysis);
  pb::Final final;
  while (reader->Read(&resp)) {
    if (!resp.text().empty() && (resp.channel() != "analysis" || show_analysis)) {
      if (resp.channel() != channel_shown && !resp.channel().empty()) {
        std::printf("%s[%s] ", channel_shown.empty() ? "" : "\n", resp.channel().c_str());
        channel_shown = resp.channel();
      }
      std::fputs(resp.text().c_str(), stdout);
      std::fflush(stdout);
    }
    if (resp.has_final()) final = resp.final();
  }
  const grpc::Status s = reader->Finish();
  std::printf("\n");
  std::fflush(stdout);
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s: %s\n", std::to_string(s.error_code()).c_str(), s.error_message().c_str());
    return 1;
  }
  const pb::Usage& u = final.usage();
  std::fprintf(stderr, "finish: %s; prompt %u tokens, generated %u tokens, time to first token %.3f s, total %.3f s\n",
               pb::FinishReason_Name(final.finish_reason()).c_str(), u.prompt_tokens(), u.generated_tokens(),
               u.time_to_first_token_seconds(), u.total_seconds());
  return 0;
}
