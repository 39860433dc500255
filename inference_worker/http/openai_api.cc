#include "inference_worker/http/openai_api.h"

#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "inference_worker/text/tool_schema.h"

namespace ossgate::http {

using json = nlohmann::json;

namespace {

// ---- Reading parameters ----------------------------------------------------
//
// Each getter returns false (with *err set) for a present value of the wrong
// type or range; an absent or null value leaves *out unset.

const json* Field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

const char* TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number with a fraction";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    default: return "an unsupported value";
  }
}

ApiError WrongType(const std::string& param, const char* expected, const json& got) {
  return BadParam(param, absl::StrCat(param, " must be ", expected, ", got ", TypeName(got)));
}

bool GetNumber(const json& body, const char* name, double lo, double hi, std::optional<double>* out, ApiError* err) {
  const json* v = Field(body, name);
  if (v == nullptr) return true;
  if (!v->is_number()) {
    *err = WrongType(name, "a number", *v);
    return false;
  }
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    *err = BadParam(name, absl::StrCat(name, " must be in [", lo, ", ", hi, "], got ", d));
    return false;
  }
  *out = d;
  return true;
}

bool GetInteger(const json& body, const char* name, int64_t lo, int64_t hi, std::optional<int64_t>* out,
                ApiError* err) {
  const json* v = Field(body, name);
  if (v == nullptr) return true;
  if (!v->is_number_integer()) {
    *err = WrongType(name, "an integer", *v);
    return false;
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    *err = BadParam(name, absl::StrCat(name, " must be in [", lo, ", ", hi, "], got ", v->get<uint64_t>()));
    return false;
  }
  const int64_t i = v->get<int64_t>();
  if (i < lo || i > hi) {
    *err = BadParam(name, absl::StrCat(name, " must be in [", lo, ", ", hi, "], got ", i));
    return false;
  }
  *out = i;
  return true;
}

bool GetBool(const json& body, const char* name, std::optional<bool>* out, ApiError* err) {
  const json* v = Field(body, name);
  if (v == nullptr) return true;
  if (!v->is_boolean()) {
    *err = WrongType(name, "a boolean", *v);
    return false;
  }
  *out = v->get<bool>();
  return true;
}

bool GetString(const json& body, const char* name, std::optional<std::string>* out, ApiError* err) {
  const json* v = Field(body, name);
  if (v == nullptr) return true;
  if (!v->is_string()) {
    *err = WrongType(name, "a string", *v);
    return false;
  }
  *out = v->get<std::string>();
  return true;
}

