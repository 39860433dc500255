#include "provenance_service/token/json.h"

#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ossgate::token::json {

const Value* Value::Find(std::string_view key) const {
  for (const auto& [k, v] : members_) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::optional<uint64_t> Value::AsUint64() const {
  if (type_ != Type::kNumber || text_.empty() || text_.size() > 20) return std::nullopt;
  if (text_.size() > 1 && text_[0] == '0') return std::nullopt;
  uint64_t v = 0;
  for (char c : text_) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

class Parser {
 public:
  Parser(std::string_view in, int max_depth) : in_(in), max_depth_(max_depth) {}

  absl::StatusOr<Value> ParseDocument() {
    Value v;
    if (!ParseValue(&v, 0)) return Error();
    SkipWs();
    if (pos_ != in_.size()) {
      error_ = "trailing data";
      return Error();
    }
    return v;
  }

 private:
  absl::Status Error() const {
    return absl::InvalidArgumentError(absl::StrCat("json: ", error_, " at offset ", pos_));
  }
  bool Fail(const char* msg) {
    if (error_.empty()) error_ = msg;
    return false;
  }
  void SkipWs() {
    while (pos_ < in_.size() &&
           (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Consume(std::string_view lit) {
    if (in_.substr(pos_, lit.size()) != lit) return false;
    pos_ += lit.size();
    return true;
  }

  bool ParseValue(Value* out, int depth) {
    if (depth > max_depth_) return Fail("nesting too deep");
    SkipWs();
    if (pos_ >= in_.size()) return Fail("unexpected end");
    char c = in_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      out->type_ = Value::Type::kString;
      return ParseString(&out->text_);
    }
    if (Consume("true")) {
      out->type_ = Value::Type::kBool;
      out->bool_ = true;
      return true;
    }
    if (Consume("false")) {
      out->type_ = Value::Type::kBool;
      return true;
    }
    if (Consume("null")) {
      out->type_ = Value::Type::kNull;
      return true;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    return Fail("unexpected character");
  }

  bool ParseObject(Value* out, int depth) {
    out->type_ = Value::Type::kObject;
    ++pos_;  // '{'
    SkipWs();
    if (pos_ < in_.size() && in_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      SkipWs();
      if (pos_ >= in_.size() || in_[pos_] != '"') return Fail("expected object key");
      std::string key;
      if (!ParseString(&key)) return false;
      if (out->Find(key) != nullptr) return Fail("duplicate object key");
      SkipWs();
      if (pos_ >= in_.size() || in_[pos_] != ':') return Fail("expected ':'");
      ++pos_;
      Value v;
      if (!ParseValue(&v, depth + 1)) return false;
      out->members_.emplace_back(std::move(key), std::move(v));
      SkipWs();
      if (pos_ < in_.size() && in_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < in_.size() && in_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return Fail("expected ',' or '}'");
    }
  }

  bool ParseArray(Value* out, int depth) {
    out->type_ = Value::Type::kArray;
    ++pos_;  // '['
    SkipWs();
    if (pos_ < in_.size() && in_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      Value v;
      if (!ParseValue(&v, depth + 1)) return false;
      out->array_.push_back(std::move(v));
      SkipWs();
      if (pos_ < in_.size() && in_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < in_.size() && in_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return Fail("expected ',' or ']'");
    }
  }

  bool ParseNumber(Value* out) {
    size_t start = pos_;
    if (in_[pos_] == '-') ++pos_;
    if (pos_ >= in_.size()) return Fail("bad number");
    if (in_[pos_] == '0') {
      ++pos_;
    } else if (in_[pos_] >= '1' && in_[pos_] <= '9') {
      while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
    } else {
      return Fail("bad number");
    }
    if (pos_ < in_.size() && in_[pos_] == '.') {
      ++pos_;
      size_t digits = pos_;
      while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
      if (pos_ == digits) return Fail("bad fraction");
    }
    if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < in_.size() && (in_[pos_] == '+' || in_[pos_] == '-')) ++pos_;
      size_t digits = pos_;
      while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
      if (pos_ == digits) return Fail("bad exponent");
    }
    out->type_ = Value::Type::kNumber;
    out->text_ = std::string(in_.substr(start, pos_ - start));
    return true;
  }

  static void AppendUtf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool ParseHex4(uint32_t* v) {
    if (pos_ + 4 > in_.size()) return Fail("bad \\u escape");
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = in_[pos_++];
      uint32_t d;
      if (c >= '0' && c <= '9') d = static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<uint32_t>(c - 'A' + 10);
      else return Fail("bad \\u escape");
      *v = (*v << 4) | d;
    }
    return true;
  }

  // Validates one UTF-8 sequence starting at pos_ and appends it.
  bool CopyUtf8(std::string* out) {
    auto b0 = static_cast<uint8_t>(in_[pos_]);
    int len;
    uint32_t cp;
    if (b0 < 0x80) { len = 1; cp = b0; }
    else if ((b0 & 0xE0) == 0xC0) { len = 2; cp = b0 & 0x1F; }
    else if ((b0 & 0xF0) == 0xE0) { len = 3; cp = b0 & 0x0F; }
    else if ((b0 & 0xF8) == 0xF0) { len = 4; cp = b0 & 0x07; }
    else return Fail("invalid UTF-8");
    if (pos_ + static_cast<size_t>(len) > in_.size()) return Fail("invalid UTF-8");
    for (int i = 1; i < len; ++i) {
      auto b = static_cast<uint8_t>(in_[pos_ + static_cast<size_t>(i)]);
      if ((b & 0xC0) != 0x80) return Fail("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return Fail("invalid UTF-8");
    }
    out->append(in_.substr(pos_, static_cast<size_t>(len)));
    pos_ += static_cast<size_t>(len);
    return true;
  }

  bool ParseString(std::string* out) {
    ++pos_;  // opening quote
    for (;;) {
      if (pos_ >= in_.size()) return Fail("unterminated string");
      char c = in_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (static_cast<uint8_t>(c) < 0x20) return Fail("control character in string");
      if (c != '\\') {
        if (!CopyUtf8(out)) return false;
        continue;
      }
      ++pos_;
      if (pos_ >= in_.size()) return Fail("unterminated escape");
      char e = in_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!ParseHex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return Fail("lone low surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (!Consume("\\u") || !ParseHex4(&lo) || lo < 0xDC00 || lo > 0xDFFF) {
              return Fail("lone high surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return Fail("bad escape");
      }
    }
  }

  std::string_view in_;
  size_t pos_ = 0;
  int max_depth_;
  std::string error_;
};

absl::StatusOr<Value> Parse(std::string_view text, int max_depth) {
  return Parser(text, max_depth).ParseDocument();
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<uint8_t>(c);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::string Number(uint64_t v) { return std::to_string(v); }

void ObjectWriter::Key(std::string_view key) {
  if (out_.size() > 1) out_.push_back(',');
  out_ += Quote(key);
  out_.push_back(':');
}

ObjectWriter& ObjectWriter::String(std::string_view key, std::string_view value) {
  Key(key);
  out_ += Quote(value);
  return *this;
}

ObjectWriter& ObjectWriter::Uint(std::string_view key, uint64_t value) {
  Key(key);
  out_ += Number(value);
  return *this;
}

ObjectWriter& ObjectWriter::Bool(std::string_view key, bool value) {
  Key(key);
  out_ += value ? "true" : "false";
  return *this;
}

ObjectWriter& ObjectWriter::Raw(std::string_view key, std::string_view raw_json) {
  Key(key);
  out_ += raw_json;
  return *this;
}

}  // namespace ossgate::token::json
