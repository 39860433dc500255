// Reading a model file once: open without following symlinks, require a
// regular file, stream it in large chunks into where the backend wants the
// bytes (a host buffer for the CPU backend, device memory for the CUDA
// backend: ModelSink) while computing its SHA-256. Nothing is parsed while
// reading; the caller parses exactly the bytes that were hashed, after the
// provenance check, so a file swapped or modified after hashing can never be
// loaded (no second read).
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

// Where the bytes of a model file go while they are read and hashed.
// StreamModelFile calls Begin once, then Next / Commit for consecutive
// ranges that cover the file in order, then Finish. An error from any call
// stops the read and is returned as it is.
class ModelSink {
 public:
  virtual ~ModelSink() = default;
  // The file's size, before any bytes.
  virtual absl::Status Begin(uint64_t size) = 0;
  // Host memory for the bytes at file offset `offset` on: between 1 and
  // `max` bytes. Valid until the matching Commit.
  virtual absl::StatusOr<std::span<uint8_t>> Next(uint64_t offset, uint64_t max) = 0;
  // The first `n` bytes of the last buffer hold file bytes [offset, offset+n)
  // and were hashed.
  virtual absl::Status Commit(uint64_t offset, uint64_t n) = 0;
  // Every byte arrived (and the file did not change while it was read).
  virtual absl::Status Finish() = 0;
  // Buffers the sink lends at once. With 2, the reader asks for the next
  // buffer (Next) and reads into it on another thread before it commits the
  // previous one, overlapping the read with the hashing; Next and Commit are
  // still called from the caller's thread, in file order.
  virtual int MaxOutstanding() const { return 1; }
};

// What a streamed read established about the bytes it delivered.
struct FileDigest {
  std::string path;
  uint64_t size = 0;
  std::string sha256;  // lowercase hex
  double seconds = 0;  // open to the last byte checked
};

// Reads `path` (which must not be a symlink and must be a regular file of at
// most max_bytes) once, in chunks of up to chunk_bytes, into `sink`, hashing
// every byte. `progress` (may be null) is called every few hundred MB and at
// the end. A file that shrinks, grows or is rewritten in place while it is
// read (its modification time moves, or a second read of samples differs
// from the hashed bytes: 32 places of 4 KiB, the whole file up to 128 KiB)
// is refused with DataLoss; the sink's Finish is not called then. Errors
// name the path and the problem.
absl::StatusOr<FileDigest> StreamModelFile(const std::string& path, uint64_t max_bytes, ModelSink& sink,
                                           const std::function<void(const ReadProgress&)>& progress = nullptr,
                                           uint64_t chunk_bytes = uint64_t{16} << 20);

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
  friend class HostModelSink;
  std::unique_ptr<uint8_t[]> data_;
  uint64_t size_ = 0;
  std::string sha256_;
  std::string path_;
};

// The CPU backend's sink: the bytes land in their final host buffer (the
// weights are views into it), with no second copy.
class HostModelSink : public ModelSink {
 public:
  absl::Status Begin(uint64_t size) override;
  absl::StatusOr<std::span<uint8_t>> Next(uint64_t offset, uint64_t max) override;
  absl::Status Commit(uint64_t, uint64_t) override { return absl::OkStatus(); }
  absl::Status Finish() override { return absl::OkStatus(); }
  int MaxOutstanding() const override { return 2; }
  // The bytes with the digest of the read that filled them.
  ModelBytes Take(const FileDigest& digest);

 private:
  ModelBytes bytes_;
};

// The process's peak resident set (VmHWM of /proc/self/status) in bytes, or
// -1 where unknown: what a load cost in host memory (the worker's ready line,
// gpu_bench).
int64_t PeakResidentBytes();

// StreamModelFile into a HostModelSink.
absl::StatusOr<ModelBytes> ReadModelFile(const std::string& path, uint64_t max_bytes = uint64_t{1} << 40,
                                         const std::function<void(const ReadProgress&)>& progress = nullptr);

}  // namespace ossgate::model