// Message content: a string, or an array of {"type": "text", "text": ...}
// parts (joined), as the chat API allows.
bool GetContent(const json& msg, const std::string& param, std::string* out, ApiError* err) {
  const json* v = Field(msg, "content");
  out->clear();
  if (v == nullptr) return true;
  if (v->is_string()) {
    *out = v->get<std::string>();
    return true;
  }
  if (!v->is_array()) {
    *err = WrongType(param, "a string or an array of text parts", *v);
    return false;
  }
  for (size_t i = 0; i < v->size(); ++i) {
    const json& part = (*v)[i];
    const std::string p = absl::StrCat(param, "[", i, "]");
    if (!part.is_object()) {
      *err = WrongType(p, "an object", part);
      return false;
    }
    const json* type = Field(part, "type");
    if (type == nullptr || !type->is_string() || type->get<std::string>() != "text") {
      *err = BadParam(absl::StrCat(p, ".type"), "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
      return false;
    }
    const json* text = Field(part, "text");
    if (text == nullptr || !text->is_string()) {
      *err = BadParam(absl::StrCat(p, ".text"), "a text part needs a string \"text\"");
      return false;
    }
    out->append(text->get<std::string>());
  }
  return true;
}

// ---- The parameters both endpoints share -------------------------------------

bool ParseCommon(const json& body, OpenAiRequest* r, ApiError* err) {
  std::optional<std::string> model;
  if (!GetString(body, "model", &model, err)) return false;
  if (!model || model->empty()) {
    *err = BadParam("model", "model is required (GET /v1/models lists the served model)");
    return false;
  }
  r->model = *model;

  std::optional<int64_t> n;
  if (!GetInteger(body, "n", 1, std::numeric_limits<int32_t>::max(), &n, err)) return false;
  if (n && *n > 1) {
    *err = BadParam("n", absl::StrCat("only n=1 is supported (one choice per request), got ", *n,
                                      "; send separate requests with different seeds instead"));
    return false;
  }

  std::optional<bool> stream;
  if (!GetBool(body, "stream", &stream, err)) return false;
  r->stream = stream.value_or(false);
  if (const json* so = Field(body, "stream_options")) {
    if (!so->is_object()) {
      *err = WrongType("stream_options", "an object", *so);
      return false;
    }
    if (!r->stream) {
      *err = BadParam("stream_options", "stream_options is only allowed when stream is true");
      return false;
    }
    std::optional<bool> include_usage;
    if (!GetBool(*so, "include_usage", &include_usage, err)) {
      err->param = "stream_options.include_usage";
      return false;
    }
    r->include_usage = include_usage.value_or(false);
  }

  worker::GenerateSpec& s = r->spec;
  std::optional<double> d;
  if (!GetNumber(body, "temperature", 0, 2, &d, err)) return false;
  if (d) s.temperature = static_cast<float>(*d);
  d.reset();
  if (!GetNumber(body, "top_p", 0, 1, &d, err)) return false;
  if (d) s.top_p = static_cast<float>(*d);  // 0 is refused by the builder: (0, 1]
  d.reset();
  if (!GetNumber(body, "presence_penalty", -2, 2, &d, err)) return false;
  if (d) s.presence_penalty = static_cast<float>(*d);
  d.reset();
  if (!GetNumber(body, "frequency_penalty", -2, 2, &d, err)) return false;
  if (d) s.frequency_penalty = static_cast<float>(*d);
  // vLLM's extra sampling parameters; ranges checked by the builder.
  d.reset();
  if (!GetNumber(body, "min_p", -std::numeric_limits<double>::max(), std::numeric_limits<double>::max(), &d, err)) {
    return false;
  }
  if (d) s.min_p = static_cast<float>(*d);
  d.reset();
  if (!GetNumber(body, "repetition_penalty", -std::numeric_limits<double>::max(),
                 std::numeric_limits<double>::max(), &d, err)) {
    return false;
  }
  if (d) s.repetition_penalty = static_cast<float>(*d);
  std::optional<int64_t> i;
  // -1 is vLLM's "off", as 0 is ours.
  if (!GetInteger(body, "top_k", -1, std::numeric_limits<int32_t>::max(), &i, err)) return false;
  if (i) s.top_k = static_cast<uint32_t>(std::max<int64_t>(*i, 0));
  i.reset();
  if (!GetInteger(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), &i, err)) {
    return false;
  }
  if (i) s.seed = static_cast<uint64_t>(*i);

  if (const json* stop = Field(body, "stop")) {
    if (stop->is_string()) {
      s.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (size_t k = 0; k < stop->size(); ++k) {
        if (!(*stop)[k].is_string()) {
          *err = WrongType(absl::StrCat("stop[", k, "]"), "a string", (*stop)[k]);
          return false;
        }
        s.stop.push_back((*stop)[k].get<std::string>());
      }
    } else {
      *err = WrongType("stop", "a string or an array of strings", *stop);
      return false;
    }
  }

  // vLLM's extension: do not stop at the end-of-text token (text prompts;
  // a harmony answer always ends at <|return|> or <|call|>).
  std::optional<bool> ignore_eos;
  if (!GetBool(body, "ignore_eos", &ignore_eos, err)) return false;
  s.ignore_eos = ignore_eos.value_or(false);

  std::optional<std::string> user;
  if (!GetString(body, "user", &user, err)) return false;
  r->user = user.value_or("");

  if (const json* bias = Field(body, "logit_bias")) {
    if (!bias->is_object()) {
      *err = WrongType("logit_bias", "an object", *bias);
      return false;
    }
    if (!bias->empty()) {
      *err = BadParam("logit_bias", "logit_bias is not supported");
      return false;
    }
  }
  if (const json* rf = Field(body, "response_format")) {
    const json* type = rf->is_object() ? Field(*rf, "type") : nullptr;
    if (type == nullptr || !type->is_string() || type->get<std::string>() != "text") {
      *err = BadParam("response_format", "only {\"type\": \"text\"} is supported (no structured output)");
      return false;
    }
  }
  return true;
}

