// JSON Schema -> harmony parameter types (tool_schema.h). Expected texts are
// written from the rules in docs/tokenizer.md ("Function tools"); the first
// cases are the schemas of openai/harmony's own renderer test
// (src/tests.rs test_render_functions_with_parameters) with the text of its
// expected output (test-data/test_render_functions_with_parameters.txt).
#include "inference_worker/text/tool_schema.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ossgate::text {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The parameter type of a tool with `schema`, or the error message.
std::string Type(const std::string& schema) {
  absl::StatusOr<ToolDefinition> t = ToolFromJsonSchema("f", "", schema);
  if (!t.ok()) return "ERROR " + std::string(t.status().message());
  return t->parameters_typescript;
}

// The type of one property `p` (optional) of an object, without the braces.
std::string Property(const std::string& prop_schema) {
  const std::string t = Type(R"({"type":"object","properties":{"p":)" + prop_schema + "}}");
  if (t.rfind("ERROR", 0) == 0) return t;
  EXPECT_THAT(t, StartsWith("{\n"));
  return t.substr(2, t.size() - 3);  // drop "{\n" and "}"
}

std::string Error(const std::string& schema) {
  absl::StatusOr<ToolDefinition> t = ToolFromJsonSchema("f", "", schema);
  EXPECT_FALSE(t.ok()) << schema << " rendered as:\n" << (t.ok() ? t->parameters_typescript : "");
  if (t.ok()) return "";
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(t.status().message());
}

TEST(ToolSchemaTest, HarmonyDocsGetCurrentWeather) {
  absl::StatusOr<ToolDefinition> t = ToolFromJsonSchema("get_current_weather",
                                                        "Gets the current weather in the provided location.", R"({
    "type": "object",
    "properties": {
      "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
      "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}
    },
    "required": ["location"]
  })");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->name, "get_current_weather");
  EXPECT_EQ(t->description, "Gets the current weather in the provided location.");
  EXPECT_EQ(t->parameters_typescript,
            "{\n"
            "// The city and state, e.g. San Francisco, CA\n"
            "location: string,\n"
            "format?: \"celsius\" | \"fahrenheit\", // default: celsius\n"
            "}");
}

TEST(ToolSchemaTest, HarmonyDocsArrayOfStrings) {
  EXPECT_EQ(Type(R"({"type": "object", "properties": {
      "locations": {"type": "array", "items": {"type": "string"},
                    "description": "List of city and state, e.g. [\"San Francisco, CA\", \"New York, NY\"]"},
      "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
    "required": ["locations"]})"),
            "{\n"
            "// List of city and state, e.g. [\"San Francisco, CA\", \"New York, NY\"]\n"
            "locations: string[],\n"
            "format?: \"celsius\" | \"fahrenheit\", // default: celsius\n"
            "}");
}

// Object description, title, examples, nullable, string default, enum and a
// property oneOf with defaults and variant descriptions.
TEST(ToolSchemaTest, HarmonyKitchensink) {
  EXPECT_EQ(Type(R"({
    "description": "params object",
    "type": "object",
    "properties": {
      "string": {"type": "string", "title": "STRING", "description": "A string", "examples": ["hello", "world"]},
      "string_nullable": {"type": "string", "nullable": true, "description": "A nullable string",
                          "default": "the default"},
      "string_enum": {"type": "string", "enum": ["a", "b", "c"]},
      "oneof_string_or_number": {
        "oneOf": [{"type": "string", "default": "default_string_in_oneof"},
                  {"type": "number", "description": "numbers can happen too"}],
        "description": "a oneof",
        "default": 20}
    }})"),
            "// params object\n"
            "{\n"
            "// STRING\n"
            "//\n"
            "// A string\n"
            "// Examples:\n"
            "// - \"hello\"\n"
            "// - \"world\"\n"
            "string?: string,\n"
            "// A nullable string\n"
            "string_nullable?: string | null, // default: \"the default\"\n"
            "string_enum?: \"a\" | \"b\" | \"c\",\n"
            "// a oneof\n"
            "// default: 20\n"
            "oneof_string_or_number?:\n"
            " | string // default: \"default_string_in_oneof\"\n"
            " | number // numbers can happen too\n"
            ",\n"
            "}");
}

