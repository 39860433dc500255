// The gRPC service's translations, in process: a GenerateRequest with
// function tools into an engine request (the prompt is the shared renderer's,
// tool_choice NONE leaves the tools out, bad tools are INVALID_ARGUMENT
// naming the field), and engine output chunks into stream messages (the
// recipient and content type of a tool call's arguments, TOOL_CALLS).
#include "inference_worker/worker/inference_service.h"

#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tool_schema.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::worker {
namespace {

namespace pb = ::ossgate::inference::v1;

constexpr char kSchema[] = R"({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})";

class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = text::Tokenizer::Create(text::MakeTinyVocab());
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = *std::move(tok);
    config_.vocab_size = tokenizer_->vocab_size();
    view_.tokenizer = tokenizer_.get();
    view_.config = &config_;
    view_.context_length = 1 << 20;
  }

  static pb::GenerateRequest ChatWithTools() {
    pb::GenerateRequest r;
    pb::Conversation* c = r.mutable_conversation();
    pb::ChatMessage* m = c->add_messages();
    m->set_role(pb::ROLE_USER);
    m->set_content("Weather in Oslo?");
    pb::ToolDefinition* t = c->add_tools();
    t->set_name("get_weather");
    t->set_description("Gets the weather.");
    t->set_parameters_json(kSchema);
    return r;
  }

  text::Conversation Expected(bool with_tools) const {
    text::Conversation conv;
    text::Message user;
    user.role = text::Role::kUser;
    user.content = "Weather in Oslo?";
    conv.messages = {user};
    if (with_tools) conv.tools = {*text::ToolFromJsonSchema("get_weather", "Gets the weather.", kSchema)};
    return conv;
  }

  std::unique_ptr<text::Tokenizer> tokenizer_;
  model::ModelConfig config_;
  LoadedModelView view_;
};

TEST_F(InferenceServiceTest, ToolsAreRenderedByTheSharedRenderer) {
  absl::StatusOr<serving::GenerationRequest> r = InferenceServiceImpl::BuildRequest(ChatWithTools(), view_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->params.harmony);
  absl::StatusOr<std::vector<int32_t>> want = text::RenderForCompletion(*tokenizer_, Expected(true));
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(r->prompt, *want);
  EXPECT_TRUE(absl::StrContains(tokenizer_->Decode(r->prompt), "type get_weather = (_: {\ncity: string,\n}) => any;"));
}

TEST_F(InferenceServiceTest, ToolChoiceNoneLeavesTheToolsOut) {
  pb::GenerateRequest req = ChatWithTools();
  req.mutable_conversation()->set_tool_choice(pb::TOOL_CHOICE_NONE);
  absl::StatusOr<serving::GenerationRequest> r = InferenceServiceImpl::BuildRequest(req, view_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, *text::RenderForCompletion(*tokenizer_, Expected(false)));
  // AUTO is the default.
  req.mutable_conversation()->set_tool_choice(pb::TOOL_CHOICE_AUTO);
  r = InferenceServiceImpl::BuildRequest(req, view_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, *text::RenderForCompletion(*tokenizer_, Expected(true)));
  // Tools are checked even when they are not rendered.
  req.mutable_conversation()->set_tool_choice(pb::TOOL_CHOICE_NONE);
  req.mutable_conversation()->mutable_tools(0)->set_parameters_json("{");
  r = InferenceServiceImpl::BuildRequest(req, view_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StartsWith(r.status().message(), "conversation.tools[0].parameters: not valid JSON"))
      << r.status();
}

TEST_F(InferenceServiceTest, ToolBytesCountTowardsTheConversationLimit) {
  pb::GenerateRequest req = ChatWithTools();
  // 20 tools with 60 KiB schemas each: every tool is under its own limit.
  const std::string big = R"({"type": "string", "description": ")" + std::string(60 * 1024, 'x') + R"("})";
  for (int i = 0; i < 20; ++i) {
    pb::ToolDefinition* t = req.mutable_conversation()->add_tools();
    t->set_name(absl::StrCat("t", i));
    t->set_parameters_json(big);
  }
  absl::StatusOr<serving::GenerationRequest> r = InferenceServiceImpl::BuildRequest(req, view_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(r.status().message(), "conversation: the conversation is ")) << r.status();
}

