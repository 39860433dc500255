#include "inference_worker/text/tool_schema.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace ossgate::text {
namespace {

// harmony writes properties in the schema's order (serde_json with
// preserve_order), so the parsed object must keep it too.
using Json = nlohmann::ordered_json;

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// Nesting depth of JSON text (objects and arrays), found without parsing so
// that a hostile document is refused before recursive code sees it. Brackets
// inside strings do not count; stops counting once `limit` is exceeded.
int JsonDepth(absl::string_view text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (depth > limit) break;
    } else if (c == '}' || c == ']') {
      --depth;  // unbalanced text is the parser's to report
    }
  }
  return deepest;
}

// Property names are written into the type as they are, so characters of the
// type syntax itself (quotes, brackets, ":", ",", "?", "|", "/", whitespace)
// would change its meaning. Letters and digits of any script pass.
bool ValidPropertyName(absl::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    const unsigned char u = static_cast<unsigned char>(c);
    return u >= 0x80 || absl::ascii_isalnum(u) || c == '_' || c == '-' || c == '.' || c == '$';
  });
}

bool KnownType(absl::string_view t) {
  return t == "string" || t == "number" || t == "integer" || t == "boolean" || t == "array" || t == "object" ||
         t == "null";
}

// Compact JSON, as serde_json prints a default value.
std::string Dump(const Json& v) { return v.dump(-1, ' ', false, Json::error_handler_t::replace); }

// A keyword of a schema; boolean schemas (true, false) have none.
const Json* Get(const Json& schema, const char* key) {
  if (!schema.is_object()) return nullptr;
  auto it = schema.find(key);
  return it == schema.end() ? nullptr : &*it;
}

const std::string* GetString(const Json& schema, const char* key) {
  const Json* v = Get(schema, key);
  return v != nullptr && v->is_string() ? &v->get_ref<const std::string&>() : nullptr;
}

bool IsEnum(const Json& schema) {
  const Json* e = Get(schema, "enum");
  return e != nullptr && e->is_array() && !e->empty();
}

// Checks the JSON types of the keywords the renderer reads, so a malformed
// schema is refused with its path instead of being rendered half-way.
absl::Status CheckKeywords(const Json& schema, const std::string& path) {
  if (schema.is_boolean()) return absl::OkStatus();
  if (!schema.is_object()) {
    return Invalid(path, absl::StrCat("must be a JSON Schema (an object or a boolean), not ", schema.type_name()));
  }
  for (const char* key : {"description", "title"}) {
    if (const Json* v = Get(schema, key); v != nullptr && !v->is_string()) {
      return Invalid(absl::StrCat(path, ".", key), absl::StrCat("must be a string, not ", v->type_name()));
    }
  }
  if (const Json* v = Get(schema, "nullable"); v != nullptr && !v->is_boolean()) {
    return Invalid(absl::StrCat(path, ".nullable"), absl::StrCat("must be true or false, not ", v->type_name()));
  }
  for (const char* key : {"enum", "examples"}) {
    if (const Json* v = Get(schema, key); v != nullptr && !v->is_array()) {
      return Invalid(absl::StrCat(path, ".", key), absl::StrCat("must be an array, not ", v->type_name()));
    }
  }
  if (const Json* v = Get(schema, "required")) {
    if (!v->is_array()) {
      return Invalid(absl::StrCat(path, ".required"),
                     absl::StrCat("must be an array of property names, not ", v->type_name()));
    }
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) {
        return Invalid(absl::StrCat(path, ".required[", i, "]"),
                       absl::StrCat("must be a property name (a string), not ", (*v)[i].type_name()));
      }
    }
  }
  if (const Json* v = Get(schema, "properties"); v != nullptr && !v->is_object()) {
    return Invalid(absl::StrCat(path, ".properties"),
                   absl::StrCat("must be an object mapping property names to schemas, not ", v->type_name()));
  }
  if (const Json* v = Get(schema, "oneOf"); v != nullptr && (!v->is_array() || v->empty())) {
    return Invalid(absl::StrCat(path, ".oneOf"), "must be a non-empty array of schemas");
  }
  if (const Json* v = Get(schema, "items"); v != nullptr && !v->is_object() && !v->is_boolean() && !v->is_array()) {
    return Invalid(absl::StrCat(path, ".items"),
                   absl::StrCat("must be a schema (an object or a boolean), not ", v->type_name()));
  }
  return absl::OkStatus();
}

