// SHA-256 helpers (OpenSSL 3 EVP). Digests are 32 raw bytes held in a
// std::string; Sha256Hex gives the 64-lowercase-hex form used in the API.
//
// Thread-safety: free functions are thread-safe; a Sha256Hasher object is
// not (use one per thread).
#ifndef OSSGATE_PROVENANCE_SERVICE_TOKEN_SHA256_H_
#define OSSGATE_PROVENANCE_SERVICE_TOKEN_SHA256_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ossgate::token {

inline constexpr size_t kSha256Size = 32;

// SHA-256 of `data`, 32 raw bytes.
std::string Sha256(std::string_view data);
// Lowercase hex of Sha256(data).
std::string Sha256Hex(std::string_view data);

// True iff `s` is exactly 64 lowercase hex digits.
bool IsSha256Hex(std::string_view s);

// Incremental hashing for large inputs (model files).
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::string_view data);
  // Returns the 32-byte digest; the hasher must not be used afterwards.
  std::string Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Hashes the whole content of the already-open file descriptor `fd` from its
// current offset to EOF. The caller keeps ownership of `fd`. Returns the
// 32-byte digest and, in *size, the number of bytes read.
absl::StatusOr<std::string> Sha256Fd(int fd, uint64_t* size);

// Opens `path` (O_RDONLY | O_NOFOLLOW | O_CLOEXEC), requires a regular file,
// hashes it. Convenience for tools; the inference worker should hash the fd it
// will load from instead (see docs/provenance.md, "TOCTOU").
absl::StatusOr<std::string> Sha256File(const std::string& path, uint64_t* size);

}  // namespace ossgate::token

#endif  // OSSGATE_PROVENANCE_SERVICE_TOKEN_SHA256_H_
