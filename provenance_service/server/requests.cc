#include "provenance_service/server/requests.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/unknown_field_set.h"
#include "provenance_service/core/model_uri.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::provenance {
namespace {

namespace pb = ::ossgate::provenance::v1;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

constexpr uint32_t kDefaultPageSize = 100;
constexpr uint32_t kMaxPageSize = 1000;
constexpr size_t kMaxPageTokenLength = 2048;
constexpr size_t kMaxCallerLength = 256;
// Deeper messages are left to the protobuf parser (ours nest two levels).
constexpr int kMaxInspectedDepth = 8;

absl::Status NotAMessage(std::string_view field, const Descriptor& type) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(field), ": not a valid ", type.full_name(), " message (the bytes are not its protobuf encoding)"));
}

// Walks the encoding of a `type` message field by field, without the
// generated parser, to name the first field that makes the bytes invalid:
// a string that is not UTF-8 or a nested message that does not decode.
absl::Status FindInvalidField(std::string_view bytes, const Descriptor& type, const std::string& path, int depth) {
  UnknownFieldSet fields;
  if (!fields.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return NotAMessage(path.empty() ? "request" : path, type);
  }
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& f = fields.field(i);
    if (f.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const FieldDescriptor* field = type.FindFieldByNumber(f.number());
    if (field == nullptr) continue;  // unknown fields are kept, not checked
    const std::string name = path.empty() ? field->name() : absl::StrCat(path, ".", field->name());
    if (field->type() == FieldDescriptor::TYPE_STRING && !IsValidUtf8(f.length_delimited())) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": not valid UTF-8 (protobuf string fields must be UTF-8; send bytes as text)"));
    }
    if (field->type() == FieldDescriptor::TYPE_MESSAGE && depth < kMaxInspectedDepth) {
      if (auto s = FindInvalidField(f.length_delimited(), *field->message_type(), name, depth + 1); !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TimeToMicros(const google::protobuf::Timestamp& ts, std::string_view field) {
  if (ts.seconds() < 0 || ts.seconds() > 253402300799 || ts.nanos() < 0 || ts.nanos() > 999999999) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), ": timestamp out of range (must lie in 1970-01-01 .. 9999-12-31 UTC)"));
  }
  return static_cast<uint64_t>(ts.seconds()) * 1000000 + static_cast<uint64_t>(ts.nanos()) / 1000;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
      return false;
    }
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xbf) return false;
    }
    i += len;
  }
  return true;
}

absl::Status ParseRequest(std::string_view bytes, google::protobuf::Message* message) {
  message->Clear();
  const Descriptor& type = *message->GetDescriptor();
  // Find the problem first: the generated parser only says "no" (and logs
  // every invalid string to stderr).
  if (auto s = FindInvalidField(bytes, type, "", 0); !s.ok()) return s;
  if (!message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    message->Clear();
    return NotAMessage("request", type);
  }
  return absl::OkStatus();
}

VerifyRequest ToVerifyRequest(const pb::ModelDescriptor& r) {
  return {r.name(), r.source_uri(), r.sha256(), r.size_bytes(), r.worker_id()};
}

RegistryChange ToRegistryChange(const pb::AddSourceRequest& r) {
  RegistryChange c;
  c.action = ChangeAction::kAddSource;
  c.uri = r.uri();
  c.description = r.description();
  c.family = r.family();
  return c;
}

RegistryChange ToRegistryChange(const pb::RevokeSourceRequest& r) {
  RegistryChange c;
  c.action = ChangeAction::kRevokeSource;
  c.uri = r.uri();
  c.reason = r.reason();
  return c;
}

RegistryChange ToRegistryChange(const pb::AddFileRequest& r) {
  RegistryChange c;
  c.action = ChangeAction::kAddFile;
  c.uri = r.source_uri();
  c.path = r.path();
  c.sha256 = r.sha256();
  c.size = r.size_bytes();
  c.description = r.description();
  c.family = r.family();
  return c;
}

RegistryChange ToRegistryChange(const pb::RevokeFileRequest& r) {
  RegistryChange c;
  c.action = ChangeAction::kRevokeFile;
  c.uri = r.source_uri();
  c.path = r.path();
  c.sha256 = r.sha256();
  c.reason = r.reason();
  return c;
}

RegistryChange ToRegistryChange(const pb::SetFamilyRequest& r) {
  RegistryChange c;
  c.action = ChangeAction::kSetFamily;
  c.uri = r.source_uri();
  c.path = r.path();
  c.sha256 = r.sha256();
  c.family = r.family();
  return c;
}

absl::StatusOr<uint32_t> ValidatePageSize(uint32_t requested) {
  if (requested == 0) return kDefaultPageSize;
  if (requested > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be at most ", kMaxPageSize, ", got ", requested));
  }
  return requested;
}

std::string EncodePageToken(std::string_view cursor) { return token::Base64UrlEncode(absl::StrCat("p1:", std::string(cursor))); }