// How a string default of an enum is written. harmony quotes it (as JSON) in
// the comments of a bare oneOf union, and writes it bare in property
// comments ("// default: celsius").
enum class EnumDefault { kJson, kBare };

std::string DefaultNote(const Json& schema, const Json& value, EnumDefault enum_default) {
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (!IsEnum(schema)) return absl::StrCat("default: \"", s, "\"");
    if (enum_default == EnumDefault::kBare) return absl::StrCat("default: ", s);
  }
  return absl::StrCat("default: ", Dump(value));
}

// `"nullable": true` (OpenAPI) adds "| null" unless the type already says null.
std::string NullableSuffix(const Json& schema, const std::string& type) {
  const Json* n = Get(schema, "nullable");
  const bool nullable = n != nullptr && n->is_boolean() && n->get<bool>();
  return nullable && !absl::StrContains(type, "null") ? " | null" : "";
}

absl::StatusOr<std::string> TypeOf(const Json& schema, const std::string& path, const std::string& indent);

// A oneOf that is not a property's own: one " | variant" line per variant,
// each starting on a new line, with its description and default as a
// trailing comment.
absl::StatusOr<std::string> UnionOf(const Json& one_of, const std::string& path, const std::string& indent) {
  std::string out;
  for (size_t i = 0; i < one_of.size(); ++i) {
    const Json& variant = one_of[i];
    absl::StatusOr<std::string> type = TypeOf(variant, absl::StrCat(path, "[", i, "]"), indent + "   ");
    if (!type.ok()) return type.status();
    absl::StrAppend(&out, "\n", indent, " | ", *type, NullableSuffix(variant, *type));
    std::vector<std::string> notes;
    if (const std::string* d = GetString(variant, "description")) notes.push_back(*d);
    if (const Json* d = Get(variant, "default")) notes.push_back(DefaultNote(variant, *d, EnumDefault::kJson));
    if (!notes.empty()) absl::StrAppend(&out, " // ", absl::StrJoin(notes, " "));
  }
  return out;
}

// A property whose schema is a oneOf: the property's description and default
// as comment lines above "name?:", then one " | variant" line per variant and
// a line with the comma. The first variant's description is not repeated when
// the property's own description was written above it.
absl::Status AppendPropertyUnion(const Json& prop, const std::string& key, bool required, const std::string& path,
                                 const std::string& indent, std::string* out) {
  const Json& one_of = *Get(prop, "oneOf");
  const std::string* prop_desc = GetString(prop, "description");
  const std::string* first_desc = GetString(one_of[0], "description");
  const bool desc_above = prop_desc != nullptr && !(first_desc != nullptr && *first_desc == *prop_desc);
  if (desc_above) absl::StrAppend(out, indent, "// ", *prop_desc, "\n");
  if (const Json* d = Get(prop, "default")) {
    absl::StrAppend(out, indent, "// ", DefaultNote(prop, *d, EnumDefault::kBare), "\n");
  }
  absl::StrAppend(out, indent, key, required ? "" : "?", ":\n");
  for (size_t i = 0; i < one_of.size(); ++i) {
    const Json& variant = one_of[i];
    absl::StatusOr<std::string> type = TypeOf(variant, absl::StrCat(path, ".oneOf[", i, "]"), indent + "   ");
    if (!type.ok()) return type.status();
    absl::StrAppend(out, indent, " | ", *type, NullableSuffix(variant, *type));
    std::vector<std::string> notes;
    const std::string* d = GetString(variant, "description");
    if (!(i == 0 && desc_above) && d != nullptr && !(prop_desc != nullptr && *d == *prop_desc)) notes.push_back(*d);
    if (const Json* v = Get(variant, "default")) notes.push_back(DefaultNote(variant, *v, EnumDefault::kBare));
    if (!notes.empty()) absl::StrAppend(out, " // ", absl::StrJoin(notes, " "));
    absl::StrAppend(out, "\n");
  }
  absl::StrAppend(out, indent, ",\n");
  return absl::OkStatus();
}