// harmony's browser.open: a list of types, numeric and boolean defaults.
TEST(ToolSchemaTest, TypeListsAndNonStringDefaults) {
  EXPECT_EQ(Type(R"({"type": "object", "properties": {
      "id": {"type": ["number", "string"], "default": -1},
      "loc": {"type": "integer", "default": -1},
      "view_source": {"type": "boolean", "default": false},
      "filter": {"type": "object", "default": {"a": [1, 2.5, "x"]}},
      "source": {"type": "string"}}})"),
            "{\n"
            "id?: number | string, // default: -1\n"
            "loc?: number, // default: -1\n"
            "view_source?: boolean, // default: false\n"
            "filter?: {\n    }, // default: {\"a\":[1,2.5,\"x\"]}\n"
            "source?: string,\n"
            "}");
  // "integer" reads as number in a list too; other names stay as written.
  EXPECT_EQ(Property(R"({"type": ["integer", "null"], "nullable": true})"), "p?: number | null,\n");
  EXPECT_EQ(Property(R"({"type": ["object", "array"]})"), "p?: object | array,\n");
}

// A nested object is indented four more spaces and closes at that indent; its
// description is written above the property and again before its "{" (as
// harmony does).
TEST(ToolSchemaTest, NestedObjects) {
  EXPECT_EQ(Type(R"({"type": "object", "required": ["address"], "properties": {
      "address": {"type": "object", "description": "Where", "required": ["city"], "properties": {
        "city": {"type": "string", "description": "City"},
        "geo": {"type": "object", "properties": {"lat": {"type": "number"}}}}}}})"),
            "{\n"
            "// Where\n"
            "address:     // Where\n"
            "{\n"
            "    // City\n"
            "    city: string,\n"
            "    geo?: {\n"
            "        lat?: number,\n"
            "        },\n"
            "    },\n"
            "}");
}

TEST(ToolSchemaTest, Arrays) {
  EXPECT_EQ(Property(R"({"type": "array"})"), "p?: Array<any>,\n");
  EXPECT_EQ(Property(R"({"type": "array", "items": {"type": "array", "items": {"type": "integer"}}})"),
            "p?: number[][],\n");
  EXPECT_EQ(Property(R"({"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}})"),
            "p?: {\n    a?: string,\n    }[],\n");
  // The tuple form has no single element type.
  EXPECT_EQ(Property(R"({"type": "array", "items": [{"type": "string"}, {"type": "number"}]})"), "p?: any[],\n");
  // A oneOf element type starts on a new line; its last comment swallows the
  // "[]" (harmony's output, reproduced as it is).
  EXPECT_EQ(Property(R"({"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "number",
                                                               "description": "n"}]}})"),
            "p?: \n     | string\n     | number // n[],\n");
}

TEST(ToolSchemaTest, EnumsAreUnionsOfStringLiterals) {
  EXPECT_EQ(Property(R"({"type": "string", "enum": ["a", 1, "b", null]})"), "p?: \"a\" | \"b\",\n");
  EXPECT_EQ(Property(R"({"type": "string", "enum": []})"), "p?: string,\n");
  // Only string enums become literals; others keep their type.
  EXPECT_EQ(Property(R"({"type": "integer", "enum": [1, 2, 3]})"), "p?: number,\n");
  // A string default of an enum is written bare in a property comment.
  EXPECT_EQ(Property(R"({"type": "string", "enum": ["x", "y"], "default": "y"})"),
            "p?: \"x\" | \"y\", // default: y\n");
}

