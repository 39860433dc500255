#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "inference_worker/gguf/gguf.h"

namespace ossgate::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;
constexpr uint32_t kVersion = 3;

template <typename T>
void Put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void PutString(std::vector<uint8_t>& out, absl::string_view s) {
  Put<uint64_t>(out, s.size());
  const size_t at = out.size();
  out.resize(at + s.size());
  if (!s.empty()) std::memcpy(out.data() + at, s.data(), s.size());
}

template <typename T>
std::vector<uint8_t> Scalar(ValueType type, T v) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, static_cast<uint32_t>(type));
  Put<T>(out, v);
  return out;
}

}  // namespace

void GgufWriter::SetUint32(std::string key, uint32_t v) { kv_.emplace_back(std::move(key), Scalar(ValueType::kUint32, v)); }
void GgufWriter::SetInt32(std::string key, int32_t v) { kv_.emplace_back(std::move(key), Scalar(ValueType::kInt32, v)); }
void GgufWriter::SetUint64(std::string key, uint64_t v) { kv_.emplace_back(std::move(key), Scalar(ValueType::kUint64, v)); }
void GgufWriter::SetFloat32(std::string key, float v) { kv_.emplace_back(std::move(key), Scalar(ValueType::kFloat32, v)); }
void GgufWriter::SetBool(std::string key, bool v) {
  kv_.emplace_back(std::move(key), Scalar(ValueType::kBool, static_cast<uint8_t>(v)));
}

void GgufWriter::SetString(std::string key, std::string v) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kString));
  PutString(out, v);
  kv_.emplace_back(std::move(key), std::move(out));
}

void GgufWriter::SetStringArray(std::string key, std::vector<std::string> v) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kArray));
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kString));
  Put<uint64_t>(out, v.size());
  for (const std::string& s : v) PutString(out, s);
  kv_.emplace_back(std::move(key), std::move(out));
}

void GgufWriter::SetInt32Array(std::string key, std::vector<int32_t> v) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kArray));
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kInt32));
  Put<uint64_t>(out, v.size());
  for (int32_t x : v) Put<int32_t>(out, x);
  kv_.emplace_back(std::move(key), std::move(out));
}

void GgufWriter::SetFloat32Array(std::string key, std::vector<float> v) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kArray));
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kFloat32));
  Put<uint64_t>(out, v.size());
  for (float x : v) Put<float>(out, x);
  kv_.emplace_back(std::move(key), std::move(out));
}

absl::StatusOr<uint64_t> GgufWriter::AddTensor(std::string name, GgmlType type, std::vector<int64_t> ne) {
  if (file_) return absl::FailedPreconditionError("GgufWriter: AddTensor after Begin");
  if (ne.empty() || ne.size() > 4) return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': 1..4 dims"));
  const auto traits = GetTypeTraits(static_cast<uint32_t>(type));
  if (!traits) return absl::InvalidArgumentError("unsupported tensor type");
  if (ne[0] % traits->block_elems != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': ne[0]=", ne[0], " is not a multiple of ", traits->block_elems));
  }
  uint64_t elements = 1;
  for (int64_t d : ne) {
    if (d <= 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': non-positive dim"));
    elements *= static_cast<uint64_t>(d);
  }
  const uint64_t nbytes = elements / traits->block_elems * traits->block_bytes;
  tensors_.push_back({std::move(name), type, std::move(ne), nbytes, data_size_});
  data_size_ += (nbytes + alignment_ - 1) / alignment_ * alignment_;
  return nbytes;
}

absl::Status GgufWriter::WriteRaw(const void* p, size_t n) {
  if (n == 0) return absl::OkStatus();
  if (std::fwrite(p, 1, n, file_) != n) {
    return absl::InternalError(absl::StrCat("GGUF write failed: ", std::strerror(errno)));
  }
  written_ += n;
  return absl::OkStatus();
}

absl::Status GgufWriter::PadTo(uint64_t multiple) {
  static const uint8_t kZeros[256] = {};
  uint64_t pad = (multiple - written_ % multiple) % multiple;
  while (pad > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(pad, sizeof(kZeros)));
    if (auto s = WriteRaw(kZeros, n); !s.ok()) return s;
    pad -= n;
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::Begin(const std::string& path) {
  if (file_) return absl::FailedPreconditionError("GgufWriter: Begin called twice");
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) return absl::InternalError(absl::StrCat("cannot create '", path, "': ", std::strerror(errno)));
  std::vector<uint8_t> header;
  Put<uint32_t>(header, kMagic);
  Put<uint32_t>(header, kVersion);
  Put<uint64_t>(header, tensors_.size());
  const bool write_alignment = alignment_ != 32;
  Put<uint64_t>(header, kv_.size() + (write_alignment ? 1 : 0));
  if (write_alignment) {
    PutString(header, "general.alignment");
    Put<uint32_t>(header, static_cast<uint32_t>(ValueType::kUint32));
    Put<uint32_t>(header, static_cast<uint32_t>(alignment_));
  }
  for (const auto& [key, value] : kv_) {
    PutString(header, key);
    header.insert(header.end(), value.begin(), value.end());
  }
  for (const PendingTensor& t : tensors_) {
    PutString(header, t.name);
    Put<uint32_t>(header, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) Put<int64_t>(header, d);
    Put<uint32_t>(header, static_cast<uint32_t>(t.type));
    Put<uint64_t>(header, t.offset);
  }
  if (auto s = WriteRaw(header.data(), header.size()); !s.ok()) return s;
  return PadTo(alignment_);
}

absl::Status GgufWriter::WriteTensorData(std::span<const uint8_t> bytes) {
  if (!file_) return absl::FailedPreconditionError("GgufWriter: WriteTensorData before Begin");
  while (!bytes.empty()) {
    if (current_ >= tensors_.size()) return absl::InvalidArgumentError("GgufWriter: more data than declared tensors");
    const PendingTensor& t = tensors_[current_];
    const uint64_t take = std::min<uint64_t>(bytes.size(), t.nbytes - current_written_);
    if (auto s = WriteRaw(bytes.data(), take); !s.ok()) return s;
    current_written_ += take;
    bytes = bytes.subspan(take);
    if (current_written_ == t.nbytes) {
      if (auto s = PadTo(alignment_); !s.ok()) return s;
      ++current_;
      current_written_ = 0;
    }
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::Finish() {
  if (!file_) return absl::FailedPreconditionError("GgufWriter: Finish before Begin");
  if (current_ != tensors_.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("GgufWriter: tensor '", tensors_[current_].name, "' was not completely written"));
  }
  const bool ok = std::fflush(file_) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok || !closed) return absl::InternalError(absl::StrCat("GGUF close failed: ", std::strerror(errno)));
  return absl::OkStatus();
}

GgufWriter::~GgufWriter() {
  if (file_) std::fclose(file_);
}

}  // namespace ossgate::gguf
