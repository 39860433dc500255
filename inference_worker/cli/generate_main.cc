// ossgate-generate: loads a gpt-oss, qwen2 or phi3 GGUF (CUDA backend when
// available for gpt-oss, else the CPU reference) and streams a
// completion (--prompt) or a harmony chat answer (--chat) to the terminal.
// Local tool: it does not consult the provenance service (the worker does).
//
//   ossgate-generate --model m.gguf --prompt "Once upon a time" --max_tokens 64
//   ossgate-generate --model m.gguf --chat "What is 2 + 2?" --reasoning low
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_format.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/backend_factory.h"
#include "inference_worker/model/generation.h"
#include "inference_worker/model/model_file.h"
#include "inference_worker/text/chat_format.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tokenizer.h"

ABSL_FLAG(std::string, model, "", "path of the GGUF model (required)");
ABSL_FLAG(std::string, prompt, "", "raw text to continue (completion mode)");
ABSL_FLAG(std::string, chat, "", "user message, rendered in the file's chat format (gpt-oss: harmony; qwen2: ChatML; "
          "phi3: Phi-3's)");
ABSL_FLAG(std::string, instructions, "", "developer instructions for --chat");
ABSL_FLAG(std::string, reasoning, "low", "reasoning effort for --chat: low, medium, high (harmony only)");
ABSL_FLAG(bool, show_analysis, true, "print the analysis channel of --chat answers (dimmed)");
ABSL_FLAG(bool, allow_special, false, "parse special-token strings such as <|start|> in --prompt");
ABSL_FLAG(int, max_tokens, 128, "maximum number of generated tokens");
ABSL_FLAG(float, temperature, 0.0f, "sampling temperature; 0 = greedy");
ABSL_FLAG(float, top_p, 1.0f, "nucleus sampling threshold (1 = off)");
ABSL_FLAG(int, top_k, 0, "top-k sampling (0 = off)");
ABSL_FLAG(float, min_p, 0.0f, "min-p sampling (0 = off)");
ABSL_FLAG(float, repetition_penalty, 1.0f, "repetition penalty (1 = off)");
ABSL_FLAG(uint64_t, seed, 0, "sampling seed");
ABSL_FLAG(int, threads, 0, "CPU threads (0 = all)");
ABSL_FLAG(std::string, backend, "auto", "engine backend: auto (CUDA when a usable GPU is present), cpu, cuda");

namespace {

using ossgate::model::FinishReasonName;

void PrintProgress(const std::string& path, const ossgate::model::ReadProgress& p) {
  const double frac = p.bytes_total ? static_cast<double>(p.bytes_done) / p.bytes_total : 1.0;
  const int width = 30, filled = static_cast<int>(frac * width);
  std::fprintf(stderr, "\rloading %s [%s%s] %3.0f%% %.2f/%.2f GB %.2f GB/s", path.c_str(),
               std::string(filled, '#').c_str(), std::string(width - filled, ' ').c_str(), frac * 100,
               p.bytes_done / 1e9, p.bytes_total / 1e9, p.seconds > 0 ? p.bytes_done / 1e9 / p.seconds : 0.0);
  if (p.bytes_done == p.bytes_total) std::fputc('\n', stderr);
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
  return 1;
}

// A flag's file as a path in the repository (the build machine's checkout
// path is not shown).
std::string SourcePath(absl::string_view file) {
  for (absl::string_view top : {"/inference_worker/", "/provenance_service/"}) {
    if (const size_t at = file.rfind(top); at != absl::string_view::npos) return std::string(file.substr(at + 1));
  }
  return std::string(absl::StripPrefix(file, "/"));
}
bool IsMainFile(absl::string_view file) { return absl::EndsWith(file, "cli/generate_main.cc"); }

}  // namespace

