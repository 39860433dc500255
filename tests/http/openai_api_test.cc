// The HTTP API's JSON translation (inference_worker/http/openai_api.h):
// request bodies into GenerateSpec and through the shared request builder,
// every refusal with its status and `param`, engine output into responses
// and server-sent-event chunks (reasoning_content never in content), and the
// error shape. No server, no model: a tiny tokenizer and a model view with a
// 256-token context.
#include "inference_worker/http/openai_api.h"

#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/text/chat_format.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tool_schema.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::http {
namespace {

using json = nlohmann::json;

class OpenAiApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = text::Tokenizer::Create(text::MakeTinyVocab())->release(); }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }

  void SetUp() override {
    config_.vocab_size = tok_->vocab_size();
    view_.tokenizer = tok_;
    view_.config = &config_;
    view_.context_length = 256;
  }

  static OpenAiRequest Parse(Endpoint e, const json& body) {
    auto r = ParseRequest(e, body.dump());
    if (auto* err = std::get_if<ApiError>(&r)) {
      ADD_FAILURE() << "refused: " << err->message << " (param " << err->param << ")";
      return {};
    }
    return std::get<OpenAiRequest>(r);
  }
  static ApiError Refusal(Endpoint e, const std::string& body) {
    auto r = ParseRequest(e, body);
    if (!std::holds_alternative<ApiError>(r)) {
      ADD_FAILURE() << "accepted: " << body;
      return {};
    }
    return std::get<ApiError>(r);
  }
  static ApiError Refusal(Endpoint e, const json& body) { return Refusal(e, body.dump()); }
  static json Chat(json extra = json::object()) {
    json j = {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}};
    j.update(extra);
    return j;
  }
  static json Completion(json extra = json::object()) {
    json j = {{"model", "m"}, {"prompt", "Once upon a time"}};
    j.update(extra);
    return j;
  }
  // The request through BuildGenerationRequest; the refusal as the HTTP face reports it.
  ApiError BuilderRefusal(Endpoint e, const json& body) {
    OpenAiRequest r = Parse(e, body);
    auto built = worker::BuildGenerationRequest(r.spec, view_, r.names);
    if (built.ok()) {
      ADD_FAILURE() << "built: " << body.dump();
      return {};
    }
    return ErrorFromStatus(built.status());
  }

  static text::Tokenizer* tok_;
  model::ModelConfig config_;
  worker::LoadedModelView view_;
};

text::Tokenizer* OpenAiApiTest::tok_ = nullptr;

// ---- Requests ------------------------------------------------------------------

TEST_F(OpenAiApiTest, ChatDefaults) {
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat());
  EXPECT_EQ(r.model, "m");
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.logprobs);
  EXPECT_EQ(r.spec.prompt, worker::GenerateSpec::Prompt::kConversation);
  ASSERT_EQ(r.spec.conversation.messages.size(), 1u);
  EXPECT_EQ(r.spec.conversation.messages[0].role, text::Role::kUser);
  EXPECT_EQ(r.spec.conversation.messages[0].content, "Hi");
  EXPECT_EQ(r.spec.conversation.reasoning, text::ReasoningEffort::kMedium);
  EXPECT_FALSE(r.spec.temperature.has_value());
  EXPECT_FALSE(r.spec.max_tokens.has_value());
  EXPECT_FALSE(r.spec.logprobs.has_value());
  auto built = worker::BuildGenerationRequest(r.spec, view_, r.names);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_TRUE(built->params.harmony);
  EXPECT_EQ(built->logprobs, -1);
}

TEST_F(OpenAiApiTest, SystemAndDeveloperBecomeInstructions) {
  json body = Chat();
  body["messages"] = json::array({{{"role", "system"}, {"content", "Be brief."}},
                                  {{"role", "developer"}, {"content", json::array({{{"type", "text"}, {"text", "Use "}},
                                                                                    {{"type", "text"}, {"text", "French."}}})}},
                                  {{"role", "user"}, {"content", "Hi"}}});
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, body);
  EXPECT_EQ(r.spec.conversation.developer_instructions, "Be brief.\n\nUse French.");
  EXPECT_EQ(r.spec.conversation.model_identity, text::Conversation().model_identity);
  ASSERT_EQ(r.spec.conversation.messages.size(), 1u);
}

TEST_F(OpenAiApiTest, SystemAfterTheConversationStartedIsRefused) {
  json body = Chat();
  body["messages"].push_back({{"role", "system"}, {"content", "late"}});
  ApiError e = Refusal(Endpoint::kChatCompletions, body);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "messages[1].role");
}

TEST_F(OpenAiApiTest, AssistantReasoningBecomesAnalysisTurn) {
  json body = Chat();
  body["messages"].push_back({{"role", "assistant"}, {"content", "Hello."}, {"reasoning_content", "Greet back."}});
  body["messages"].push_back({{"role", "assistant"}, {"content", nullptr}, {"reasoning", "vLLM's name"}});
  body["messages"].push_back({{"role", "user"}, {"content", "Again"}});
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, body);
  const auto& m = r.spec.conversation.messages;
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[1].channel, "analysis");
  EXPECT_EQ(m[1].content, "Greet back.");
  EXPECT_EQ(m[2].channel, "final");
  EXPECT_EQ(m[2].content, "Hello.");
  EXPECT_EQ(m[3].channel, "analysis");
  EXPECT_EQ(m[3].content, "vLLM's name");
  EXPECT_EQ(m[4].role, text::Role::kUser);
}