bool ParseChat(const json& body, const std::string& body_text, OpenAiRequest* r, ApiError* err) {
  worker::GenerateSpec& s = r->spec;
  s.prompt = worker::GenerateSpec::Prompt::kConversation;
  r->names.conversation = "messages";

  // Function tools, through the renderer the gRPC face uses. The schemas
  // are taken from an order-keeping parse of the body: harmony renders the
  // properties in the client's order, and `json` sorts keys.
  if (const json* tools = Field(body, "tools")) {
    if (!tools->is_array()) {
      *err = WrongType("tools", "an array", *tools);
      return false;
    }
    std::vector<worker::ToolSpec> specs;
    if (!tools->empty()) {
      const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(body_text, nullptr, false);
      for (size_t i = 0; i < tools->size(); ++i) {
        const json& t = (*tools)[i];
        const std::string p = absl::StrCat("tools[", i, "]");
        if (!t.is_object()) {
          *err = WrongType(p, "an object", t);
          return false;
        }
        const json* type = Field(t, "type");
        if (type == nullptr || !type->is_string() || type->get<std::string>() != "function") {
          *err = BadParam(p + ".type", "only {\"type\": \"function\"} tools are supported");
          return false;
        }
        const json* fn = Field(t, "function");
        if (fn == nullptr || !fn->is_object()) {
          *err = BadParam(p + ".function", "a function tool needs a \"function\" object");
          return false;
        }
        std::optional<std::string> name, description;
        if (!GetString(*fn, "name", &name, err) || !GetString(*fn, "description", &description, err)) {
          err->param = absl::StrCat(p, ".function.", err->param);
          return false;
        }
        if (!name) {
          *err = BadParam(p + ".function.name", "a function tool needs a name");
          return false;
        }
        worker::ToolSpec spec{*name, description.value_or(""), ""};
        if (const json* params = Field(*fn, "parameters")) {
          if (!params->is_object()) {
            *err = WrongType(p + ".function.parameters", "a JSON Schema object", *params);
            return false;
          }
          spec.parameters_json = ordered.at("tools").at(i).at("function").at("parameters").dump();
        }
        specs.push_back(std::move(spec));
      }
    }
    if (!tools->empty()) s.harmony_only_fields.push_back("tools");
    absl::StatusOr<std::vector<text::ToolDefinition>> built = worker::BuildTools(specs, "tools", "function.");
    if (!built.ok()) {
      *err = ErrorFromStatus(built.status());
      return false;
    }
    s.conversation.tools = *std::move(built);
  }
  // "auto" (the default) and "none" (the tools are checked but not shown to
  // the model, as vLLM does); "required" and a named function would need
  // constrained decoding, which this worker does not do.
  if (const json* choice = Field(body, "tool_choice")) {
    if (!choice->is_string() || (choice->get<std::string>() != "none" && choice->get<std::string>() != "auto")) {
      *err = BadParam("tool_choice",
                      "tool_choice may be \"auto\" or \"none\"; \"required\" and a named function are not "
                      "supported (the worker cannot force a call)");
      return false;
    }
    if (choice->get<std::string>() == "none") s.conversation.tools.clear();
  }
  if (const json* fns = Field(body, "functions"); fns != nullptr && !(fns->is_array() && fns->empty())) {
    *err = BadParam("functions", "the deprecated functions parameter is not supported; send tools instead");
    return false;
  }

  const json* messages = Field(body, "messages");
  if (messages == nullptr) {
    *err = BadParam("messages", "messages is required");
    return false;
  }
  if (!messages->is_array()) {
    *err = WrongType("messages", "an array", *messages);
    return false;
  }
  text::Conversation& conv = s.conversation;
  bool turns_started = false;
  std::map<std::string, std::string> call_names;  // tool call id -> function name
  for (size_t k = 0; k < messages->size(); ++k) {
    const json& m = (*messages)[k];
    const std::string p = absl::StrCat("messages[", k, "]");
    if (!m.is_object()) {
      *err = WrongType(p, "an object", m);
      return false;
    }
    const json* role_v = Field(m, "role");
    if (role_v == nullptr || !role_v->is_string()) {
      *err = BadParam(p + ".role", "every message needs a string role");
      return false;
    }
    const std::string role = role_v->get<std::string>();
    std::string content;
    if (!GetContent(m, p + ".content", &content, err)) return false;
    if (role == "system" || role == "developer") {
      if (turns_started) {
        *err = BadParam(p + ".role",
                        absl::StrCat(role, " messages must come before the user and assistant messages (they "
                                           "become the harmony developer message's instructions)"));
        return false;
      }
      if (!conv.developer_instructions.empty()) conv.developer_instructions += "\n\n";
      conv.developer_instructions += content;
    } else if (role == "user") {
      turns_started = true;
      text::Message msg;
      msg.role = text::Role::kUser;
      msg.content = std::move(content);
      conv.messages.push_back(std::move(msg));
    } else if (role == "assistant") {
      turns_started = true;
      const json* calls = Field(m, "tool_calls");
      if (calls != nullptr && !calls->is_array()) {
        *err = WrongType(p + ".tool_calls", "an array", *calls);
        return false;
      }
      std::optional<std::string> reasoning;
      if (!GetString(m, "reasoning_content", &reasoning, err)) {
        err->param = p + ".reasoning_content";
        return false;
      }
      if (!reasoning && !GetString(m, "reasoning", &reasoning, err)) {
        err->param = p + ".reasoning";
        return false;
      }
      if (reasoning && !reasoning->empty()) {
        s.harmony_only_fields.push_back(
            absl::StrCat(p, Field(m, "reasoning_content") != nullptr ? ".reasoning_content" : ".reasoning"));
        text::Message msg;
        msg.role = text::Role::kAssistant;
        msg.channel = "analysis";
        msg.content = *std::move(reasoning);
        conv.messages.push_back(std::move(msg));
      }
      const bool has_calls = calls != nullptr && !calls->empty();
      if (has_calls) s.harmony_only_fields.push_back(p + ".tool_calls");
      if (!content.empty()) {
        // Text beside tool calls is the commentary preamble the model wrote
        // before calling (SplitReply returns it as content).
        text::Message msg;
        msg.role = text::Role::kAssistant;
        msg.channel = has_calls ? "commentary" : "final";
        msg.content = std::move(content);
        conv.messages.push_back(std::move(msg));
      }
      for (size_t c = 0; has_calls && c < calls->size(); ++c) {
        // {"id", "type": "function", "function": {"name", "arguments"}} ->
        // <|start|>assistant<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>ARGS<|call|>
        const json& call = (*calls)[c];
        const std::string cp = absl::StrCat(p, ".tool_calls[", c, "]");
        const json* fn = call.is_object() ? Field(call, "function") : nullptr;
        if (fn == nullptr || !fn->is_object()) {
          *err = BadParam(cp + ".function", "a tool call needs a \"function\" object with name and arguments");
          return false;
        }
        std::optional<std::string> id, name, arguments;
        if (!GetString(call, "id", &id, err)) {
          err->param = cp + ".id";
          return false;
        }
        if (!GetString(*fn, "name", &name, err) || !GetString(*fn, "arguments", &arguments, err)) {
          err->param = absl::StrCat(cp, ".function.", err->param);
          return false;
        }
        if (!name || !text::IsValidToolName(*name)) {
          *err = BadParam(cp + ".function.name", "a tool call needs the name of a function ([A-Za-z0-9_-], 1-64)");
          return false;
        }
        if (id) call_names[*id] = *name;
        text::Message msg;
        msg.role = text::Role::kAssistant;
        msg.channel = "commentary";
        msg.recipient = "functions." + *name;
        msg.content_type = "json";
        msg.content = arguments.value_or("{}");
        conv.messages.push_back(std::move(msg));
      }
    } else if (role == "tool") {
      // The function's result, back to the model as the tool's message:
      // <|start|>functions.NAME to=assistant<|channel|>commentary<|message|>RESULT<|end|>
      turns_started = true;
      s.harmony_only_fields.push_back(p + ".role");
      std::optional<std::string> call_id, name;
      if (!GetString(m, "tool_call_id", &call_id, err)) {
        err->param = p + ".tool_call_id";
        return false;
      }
      if (!GetString(m, "name", &name, err)) {
        err->param = p + ".name";
        return false;
      }
      if (call_id) {
        auto it = call_names.find(*call_id);
        if (it == call_names.end()) {
          *err = BadParam(p + ".tool_call_id", absl::StrCat("no earlier assistant message has a tool call with id \"",
                                                            *call_id, "\""));
          return false;
        }
        name = it->second;
      }
      if (!name) {
        *err = BadParam(p + ".tool_call_id", "a tool message needs the tool_call_id of the call it answers");
        return false;
      }
      if (!text::IsValidToolName(*name)) {
        *err = BadParam(p + ".name", "name must be a function name ([A-Za-z0-9_-], 1-64 characters)");
        return false;
      }
      text::Message msg;
      msg.role = text::Role::kTool;
      msg.author = "functions." + *name;
      msg.channel = "commentary";
      msg.content = std::move(content);
      conv.messages.push_back(std::move(msg));
    } else if (role == "function") {
      *err = BadParam(p + ".role", "the deprecated function role is not supported; send tool messages instead");
      return false;
    } else {
      *err = BadParam(p + ".role", "role must be system, developer, user, assistant or tool");
      return false;
    }
  }
  if (conv.messages.empty()) {
    *err = BadParam("messages", "at least one user or assistant message with content is required");
    return false;
  }

  std::optional<std::string> effort;
  if (!GetString(body, "reasoning_effort", &effort, err)) return false;
  if (effort) {
    s.harmony_only_fields.push_back("reasoning_effort");
    if (*effort == "low") {
      conv.reasoning = text::ReasoningEffort::kLow;
    } else if (*effort == "medium") {
      conv.reasoning = text::ReasoningEffort::kMedium;
    } else if (*effort == "high") {
      conv.reasoning = text::ReasoningEffort::kHigh;
    } else {
      *err = BadParam("reasoning_effort", "reasoning_effort must be low, medium or high");
      return false;
    }
  }

  // max_completion_tokens replaces the deprecated max_tokens; given both,
  // it wins (as in vLLM).
  std::optional<int64_t> max_tokens, max_completion_tokens;
  if (!GetInteger(body, "max_tokens", 0, std::numeric_limits<uint32_t>::max(), &max_tokens, err)) return false;
  if (!GetInteger(body, "max_completion_tokens", 0, std::numeric_limits<uint32_t>::max(), &max_completion_tokens,
                  err)) {
    return false;
  }
  if (max_completion_tokens) {
    s.max_tokens = static_cast<uint32_t>(*max_completion_tokens);
    r->names.max_tokens = "max_completion_tokens";
  } else if (max_tokens) {
    s.max_tokens = static_cast<uint32_t>(*max_tokens);
  }

  std::optional<bool> logprobs;
  if (!GetBool(body, "logprobs", &logprobs, err)) return false;
  std::optional<int64_t> top;
  if (!GetInteger(body, "top_logprobs", 0, worker::kMaxLogprobs, &top, err)) return false;
  if (top && !logprobs.value_or(false)) {
    *err = BadParam("top_logprobs", "top_logprobs needs logprobs: true");
    return false;
  }
  r->logprobs = logprobs.value_or(false);
  if (r->logprobs) {
    r->top_logprobs = static_cast<int>(top.value_or(0));
    s.logprobs = static_cast<uint32_t>(r->top_logprobs);
    r->names.logprobs = "top_logprobs";
  }
  return true;
}

