#include "inference_worker/http/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ossgate::http {

namespace {

constexpr size_t kMaxKeyFileBytes = 1 << 20;

bool ValidKeyId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::array<unsigned char, 32> Sha256(absl::string_view s) {
  std::array<unsigned char, 32> out{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out.data());
  return out;
}

}  // namespace

std::string Sha256Hex(absl::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : Sha256(s)) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

absl::StatusOr<std::vector<ApiKeyEntry>> ParseApiKeyFile(absl::string_view content) {
  std::vector<ApiKeyEntry> out;
  std::set<std::string> ids;
  std::set<std::array<unsigned char, 32>> hashes;
  int line_no = 0;
  for (absl::string_view raw : absl::StrSplit(content, '\n')) {
    ++line_no;
    const absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line.front() == '#') continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto bad = [&](const std::string& what) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": ", what, "; expected \"<key id> <SHA-256 of the key, 64 hex digits>\""));
    };
    if (fields.size() != 2) return bad(absl::StrCat(fields.size(), " fields"));
    if (!ValidKeyId(fields[0])) return bad("the key id must be 1..64 characters from [A-Za-z0-9._-]");
    if (fields[1].size() != 64) return bad(absl::StrCat("the hash has ", fields[1].size(), " characters, not 64"));
    ApiKeyEntry e;
    e.id = std::string(fields[0]);
    for (size_t i = 0; i < 32; ++i) {
      const int hi = HexValue(fields[1][2 * i]), lo = HexValue(fields[1][2 * i + 1]);
      if (hi < 0 || lo < 0) return bad("the hash is not hexadecimal");
      e.sha256[i] = static_cast<unsigned char>(hi << 4 | lo);
    }
    if (!ids.insert(e.id).second) return bad(absl::StrCat("key id ", e.id, " appears twice"));
    if (!hashes.insert(e.sha256).second) return bad("this hash appears twice (one key with two ids)");
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<size_t> ApiKeyStore::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the API key file ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string content = ss.str();
  if (content.size() > kMaxKeyFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the API key file ", path, " is larger than 1 MiB"));
  }
  auto entries = ParseApiKeyFile(content);
  if (!entries.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("API key file ", path, ": ", entries.status().message()));
  }
  const size_t n = entries->size();
  Set(*std::move(entries));
  return n;
}

void ApiKeyStore::Set(std::vector<ApiKeyEntry> entries) {
  auto next = std::make_shared<const std::vector<ApiKeyEntry>>(std::move(entries));
  std::lock_guard<std::mutex> lock(mu_);
  entries_ = std::move(next);
}

std::optional<std::string> ApiKeyStore::Match(absl::string_view key) const {
  std::shared_ptr<const std::vector<ApiKeyEntry>> entries;
  {
    std::lock_guard<std::mutex> lock(mu_);
    entries = entries_;
  }
  const std::array<unsigned char, 32> h = Sha256(key);
  const ApiKeyEntry* found = nullptr;
  for (const ApiKeyEntry& e : *entries) {
    // Every entry is compared in full (no early exit on a match either).
    const bool equal = CRYPTO_memcmp(h.data(), e.sha256.data(), h.size()) == 0;
    if (equal) found = &e;
  }
  if (found == nullptr) return std::nullopt;
  return found->id;
}

size_t ApiKeyStore::Size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_->size();
}

}  // namespace ossgate::http
