#include "inference_worker/model/model_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "openssl/evp.h"

namespace ossgate::model {

namespace {

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Sampled re-read after hashing: files up to kSamples * kSampleBytes are
// compared whole, larger ones at kSamples evenly spaced places (the first
// and the last bytes included). The sampled bytes are kept as they stream
// by, so the check works whatever the sink did with them.
constexpr uint64_t kSamples = 32;
constexpr uint64_t kSampleBytes = 4096;

class Samples {
 public:
  explicit Samples(uint64_t size) {
    const uint64_t whole = kSamples * kSampleBytes;
    const uint64_t n = size <= whole ? (size + kSampleBytes - 1) / kSampleBytes : kSamples;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t at = size <= whole ? i * kSampleBytes : (size - kSampleBytes) / (kSamples - 1) * i;
      ranges_.push_back({at, std::min(kSampleBytes, size - at)});
    }
    kept_.resize(ranges_.size() * kSampleBytes);
  }

  // Keeps what of the samples lies in file bytes [offset, offset + n).
  void Keep(uint64_t offset, const uint8_t* data, uint64_t n) {
    for (size_t i = 0; i < ranges_.size(); ++i) {
      const uint64_t lo = std::max(offset, ranges_[i].at), hi = std::min(offset + n, ranges_[i].at + ranges_[i].len);
      if (lo < hi) std::memcpy(&kept_[i * kSampleBytes + (lo - ranges_[i].at)], data + (lo - offset), hi - lo);
    }
  }