bool ParseCompletion(const json& body, OpenAiRequest* r, ApiError* err) {
  worker::GenerateSpec& s = r->spec;
  r->names.text = "prompt";
  r->names.token_ids = "prompt";
  r->names.token_id_list = "prompt";
  const json* prompt = Field(body, "prompt");
  if (prompt == nullptr) {
    *err = BadParam("prompt", "prompt is required");
    return false;
  }
  // A string, a token array, or a one-element array of either.
  const json* p = prompt;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_string()) {
    s.prompt = worker::GenerateSpec::Prompt::kText;
    s.text = p->get<std::string>();
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    s.prompt = worker::GenerateSpec::Prompt::kTokenIds;
    for (size_t k = 0; k < p->size(); ++k) {
      const json& t = (*p)[k];
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
        *err = BadParam("prompt", absl::StrCat("prompt[", k, "] is not a token id"));
        return false;
      }
      s.token_ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
  } else if (p->is_array() && p->size() > 1) {
    *err = BadParam("prompt", "only one prompt per request is supported");
    return false;
  } else {
    *err = WrongType("prompt", "a string or an array of token ids", *p);
    return false;
  }

  std::optional<int64_t> max_tokens;
  if (!GetInteger(body, "max_tokens", 0, std::numeric_limits<uint32_t>::max(), &max_tokens, err)) return false;
  if (max_tokens) s.max_tokens = static_cast<uint32_t>(*max_tokens);

  std::optional<int64_t> logprobs;
  if (!GetInteger(body, "logprobs", 0, worker::kMaxLogprobs, &logprobs, err)) return false;
  if (logprobs) {
    r->logprobs = true;
    r->top_logprobs = static_cast<int>(*logprobs);
    s.logprobs = static_cast<uint32_t>(*logprobs);
  }
  std::optional<bool> echo;
  if (!GetBool(body, "echo", &echo, err)) return false;
  if (echo.value_or(false)) {
    *err = BadParam("echo", "echo is not supported");
    return false;
  }
  std::optional<int64_t> best_of;
  if (!GetInteger(body, "best_of", 1, std::numeric_limits<int32_t>::max(), &best_of, err)) return false;
  if (best_of && *best_of > 1) {
    *err = BadParam("best_of", "only best_of=1 is supported");
    return false;
  }
  std::optional<std::string> suffix;
  if (!GetString(body, "suffix", &suffix, err)) return false;
  if (suffix && !suffix->empty()) {
    *err = BadParam("suffix", "suffix is not supported");
    return false;
  }
  return true;
}

}  // namespace

