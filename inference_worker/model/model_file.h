// Reading a model file once: open without following symlinks, require a
// regular file, read it into private memory while computing its SHA-256.
// The engine then parses exactly the bytes that were hashed, so a file
// swapped or modified after hashing can never be loaded (no second read).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace ossgate::model {

struct ReadProgress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  double seconds = 0;
};

// The bytes of a model file, owned, immutable once read.
class ModelBytes {
 public:
  ModelBytes() = default;
  std::span<const uint8_t> bytes() const { return {data_.get(), size_}; }
  uint64_t size() const { return size_; }
  // Lowercase hex SHA-256 of the bytes (computed while reading).
  const std::string& sha256() const { return sha256_; }
  const std::string& path() const { return path_; }

 private:
  friend absl::StatusOr<ModelBytes> ReadModelFile(const std::string&, uint64_t,
                                                  const std::function<void(const ReadProgress&)>&);
  std::unique_ptr<uint8_t[]> data_;
  uint64_t size_ = 0;
  std::string sha256_;
  std::string path_;
};

// Reads `path` (which must not be a symlink and must be a regular file of at
// most max_bytes) and hashes it. `progress` (may be null) is called every
// few hundred MB and at the end. A file that shrinks, grows or is rewritten
// in place while it is read (its modification time moves, or a second read
// of samples differs from the hashed bytes) is refused with DataLoss. Errors
// name the path and the problem.
absl::StatusOr<ModelBytes> ReadModelFile(const std::string& path, uint64_t max_bytes = uint64_t{1} << 40,
                                         const std::function<void(const ReadProgress&)>& progress = nullptr);

}  // namespace ossgate::model