// "{", one "name?: type," line per property (comments above it for title,
// description and examples; the default after it), "}". Properties are
// indented by `indent`; a nested object's by four more spaces.
absl::StatusOr<std::string> ObjectType(const Json& schema, const std::string& path, const std::string& indent) {
  std::string out;
  if (const std::string* d = GetString(schema, "description")) absl::StrAppend(&out, indent, "// ", *d, "\n");
  out += "{\n";
  const Json* props = Get(schema, "properties");
  absl::flat_hash_set<std::string> required;
  if (const Json* r = Get(schema, "required")) {
    for (const Json& name : *r) required.insert(name.get<std::string>());
  }
  if (props != nullptr) {
    for (auto it = props->begin(); it != props->end(); ++it) {
      const std::string& key = it.key();
      const Json& prop = it.value();
      const std::string prop_path = absl::StrCat(path, ".properties.", key);
      if (!ValidPropertyName(key)) {
        return Invalid(absl::StrCat(path, ".properties"),
                       absl::StrCat("property name \"", key,
                                    "\" must be 1..256 letters, digits or one of _ - . $ (no spaces, quotes, "
                                    "brackets or punctuation that the harmony type syntax uses)"));
      }
      if (absl::Status s = CheckKeywords(prop, prop_path); !s.ok()) return s;
      const bool is_required = required.contains(key);
      if (const std::string* t = GetString(prop, "title")) {
        absl::StrAppend(&out, indent, "// ", *t, "\n", indent, "//\n");
      }
      const Json* one_of = Get(prop, "oneOf");
      if (one_of == nullptr) {
        if (const std::string* d = GetString(prop, "description")) absl::StrAppend(&out, indent, "// ", *d, "\n");
      }
      if (const Json* ex = Get(prop, "examples"); ex != nullptr && !ex->empty()) {
        absl::StrAppend(&out, indent, "// Examples:\n");
        for (const Json& e : *ex) {
          if (e.is_string()) absl::StrAppend(&out, indent, "// - \"", e.get_ref<const std::string&>(), "\"\n");
        }
      }
      if (one_of != nullptr) {
        if (absl::Status s = AppendPropertyUnion(prop, key, is_required, prop_path, indent, &out); !s.ok()) return s;
        continue;
      }
      absl::StatusOr<std::string> type = TypeOf(prop, prop_path, indent + "    ");
      if (!type.ok()) return type.status();
      absl::StrAppend(&out, indent, key, is_required ? "" : "?", ": ", *type, NullableSuffix(prop, *type), ",");
      if (const Json* d = Get(prop, "default")) {
        absl::StrAppend(&out, " // ", DefaultNote(prop, *d, EnumDefault::kBare));
      }
      out += "\n";
    }
  }
  absl::StrAppend(&out, indent, "}");
  return out;
}

// The harmony type of one schema. Recursion depth is bounded by the JSON
// nesting depth, which ToolFromJsonSchema limits before parsing.
absl::StatusOr<std::string> TypeOf(const Json& schema, const std::string& path, const std::string& indent) {
  if (absl::Status s = CheckKeywords(schema, path); !s.ok()) return s;
  if (const Json* one_of = Get(schema, "oneOf")) return UnionOf(*one_of, absl::StrCat(path, ".oneOf"), indent);
  const Json* type = Get(schema, "type");
  if (type == nullptr) return std::string("any");  // also $ref, anyOf, allOf, const, enum without a type
  const std::string type_path = absl::StrCat(path, ".type");
  auto unknown = [&](const std::string& name) {
    return Invalid(type_path, absl::StrCat("\"", name,
                                           "\" is not a JSON Schema type (string, number, integer, boolean, array, "
                                           "object, null)"));
  };
  if (type->is_array()) {
    // A list of types is written as a union of their names, "integer" as
    // "number" and the others as they are (harmony does not expand
    // "object" or "array" here).
    if (type->empty()) return Invalid(type_path, "must name at least one type");
    std::vector<std::string> names;
    for (size_t i = 0; i < type->size(); ++i) {
      const Json& t = (*type)[i];
      if (!t.is_string()) {
        return Invalid(absl::StrCat(type_path, "[", i, "]"), absl::StrCat("must be a type name, not ", t.type_name()));
      }
      const std::string& name = t.get_ref<const std::string&>();
      if (!KnownType(name)) return unknown(name);
      names.push_back(name == "integer" ? "number" : name);
    }
    return absl::StrJoin(names, " | ");
  }
  if (!type->is_string()) {
    return Invalid(type_path,
                   absl::StrCat("must be a type name or an array of type names, not ", type->type_name()));
  }
  const std::string& name = type->get_ref<const std::string&>();
  if (name == "object") return ObjectType(schema, path, indent);
  if (name == "string") {
    std::vector<std::string> literals;
    if (const Json* e = Get(schema, "enum")) {
      for (const Json& v : *e) {
        if (v.is_string()) literals.push_back(absl::StrCat("\"", v.get_ref<const std::string&>(), "\""));
      }
    }
    return literals.empty() ? std::string("string") : absl::StrJoin(literals, " | ");
  }
  if (name == "number" || name == "integer") return std::string("number");
  if (name == "boolean") return std::string("boolean");
  if (name == "array") {
    const Json* items = Get(schema, "items");
    if (items == nullptr) return std::string("Array<any>");
    // The tuple form ("items": [schemas]) has no single element type.
    if (items->is_array()) return std::string("any[]");
    absl::StatusOr<std::string> item = TypeOf(*items, absl::StrCat(path, ".items"), indent);
    if (!item.ok()) return item.status();
    return absl::StrCat(*item, "[]");
  }
  if (name == "null") return std::string("any");
  return unknown(name);
}

}  // namespace