// ---- Errors -------------------------------------------------------------------

json ErrorJson(const ApiError& e) {
  json err = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return json{{"error", std::move(err)}};
}

ApiError BadParam(const std::string& param, const std::string& message) {
  ApiError e;
  e.status = 400;
  e.message = message;
  e.param = param;
  return e;
}

ApiError ErrorFromStatus(const absl::Status& s) {
  ApiError e;
  e.message = std::string(s.message());
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument: {
      e.status = 400;
      const size_t colon = e.message.find(": ");
      if (colon != std::string::npos) e.param = e.message.substr(0, colon);
      break;
    }
    case absl::StatusCode::kResourceExhausted:
      e.status = 429;
      e.type = "rate_limit_error";
      e.code = "worker_full";
      break;
    case absl::StatusCode::kUnavailable:
      e.status = 503;
      e.type = "service_unavailable";
      e.code = "unavailable";
      break;
    case absl::StatusCode::kUnauthenticated:
      e.status = 401;
      e.type = "authentication_error";
      e.code = "invalid_api_key";
      break;
    case absl::StatusCode::kPermissionDenied:
      e.status = 403;
      e.type = "permission_error";
      break;
    case absl::StatusCode::kNotFound:
      e.status = 404;
      e.type = "not_found_error";
      break;
    case absl::StatusCode::kAlreadyExists:
      e.status = 409;
      e.type = "conflict_error";
      break;
    default:
      e.status = 500;
      e.type = "server_error";
      e.code = absl::StatusCodeToString(s.code());
      break;
  }
  return e;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// ---- Requests -----------------------------------------------------------------

