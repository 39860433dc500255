// Fuzz target: a function tool's JSON Schema from a client (the gRPC
// Conversation.tools[i].parameters_json, the HTTP API's tools[i].parameters)
// through ToolFromJsonSchema, and the tool into a rendered prompt.
// Properties: never crashes or hangs whatever the depth or size; a refusal
// is INVALID_ARGUMENT naming "parameters..."; an accepted schema gives valid
// UTF-8 of at most kMaxToolTypeBytes, empty exactly for "no parameters",
// the same text on a second call, and a prompt with its "type f = " line.
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tool_schema.h"
#include "inference_worker/text/utf8.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ossgate;
  const std::string_view schema(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<text::ToolDefinition> tool = text::ToolFromJsonSchema("f", "A tool.", schema);
  if (!tool.ok()) {
    FUZZ_CHECK(tool.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(tool.status().message(), "parameters"));
    return 0;
  }
  const std::string& type = tool->parameters_typescript;
  FUZZ_CHECK(type.size() <= text::kMaxToolTypeBytes);
  FUZZ_CHECK(text::IsValidUtf8(type));
  const absl::string_view trimmed = absl::StripAsciiWhitespace(absl::string_view(schema.data(), schema.size()));
  FUZZ_CHECK(type.empty() == (trimmed.empty() || trimmed == "null"));
  const absl::StatusOr<text::ToolDefinition> again = text::ToolFromJsonSchema("f", "A tool.", schema);
  FUZZ_CHECK(again.ok() && again->parameters_typescript == type);

  text::Conversation conv;
  conv.tools = {*tool};
  text::Message user;
  user.content = "hi";
  conv.messages = {user};
  const absl::StatusOr<std::string> prompt = text::RenderForCompletionText(conv);
  FUZZ_CHECK(prompt.ok());
  FUZZ_CHECK(absl::StrContains(*prompt, type.empty() ? "type f = () => any;" : "type f = (_: "));
  return 0;
}
