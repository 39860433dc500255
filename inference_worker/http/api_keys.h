// API keys of the HTTP face: clients send "Authorization: Bearer <key>"; the
// worker keeps only the SHA-256 of each key, read from a file it reloads on
// SIGHUP (docs/http.md):
//
//   # comment lines and blank lines are ignored
//   <key id> <SHA-256 of the key, 64 hex digits>
//
// The key id ([A-Za-z0-9._-], 1..64 characters) names the key in logs and
// owns the key's requests ("apikey:<id>"); the key itself is never stored or
// logged. tools/make_api_key.sh makes a key and its line.
//
// Thread-safety: Match and Size are safe to call concurrently with Reload.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ossgate::http {

struct ApiKeyEntry {
  std::string id;
  std::array<unsigned char, 32> sha256{};
};

// Parses a key file; InvalidArgument naming the line and what is wrong
// (the hash is never echoed). Duplicate ids or hashes are refused.
absl::StatusOr<std::vector<ApiKeyEntry>> ParseApiKeyFile(absl::string_view content);

// The SHA-256 of `s` as 64 lowercase hex digits.
std::string Sha256Hex(absl::string_view s);

class ApiKeyStore {
 public:
  // Reads `path` and replaces the keys only if the whole file is valid (a
  // bad edit keeps the previous keys). Returns the number of keys.
  absl::StatusOr<size_t> Load(const std::string& path);
  // Replaces the keys (tests).
  void Set(std::vector<ApiKeyEntry> entries);

  // The id of the key whose hash equals SHA-256(`key`), if any. The hash is
  // compared with every entry in constant time per entry, so the time taken
  // does not depend on how much of any stored hash matches.
  std::optional<std::string> Match(absl::string_view key) const;
  size_t Size() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const std::vector<ApiKeyEntry>> entries_ = std::make_shared<std::vector<ApiKeyEntry>>();
};

}  // namespace ossgate::http