std::variant<OpenAiRequest, ApiError> ParseRequest(Endpoint endpoint, const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return BadParam("", "the request body is not valid JSON");
  }
  if (!j.is_object()) return BadParam("", absl::StrCat("the request body must be a JSON object, got ", TypeName(j)));
  OpenAiRequest r;
  r.endpoint = endpoint;
  r.names = worker::FieldNames{};
  r.names.temperature = "temperature";
  r.names.top_p = "top_p";
  r.names.top_k = "top_k";
  r.names.min_p = "min_p";
  r.names.repetition_penalty = "repetition_penalty";
  r.names.presence_penalty = "presence_penalty";
  r.names.frequency_penalty = "frequency_penalty";
  ApiError err;
  if (!ParseCommon(j, &r, &err)) return err;
  const bool ok = endpoint == Endpoint::kChatCompletions ? ParseChat(j, body, &r, &err) : ParseCompletion(j, &r, &err);
  if (!ok) return err;
  return r;
}

// ---- Responses ----------------------------------------------------------------

ResponseBuilder::ResponseBuilder(const OpenAiRequest& request, std::string id, int64_t created, std::string model,
                                 const text::Tokenizer& tokenizer)
    : request_(request), id_(std::move(id)), created_(created), model_(std::move(model)), tokenizer_(tokenizer) {}

std::string ResponseBuilder::FinishReason(model::FinishReason r) {
  switch (r) {
    case model::FinishReason::kLength: return "length";
    case model::FinishReason::kToolCall: return "tool_calls";
    default: return "stop";
  }
}

