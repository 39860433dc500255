#include "inference_worker/worker/request_builder.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "inference_worker/text/chat_format.h"
#include "inference_worker/text/tool_schema.h"

namespace ossgate::worker {

namespace {

absl::Status Invalid(const std::string& field, const std::string& problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// The chat format of the loaded model (harmony without a model file).
absl::StatusOr<const text::ChatFormat*> FormatOf(const LoadedModelView& m) {
  if (m.file == nullptr) return &text::HarmonyChatFormat();
  absl::StatusOr<std::string> arch = m.file->GetString("general.architecture");
  if (!arch.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the loaded model has no readable general.architecture: ", arch.status().message()));
  }
  absl::StatusOr<const text::ChatFormat*> format = text::ChatFormatForArchitecture(*arch);
  if (!format.ok()) return absl::FailedPreconditionError(format.status().message());
  return format;
}

}  // namespace

bool ValidRequestId(const std::string& id) {
  if (id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

absl::StatusOr<serving::GenerationRequest> BuildGenerationRequest(const GenerateSpec& spec, const LoadedModelView& m,
                                                                  const FieldNames& names) {
  serving::GenerationRequest out;
  const text::Tokenizer& tok = *m.tokenizer;
  const int vocab = m.config->vocab_size;
  absl::StatusOr<const text::ChatFormat*> format_or = FormatOf(m);
  if (!format_or.ok()) return format_or.status();
  const text::ChatFormat& format = **format_or;
  if (!ValidRequestId(spec.request_id)) {
    return Invalid(names.request_id, "at most 128 characters from [A-Za-z0-9._:-]");
  }
  out.request_id = spec.request_id;

  std::string prompt_field;
  switch (spec.prompt) {
    case GenerateSpec::Prompt::kText:
      prompt_field = names.text;
      if (spec.text.empty()) return Invalid(names.text, "the prompt is empty");
      if (spec.text.size() > kMaxPromptBytes) {
        return Invalid(names.text,
                       absl::StrCat("the prompt is ", spec.text.size(), " bytes; the limit is ", kMaxPromptBytes));
      }
      if (tok.add_bos()) out.prompt.push_back(*tok.bos_id());
      {
        std::vector<int32_t> ids = tok.Encode(spec.text, spec.allow_special_tokens);
        out.prompt.insert(out.prompt.end(), ids.begin(), ids.end());
      }
      break;
    case GenerateSpec::Prompt::kTokenIds:
      prompt_field = names.token_ids;
      if (spec.token_ids.empty()) return Invalid(names.token_id_list, "the prompt is empty");
      for (size_t i = 0; i < spec.token_ids.size(); ++i) {
        const int32_t id = spec.token_ids[i];
        if (id < 0 || id >= vocab) {
          return Invalid(absl::StrCat(names.token_id_list, "[", i, "]"),
                         absl::StrCat("token id ", id, " is outside [0, ", vocab, ")"));
        }
      }
      out.prompt = spec.token_ids;
      break;
    case GenerateSpec::Prompt::kConversation: {
      prompt_field = names.conversation;
      const text::Conversation& conv = spec.conversation;
      if (conv.messages.empty()) {
        return Invalid(absl::StrCat(names.conversation, ".messages"), "at least one message is required");
      }
      if (conv.messages.size() > kMaxConversationMessages) {
        return Invalid(absl::StrCat(names.conversation, ".messages"),
                       absl::StrCat("at most ", kMaxConversationMessages, " messages"));
      }
      size_t bytes = conv.developer_instructions.size();
      for (const text::Message& msg : conv.messages) bytes += msg.content.size();
      if (bytes > kMaxPromptBytes) {
        return Invalid(names.conversation,
                       absl::StrCat("the conversation is ", bytes, " bytes; the limit is ", kMaxPromptBytes));
      }
      if (!format.harmony()) {
        if (!spec.harmony_only_fields.empty()) {
          return Invalid(spec.harmony_only_fields.front(),
                         absl::StrCat("not supported by the loaded model family ", format.family(),
                                      "; it is part of gpt-oss's harmony format"));
        }
        if (absl::Status s = format.CheckSupported(conv, absl::StrCat(names.conversation, ".")); !s.ok()) return s;
      }
      auto rendered = format.Render(tok, conv);
      if (!rendered.ok()) return Invalid(names.conversation, std::string(rendered.status().message()));
      out.prompt = *std::move(rendered);
      out.params.harmony = format.harmony();
      break;
    }
    case GenerateSpec::Prompt::kNone:
      return Invalid("prompt", "one of text, token_ids or conversation is required");
  }
  const int prompt_len = static_cast<int>(out.prompt.size());
  if (prompt_len >= m.context_length) {
    return Invalid(prompt_field,
                   absl::StrCat("the prompt is ", prompt_len, " tokens; the context length is ", m.context_length,
                                " (at least one token must remain for generation)"));
  }

  // Sampling.
  model::SamplingParams& sp = out.params.sampling;
  if (spec.temperature) {
    const float t = *spec.temperature;
    if (!(t >= 0) || !std::isfinite(t)) {
      return Invalid(names.temperature, absl::StrCat("must be a finite value >= 0, got ", t));
    }
    sp.temperature = t;
  }
  if (spec.top_p) {
    if (!(*spec.top_p > 0 && *spec.top_p <= 1)) return Invalid(names.top_p, "must be in (0, 1]");
    sp.top_p = *spec.top_p;
  }
  if (spec.top_k) {
    if (*spec.top_k > static_cast<uint32_t>(vocab)) {
      return Invalid(names.top_k, absl::StrCat("must be <= vocab size ", vocab));
    }
    sp.top_k = static_cast<int32_t>(*spec.top_k);
  }
  if (spec.min_p) {
    if (!(*spec.min_p >= 0 && *spec.min_p <= 1)) return Invalid(names.min_p, "must be in [0, 1]");
    sp.min_p = *spec.min_p;
  }
  if (spec.repetition_penalty) {
    if (!(*spec.repetition_penalty > 0 && *spec.repetition_penalty <= 10)) {
      return Invalid(names.repetition_penalty, "must be in (0, 10]");
    }
    sp.repetition_penalty = *spec.repetition_penalty;
  }
  if (spec.presence_penalty) {
    if (!(*spec.presence_penalty >= -2 && *spec.presence_penalty <= 2)) {
      return Invalid(names.presence_penalty, "must be in [-2, 2]");
    }
    sp.presence_penalty = *spec.presence_penalty;
  }
  if (spec.frequency_penalty) {
    if (!(*spec.frequency_penalty >= -2 && *spec.frequency_penalty <= 2)) {
      return Invalid(names.frequency_penalty, "must be in [-2, 2]");
    }
    sp.frequency_penalty = *spec.frequency_penalty;
  }
  if (spec.seed) {
    sp.seed = *spec.seed;
  } else {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    sp.seed = rng();
  }

  // Length.
  const int room = m.context_length - prompt_len;
  if (spec.max_tokens) {
    if (*spec.max_tokens == 0) return Invalid(names.max_tokens, "must be >= 1");
    if (*spec.max_tokens > static_cast<uint32_t>(room)) {
      return Invalid(names.max_tokens, absl::StrCat("prompt (", prompt_len, " tokens) + ", names.max_tokens, " (",
                                                    *spec.max_tokens, ") exceeds the context length ",
                                                    m.context_length));
    }
    out.params.max_tokens = static_cast<int>(*spec.max_tokens);
  } else {
    out.params.max_tokens = std::min(room, kDefaultMaxTokensCap);
  }

  // Stops.
  if (spec.stop.size() > kMaxStopStrings) {
    return Invalid(names.stop, absl::StrCat("at most ", kMaxStopStrings, " stop strings"));
  }
  for (size_t i = 0; i < spec.stop.size(); ++i) {
    if (spec.stop[i].empty() || spec.stop[i].size() > kMaxStopBytes) {
      return Invalid(absl::StrCat(names.stop, "[", i, "]"), absl::StrCat("must be 1..", kMaxStopBytes, " bytes"));
    }
    out.params.stop_strings.push_back(spec.stop[i]);
  }
  if (spec.stop_token_ids.size() > kMaxStopTokenIds) {
    return Invalid(names.stop_token_ids, absl::StrCat("at most ", kMaxStopTokenIds, " stop token ids, got ",
                                                      spec.stop_token_ids.size()));
  }
  for (size_t i = 0; i < spec.stop_token_ids.size(); ++i) {
    const int32_t id = spec.stop_token_ids[i];
    if (id < 0 || id >= vocab) {
      return Invalid(absl::StrCat(names.stop_token_ids, "[", i, "]"),
                     absl::StrCat("unknown token id ", id, " (vocabulary size ", vocab, ")"));
    }
    out.params.stop_token_ids.push_back(id);
  }
  // A chat turn always ends at the family's end-of-turn tokens; a text
  // prompt stops there too (harmony: also at <|endoftext|>) unless ignore_eos.
  const bool conversation = spec.prompt == GenerateSpec::Prompt::kConversation;
  std::vector<std::string> default_stops = format.StopTokens();
  if (format.harmony() && !conversation) default_stops.push_back("<|endoftext|>");
  if (conversation || !spec.ignore_eos) {
    for (const std::string& name : default_stops) {
      if (auto id = tok.SpecialTokenId(name)) out.params.stop_token_ids.push_back(*id);
    }
  }
  if (spec.logprobs) {
    if (*spec.logprobs > kMaxLogprobs) return Invalid(names.logprobs, absl::StrCat("must be 0..", kMaxLogprobs));
    out.logprobs = static_cast<int>(*spec.logprobs);
  }
  return out;
}

absl::StatusOr<std::vector<text::ToolDefinition>> BuildTools(const std::vector<ToolSpec>& specs,
                                                             const std::string& field, const std::string& member) {
  if (specs.size() > kMaxTools) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most ", kMaxTools, " tools, got ", specs.size()));
  }
  absl::flat_hash_map<std::string, size_t> index_of;
  std::vector<text::ToolDefinition> tools;
  tools.reserve(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const ToolSpec& t = specs[i];
    absl::StatusOr<text::ToolDefinition> tool = text::ToolFromJsonSchema(t.name, t.description, t.parameters_json);
    // The renderer's messages start with its field ("name: ...", "parameters.properties.x: ...").
    if (!tool.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "].", member, tool.status().message()));
    }
    if (auto [it, inserted] = index_of.emplace(t.name, i); !inserted) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "].", member, "name: \"", t.name,
                                                     "\" is also the name of ", field, "[", it->second, "]"));
    }
    tools.push_back(*std::move(tool));
  }
  return tools;
}

}  // namespace ossgate::worker