absl::StatusOr<ToolDefinition> ToolFromJsonSchema(std::string name, std::string description,
                                                  std::string_view parameters_json) {
  if (!IsValidToolName(name)) {
    return Invalid("name", absl::StrCat("\"", name, "\" must be 1..", kMaxToolNameBytes,
                                        " characters of [A-Za-z0-9_-] (the OpenAI API's rule for function names)"));
  }
  if (description.size() > kMaxToolDescriptionBytes) {
    return Invalid("description", absl::StrCat("is ", description.size(), " bytes; the limit is ",
                                               kMaxToolDescriptionBytes));
  }
  ToolDefinition tool{std::move(name), std::move(description), ""};
  const absl::string_view text =
      absl::StripAsciiWhitespace(absl::string_view(parameters_json.data(), parameters_json.size()));
  if (text.empty()) return tool;
  if (text.size() > kMaxToolSchemaBytes) {
    return Invalid("parameters",
                   absl::StrCat("the schema is ", text.size(), " bytes; the limit is ", kMaxToolSchemaBytes));
  }
  // nlohmann-json reads a NUL byte as the end of the input and would accept
  // whatever came before it; JSON text cannot hold one.
  if (const size_t nul = parameters_json.find('\0'); nul != std::string_view::npos) {
    return Invalid("parameters", absl::StrCat("not valid JSON: a NUL byte at offset ", nul,
                                              " (JSON text cannot hold one; inside a string write \\u0000)"));
  }
  if (JsonDepth(text, kMaxToolSchemaDepth) > kMaxToolSchemaDepth) {
    return Invalid("parameters", absl::StrCat("the schema is nested deeper than ", kMaxToolSchemaDepth,
                                              " levels of objects and arrays"));
  }
  Json schema;
  try {
    schema = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, ...".
    absl::string_view what = e.what();
    if (size_t close = what.find("] "); absl::StartsWith(what, "[json.exception.") && close != what.npos) {
      what.remove_prefix(close + 2);
    }
    return Invalid("parameters", absl::StrCat("not valid JSON: ", what));
  }
  if (schema.is_null()) return tool;
  if (!schema.is_object()) {
    return Invalid("parameters",
                   absl::StrCat("must be a JSON Schema object such as {\"type\": \"object\", \"properties\": {...}}, "
                                "not ",
                                schema.type_name()));
  }
  absl::StatusOr<std::string> type = TypeOf(schema, "parameters", "");
  if (!type.ok()) return type.status();
  if (type->size() > kMaxToolTypeBytes) {
    return Invalid("parameters", absl::StrCat("the rendered type is ", type->size(), " bytes; the limit is ",
                                              kMaxToolTypeBytes, " (nest less deeply)"));
  }
  tool.parameters_typescript = *std::move(type);
  return tool;
}

}  // namespace ossgate::text
