// Minimal strict JSON (RFC 8259) reader and writer for token claims and audit
// records. The reader rejects duplicate object keys, invalid UTF-8, lone
// surrogates, trailing data and nesting deeper than a limit; numbers keep
// their source text and are converted on request. The writer emits compact
// JSON (no whitespace) with keys in insertion order.
//
// Thread-safety: values are immutable after parsing; safe to share.
#ifndef OSSGATE_PROVENANCE_SERVICE_TOKEN_JSON_H_
#define OSSGATE_PROVENANCE_SERVICE_TOKEN_JSON_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace ossgate::token::json {

class Value {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Type type() const { return type_; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_object() const { return type_ == Type::kObject; }
  bool is_number() const { return type_ == Type::kNumber; }

  // String value, or the number's source text.
  const std::string& text() const { return text_; }
  bool boolean() const { return bool_; }
  const std::vector<Value>& array() const { return array_; }
  const std::vector<std::pair<std::string, Value>>& members() const { return members_; }

  // Member lookup (objects only); nullptr if absent.
  const Value* Find(std::string_view key) const;
  // A number written as a canonical non-negative integer (no sign, no leading
  // zeros, no fraction/exponent) that fits in uint64.
  std::optional<uint64_t> AsUint64() const;

 private:
  friend class Parser;
  Type type_ = Type::kNull;
  bool bool_ = false;
  std::string text_;
  std::vector<Value> array_;
  std::vector<std::pair<std::string, Value>> members_;
};

absl::StatusOr<Value> Parse(std::string_view text, int max_depth = 8);

// JSON string literal (with quotes). Escapes '"', '\\' and control
// characters; other bytes are copied (callers pass valid UTF-8).
std::string Quote(std::string_view s);
// Canonical decimal for a uint64.
std::string Number(uint64_t v);

// Builds one flat JSON object.
class ObjectWriter {
 public:
  ObjectWriter& String(std::string_view key, std::string_view value);
  ObjectWriter& Uint(std::string_view key, uint64_t value);
  ObjectWriter& Bool(std::string_view key, bool value);
  // `raw_json` must already be valid JSON.
  ObjectWriter& Raw(std::string_view key, std::string_view raw_json);
  std::string Finish() const { return out_ + "}"; }

 private:
  void Key(std::string_view key);
  std::string out_ = "{";
};

}  // namespace ossgate::token::json

#endif  // OSSGATE_PROVENANCE_SERVICE_TOKEN_JSON_H_