TEST_F(OpenAiApiTest, MessageRefusals) {
  struct Case {
    json messages;
    std::string param;
  } cases[] = {
      {json::array(), "messages"},
      {json::array({{{"role", "system"}, {"content", "only a system prompt"}}}), "messages"},
      {json::array({"hello"}), "messages[0]"},
      {json::array({{{"content", "no role"}}}), "messages[0].role"},
      {json::array({{{"role", "robot"}, {"content", "x"}}}), "messages[0].role"},
      {json::array({{{"role", "tool"}, {"content", "42"}, {"tool_call_id", "c1"}}}), "messages[0].tool_call_id"},
      {json::array({{{"role", "tool"}, {"content", "42"}}}), "messages[0].tool_call_id"},
      {json::array({{{"role", "tool"}, {"content", "42"}, {"name", "a.b"}}}), "messages[0].name"},
      {json::array({{{"role", "function"}, {"content", "42"}}}), "messages[0].role"},
      {json::array({{{"role", "user"}, {"content", 7}}}), "messages[0].content"},
      {json::array({{{"role", "user"}, {"content", json::array({{{"type", "image_url"}, {"image_url", "x"}}})}}}),
       "messages[0].content[0].type"},
      {json::array({{{"role", "user"}, {"content", json::array({{{"type", "text"}}})}}}), "messages[0].content[0].text"},
      {json::array({{{"role", "user"}, {"content", "q"}},
                    {{"role", "assistant"},
                     {"content", nullptr},
                     {"tool_calls", json::array({{{"id", "c1"}, {"type", "function"}}})}}}),
       "messages[1].tool_calls[0].function"},
      {json::array({{{"role", "user"}, {"content", "q"}},
                    {{"role", "assistant"},
                     {"tool_calls", json::array({{{"id", "c1"}, {"function", {{"name", "a b"}, {"arguments", "{}"}}}}})}}}),
       "messages[1].tool_calls[0].function.name"},
      {json::array({{{"role", "user"}, {"content", "q"}}, {{"role", "assistant"}, {"tool_calls", "x"}}}),
       "messages[1].tool_calls"},
      {json::array({{{"role", "assistant"}, {"content", "x"}, {"reasoning_content", 5}}}),
       "messages[0].reasoning_content"},
  };
  for (const Case& c : cases) {
    json body = Chat();
    body["messages"] = c.messages;
    ApiError e = Refusal(Endpoint::kChatCompletions, body);
    EXPECT_EQ(e.status, 400) << c.messages.dump();
    EXPECT_EQ(e.param, c.param) << c.messages.dump() << ": " << e.message;
  }
  ApiError missing = Refusal(Endpoint::kChatCompletions, json{{"model", "m"}});
  EXPECT_EQ(missing.param, "messages");
  ApiError not_array = Refusal(Endpoint::kChatCompletions, json{{"model", "m"}, {"messages", "hi"}});
  EXPECT_EQ(not_array.param, "messages");
}

// The tools go through the renderer the gRPC face uses, in the client's key
// order (a parse into `json` sorts keys: "alpha" would come before "zeta").
TEST_F(OpenAiApiTest, ToolsRenderThroughTheSharedRendererInTheClientsOrder) {
  const std::string schema =
      R"({"type":"object","properties":{"zeta":{"type":"string","description":"last by name"},)"
      R"("alpha":{"type":"number"}},"required":["zeta"]})";
  const std::string body = R"({"model":"m","messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function",)"
                           R"("function":{"name":"get_weather","description":"Weather now.","parameters":)" +
                           schema + "}}]}";
  auto parsed = ParseRequest(Endpoint::kChatCompletions, body);
  ASSERT_TRUE(std::holds_alternative<OpenAiRequest>(parsed)) << std::get<ApiError>(parsed).message;
  const text::Conversation& conv = std::get<OpenAiRequest>(parsed).spec.conversation;
  ASSERT_EQ(conv.tools.size(), 1u);
  auto expected = text::ToolFromJsonSchema("get_weather", "Weather now.", schema);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(conv.tools[0].name, expected->name);
  EXPECT_EQ(conv.tools[0].description, expected->description);
  EXPECT_EQ(conv.tools[0].parameters_typescript, expected->parameters_typescript);
  const std::string& ts = conv.tools[0].parameters_typescript;
  ASSERT_NE(ts.find("zeta"), std::string::npos) << ts;
  EXPECT_LT(ts.find("zeta"), ts.find("alpha")) << ts;

  // No parameters: the "() => any" form; tool_choice none keeps them out.
  json no_params = {{"type", "function"}, {"function", {{"name", "now"}}}};
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat({{"tools", json::array({no_params})}}));
  ASSERT_EQ(r.spec.conversation.tools.size(), 1u);
  EXPECT_EQ(r.spec.conversation.tools[0].parameters_typescript, "");
  r = Parse(Endpoint::kChatCompletions, Chat({{"tools", json::array({no_params})}, {"tool_choice", "none"}}));
  EXPECT_TRUE(r.spec.conversation.tools.empty());
  r = Parse(Endpoint::kChatCompletions, Chat({{"tools", json::array({no_params})}, {"tool_choice", "auto"}}));
  EXPECT_EQ(r.spec.conversation.tools.size(), 1u);
}