ResponseBuilder::Route ResponseBuilder::RouteOf(const serving::OutputChunk& chunk) const {
  if (!chat()) return Route::kContent;
  if (!chunk.recipient.empty()) {
    // Arguments of a call to one of the request's functions; messages to
    // built-in tools this worker does not offer (browser, python) are
    // dropped, as SplitReply does.
    return absl::StartsWith(chunk.recipient, "functions.") ? Route::kToolCall : Route::kDropped;
  }
  return IsReasoning(chunk.channel) ? Route::kReasoning : Route::kContent;
}

std::string ResponseBuilder::NewCallId() {
  std::random_device rd;
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += "0123456789abcdef"[rd() & 15];
  return id;
}

bool ResponseBuilder::AddToolText(const serving::OutputChunk& chunk) {
  const std::string name = chunk.recipient.substr(std::string_view("functions.").size());
  const bool fresh = calls_.empty() || calls_.back().name != name || calls_.back().closed;
  if (fresh) calls_.push_back({NewCallId(), name, "", false});
  calls_.back().arguments += chunk.text;
  return fresh;
}

json ResponseBuilder::ToolCallsJson() const {
  json out = json::array();
  for (const Call& c : calls_) {
    out.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  }
  return out;
}

ApiError ResponseBuilder::FailureOf(const serving::OutputChunk& chunk) {
  ApiError e;
  if (chunk.finish == model::FinishReason::kCancelled) {
    e.status = 503;
    e.type = "service_unavailable";
    e.code = "cancelled";
    e.message = "the generation was cancelled (the worker is shutting down, or the stream stalled)";
  } else {
    e.status = 500;
    e.type = "server_error";
    e.code = "generation_failed";
    e.message = chunk.error.empty() ? "the generation failed" : chunk.error;
  }
  return e;
}

json ResponseBuilder::ChunkEnvelope() const {
  json j = {{"id", id_},
            {"object", chat() ? "chat.completion.chunk" : "text_completion"},
            {"created", created_},
            {"model", model_}};
  if (request_.include_usage) j["usage"] = nullptr;
  return j;
}

json ResponseBuilder::UsageJson() const {
  const serving::Usage& u = final_.usage;
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.generated_tokens},
          {"total_tokens", u.prompt_tokens + u.generated_tokens}};
}

json ResponseBuilder::LogprobsJson(const serving::OutputChunk& chunk, size_t text_offset) const {
  auto bytes_of = [](const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(static_cast<int>(c));
    return b;
  };
  if (chat()) {
    json content = json::array();
    for (const serving::TokenLogprob& lp : chunk.logprobs) {
      const std::string tok = tokenizer_.TokenBytes(lp.token);
      json top = json::array();
      for (const auto& [id, v] : lp.top) {
        const std::string t = tokenizer_.TokenBytes(id);
        top.push_back({{"token", t}, {"logprob", v}, {"bytes", bytes_of(t)}});
      }
      content.push_back({{"token", tok}, {"logprob", lp.logprob}, {"bytes", bytes_of(tok)}, {"top_logprobs", top}});
    }
    return {{"content", std::move(content)}};
  }
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(), offsets = json::array();
  for (const serving::TokenLogprob& lp : chunk.logprobs) {
    tokens.push_back(tokenizer_.TokenBytes(lp.token));
    token_logprobs.push_back(lp.logprob);
    json top = json::object();
    for (const auto& [id, v] : lp.top) top[tokenizer_.TokenBytes(id)] = v;
    top_logprobs.push_back(std::move(top));
    offsets.push_back(text_offset);
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs},
          {"text_offset", offsets}};
}

std::vector<json> ResponseBuilder::Begin() {
  if (!chat()) return {};
  json j = ChunkEnvelope();
  j["choices"] = json::array(
      {{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}}});
  return {j};
}