TEST_F(InferenceServiceTest, ToolCallChunksBecomeMessagesWithRecipientAndToolCallsFinish) {
  serving::OutputChunk args;
  args.tokens = {1, 2};
  args.text = R"({"city":)";
  args.channel = "commentary";
  args.recipient = "functions.get_weather";
  args.content_type = "json";
  const pb::GenerateResponse m = InferenceServiceImpl::ToResponse(args, "req-1", 9);
  EXPECT_EQ(m.request_id(), "req-1");
  EXPECT_EQ(m.text(), R"({"city":)");
  EXPECT_EQ(m.channel(), "commentary");
  EXPECT_EQ(m.recipient(), "functions.get_weather");
  EXPECT_EQ(m.content_type(), "json");
  EXPECT_EQ(m.token_ids_size(), 2);
  EXPECT_FALSE(m.has_final());

  serving::OutputChunk end;
  end.tokens = {3};
  end.channel = "commentary";
  end.recipient = "functions.get_weather";
  end.content_type = "json";
  end.final = true;
  end.finish = model::FinishReason::kToolCall;
  end.usage.prompt_tokens = 40;
  end.usage.generated_tokens = 12;
  const pb::GenerateResponse f = InferenceServiceImpl::ToResponse(end, "req-1", 9);
  ASSERT_TRUE(f.has_final());
  EXPECT_EQ(f.final().finish_reason(), pb::FINISH_REASON_TOOL_CALLS);
  EXPECT_EQ(f.final().seed(), 9u);
  EXPECT_EQ(f.final().usage().prompt_tokens(), 40u);
  EXPECT_EQ(f.final().usage().generated_tokens(), 12u);

  // The other reasons keep their meaning.
  end.finish = model::FinishReason::kStop;
  EXPECT_EQ(InferenceServiceImpl::ToResponse(end, "r", 0).final().finish_reason(), pb::FINISH_REASON_STOP);
  end.finish = model::FinishReason::kError;
  end.error = "INTERNAL: step 3: x";
  const pb::GenerateResponse e = InferenceServiceImpl::ToResponse(end, "r", 0);
  EXPECT_EQ(e.final().finish_reason(), pb::FINISH_REASON_ERROR);
  EXPECT_EQ(e.final().error(), "INTERNAL: step 3: x");
}

// A Phi-3 model (general.architecture "phi3"): the conversation in Phi-3's
// format; the harmony-only fields refused naming the proto field.
class InferenceServiceFamilyTest : public InferenceServiceTest {
 protected:
  void SetUp() override {
    InferenceServiceTest::SetUp();
    absl::StatusOr<text::VocabSpec> spec = text::MakeTinyFamilyVocab("phi3");
    ASSERT_TRUE(spec.ok()) << spec.status();
    tokenizer_ = *text::Tokenizer::Create(*spec);
    config_.vocab_size = tokenizer_->vocab_size();
    view_.tokenizer = tokenizer_.get();
    gguf::GgufWriter w;
    w.SetString("general.architecture", "phi3");
    const std::string path = ::testing::TempDir() + "/inference_service_family_test.gguf";
    ASSERT_TRUE(w.Begin(path).ok());
    ASSERT_TRUE(w.Finish().ok());
    std::ifstream in(path, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    file_ = std::make_unique<gguf::GgufFile>(*gguf::GgufFile::Parse(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size())));
    view_.file = file_.get();
  }
  static pb::GenerateRequest Chat() {
    pb::GenerateRequest r;
    pb::ChatMessage* m = r.mutable_conversation()->add_messages();
    m->set_role(pb::ROLE_USER);
    m->set_content("Hi");
    return r;
  }
  std::string bytes_;
  std::unique_ptr<gguf::GgufFile> file_;
};

TEST_F(InferenceServiceFamilyTest, RendersPhi3) {
  pb::GenerateRequest req = Chat();
  req.mutable_conversation()->set_developer_instructions("Be brief.");
  absl::StatusOr<serving::GenerationRequest> r = InferenceServiceImpl::BuildRequest(req, view_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, tokenizer_->Encode("<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n", true));
  EXPECT_FALSE(r->params.harmony);
}

TEST_F(InferenceServiceFamilyTest, RefusesHarmonyOnlyFieldsByName) {
  struct Case {
    void (*edit)(pb::GenerateRequest*);
    const char* field;
  } cases[] = {
      {[](pb::GenerateRequest* r) { r->mutable_conversation()->set_reasoning_effort(pb::REASONING_EFFORT_LOW); },
       "conversation.reasoning_effort"},
      {[](pb::GenerateRequest* r) {
         r->mutable_conversation()->add_tools()->set_name("f");
         r->mutable_conversation()->set_tool_choice(pb::TOOL_CHOICE_NONE);
       },
       "conversation.tools"},
      {[](pb::GenerateRequest* r) { r->mutable_conversation()->set_current_date("2025-06-28"); },
       "conversation.current_date"},
      {[](pb::GenerateRequest* r) {
         pb::ChatMessage* m = r->mutable_conversation()->add_messages();
         m->set_role(pb::ROLE_ASSISTANT);
         m->set_channel("analysis");
       },
       "conversation.messages[1].channel"},
  };
  for (const Case& c : cases) {
    pb::GenerateRequest req = Chat();
    c.edit(&req);
    absl::StatusOr<serving::GenerationRequest> r = InferenceServiceImpl::BuildRequest(req, view_);
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(r.status().message(), absl::StrCat(c.field, ":"))) << r.status();
    EXPECT_TRUE(absl::StrContains(r.status().message(), "Phi-3")) << r.status();
  }
}

}  // namespace
}  // namespace ossgate::worker