TEST_F(OpenAiApiTest, ToolRefusalsNameTheParameter) {
  json ok = {{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}};
  struct Case {
    json extra;
    std::string param;
  } cases[] = {
      {{{"tools", "x"}}, "tools"},
      {{{"tools", json::array({"f"})}}, "tools[0]"},
      {{{"tools", json::array({{{"type", "retrieval"}}})}}, "tools[0].type"},
      {{{"tools", json::array({{{"type", "function"}}})}}, "tools[0].function"},
      {{{"tools", json::array({{{"type", "function"}, {"function", {{"description", "no name"}}}}})}},
       "tools[0].function.name"},
      {{{"tools", json::array({{{"type", "function"}, {"function", {{"name", 5}}}}})}}, "tools[0].function.name"},
      {{{"tools", json::array({{{"type", "function"}, {"function", {{"name", "a.b"}}}}})}}, "tools[0].function.name"},
      {{{"tools", json::array({{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", "{}"}}}}})}},
       "tools[0].function.parameters"},
      {{{"tools", json::array({ok, ok})}}, "tools[1].function.name"},
      {{{"tool_choice", "required"}}, "tool_choice"},
      {{{"tool_choice", {{"type", "function"}, {"function", {{"name", "f"}}}}}}, "tool_choice"},
      {{{"functions", json::array({ok})}}, "functions"},
  };
  for (const Case& c : cases) {
    ApiError e = Refusal(Endpoint::kChatCompletions, Chat(c.extra));
    EXPECT_EQ(e.status, 400) << c.extra.dump();
    EXPECT_EQ(e.param, c.param) << c.extra.dump() << ": " << e.message;
  }
  // The renderer's own refusals carry its JSON path under the tool.
  json bad_type = {{"type", "function"},
                   {"function", {{"name", "f"}, {"parameters", {{"type", "object"}, {"properties", {{"x", {{"type", "strng"}}}}}}}}}};
  ApiError e = Refusal(Endpoint::kChatCompletions, Chat({{"tools", json::array({bad_type})}}));
  EXPECT_EQ(e.param, "tools[0].function.parameters.properties.x.type") << e.message;
  json many = json::array();
  for (int i = 0; i <= 128; ++i) many.push_back({{"type", "function"}, {"function", {{"name", "f" + std::to_string(i)}}}});
  EXPECT_EQ(Refusal(Endpoint::kChatCompletions, Chat({{"tools", many}})).param, "tools");
}

TEST_F(OpenAiApiTest, ToolCallsAndResultsBecomeHarmonyMessages) {
  json messages = json::array(
      {{{"role", "user"}, {"content", "Weather in Oslo?"}},
       {{"role", "assistant"},
        {"content", nullptr},
        {"reasoning_content", "Need the tool."},
        {"tool_calls",
         json::array({{{"id", "call_1"},
                       {"type", "function"},
                       {"function", {{"name", "get_weather"}, {"arguments", R"({"city":"Oslo"})"}}}}})}},
       {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "20 C"}}});
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat({{"messages", messages}}));
  const std::vector<text::Message>& m = r.spec.conversation.messages;
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].role, text::Role::kUser);
  EXPECT_EQ(m[1].channel, "analysis");
  EXPECT_EQ(m[1].content, "Need the tool.");
  EXPECT_EQ(m[2].role, text::Role::kAssistant);
  EXPECT_EQ(m[2].channel, "commentary");
  EXPECT_EQ(m[2].recipient, "functions.get_weather");
  EXPECT_EQ(m[2].content_type, "json");
  EXPECT_EQ(m[2].content, R"({"city":"Oslo"})");
  EXPECT_EQ(m[3].role, text::Role::kTool);
  EXPECT_EQ(m[3].author, "functions.get_weather");
  EXPECT_EQ(m[3].channel, "commentary");
  EXPECT_EQ(m[3].content, "20 C");
  // ... and the builder renders them (the harmony text of the call and the reply).
  auto built = worker::BuildGenerationRequest(r.spec, view_, r.names);
  ASSERT_TRUE(built.ok()) << built.status();
  auto rendered = text::RenderForCompletionText(r.spec.conversation);
  ASSERT_TRUE(rendered.ok());
  EXPECT_NE(rendered->find("<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
                           "<|message|>{\"city\":\"Oslo\"}<|call|>"),
            std::string::npos)
      << *rendered;
  EXPECT_NE(rendered->find("<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>20 C<|end|>"),
            std::string::npos)
      << *rendered;
}

TEST_F(OpenAiApiTest, BodyRefusals) {
  ApiError bad_json = Refusal(Endpoint::kChatCompletions, std::string("{\"model\": "));
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(bad_json.param, "");
  EXPECT_TRUE(absl::StrContains(bad_json.message, "not valid JSON"));
  ApiError array = Refusal(Endpoint::kCompletions, std::string("[1, 2]"));
  EXPECT_EQ(array.status, 400);
  EXPECT_TRUE(absl::StrContains(array.message, "JSON object"));
  EXPECT_EQ(Refusal(Endpoint::kChatCompletions, json{{"messages", Chat()["messages"]}}).param, "model");
  EXPECT_EQ(Refusal(Endpoint::kChatCompletions, Chat({{"model", 3}})).param, "model");
}

TEST_F(OpenAiApiTest, ParameterTypeAndRangeRefusals) {
  struct Case {
    json extra;
    std::string param;
  } cases[] = {
      {{{"n", 2}}, "n"},
      {{{"n", 0}}, "n"},
      {{{"n", "1"}}, "n"},
      {{{"temperature", "hot"}}, "temperature"},
      {{{"temperature", 2.5}}, "temperature"},
      {{{"temperature", -0.1}}, "temperature"},
      {{{"top_p", 1.5}}, "top_p"},
      {{{"presence_penalty", 3}}, "presence_penalty"},
      {{{"frequency_penalty", "x"}}, "frequency_penalty"},
      {{{"seed", 1.5}}, "seed"},
      {{{"seed", "7"}}, "seed"},
      {{{"stop", 5}}, "stop"},
      {{{"stop", json::array({"a", 1})}}, "stop[1]"},
      {{{"stream", "yes"}}, "stream"},
      {{{"stream_options", {{"include_usage", true}}}}, "stream_options"},
      {{{"stream", true}, {"stream_options", 1}}, "stream_options"},
      {{{"stream", true}, {"stream_options", {{"include_usage", "yes"}}}}, "stream_options.include_usage"},
      {{{"max_tokens", 5.5}}, "max_tokens"},
      {{{"max_tokens", -1}}, "max_tokens"},
      {{{"max_completion_tokens", "10"}}, "max_completion_tokens"},
      {{{"logprobs", 1}}, "logprobs"},
      {{{"top_logprobs", 3}}, "top_logprobs"},
      {{{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs"},
      {{{"reasoning_effort", "extreme"}}, "reasoning_effort"},
      {{{"reasoning_effort", 1}}, "reasoning_effort"},
      {{{"user", 42}}, "user"},
      {{{"logit_bias", {{"50256", -100}}}}, "logit_bias"},
      {{{"logit_bias", "x"}}, "logit_bias"},
      {{{"response_format", {{"type", "json_object"}}}}, "response_format"},
      {{{"top_k", "5"}}, "top_k"},
  };
  for (const Case& c : cases) {
    ApiError e = Refusal(Endpoint::kChatCompletions, Chat(c.extra));
    EXPECT_EQ(e.status, 400) << c.extra.dump();
    EXPECT_EQ(e.param, c.param) << c.extra.dump() << ": " << e.message;
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_FALSE(e.message.empty());
  }
}

TEST_F(OpenAiApiTest, BuilderRefusalsNameTheHttpParameter) {
  struct Case {
    Endpoint endpoint;
    json body;
    std::string param;
  } cases[] = {
      {Endpoint::kChatCompletions, Chat({{"top_p", 0}}), "top_p"},
      {Endpoint::kChatCompletions, Chat({{"max_tokens", 0}}), "max_tokens"},
      {Endpoint::kChatCompletions, Chat({{"max_tokens", 100000}}), "max_tokens"},
      {Endpoint::kChatCompletions, Chat({{"max_tokens", 5}, {"max_completion_tokens", 100000}}), "max_completion_tokens"},
      {Endpoint::kChatCompletions, Chat({{"stop", json::array({"a", "", "b"})}}), "stop[1]"},
      {Endpoint::kChatCompletions, Chat({{"stop", json(std::vector<std::string>(17, "x"))}}), "stop"},
      {Endpoint::kChatCompletions, Chat({{"min_p", 2}}), "min_p"},
      {Endpoint::kChatCompletions, Chat({{"repetition_penalty", 0}}), "repetition_penalty"},
      {Endpoint::kChatCompletions, Chat({{"top_k", 1000000}}), "top_k"},
      {Endpoint::kCompletions, Completion({{"prompt", ""}}), "prompt"},
      {Endpoint::kCompletions, Completion({{"prompt", json::array({1, 100000})}}), "prompt[1]"},
      {Endpoint::kCompletions, Completion({{"prompt", std::string(2000, 'a')}}), "prompt"},  // > 256 tokens
  };
  for (const Case& c : cases) {
    ApiError e = BuilderRefusal(c.endpoint, c.body);
    EXPECT_EQ(e.status, 400) << c.body.dump().substr(0, 200);
    EXPECT_EQ(e.param, c.param) << c.body.dump().substr(0, 200) << ": " << e.message;
  }
}

TEST_F(OpenAiApiTest, ParametersReachTheEngineRequest) {
  OpenAiRequest r = Parse(Endpoint::kChatCompletions,
                          Chat({{"temperature", 0},
                                {"top_p", 0.5},
                                {"seed", -1},
                                {"stop", "END"},
                                {"presence_penalty", 0.5},
                                {"frequency_penalty", -0.5},
                                {"max_tokens", 7},
                                {"max_completion_tokens", 9},
                                {"logprobs", true},
                                {"top_logprobs", 3},
                                {"reasoning_effort", "high"},
                                {"user", "u-1"},
                                {"stream", true},
                                {"stream_options", {{"include_usage", true}}},
                                {"some_future_field", {{"x", 1}}},
                                {"top_k", -1},
                                {"n", 1},
                                {"tool_choice", nullptr}}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.user, "u-1");
  EXPECT_EQ(r.spec.conversation.reasoning, text::ReasoningEffort::kHigh);
  auto built = worker::BuildGenerationRequest(r.spec, view_, r.names);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->params.sampling.temperature, 0.0f);
  EXPECT_EQ(built->params.sampling.top_p, 0.5f);
  EXPECT_EQ(built->params.sampling.top_k, 0);
  EXPECT_EQ(built->params.sampling.seed, ~uint64_t{0});
  EXPECT_EQ(built->params.sampling.presence_penalty, 0.5f);
  EXPECT_EQ(built->params.sampling.frequency_penalty, -0.5f);
  EXPECT_EQ(built->params.max_tokens, 9);  // max_completion_tokens wins
  EXPECT_EQ(built->params.stop_strings, std::vector<std::string>{"END"});
  EXPECT_EQ(built->logprobs, 3);
  // null counts as absent
  OpenAiRequest nulls = Parse(Endpoint::kChatCompletions, Chat({{"temperature", nullptr}, {"stop", nullptr}}));
  EXPECT_FALSE(nulls.spec.temperature.has_value());
  EXPECT_TRUE(nulls.spec.stop.empty());
}

TEST_F(OpenAiApiTest, CompletionPrompts) {
  OpenAiRequest text = Parse(Endpoint::kCompletions, Completion({{"logprobs", 2}, {"max_tokens", 4}}));
  EXPECT_EQ(text.spec.prompt, worker::GenerateSpec::Prompt::kText);
  EXPECT_EQ(text.spec.text, "Once upon a time");
  EXPECT_TRUE(text.logprobs);
  EXPECT_EQ(text.spec.logprobs, 2u);
  auto built = worker::BuildGenerationRequest(text.spec, view_, text.names);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_FALSE(built->params.harmony);
  EXPECT_EQ(built->prompt, tok_->Encode("Once upon a time", false));

  EXPECT_FALSE(built->params.stop_token_ids.empty());  // <|endoftext|> and friends
  OpenAiRequest no_eos = Parse(Endpoint::kCompletions, Completion({{"ignore_eos", true}}));
  auto built_no_eos = worker::BuildGenerationRequest(no_eos.spec, view_, no_eos.names);
  ASSERT_TRUE(built_no_eos.ok()) << built_no_eos.status();
  EXPECT_TRUE(built_no_eos->params.stop_token_ids.empty());
  EXPECT_EQ(Refusal(Endpoint::kCompletions, Completion({{"ignore_eos", 1}})).param, "ignore_eos");

  OpenAiRequest one = Parse(Endpoint::kCompletions, Completion({{"prompt", json::array({"Hi"})}}));
  EXPECT_EQ(one.spec.text, "Hi");
  OpenAiRequest ids = Parse(Endpoint::kCompletions, Completion({{"prompt", json::array({json::array({5, 6})})}}));
  EXPECT_EQ(ids.spec.prompt, worker::GenerateSpec::Prompt::kTokenIds);
  EXPECT_EQ(ids.spec.token_ids, (std::vector<int32_t>{5, 6}));

  struct Case {
    json extra;
    std::string param;
  } cases[] = {
      {{{"prompt", json::array({"a", "b"})}}, "prompt"},
      {{{"prompt", 5}}, "prompt"},
      {{{"prompt", json::array({1, -2})}}, "prompt"},
      {{{"prompt", nullptr}}, "prompt"},
      {{{"echo", true}}, "echo"},
      {{{"best_of", 2}}, "best_of"},
      {{{"suffix", "end"}}, "suffix"},
      {{{"logprobs", 21}}, "logprobs"},
      {{{"logprobs", true}}, "logprobs"},
      {{{"n", 3}}, "n"},
  };
  for (const Case& c : cases) {
    ApiError e = Refusal(Endpoint::kCompletions, Completion(c.extra));
    EXPECT_EQ(e.status, 400) << c.extra.dump();
    EXPECT_EQ(e.param, c.param) << c.extra.dump() << ": " << e.message;
  }
}

// ---- Errors --------------------------------------------------------------------

TEST_F(OpenAiApiTest, ErrorShape) {
  json j = ErrorJson(BadParam("temperature", "too hot"));
  ASSERT_TRUE(j.contains("error"));
  EXPECT_EQ(j["error"]["message"], "too hot");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "temperature");
  EXPECT_TRUE(j["error"]["code"].is_null());
  json none = ErrorJson(BadParam("", "bad"));
  EXPECT_TRUE(none["error"].contains("param"));
  EXPECT_TRUE(none["error"]["param"].is_null());
}

TEST_F(OpenAiApiTest, StatusMapping) {
  struct Case {
    absl::Status status;
    int http;
    std::string param;
  } cases[] = {
      {absl::InvalidArgumentError("top_p: must be in (0, 1]"), 400, "top_p"},
      {absl::InvalidArgumentError("no field here"), 400, ""},
      {absl::ResourceExhaustedError("full"), 429, ""},
      {absl::UnavailableError("draining"), 503, ""},
      {absl::UnauthenticatedError("no key"), 401, ""},
      {absl::PermissionDeniedError("role"), 403, ""},
      {absl::NotFoundError("x"), 404, ""},
      {absl::AlreadyExistsError("x"), 409, ""},
      {absl::InternalError("boom"), 500, ""},
  };
  for (const Case& c : cases) {
    ApiError e = ErrorFromStatus(c.status);
    EXPECT_EQ(e.status, c.http) << c.status;
    EXPECT_EQ(e.param, c.param) << c.status;
    EXPECT_EQ(e.message, std::string(c.status.message()));
  }
  EXPECT_EQ(ErrorFromStatus(absl::UnauthenticatedError("x")).type, "authentication_error");
  EXPECT_EQ(ErrorFromStatus(absl::ResourceExhaustedError("x")).type, "rate_limit_error");
}

TEST_F(OpenAiApiTest, DumpReplacesInvalidUtf8) {
  std::string s = Dump(json{{"t", std::string("a\xff" "b")}});
  EXPECT_EQ(s, "{\"t\":\"a\xef\xbf\xbd" "b\"}");
}

// ---- Responses -----------------------------------------------------------------

serving::OutputChunk Text(const std::string& channel, const std::string& text, int32_t token = 5) {
  serving::OutputChunk c;
  c.tokens = {token};
  c.text = text;
  c.channel = channel;
  return c;
}

serving::OutputChunk Final(model::FinishReason reason, int prompt = 10, int generated = 4) {
  serving::OutputChunk c;
  c.final = true;
  c.finish = reason;
  c.usage.prompt_tokens = prompt;
  c.usage.generated_tokens = generated;
  return c;
}

TEST_F(OpenAiApiTest, ChatResponseSeparatesReasoning) {
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat());
  ResponseBuilder b(r, "chatcmpl-1", 1700000000, "m", *tok_);
  b.Add(Text("", ""));  // header tokens: no text
  b.Add(Text("analysis", "The user "));
  b.Add(Text("analysis", "greets."));
  b.Add(Text("final", "Hello"));
  b.Add(Text("final", "!"));
  b.Add(Final(model::FinishReason::kStop));
  auto out = b.Response();
  ASSERT_TRUE(std::holds_alternative<json>(out));
  const json& j = std::get<json>(out);
  EXPECT_EQ(j["id"], "chatcmpl-1");
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "m");
  const json& msg = j["choices"][0]["message"];
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_EQ(msg["content"], "Hello!");
  EXPECT_EQ(msg["reasoning_content"], "The user greets.");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"], json({{"prompt_tokens", 10}, {"completion_tokens", 4}, {"total_tokens", 14}}));
}

TEST_F(OpenAiApiTest, ChatResponseWithoutReasoningHasNullReasoning) {
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat());
  ResponseBuilder b(r, "chatcmpl-2", 1, "m", *tok_);
  b.Add(Text("final", "Hi"));
  b.Add(Final(model::FinishReason::kLength));
  const json j = std::get<json>(b.Response());
  EXPECT_TRUE(j["choices"][0]["message"]["reasoning_content"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
}

TEST_F(OpenAiApiTest, ChatStreamDeltas) {
  OpenAiRequest r =
      Parse(Endpoint::kChatCompletions, Chat({{"stream", true}, {"stream_options", {{"include_usage", true}}}}));
  ResponseBuilder b(r, "chatcmpl-3", 7, "m", *tok_);
  std::vector<json> begin = b.Begin();
  ASSERT_EQ(begin.size(), 1u);
  EXPECT_EQ(begin[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(begin[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(begin[0]["usage"].is_null());
  EXPECT_TRUE(b.Stream(Text("", "")).empty());  // header tokens
  std::vector<json> think = b.Stream(Text("analysis", "hmm"));
  ASSERT_EQ(think.size(), 1u);
  EXPECT_EQ(think[0]["choices"][0]["delta"], json({{"reasoning_content", "hmm"}}));
  std::vector<json> say = b.Stream(Text("final", "Hi"));
  ASSERT_EQ(say.size(), 1u);
  EXPECT_EQ(say[0]["choices"][0]["delta"], json({{"content", "Hi"}}));
  EXPECT_TRUE(say[0]["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(say[0].contains("usage") && say[0]["usage"].is_null());
  std::vector<json> end = b.Stream(Final(model::FinishReason::kStop, 3, 2));
  ASSERT_EQ(end.size(), 2u);
  EXPECT_EQ(end[0]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(end[0]["choices"][0]["delta"], json::object());
  EXPECT_EQ(end[1]["choices"], json::array());
  EXPECT_EQ(end[1]["usage"]["total_tokens"], 5);
}

TEST_F(OpenAiApiTest, StreamWithoutUsageHasNoUsageField) {
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat({{"stream", true}}));
  ResponseBuilder b(r, "chatcmpl-4", 7, "m", *tok_);
  std::vector<json> say = b.Stream(Text("final", "Hi"));
  EXPECT_FALSE(say[0].contains("usage"));
  EXPECT_EQ(b.Stream(Final(model::FinishReason::kStop)).size(), 1u);
}

TEST_F(OpenAiApiTest, FailuresBecomeErrors) {
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat({{"stream", true}}));
  serving::OutputChunk err = Final(model::FinishReason::kError);
  err.error = "INTERNAL: step 3: NaN";
  {
    ResponseBuilder b(r, "x", 1, "m", *tok_);
    std::vector<json> events = b.Stream(err);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0]["error"]["message"], "INTERNAL: step 3: NaN");
    EXPECT_EQ(events[0]["error"]["type"], "server_error");
  }
  {
    ResponseBuilder b(r, "x", 1, "m", *tok_);
    b.Add(Text("final", "partial"));
    b.Add(err);
    auto out = b.Response();
    ASSERT_TRUE(std::holds_alternative<ApiError>(out));
    EXPECT_EQ(std::get<ApiError>(out).status, 500);
  }
  {
    ResponseBuilder b(r, "x", 1, "m", *tok_);
    b.Add(Final(model::FinishReason::kCancelled));
    EXPECT_EQ(std::get<ApiError>(b.Response()).status, 503);
  }
  {
    ResponseBuilder b(r, "x", 1, "m", *tok_);
    EXPECT_EQ(std::get<ApiError>(b.Response()).status, 500);  // no final chunk
  }
}

TEST_F(OpenAiApiTest, ChatLogprobsCoverContentOnly) {
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat({{"logprobs", true}, {"top_logprobs", 1}}));
  ResponseBuilder b(r, "x", 1, "m", *tok_);
  const int32_t a = tok_->Encode("a", false)[0];
  serving::OutputChunk think = Text("analysis", "t", a);
  think.logprobs = {{a, -0.5f, {{a, -0.5f}}}};
  serving::OutputChunk say = Text("final", "a", a);
  say.logprobs = {{a, -0.25f, {{a, -0.25f}}}};
  b.Add(think);
  b.Add(say);
  b.Add(Final(model::FinishReason::kStop));
  const json j = std::get<json>(b.Response());
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 1u);
  EXPECT_EQ(content[0]["token"], "a");
  EXPECT_EQ(content[0]["logprob"], -0.25f);
  EXPECT_EQ(content[0]["bytes"], json::array({97}));
  EXPECT_EQ(content[0]["top_logprobs"][0]["token"], "a");
}

serving::OutputChunk ToolText(const std::string& recipient, const std::string& text) {
  serving::OutputChunk c = Text("commentary", text);
  c.recipient = recipient;
  c.content_type = "json";
  return c;
}

TEST_F(OpenAiApiTest, ChatResponseCarriesToolCalls) {
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat());
  ResponseBuilder b(r, "chatcmpl-t", 1, "m", *tok_);
  b.Add(Text("analysis", "Call it."));
  b.Add(ToolText("browser.search", "{\"q\":1}"));  // a built-in tool this worker does not offer: dropped
  b.Add(ToolText("functions.get_weather", "{\"city\":"));
  b.Add(ToolText("functions.get_weather", "\"Oslo\"}"));
  b.Add(Final(model::FinishReason::kToolCall));
  const json j = std::get<json>(b.Response());
  const json& msg = j["choices"][0]["message"];
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_TRUE(msg["content"].is_null()) << msg.dump();
  EXPECT_EQ(msg["reasoning_content"], "Call it.");
  ASSERT_EQ(msg["tool_calls"].size(), 1u) << msg.dump();
  const json& call = msg["tool_calls"][0];
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(call["function"]["arguments"], "{\"city\":\"Oslo\"}");
  const std::string id = call["id"];
  EXPECT_EQ(id.size(), 29u);
  EXPECT_TRUE(absl::StartsWith(id, "call_")) << id;

  // Without a call: no tool_calls member, content stays a string.
  ResponseBuilder plain(r, "chatcmpl-u", 1, "m", *tok_);
  plain.Add(Text("final", ""));
  plain.Add(Final(model::FinishReason::kStop));
  const json p = std::get<json>(plain.Response());
  EXPECT_FALSE(p["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(p["choices"][0]["message"]["content"], "");
}

TEST_F(OpenAiApiTest, ChatStreamToolCallDeltas) {
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat({{"stream", true}}));
  ResponseBuilder b(r, "chatcmpl-s", 1, "m", *tok_);
  b.Begin();
  std::vector<json> first = b.Stream(ToolText("functions.get_weather", "{\"city\":"));
  ASSERT_EQ(first.size(), 1u);
  const json& d0 = first[0]["choices"][0]["delta"];
  ASSERT_TRUE(d0.contains("tool_calls")) << d0.dump();
  EXPECT_FALSE(d0.contains("content"));
  const json& c0 = d0["tool_calls"][0];
  EXPECT_EQ(c0["index"], 0);
  EXPECT_EQ(c0["type"], "function");
  EXPECT_EQ(c0["function"]["name"], "get_weather");
  EXPECT_EQ(c0["function"]["arguments"], "{\"city\":");
  EXPECT_TRUE(absl::StartsWith(c0["id"].get<std::string>(), "call_"));
  std::vector<json> more = b.Stream(ToolText("functions.get_weather", "\"Oslo\"}"));
  ASSERT_EQ(more.size(), 1u);
  const json& c1 = more[0]["choices"][0]["delta"]["tool_calls"][0];
  EXPECT_EQ(c1, json({{"index", 0}, {"function", {{"arguments", "\"Oslo\"}"}}}})) << c1.dump();
  std::vector<json> end = b.Stream(Final(model::FinishReason::kToolCall));
  ASSERT_EQ(end.size(), 1u);
  EXPECT_EQ(end[0]["choices"][0]["finish_reason"], "tool_calls");
}

TEST_F(OpenAiApiTest, CompletionResponseAndStream) {
  OpenAiRequest r = Parse(Endpoint::kCompletions, Completion({{"logprobs", 1}}));
  const int32_t a = tok_->Encode("a", false)[0];
  serving::OutputChunk c1 = Text("", "a", a);
  c1.logprobs = {{a, -1.0f, {{a, -1.0f}}}};
  serving::OutputChunk c2 = Text("", "a", a);
  c2.logprobs = {{a, -2.0f, {{a, -2.0f}}}};
  ResponseBuilder b(r, "cmpl-1", 1, "m", *tok_);
  EXPECT_TRUE(b.Begin().empty());
  b.Add(c1);
  b.Add(c2);
  b.Add(Final(model::FinishReason::kLength, 4, 2));
  const json j = std::get<json>(b.Response());
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "aa");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  const json& lp = j["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json::array({"a", "a"}));
  EXPECT_EQ(lp["token_logprobs"], json::array({-1.0, -2.0}));
  EXPECT_EQ(lp["text_offset"], json::array({0, 1}));
  EXPECT_EQ(lp["top_logprobs"][1]["a"], -2.0);

  OpenAiRequest rs = Parse(Endpoint::kCompletions, Completion({{"stream", true}}));
  ResponseBuilder s(rs, "cmpl-2", 1, "m", *tok_);
  std::vector<json> e = s.Stream(c1);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0]["choices"][0]["text"], "a");
  EXPECT_TRUE(e[0]["choices"][0]["logprobs"].is_null());
  std::vector<json> end = s.Stream(Final(model::FinishReason::kStop));
  ASSERT_EQ(end.size(), 1u);
  EXPECT_EQ(end[0]["choices"][0]["finish_reason"], "stop");
}

// ---- Other model families ------------------------------------------------------
//
// A model view whose GGUF says general.architecture "qwen2" or "phi3", with
// the tiny vocabulary of that family: chats are rendered in its format, the
// harmony-only parameters are refused naming the parameter.
class OpenAiFamilyTest : public OpenAiApiTest {
 protected:
  void Use(const char* arch) {
    absl::StatusOr<text::VocabSpec> spec = text::MakeTinyFamilyVocab(arch);
    ASSERT_TRUE(spec.ok()) << spec.status();
    family_tok_ = *text::Tokenizer::Create(*spec);
    gguf::GgufWriter w;
    w.SetString("general.architecture", arch);
    const std::string path = ::testing::TempDir() + "/openai_family_test.gguf";
    ASSERT_TRUE(w.Begin(path).ok());
    ASSERT_TRUE(w.Finish().ok());
    std::ifstream in(path, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    absl::StatusOr<gguf::GgufFile> file =
        gguf::GgufFile::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()));
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = std::make_unique<gguf::GgufFile>(*std::move(file));
    config_.vocab_size = family_tok_->vocab_size();
    view_.file = file_.get();
    view_.tokenizer = family_tok_.get();
    view_.config = &config_;
    view_.context_length = 512;
    format_ = *text::ChatFormatForArchitecture(arch);
  }
  absl::StatusOr<serving::GenerationRequest> Build(Endpoint e, const json& body) {
    auto r = ParseRequest(e, body.dump());
    if (auto* err = std::get_if<ApiError>(&r)) return absl::InvalidArgumentError(err->param + ": " + err->message);
    const OpenAiRequest& req = std::get<OpenAiRequest>(r);
    return worker::BuildGenerationRequest(req.spec, view_, req.names);
  }
  std::vector<int32_t> Ids(const std::vector<const char*>& specials) {
    std::vector<int32_t> ids;
    for (const char* s : specials) ids.push_back(*family_tok_->SpecialTokenId(s));
    return ids;
  }
  static json Messages(json extra = json::object()) {
    json j = {{"model", "m"},
              {"messages", json::array({{{"role", "system"}, {"content", "Be brief."}},
                                        {{"role", "user"}, {"content", "Hi"}},
                                        {{"role", "assistant"}, {"content", "Hello."}},
                                        {{"role", "user"}, {"content", "Bye"}}})}};
    j.update(extra);
    return j;
  }

  std::unique_ptr<text::Tokenizer> family_tok_;
  std::string bytes_;
  std::unique_ptr<gguf::GgufFile> file_;
  const text::ChatFormat* format_ = nullptr;
};

