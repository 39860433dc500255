// Git LFS pointer files (git-lfs docs/spec.md), as Hugging Face serves them
// for large files:
//   version https://git-lfs.github.com/spec/v1
//   oid sha256:<64 lowercase hex>
//   size <bytes>
// The oid is the SHA-256 of the whole file, which is exactly what the
// registry pins.
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_LFS_POINTER_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_LFS_POINTER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ossgate::provenance {

struct LfsPointer {
  std::string sha256;
  uint64_t size = 0;
};

// Strict: the version line must come first, keys must be sorted after it,
// each appears once, lines end in '\n', the file is under 1024 bytes and the
// size is a canonical decimal > 0. Unknown keys (e.g. ext-*) are ignored.
absl::StatusOr<LfsPointer> ParseLfsPointer(std::string_view text);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_LFS_POINTER_H_
