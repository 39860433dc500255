#include "provenance_service/core/model_uri.h"

#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ossgate::provenance {
namespace {

bool IsSegmentChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '+' || c == '-';
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status ValidateSegment(std::string_view seg) {
  if (seg.empty()) return absl::InvalidArgumentError("empty path segment");
  if (seg == "." || seg == "..") return absl::InvalidArgumentError("'.' and '..' segments are not allowed");
  if (seg.size() > 255) return absl::InvalidArgumentError("path segment longer than 255 bytes");
  for (char c : seg) {
    if (!IsSegmentChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("character ", Sanitize(std::string(1, c), 4), " not allowed in a path segment"));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string_view> SplitSlash(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

}  // namespace

std::string_view SchemeName(UriScheme s) {
  switch (s) {
    case UriScheme::kHf: return "hf";
    case UriScheme::kOssgate: return "ossgate";
    case UriScheme::kFile: return "file";
    case UriScheme::kUpload: return "upload";
    case UriScheme::kHttps: return "https";
  }
  return "?";
}

bool IsTrustableScheme(UriScheme s) {
  return s == UriScheme::kHf || s == UriScheme::kOssgate || s == UriScheme::kFile;
}

std::string ModelUri::PrefixLocator(size_t n) const {
  std::string out(SchemeName(scheme));
  out += scheme == UriScheme::kFile ? ":///" : "://";
  for (size_t i = 0; i < n && i < segments.size(); ++i) {
    if (i > 0) out.push_back('/');
    out += segments[i];
  }
  return out;
}

std::string ModelUri::Locator() const { return PrefixLocator(segments.size()); }

absl::StatusOr<ModelUri> ParseUri(std::string_view uri) {
  if (uri.empty()) return absl::InvalidArgumentError("is empty");
  if (uri.size() > kMaxUriLength) {
    return absl::InvalidArgumentError(absl::StrCat("longer than ", kMaxUriLength, " bytes"));
  }
  size_t sep = uri.find("://");
  if (sep == std::string_view::npos) {
    return absl::InvalidArgumentError("not a URI (expected <scheme>://...)");
  }
  std::string scheme_text(uri.substr(0, sep));
  ModelUri out;
  if (scheme_text == "hf") out.scheme = UriScheme::kHf;
  else if (scheme_text == "ossgate") out.scheme = UriScheme::kOssgate;
  else if (scheme_text == "file") out.scheme = UriScheme::kFile;
  else if (scheme_text == "upload") out.scheme = UriScheme::kUpload;
  else if (scheme_text == "https") out.scheme = UriScheme::kHttps;
  else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown URI scheme \"", Sanitize(scheme_text, 32),
                     "\" (supported: hf, ossgate, file, upload, https)"));
  }
  std::string_view rest = uri.substr(sep + 3);
  if (rest.find('%') != std::string_view::npos) {
    return absl::InvalidArgumentError("percent-encoding is not allowed");
  }
  if (out.scheme == UriScheme::kFile) {
    if (rest.empty() || rest[0] != '/') {
      return absl::InvalidArgumentError("file URIs must be file:///<absolute path>");
    }
    rest.remove_prefix(1);
  }
  if (rest.empty()) return absl::InvalidArgumentError("has no path");
  std::vector<std::string_view> parts = SplitSlash(rest);
  if (parts.size() > 32) return absl::InvalidArgumentError("more than 32 path segments");
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view seg = parts[i];
    if (out.scheme == UriScheme::kHf && i == 1) {
      size_t at = seg.find('@');
      if (at != std::string_view::npos) {
        std::string_view rev = seg.substr(at + 1);
        if (rev.size() != 40 || !IsLowerHex(rev)) {
          return absl::InvalidArgumentError(
              "hf revision must be a 40-digit lowercase hex commit id (branches and tags are mutable)");
        }
        out.revision = std::string(rev);
        seg = seg.substr(0, at);
      }
    }
    if (absl::Status s = ValidateSegment(seg); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("segment ", i + 1, ": ", s.message()));
    }
    out.segments.emplace_back(seg);
  }
  return out;
}

absl::StatusOr<ModelUri> ParseModelFileUri(std::string_view uri) {
  auto parsed = ParseUri(uri);
  if (!parsed.ok()) return parsed;
  size_t min_segments = 1;
  if (parsed->scheme == UriScheme::kHf) min_segments = 3;
  if (parsed->scheme == UriScheme::kOssgate || parsed->scheme == UriScheme::kHttps) min_segments = 2;
  if (parsed->segments.size() < min_segments) {
    return absl::InvalidArgumentError(
        parsed->scheme == UriScheme::kHf ? "must name a file: hf://<org>/<repo>[@<revision>]/<file>"
                                         : "must name a file inside the source");
  }
  return parsed;
}

absl::StatusOr<ModelUri> ParseSourceUri(std::string_view uri) {
  auto parsed = ParseUri(uri);
  if (!parsed.ok()) return parsed;
  if (!IsTrustableScheme(parsed->scheme)) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(SchemeName(parsed->scheme)),
                                                   ":// sources can never be trusted"));
  }
  if (!parsed->revision.empty()) {
    return absl::InvalidArgumentError("a source URI must not pin a revision (pin files by hash)");
  }
  return parsed;
}

absl::Status ValidateRelativePath(std::string_view path) {
  if (path.empty()) return absl::OkStatus();
  if (path.size() > kMaxPathLength) {
    return absl::InvalidArgumentError(absl::StrCat("longer than ", kMaxPathLength, " bytes"));
  }
  if (path.find('%') != std::string_view::npos) {
    return absl::InvalidArgumentError("percent-encoding is not allowed");
  }
  std::vector<std::string_view> parts = SplitSlash(path);
  for (size_t i = 0; i < parts.size(); ++i) {
    if (absl::Status s = ValidateSegment(parts[i]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("segment ", i + 1, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("is empty");
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("longer than ", kMaxNameLength, " bytes"));
  }
  if (name == "." || name == "..") return absl::InvalidArgumentError("must not be '.' or '..'");
  for (char c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "character ", Sanitize(std::string(1, c), 4), " not allowed (use [A-Za-z0-9._-])"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateText(std::string_view text, bool required) {
  if (required && text.empty()) return absl::InvalidArgumentError("is required");
  if (text.size() > kMaxTextLength) {
    return absl::InvalidArgumentError(absl::StrCat("longer than ", kMaxTextLength, " bytes"));
  }
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError("only printable ASCII is allowed");
    }
  }
  return absl::OkStatus();
}

std::string Sanitize(std::string_view s, size_t max_bytes) {
  std::string out;
  size_t n = s.size() < max_bytes ? s.size() : max_bytes;
  out.reserve(n + 32);
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c <= 0x7e && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > n) absl::StrAppend(&out, "...[truncated ", s.size() - n, " bytes]");
  return out;
}

}  // namespace ossgate::provenance