TEST_F(OpenAiFamilyTest, QwenChatIsChatMlWithItsStops) {
  Use("qwen2");
  auto built = Build(Endpoint::kChatCompletions, Messages());
  ASSERT_TRUE(built.ok()) << built.status();
  const std::string text =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
      "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(built->prompt, family_tok_->Encode(text, true));
  EXPECT_FALSE(built->params.harmony);  // plain text reply
  EXPECT_EQ(built->params.stop_token_ids, Ids({"<|im_end|>", "<|endoftext|>"}));
  // Without a system message, Qwen's default one.
  auto plain = Build(Endpoint::kChatCompletions, Chat());
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(family_tok_->Decode(plain->prompt),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // ignore_eos does not end a chat turn's stops.
  auto no_eos = Build(Endpoint::kChatCompletions, Messages({{"ignore_eos", true}}));
  ASSERT_TRUE(no_eos.ok());
  EXPECT_EQ(no_eos->params.stop_token_ids, Ids({"<|im_end|>", "<|endoftext|>"}));
}

TEST_F(OpenAiFamilyTest, Phi3ChatAndCompletionStops) {
  Use("phi3");
  auto built = Build(Endpoint::kChatCompletions, Messages());
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->prompt,
            family_tok_->Encode("<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n"
                         "<|user|>\nBye<|end|>\n<|assistant|>\n",
                         true));
  EXPECT_EQ(built->prompt.back(), *family_tok_->SpecialTokenId("<|assistant|>"));
  EXPECT_EQ(built->params.stop_token_ids, Ids({"<|end|>", "<|endoftext|>"}));
  auto completion = Build(Endpoint::kCompletions, Completion());
  ASSERT_TRUE(completion.ok()) << completion.status();
  EXPECT_EQ(completion->prompt, family_tok_->Encode("Once upon a time", false));  // add_bos_token false: no <s>
  EXPECT_EQ(completion->params.stop_token_ids, Ids({"<|end|>", "<|endoftext|>"}));
  auto no_eos = Build(Endpoint::kCompletions, Completion({{"ignore_eos", true}}));
  ASSERT_TRUE(no_eos.ok());
  EXPECT_TRUE(no_eos->params.stop_token_ids.empty());
}