  absl::Status CheckUnchanged(int fd, const std::string& path, const struct stat& before) const {
    auto changed = [&](const std::string& what) {
      return absl::DataLossError(absl::StrCat("model file '", path, "' changed while it was read (", what,
                                              "); something is writing it: stop the writer and restart the worker"));
    };
    struct stat after {};
    if (::fstat(fd, &after) != 0) {
      return absl::InternalError(absl::StrCat("fstat '", path, "': ", std::strerror(errno)));
    }
    if (after.st_size != before.st_size) {
      return changed(absl::StrCat("size ", before.st_size, " -> ", after.st_size, " bytes"));
    }
    if (after.st_mtim.tv_sec != before.st_mtim.tv_sec || after.st_mtim.tv_nsec != before.st_mtim.tv_nsec) {
      return changed("its modification time moved");
    }
    std::vector<uint8_t> buf(kSampleBytes);
    for (size_t i = 0; i < ranges_.size(); ++i) {
      const auto [at, len] = ranges_[i];
      size_t got = 0;
      while (got < len) {
        const ssize_t r = ::pread(fd, buf.data() + got, len - got, static_cast<off_t>(at + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return changed(absl::StrCat("a second read at byte ", at + got, " failed"));
        got += static_cast<size_t>(r);
      }
      if (std::memcmp(buf.data(), &kept_[i * kSampleBytes], len) != 0) {
        return changed(absl::StrCat("a second read of bytes ", at, "..", at + len, " differs from the hashed bytes"));
      }
    }
    return absl::OkStatus();
  }

 private:
  struct Range {
    uint64_t at, len;
  };
  std::vector<Range> ranges_;
  std::vector<uint8_t> kept_;
};

}  // namespace

absl::StatusOr<FileDigest> StreamModelFile(const std::string& path, uint64_t max_bytes, ModelSink& sink,
                                           const std::function<void(const ReadProgress&)>& progress,
                                           uint64_t chunk_bytes) {
  const auto t0 = std::chrono::steady_clock::now();
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP) {
      return absl::PermissionDeniedError(
          absl::StrCat("model file '", path, "' is a symbolic link; pass the real file path (links are refused so the "
                                             "verified file is the one loaded)"));
    }
    return absl::NotFoundError(absl::StrCat("cannot open model file '", path, "': ", std::strerror(err)));
  }
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return absl::InternalError(absl::StrCat("fstat '", path, "': ", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("model path '", path, "' is not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("model file '", path, "' is ", size, " bytes, over the limit of ", max_bytes));
  }
  // Clear O_NONBLOCK (used only so opening a FIFO cannot hang).
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  // The file is read front to back once: tell the kernel, so it reads ahead.
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  if (absl::Status s = sink.Begin(size); !s.ok()) return s;
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return absl::InternalError("SHA-256 init failed");
  Samples samples(size);
  constexpr uint64_t kReportEvery = 256 << 20;
  chunk_bytes = std::max<uint64_t>(chunk_bytes, 1);
  uint64_t done = 0, next_report = kReportEvery;
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  // Fills a sink buffer with the file's bytes at `offset` (short reads are
  // normal for large requests); pread, so a read may run on another thread
  // while this one hashes the previous chunk.
  auto fill = [&, fd](std::span<uint8_t> buf, uint64_t offset) -> absl::Status {
    uint64_t filled = 0;
    while (filled < buf.size()) {
      const ssize_t got = ::pread(fd, buf.data() + filled, buf.size() - filled, static_cast<off_t>(offset + filled));
      if (got < 0) {
        if (errno == EINTR) continue;
        return absl::InternalError(
            absl::StrCat("read '", path, "' at byte ", offset + filled, ": ", std::strerror(errno)));
      }
      if (got == 0) {
        return absl::DataLossError(absl::StrCat("model file '", path, "' shrank while being read (", offset + filled,
                                                " of ", size, " bytes); it is being modified"));
      }
      filled += static_cast<uint64_t>(got);
    }
    return absl::OkStatus();
  };
  // With a sink that lends two buffers at once, chunk i + 1 is read while
  // chunk i is hashed and handed over: the load then costs about the larger
  // of reading and hashing rather than their sum.
  const bool pipelined = sink.MaxOutstanding() >= 2;
  std::span<uint8_t> current;
  std::future<absl::Status> current_read;
  auto start = [&](uint64_t offset) -> absl::Status {
    auto buffer = sink.Next(offset, std::min(chunk_bytes, size - offset));
    if (!buffer.ok()) return buffer.status();
    current = *buffer;
    current_read = std::async(pipelined ? std::launch::async : std::launch::deferred, fill, current, offset);
    return absl::OkStatus();
  };
  if (size > 0) {
    if (absl::Status s = start(0); !s.ok()) return s;
  }
  while (done < size) {
    const std::span<uint8_t> buffer = current;
    if (absl::Status s = current_read.get(); !s.ok()) return s;
    const uint64_t filled = buffer.size();
    const bool more = done + filled < size;
    if (pipelined && more) {
      if (absl::Status s = start(done + filled); !s.ok()) return s;
    }
    EVP_DigestUpdate(ctx.get(), buffer.data(), filled);
    samples.Keep(done, buffer.data(), filled);
    if (absl::Status s = sink.Commit(done, filled); !s.ok()) {
      if (pipelined && more) current_read.wait();
      return s;
    }
    done += filled;
    if (!pipelined && more) {
      if (absl::Status s = start(done); !s.ok()) return s;
    }
    if (progress && (done >= next_report || done == size)) {
      progress({done, size, seconds()});
      next_report = done + kReportEvery;
    }
  }
  // A file that grew while we read it is also being modified (the offset
  // was never moved: pread).
  if (::lseek(fd, static_cast<off_t>(size), SEEK_SET) < 0) {
    return absl::InternalError(absl::StrCat("seek '", path, "': ", std::strerror(errno)));
  }
  // A file that grew while we read it is also being modified.
  uint8_t extra;
  if (::read(fd, &extra, 1) > 0) {
    return absl::DataLossError(absl::StrCat("model file '", path, "' grew while being read; it is being modified"));
  }
  // Rewritten in place while we read it (the same inode, so the open fd sees
  // the writes): the bytes hashed may mix old and new content. The hash
  // still describes exactly the bytes loaded, but a file under a writer is
  // refused rather than approved piecemeal: the size and modification time
  // must not have moved, and samples read again must equal what was hashed.
  if (absl::Status changed = samples.CheckUnchanged(fd, path, st); !changed.ok()) return changed;
  if (absl::Status s = sink.Finish(); !s.ok()) return s;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &md_len) != 1) return absl::InternalError("SHA-256 final failed");
  static const char kHex[] = "0123456789abcdef";
  FileDigest digest;
  digest.path = path;
  digest.size = size;
  digest.sha256.reserve(64);
  for (unsigned i = 0; i < md_len; ++i) {
    digest.sha256 += kHex[md[i] >> 4];
    digest.sha256 += kHex[md[i] & 15];
  }
  digest.seconds = seconds();
  if (progress && size == 0) progress({0, 0, 0});
  return digest;
}

absl::Status HostModelSink::Begin(uint64_t size) {
  bytes_.size_ = size;
  bytes_.data_.reset(new (std::nothrow) uint8_t[size > 0 ? size : 1]);
  if (!bytes_.data_) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", size, " bytes of host memory for the model"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::span<uint8_t>> HostModelSink::Next(uint64_t offset, uint64_t max) {
  return std::span<uint8_t>(bytes_.data_.get() + offset, max);
}

ModelBytes HostModelSink::Take(const FileDigest& digest) {
  bytes_.path_ = digest.path;
  bytes_.sha256_ = digest.sha256;
  return std::move(bytes_);
}

int64_t PeakResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int64_t kib = -1;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::atoll(line + 6);
  }
  std::fclose(f);
  return kib < 0 ? -1 : kib * 1024;
}

absl::StatusOr<ModelBytes> ReadModelFile(const std::string& path, uint64_t max_bytes,
                                         const std::function<void(const ReadProgress&)>& progress) {
  HostModelSink sink;
  auto digest = StreamModelFile(path, max_bytes, sink, progress);
  if (!digest.ok()) return digest.status();
  return sink.Take(*digest);
}

}  // namespace ossgate::model