TEST(ToolSchemaTest, WhatHarmonyCannotExpressIsAny) {
  // anyOf (Pydantic's Optional), allOf, $ref, const, enum without a type,
  // "null" and boolean schemas are not expressed by harmony's renderer.
  EXPECT_EQ(Property(R"({"anyOf": [{"type": "string"}, {"type": "null"}], "default": null})"),
            "p?: any, // default: null\n");
  EXPECT_EQ(Property(R"({"$ref": "#/$defs/Address"})"), "p?: any,\n");
  EXPECT_EQ(Property(R"({"allOf": [{"type": "string"}]})"), "p?: any,\n");
  EXPECT_EQ(Property(R"({"const": "x"})"), "p?: any,\n");
  EXPECT_EQ(Property(R"({"enum": ["a", "b"]})"), "p?: any,\n");
  EXPECT_EQ(Property(R"({"type": "null"})"), "p?: any,\n");
  EXPECT_EQ(Property("true"), "p?: any,\n");
  EXPECT_EQ(Property("{}"), "p?: any,\n");
  EXPECT_EQ(Type("{}"), "any");
}

TEST(ToolSchemaTest, NullableAddsNullOnce) {
  EXPECT_EQ(Property(R"({"type": "number", "nullable": true})"), "p?: number | null,\n");
  EXPECT_EQ(Property(R"({"type": ["string", "null"], "nullable": true})"), "p?: string | null,\n");
  EXPECT_EQ(Property(R"({"type": "number", "nullable": false})"), "p?: number,\n");
}

TEST(ToolSchemaTest, PropertyOneOf) {
  // The property's description equals the first variant's: written once,
  // after that variant; variants' nullable and enum defaults (bare).
  EXPECT_EQ(Property(R"({"description": "same", "oneOf": [
      {"type": "string", "description": "same"},
      {"type": "string", "enum": ["a", "b"], "default": "a", "nullable": true},
      {"type": "object", "properties": {"q": {"type": "boolean"}}}]})"),
            "p?:\n"
            " | string\n"
            " | \"a\" | \"b\" | null // default: a\n"
            " | {\n"
            "   q?: boolean,\n"
            "   }\n"
            ",\n");
  // A required property; the description above and a variant's own below.
  EXPECT_EQ(Type(R"({"type": "object", "required": ["p"], "properties": {"p": {"description": "top", "title": "T",
      "oneOf": [{"type": "string", "description": "first"}, {"type": "number", "description": "second"}]}}})"),
            "{\n// T\n//\n// top\np:\n | string\n | number // second\n,\n}");
}

// A oneOf that is not a property's own: every variant on a new line, string
// defaults of enums in JSON.
TEST(ToolSchemaTest, TopLevelOneOf) {
  EXPECT_EQ(Type(R"({"oneOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                              {"type": "string", "enum": ["x"], "default": "x", "description": "d"}]})"),
            "\n | {\n   a: string,\n   }\n | \"x\" // d default: \"x\"");
}

TEST(ToolSchemaTest, PropertiesKeepTheirOrderAndObjectsWithoutPropertiesAreEmpty) {
  EXPECT_EQ(Type(R"({"type": "object", "properties": {"zeta": {"type": "string"}, "alpha": {"type": "string"},
                                                      "mid": {"type": "string"}}})"),
            "{\nzeta?: string,\nalpha?: string,\nmid?: string,\n}");
  EXPECT_EQ(Type(R"({"type": "object", "properties": {}})"), "{\n}");
  EXPECT_EQ(Type(R"({"type": "object"})"), "{\n}");
  // Required names that are not properties change nothing.
  EXPECT_EQ(Type(R"({"type": "object", "required": ["ghost"], "properties": {"a": {"type": "string"}}})"),
            "{\na?: string,\n}");
  // Letters of other scripts and "$" are fine in property names.
  EXPECT_EQ(Property(R"({"type": "string"})"), "p?: string,\n");
  EXPECT_EQ(Type(R"({"type": "object", "properties": {"città": {"type": "string"}, "$x": {"type": "number"}}})"),
            "{\ncittà?: string,\n$x?: number,\n}");
}

TEST(ToolSchemaTest, NoParameters) {
  for (const char* none : {"", "  \n", "null"}) {
    absl::StatusOr<ToolDefinition> t = ToolFromJsonSchema("ping", "Pings.", none);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->parameters_typescript, "") << "'" << none << "'";
  }
}