int main(int argc, char** argv) {
  // --help lists the flags of this file (Abseil's default looks for a file
  // named after the program), after an overview grouped by purpose.
  absl::FlagsUsageConfig usage;
  usage.contains_helpshort_flags = IsMainFile;
  usage.contains_help_flags = IsMainFile;
  usage.normalize_filename = SourcePath;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(R"(streams a completion or a chat answer from a gpt-oss, qwen2 or phi3 GGUF, locally
(no provenance check: a development tool; the worker is the verified path).

Flags by purpose (descriptions and defaults below):
  Input      --model --prompt --allow_special --chat --instructions --reasoning --show_analysis
  Sampling   --max_tokens --temperature --top_p --top_k --min_p --repetition_penalty --seed
  Engine     --backend --threads

Example:
  ossgate-generate --model=models/ossgate-small.gguf --chat="Tell me a short story." \
    --temperature=0 --max_tokens=120)");
  absl::ParseCommandLine(argc, argv);
  const std::string path = absl::GetFlag(FLAGS_model);
  const std::string prompt_text = absl::GetFlag(FLAGS_prompt), chat_text = absl::GetFlag(FLAGS_chat);
  if (path.empty() || (prompt_text.empty() == chat_text.empty())) {
    std::fprintf(stderr, "usage: ossgate-generate --model M.gguf (--prompt TEXT | --chat MESSAGE) [flags]\n");
    return 2;
  }
  using namespace ossgate;

  auto bytes = model::ReadModelFile(path, uint64_t{1} << 40,
                                    [&](const model::ReadProgress& p) { PrintProgress(path, p); });
  if (!bytes.ok()) return Fail(bytes.status());
  auto file = gguf::GgufFile::Parse(bytes->bytes());
  if (!file.ok()) return Fail(file.status());
  auto tokenizer = text::Tokenizer::FromGguf(*file);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  BackendChoice choice;
  choice.kind = absl::GetFlag(FLAGS_backend);
  choice.cpu_threads = absl::GetFlag(FLAGS_threads);
  choice.max_sequences = 1;
  auto created = CreateBackend(*file, choice);
  if (!created.ok()) return Fail(created.status());
  if (!created->note.empty()) std::fprintf(stderr, "%s\n", created->note.c_str());
  std::unique_ptr<model::Backend>* backend = &created->backend;
  std::fprintf(stderr, "model: %s, sha256 %s\nbackend: %s\n", (*backend)->config().DebugString().c_str(),
               bytes->sha256().c_str(), (*backend)->Description().c_str());

  std::vector<int32_t> prompt;
  const bool chat = !chat_text.empty();
  // The chat format of the file's family (harmony, ChatML, Phi-3).
  auto arch = file->GetString("general.architecture");
  auto format = text::ChatFormatForArchitecture(arch.ok() ? *arch : "");
  if (chat && !format.ok()) return Fail(format.status());
  std::vector<std::string> stops = {"<|return|>", "<|call|>", "<|endoftext|>"};
  if (chat) {
    text::Conversation conv;
    const std::string effort = absl::GetFlag(FLAGS_reasoning);
    conv.reasoning = effort == "high" ? text::ReasoningEffort::kHigh
                     : effort == "medium" ? text::ReasoningEffort::kMedium
                                          : text::ReasoningEffort::kLow;
    conv.developer_instructions = absl::GetFlag(FLAGS_instructions);
    text::Message user;
    user.role = text::Role::kUser;
    user.content = chat_text;
    conv.messages.push_back(std::move(user));
    if ((*format)->harmony()) {
      auto rendered = text::RenderForCompletion(**tokenizer, conv);
      if (!rendered.ok()) return Fail(rendered.status());
      prompt = *std::move(rendered);
    } else {
      auto rendered = (*format)->Render(**tokenizer, conv);
      if (!rendered.ok()) return Fail(rendered.status());
      prompt = *std::move(rendered);
      stops = (*format)->StopTokens();
    }
    std::fprintf(stderr, "chat format: %s, %zu prompt tokens\n", std::string((*format)->name()).c_str(),
                 prompt.size());
  } else {
    prompt = (*tokenizer)->Encode(prompt_text, absl::GetFlag(FLAGS_allow_special));
  }

  model::GenerationParams params;
  params.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  params.sampling.temperature = absl::GetFlag(FLAGS_temperature);
  params.sampling.top_p = absl::GetFlag(FLAGS_top_p);
  params.sampling.top_k = absl::GetFlag(FLAGS_top_k);
  params.sampling.min_p = absl::GetFlag(FLAGS_min_p);
  params.sampling.repetition_penalty = absl::GetFlag(FLAGS_repetition_penalty);
  params.sampling.seed = absl::GetFlag(FLAGS_seed);
  for (const std::string& stop : stops) {
    if (auto id = (*tokenizer)->SpecialTokenId(stop)) params.stop_token_ids.push_back(*id);
  }
  if (params.max_tokens < 1) return Fail(absl::InvalidArgumentError("--max_tokens must be at least 1"));

  params.harmony = chat && (*format)->harmony();
  const bool tty = ::isatty(STDOUT_FILENO);
  const bool show_analysis = absl::GetFlag(FLAGS_show_analysis);
  std::string shown_channel;
  model::SequenceState state(**tokenizer, prompt, params);
  model::Backend& b = **backend;
  if (auto s = b.kv().AddSequence(1); !s.ok()) return Fail(s);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  std::vector<float> logits;
  // Each step samples in the backend (on the GPU only the token id comes
  // back) unless a penalty needs the logits on the host.
  model::SequenceStep step{1, prompt, model::Logits::kLast};
  auto taken = model::ForwardStep(b, state, step, &logits);
  if (!taken.ok()) return Fail(taken.status());
  const auto t_prefill = Clock::now();
  int32_t last = 0;
  for (;;) {
    const model::SequenceState::StepResult r = *std::move(taken);
    last = r.token;
    if (params.harmony) {
      if (!r.text.empty() && (r.channel != "analysis" || show_analysis)) {
        if (r.channel != shown_channel) {
          std::printf("%s%s[%s]%s ", shown_channel.empty() ? "" : "\n", tty ? "\033[1m" : "", r.channel.c_str(),
                      tty ? "\033[0m" : "");
          shown_channel = r.channel;
        }
        const bool dim = tty && r.channel == "analysis";
        std::printf("%s%s%s", dim ? "\033[2m" : "", r.text.c_str(), dim ? "\033[0m" : "");
      }
    } else {
      std::fputs(r.text.c_str(), stdout);
    }
    std::fflush(stdout);
    if (state.finished()) break;
    step = model::SequenceStep{1, {&last, 1}, model::Logits::kLast};
    taken = model::ForwardStep(b, state, step, &logits);
    if (!taken.ok()) return Fail(taken.status());
  }
  const auto t_end = Clock::now();
  std::printf("\n");
  std::fflush(stdout);
  const double prefill_s = std::chrono::duration<double>(t_prefill - t0).count();
  const double decode_s = std::chrono::duration<double>(t_end - t_prefill).count();
  const size_t n_gen = state.generated().size();
  std::fprintf(stderr, "finish: %s; prompt %zu tokens in %.3f s (%.1f tok/s); generated %zu tokens in %.3f s (%.1f tok/s)\n",
               FinishReasonName(state.finish_reason()), prompt.size(), prefill_s, prompt.size() / prefill_s, n_gen,
               decode_s, n_gen > 1 ? (n_gen - 1) / decode_s : 0.0);
  return 0;
}
