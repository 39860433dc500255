#include "provenance_service/core/lfs_pointer.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::provenance {

absl::StatusOr<LfsPointer> ParseLfsPointer(std::string_view text) {
  if (text.size() >= 1024) return absl::InvalidArgumentError("LFS pointer files are under 1024 bytes");
  if (text.empty() || text.back() != '\n') {
    return absl::InvalidArgumentError("LFS pointer must end with a newline");
  }
  LfsPointer out;
  bool have_oid = false, have_size = false;
  std::string last_key;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    ++line_no;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0) {
      return absl::InvalidArgumentError(absl::StrCat("LFS pointer line ", line_no, ": expected '<key> <value>'"));
    }
    std::string key(line.substr(0, sp));
    std::string_view value = line.substr(sp + 1);
    if (line_no == 1) {
      if (key != "version" || value != "https://git-lfs.github.com/spec/v1") {
        return absl::InvalidArgumentError("not a git-lfs v1 pointer (first line must be the version)");
      }
      continue;
    }
    if (key <= last_key) return absl::InvalidArgumentError("LFS pointer keys are not sorted/unique");
    last_key = key;
    if (key == "oid") {
      if (value.substr(0, 7) != "sha256:" || !token::IsSha256Hex(value.substr(7))) {
        return absl::InvalidArgumentError("LFS pointer oid must be sha256:<64 lowercase hex>");
      }
      out.sha256 = std::string(value.substr(7));
      have_oid = true;
    } else if (key == "size") {
      if (value.empty() || value.size() > 20 || (value[0] == '0')) {
        return absl::InvalidArgumentError("LFS pointer size must be a positive decimal");
      }
      uint64_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return absl::InvalidArgumentError("LFS pointer size must be decimal");
        uint64_t d = static_cast<uint64_t>(c - '0');
        if (n > (UINT64_MAX - d) / 10) return absl::InvalidArgumentError("LFS pointer size overflows");
        n = n * 10 + d;
      }
      out.size = n;
      have_size = true;
    }
  }
  if (!have_oid || !have_size) return absl::InvalidArgumentError("LFS pointer lacks oid or size");
  return out;
}

}  // namespace ossgate::provenance