TEST(ToolSchemaTest, ToolNamesMustBeOpenAiFunctionNames) {
  EXPECT_TRUE(ToolFromJsonSchema("get-weather_2", "", "").ok());
  EXPECT_TRUE(ToolFromJsonSchema(std::string(64, 'a'), "", "").ok());
  for (const std::string& bad : {std::string(""), std::string(65, 'a'), std::string("get weather"),
                                 std::string("functions.get"), std::string("a\nb"), std::string("caffè")}) {
    absl::StatusOr<ToolDefinition> t = ToolFromJsonSchema(bad, "", "");
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(t.status().message()), StartsWith("name: "));
    EXPECT_THAT(std::string(t.status().message()), HasSubstr("[A-Za-z0-9_-]"));
  }
  absl::StatusOr<ToolDefinition> t = ToolFromJsonSchema("f", std::string(kMaxToolDescriptionBytes + 1, 'd'), "");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), StartsWith("description: "));
}

TEST(ToolSchemaTest, MalformedSchemasNameTheirPath) {
  EXPECT_THAT(Error("{\"type\": \"object\""), StartsWith("parameters: not valid JSON: parse error"));
  EXPECT_THAT(Error("{\"a\": 1} trailing"), StartsWith("parameters: not valid JSON"));
  EXPECT_THAT(Error("[1, 2]"), StartsWith("parameters: must be a JSON Schema object"));
  EXPECT_THAT(Error("true"), StartsWith("parameters: must be a JSON Schema object"));
  EXPECT_THAT(Error(R"({"type": "object", "properties": {"city": {"type": "strng"}}})"),
              StartsWith("parameters.properties.city.type: \"strng\" is not a JSON Schema type"));
  EXPECT_THAT(Error(R"({"type": 5})"), StartsWith("parameters.type: must be a type name or an array"));
  EXPECT_THAT(Error(R"({"type": []})"), StartsWith("parameters.type: must name at least one type"));
  EXPECT_THAT(Error(R"({"type": ["string", 3]})"), StartsWith("parameters.type[1]: must be a type name"));
  EXPECT_THAT(Error(R"({"type": "object", "properties": [1]})"),
              StartsWith("parameters.properties: must be an object"));
  EXPECT_THAT(Error(R"({"type": "object", "required": "a"})"), StartsWith("parameters.required: must be an array"));
  EXPECT_THAT(Error(R"({"type": "object", "required": ["a", 2]})"), StartsWith("parameters.required[1]: "));
  EXPECT_THAT(Error(R"({"type": "object", "properties": {"a": 3}})"),
              StartsWith("parameters.properties.a: must be a JSON Schema (an object or a boolean), not number"));
  EXPECT_THAT(Error(R"({"type": "object", "properties": {"a": {"description": 3}}})"),
              StartsWith("parameters.properties.a.description: must be a string, not number"));
  EXPECT_THAT(Error(R"({"type": "object", "properties": {"a": {"title": []}}})"),
              StartsWith("parameters.properties.a.title: must be a string"));
  EXPECT_THAT(Error(R"({"type": "object", "properties": {"a": {"nullable": "yes"}}})"),
              StartsWith("parameters.properties.a.nullable: must be true or false"));
  EXPECT_THAT(Error(R"({"type": "string", "enum": "a"})"), StartsWith("parameters.enum: must be an array"));
  EXPECT_THAT(Error(R"({"type": "object", "properties": {"a": {"examples": "x"}}})"),
              StartsWith("parameters.properties.a.examples: must be an array"));
  EXPECT_THAT(Error(R"({"type": "object", "properties": {"a": {"oneOf": []}}})"),
              StartsWith("parameters.properties.a.oneOf: must be a non-empty array"));
  EXPECT_THAT(Error(R"({"type": "object", "properties": {"a": {"oneOf": [{"type": "x"}]}}})"),
              StartsWith("parameters.properties.a.oneOf[0].type: \"x\" is not"));
  EXPECT_THAT(Error(R"({"oneOf": [{"type": "string"}, 7]})"), StartsWith("parameters.oneOf[1]: must be a JSON Schema"));
  EXPECT_THAT(Error(R"({"type": "array", "items": "string"})"), StartsWith("parameters.items: must be a schema"));
  EXPECT_THAT(Error(R"({"type": "array", "items": {"type": "array", "items": {"type": "int"}}})"),
              StartsWith("parameters.items.items.type: \"int\" is not"));
  EXPECT_THAT(Error(R"({"type": "object", "properties": {"o": {"type": "object", "properties": {"x": {"type": 1}}}}})"),
              StartsWith("parameters.properties.o.properties.x.type: "));
}