absl::StatusOr<std::string> DecodePageToken(std::string_view page_token) {
  if (page_token.empty()) return std::string();
  auto raw = page_token.size() <= kMaxPageTokenLength ? token::Base64UrlDecode(page_token) : std::nullopt;
  if (!raw || raw->rfind("p1:", 0) != 0) {
    return absl::InvalidArgumentError("page_token: not a token returned by this service");
  }
  return raw->substr(3);
}

absl::StatusOr<SourcePage> ValidateListSources(const pb::ListSourcesRequest& r) {
  SourcePage page;
  auto size = ValidatePageSize(r.page_size());
  if (!size.ok()) return size.status();
  page.size = *size;
  auto cursor = DecodePageToken(r.page_token());
  if (!cursor.ok()) return cursor.status();
  page.after = *std::move(cursor);
  return page;
}

absl::StatusOr<FilePage> ValidateListFiles(const pb::ListFilesRequest& r) {
  FilePage page;
  auto size = ValidatePageSize(r.page_size());
  if (!size.ok()) return size.status();
  page.size = *size;
  auto cursor = DecodePageToken(r.page_token());
  if (!cursor.ok()) return cursor.status();
  if (!cursor->empty()) {
    // Cursor: source_uri \n path \n sha256 of the last entry returned.
    const size_t a = cursor->find('\n');
    const size_t b = a == std::string::npos ? a : cursor->find('\n', a + 1);
    if (b == std::string::npos) return absl::InvalidArgumentError("page_token: malformed");
    page.after = FileKey{cursor->substr(0, a), cursor->substr(a + 1, b - a - 1), cursor->substr(b + 1)};
  }
  return page;
}

std::string FilePageToken(const FileKey& last) {
  return EncodePageToken(absl::StrCat(last.source_uri, "\n", last.path, "\n", last.sha256));
}

absl::StatusOr<RecordPage> ValidateQueryRecords(const pb::QueryRecordsRequest& r) {
  RecordPage page;
  auto size = ValidatePageSize(r.page_size());
  if (!size.ok()) return size.status();
  page.size = *size;
  RecordFilter& f = page.filter;
  if (r.has_start_time()) {
    auto t = TimeToMicros(r.start_time(), "start_time");
    if (!t.ok()) return t.status();
    f.start_time_us = *t;
  }
  if (r.has_end_time()) {
    auto t = TimeToMicros(r.end_time(), "end_time");
    if (!t.ok()) return t.status();
    f.end_time_us = *t;
  }
  if (!r.model_sha256().empty() && !token::IsSha256Hex(r.model_sha256())) {
    return absl::InvalidArgumentError("model_sha256: must be 64 lowercase hex digits");
  }
  if (r.source_uri().size() > kMaxUriLength) {
    return absl::InvalidArgumentError(absl::StrCat("source_uri: longer than ", kMaxUriLength, " bytes"));
  }
  if (r.caller().size() > kMaxCallerLength) {
    return absl::InvalidArgumentError(absl::StrCat("caller: longer than ", kMaxCallerLength, " bytes"));
  }
  if (auto s = ValidateFamily("family", r.family(), /*required=*/false); !s.ok()) return s;
  f.sha256 = r.model_sha256();
  f.source = r.source_uri();
  f.caller = r.caller();
  f.family = r.family();
  switch (r.verdict()) {
    case pb::VERDICT_UNSPECIFIED: break;
    case pb::VERDICT_ACCEPTED: f.verdict = "accepted"; break;
    case pb::VERDICT_REJECTED: f.verdict = "rejected"; break;
    default: return absl::InvalidArgumentError(absl::StrCat("verdict: unknown value ", r.verdict()));
  }
  switch (r.kind()) {
    case pb::RECORD_KIND_UNSPECIFIED: break;
    case pb::RECORD_KIND_VERIFY_MODEL: f.kind = "verify_model"; break;
    case pb::RECORD_KIND_REGISTRY_CHANGE: f.kind = "registry_change"; break;
    default: return absl::InvalidArgumentError(absl::StrCat("kind: unknown value ", r.kind()));
  }
  auto cursor = DecodePageToken(r.page_token());
  if (!cursor.ok()) return cursor.status();
  if (!cursor->empty()) {
    uint64_t v = 0;
    if (cursor->size() > 20) return absl::InvalidArgumentError("page_token: malformed");
    for (char c : *cursor) {
      if (c < '0' || c > '9') return absl::InvalidArgumentError("page_token: malformed");
      const uint64_t d = static_cast<uint64_t>(c - '0');
      if (v > (UINT64_MAX - d) / 10) return absl::InvalidArgumentError("page_token: malformed");
      v = v * 10 + d;
    }
    page.after = v;
  }
  return page;
}

std::string RecordPageToken(uint64_t index) { return EncodePageToken(std::to_string(index)); }

}  // namespace ossgate::provenance
