// Function tools from their JSON Schema: the one renderer of the harmony
// "namespace functions" parameter types, shared by the gRPC and HTTP faces.
// The output follows openai/harmony's renderer (the one gpt-oss, vLLM and the
// harmony docs use) byte for byte for every schema it accepts; the rules and
// their sources are listed in docs/tokenizer.md ("Function tools").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "inference_worker/text/harmony.h"

namespace ossgate::text {

// Limits on what a client may send as one tool. A schema nested deeper than
// kMaxToolSchemaDepth JSON levels (objects and arrays) is refused before it is
// parsed, so hostile input cannot exhaust the stack.
inline constexpr size_t kMaxToolDescriptionBytes = 16 * 1024;
inline constexpr size_t kMaxToolSchemaBytes = 64 * 1024;
inline constexpr int kMaxToolSchemaDepth = 64;
// The rendered type may be larger than the schema (indentation grows with
// nesting); beyond this it is refused rather than rendered into a prompt.
inline constexpr size_t kMaxToolTypeBytes = 256 * 1024;

// Builds the ToolDefinition of a function tool. `parameters_json` is the
// tool's "parameters" JSON Schema as text; empty (or JSON null) means the tool
// takes no arguments (rendered "() => any"). Properties are rendered in the
// order of the text, as harmony keeps the client's order: a caller that
// parsed a request body must re-serialize the schema from an order-keeping
// value (nlohmann::ordered_json, not nlohmann::json, which sorts keys).
//
// Keywords that harmony's renderer does not express are not rendered: anyOf,
// allOf, const, $ref and a schema without "type" or "oneOf" become `any`
// (we do not resolve $ref: harmony does not either, and resolving it would
// give the model a prompt unlike the one every other gpt-oss server renders).
//
// Errors: InvalidArgument whose message starts with the offending field,
// "name: ...", "description: ..." or the JSON path into the schema, e.g.
// "parameters.properties.city.type: \"strng\" is not a JSON Schema type ...".
// Refused: names that are not IsValidToolName, descriptions or schemas over
// the limits above, text that is not JSON, a schema that is not a JSON
// object, keywords of the wrong JSON type (type, properties, required, enum,
// oneOf, items, description, title, examples, nullable), unknown type
// names, and property names with characters that would break the type syntax
// (quotes, brackets, separators, whitespace or control characters).
absl::StatusOr<ToolDefinition> ToolFromJsonSchema(std::string name, std::string description,
                                                  std::string_view parameters_json);

}  // namespace ossgate::text