TEST(ToolSchemaTest, PropertyNamesThatWouldBreakTheSyntaxAreRefused) {
  for (const char* name : {"a b", "a:b", "a,b", "a?", "a\\nb", "a}", "a\\\"b", "a/b", "a|b", ""}) {
    const std::string schema = std::string(R"({"type": "object", "properties": {")") + name + R"(": {}}})";
    EXPECT_THAT(Error(schema), StartsWith("parameters.properties: property name \"")) << name;
  }
}

TEST(ToolSchemaTest, HostileInputIsRefusedNotCrashedOn) {
  // Nesting: 64 levels pass, 65 are refused before parsing, and so are
  // 30000 (which would exhaust the stack of a recursive reader).
  auto nested_arrays = [](int n) {
    return R"({"type": "array", "examples": )" + std::string(n - 1, '[') + std::string(n - 1, ']') + "}";
  };
  EXPECT_EQ(Type(nested_arrays(64)), "Array<any>");
  EXPECT_THAT(Error(nested_arrays(65)), StartsWith("parameters: the schema is nested deeper than 64 levels"));
  EXPECT_THAT(Error(nested_arrays(30000)), StartsWith("parameters: the schema is nested deeper than 64 levels"));
  std::string deep_objects = "{";
  for (int i = 0; i < 2000; ++i) deep_objects += R"("type": "array", "items": {)";
  deep_objects += std::string(2001, '}');
  ASSERT_LE(deep_objects.size(), kMaxToolSchemaBytes);
  EXPECT_THAT(Error(deep_objects), StartsWith("parameters: the schema is nested deeper than 64 levels"));
  // Brackets inside strings do not count as nesting.
  EXPECT_EQ(Property(R"({"type": "string", "description": ")" + std::string(500, '[') + R"("})"),
            "// " + std::string(500, '[') + "\np?: string,\n");
  // Size.
  const std::string big = R"({"type": "string", "description": ")" + std::string(kMaxToolSchemaBytes, 'x') + R"("})";
  EXPECT_THAT(Error(big), StartsWith("parameters: the schema is "));
  EXPECT_THAT(Error(big), HasSubstr("the limit is 65536"));
  // A NUL byte cannot occur in JSON text; nlohmann-json would stop reading
  // there and accept what came before (fuzz_tool_schema found "null\0...").
  EXPECT_THAT(Error(std::string("null\0\0\0", 7)), StartsWith("parameters: not valid JSON: a NUL byte at offset 4"));
  EXPECT_THAT(Error(std::string(R"({"type": "string"})") + std::string(1, '\0') + R"({"type": 1})"),
              StartsWith("parameters: not valid JSON: a NUL byte at offset 18"));
  // Invalid UTF-8 is not JSON.
  EXPECT_THAT(Error("{\"description\": \"\xff\"}"), StartsWith("parameters: not valid JSON"));
  // Deep but allowed nesting whose indentation would blow the type up.
  std::string wide = R"({"type": "object", "properties": {)";
  std::string inner = R"({"type": "object", "properties": {)";
  for (int i = 0; i < 29; ++i) absl::StrAppend(&inner, R"("p)", i, R"(": {"type": "object", "properties": {)");
  for (int k = 0; k < 240; ++k) absl::StrAppend(&inner, k ? "," : "", R"("q)", k, R"(": {})");
  for (int i = 0; i < 29; ++i) inner += "}}";
  inner += "}}";
  for (int i = 0; i < 12; ++i) absl::StrAppend(&wide, i ? "," : "", R"("w)", i, R"(": )", inner);
  wide += "}}";
  ASSERT_LE(wide.size(), kMaxToolSchemaBytes);
  EXPECT_THAT(Error(wide), StartsWith("parameters: the rendered type is "));
}

}  // namespace
}  // namespace ossgate::text