TEST_F(OpenAiFamilyTest, HarmonyOnlyParametersAreRefusedByName) {
  for (const char* arch : {"qwen2", "phi3"}) {
    Use(arch);
    const json call = {{"id", "c1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{}"}}}};
    const json tool = {{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}};
    struct Case {
      json body;
      std::string param;
    } cases[] = {
        {Chat({{"reasoning_effort", "low"}}), "reasoning_effort"},
        {Chat({{"tools", json::array({tool})}}), "tools"},
        {Chat({{"messages", json::array({{{"role", "user"}, {"content", "Hi"}},
                                         {{"role", "assistant"}, {"content", "x"}, {"reasoning_content", "think"}}})}}),
         "messages[1].reasoning_content"},
        {Chat({{"messages", json::array({{{"role", "user"}, {"content", "Hi"}},
                                         {{"role", "assistant"}, {"tool_calls", json::array({call})}},
                                         {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "1"}}})}}),
         "messages[1].tool_calls"},
    };
    for (const Case& c : cases) {
      auto built = Build(Endpoint::kChatCompletions, c.body);
      ASSERT_FALSE(built.ok()) << arch << " accepted " << c.body.dump();
      const ApiError e = ErrorFromStatus(built.status());
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.param, c.param) << e.message;
      EXPECT_TRUE(absl::StrContains(e.message, "not supported by the loaded model family")) << e.message;
      EXPECT_TRUE(absl::StrContains(e.message, format_->family())) << e.message;
    }
    // tool_choice alone (no tools) asks for nothing harmony-only.
    EXPECT_TRUE(Build(Endpoint::kChatCompletions, Chat({{"tool_choice", "none"}})).ok());
  }
}

TEST_F(OpenAiFamilyTest, PlainRepliesAreContent) {
  Use("qwen2");
  OpenAiRequest r = Parse(Endpoint::kChatCompletions, Chat());
  ResponseBuilder b(r, "chatcmpl-1", 1, "m", *family_tok_);
  serving::OutputChunk c;
  c.text = "Hello there.";
  c.tokens = {5};
  b.Add(c);
  serving::OutputChunk f;
  f.final = true;
  f.finish = model::FinishReason::kStop;
  b.Add(f);
  auto body = b.Response();
  ASSERT_TRUE(std::holds_alternative<json>(body));
  const json& message = std::get<json>(body)["choices"][0]["message"];
  EXPECT_EQ(message["content"], "Hello there.");
  EXPECT_TRUE(message["reasoning_content"].is_null());
}

}  // namespace
}  // namespace ossgate::http
