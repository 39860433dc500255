// Grammar of model/source URIs, names and ids, and the sanitiser used to
// store untrusted strings in audit records.
//
// URIs (docs/provenance.md, "Source URIs"):
//   hf://<org>/<repo>[@<40-hex revision>]/<path...>
//   ossgate://<collection>/<path...>
//   file:///<absolute path...>
//   upload://<segments...>   (known, never trusted)
//   https://<host>/<path...> (known, never trusted)
// Segments: 1..255 chars of [A-Za-z0-9._+-], not "." or "..". No "%"
// (percent-encoding would let "%2e%2e" smuggle a traversal), no empty
// segments, no query or fragment. The grammar is strict enough that every
// accepted URI is already canonical, so string equality is URI equality.
//
// All functions are pure and thread-safe.
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_MODEL_URI_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_MODEL_URI_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ossgate::provenance {

enum class UriScheme { kHf, kOssgate, kFile, kUpload, kHttps };

inline constexpr size_t kMaxUriLength = 1024;
inline constexpr size_t kMaxNameLength = 128;
inline constexpr size_t kMaxPathLength = 512;
inline constexpr size_t kMaxTextLength = 256;

struct ModelUri {
  UriScheme scheme = UriScheme::kHf;
  // Path segments; for hf the revision is removed from the repo segment.
  std::vector<std::string> segments;
  // hf only: 40 lowercase hex digits, or empty.
  std::string revision;

  // Canonical URI without revision, e.g. "hf://openai/gpt-oss-20b/x.gguf".
  std::string Locator() const;
  // Locator of the first `n` segments.
  std::string PrefixLocator(size_t n) const;
};

std::string_view SchemeName(UriScheme s);
// Whether sources of this scheme can be registered as trusted.
bool IsTrustableScheme(UriScheme s);

// Parses any URI of the grammar above. Errors are INVALID_ARGUMENT with a
// message that does not name the field (callers prefix it).
absl::StatusOr<ModelUri> ParseUri(std::string_view uri);
// A URI naming a file: at least org/repo/file (hf), collection/file
// (ossgate), one path segment (file, upload, https host+path).
absl::StatusOr<ModelUri> ParseModelFileUri(std::string_view uri);
// A URI a trusted source may have: trustable scheme, no revision.
absl::StatusOr<ModelUri> ParseSourceUri(std::string_view uri);
// A relative file path inside a source ("a/b.gguf"); empty is allowed.
absl::Status ValidateRelativePath(std::string_view path);

// Model names and worker ids: 1..128 chars of [A-Za-z0-9._-], not "."/"..".
absl::Status ValidateName(std::string_view name);

// Free text (descriptions, reasons): at most 256 bytes of printable ASCII.
absl::Status ValidateText(std::string_view text, bool required);

// Makes an untrusted string safe to store and display: keeps at most
// `max_bytes` input bytes, writes bytes outside printable ASCII and '\' as
// \xHH and appends "...[truncated N bytes]" when input was cut.
std::string Sanitize(std::string_view s, size_t max_bytes = kMaxTextLength);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_MODEL_URI_H_