std::vector<json> ResponseBuilder::Stream(const serving::OutputChunk& chunk) {
  std::vector<json> out;
  const Route route = RouteOf(chunk);
  if (route != Route::kToolCall && !calls_.empty()) calls_.back().closed = true;
  if (!chunk.text.empty() && route == Route::kToolCall) {
    // The first delta of a call carries its id, type and name; later ones
    // only more of the arguments (the OpenAI streaming shape).
    const bool fresh = AddToolText(chunk);
    json call = {{"index", calls_.size() - 1}, {"function", {{"arguments", chunk.text}}}};
    if (fresh) {
      call["id"] = calls_.back().id;
      call["type"] = "function";
      call["function"]["name"] = calls_.back().name;
    }
    json j = ChunkEnvelope();
    j["choices"] = json::array({{{"index", 0},
                                 {"delta", {{"tool_calls", json::array({std::move(call)})}}},
                                 {"logprobs", nullptr},
                                 {"finish_reason", nullptr}}});
    out.push_back(std::move(j));
  } else if (!chunk.text.empty() && route != Route::kDropped) {
    const bool reasoning = route == Route::kReasoning;
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    if (request_.logprobs && !chunk.logprobs.empty() && !reasoning) {
      choice["logprobs"] = LogprobsJson(chunk, text_offset_);
    }
    if (chat()) {
      choice["delta"] = {{reasoning ? "reasoning_content" : "content", chunk.text}};
    } else {
      choice["text"] = chunk.text;
    }
    text_offset_ += chunk.text.size();
    json j = ChunkEnvelope();
    j["choices"] = json::array({std::move(choice)});
    out.push_back(std::move(j));
  }
  if (!chunk.final) return out;
  final_ = chunk;
  final_seen_ = true;
  if (chunk.finish == model::FinishReason::kError || chunk.finish == model::FinishReason::kCancelled) {
    out.push_back(ErrorJson(FailureOf(chunk)));
    return out;
  }
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", FinishReason(chunk.finish)}};
  if (chat()) {
    choice["delta"] = json::object();
  } else {
    choice["text"] = "";
  }
  json j = ChunkEnvelope();
  j["choices"] = json::array({std::move(choice)});
  out.push_back(std::move(j));
  if (request_.include_usage) {
    json u = ChunkEnvelope();
    u["choices"] = json::array();
    u["usage"] = UsageJson();
    out.push_back(std::move(u));
  }
  return out;
}

void ResponseBuilder::Add(const serving::OutputChunk& chunk) {
  const Route route = RouteOf(chunk);
  if (route != Route::kToolCall && !calls_.empty()) calls_.back().closed = true;
  if (!chunk.text.empty() && route == Route::kToolCall) AddToolText(chunk);
  const bool reasoning = route == Route::kReasoning;
  if (!chunk.text.empty() && (route == Route::kContent || route == Route::kReasoning)) {
    if (request_.logprobs && !chunk.logprobs.empty() && !reasoning) {
      json lp = LogprobsJson(chunk, content_.size());
      if (logprobs_.is_null()) {
        logprobs_ = std::move(lp);
      } else {
        for (auto& [key, values] : lp.items()) {
          for (auto& v : values) logprobs_[key].push_back(std::move(v));
        }
      }
    }
    (reasoning ? reasoning_ : content_) += chunk.text;
  }
  if (chunk.final) {
    final_ = chunk;
    final_seen_ = true;
  }
}

std::variant<json, ApiError> ResponseBuilder::Response() const {
  if (!final_seen_) {
    ApiError e;
    e.status = 500;
    e.type = "server_error";
    e.message = "the generation ended without a final result";
    return e;
  }
  if (final_.finish == model::FinishReason::kError || final_.finish == model::FinishReason::kCancelled) {
    return FailureOf(final_);
  }
  json choice = {{"index", 0}, {"finish_reason", FinishReason(final_.finish)}, {"logprobs", nullptr}};
  if (request_.logprobs) {
    choice["logprobs"] = logprobs_.is_null() ? (chat() ? json{{"content", json::array()}}
                                                       : json{{"tokens", json::array()},
                                                              {"token_logprobs", json::array()},
                                                              {"top_logprobs", json::array()},
                                                              {"text_offset", json::array()}})
                                             : logprobs_;
  }
  if (chat()) {
    choice["message"] = {{"role", "assistant"},
                         {"content", content_.empty() && !calls_.empty() ? json(nullptr) : json(content_)},
                         {"reasoning_content", reasoning_.empty() ? json(nullptr) : json(reasoning_)}};
    if (!calls_.empty()) choice["message"]["tool_calls"] = ToolCallsJson();
  } else {
    choice["text"] = content_;
  }
  return json{{"id", id_},
              {"object", chat() ? "chat.completion" : "text_completion"},
              {"created", created_},
              {"model", model_},
              {"choices", json::array({std::move(choice)})},
              {"usage", UsageJson()}};
}

}  // namespace ossgate::http
