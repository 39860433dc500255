#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "inference_worker/gguf/gguf.h"

namespace ossgate::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;
constexpr uint32_t kVersion = 3;
constexpr uint64_t kMaxNameBytes = 63;  // the reader's (and ggml's) limit

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

void GgufWriter::SetEncoded(std::string key, std::vector<uint8_t> value) {
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::SetUint32(std::string key, uint32_t v) { SetEncoded(std::move(key), Scalar(ValueType::kUint32, v)); }
void GgufWriter::SetInt32(std::string key, int32_t v) { SetEncoded(std::move(key), Scalar(ValueType::kInt32, v)); }
void GgufWriter::SetUint64(std::string key, uint64_t v) { SetEncoded(std::move(key), Scalar(ValueType::kUint64, v)); }
void GgufWriter::SetFloat32(std::string key, float v) { SetEncoded(std::move(key), Scalar(ValueType::kFloat32, v)); }
void GgufWriter::SetBool(std::string key, bool v) {
  SetEncoded(std::move(key), Scalar(ValueType::kBool, static_cast<uint8_t>(v)));
}

void GgufWriter::SetString(std::string key, std::string v) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kString));
  PutString(out, v);
  SetEncoded(std::move(key), std::move(out));
}

void GgufWriter::SetStringArray(std::string key, std::vector<std::string> v) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kArray));
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kString));
  Put<uint64_t>(out, v.size());
  for (const std::string& s : v) PutString(out, s);
  SetEncoded(std::move(key), std::move(out));
}

void GgufWriter::SetInt32Array(std::string key, std::vector<int32_t> v) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kArray));
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kInt32));
  Put<uint64_t>(out, v.size());
  for (int32_t x : v) Put<int32_t>(out, x);
  SetEncoded(std::move(key), std::move(out));
}

void GgufWriter::SetFloat32Array(std::string key, std::vector<float> v) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kArray));
  Put<uint32_t>(out, static_cast<uint32_t>(ValueType::kFloat32));
  Put<uint64_t>(out, v.size());
  for (float x : v) Put<float>(out, x);
  SetEncoded(std::move(key), std::move(out));
}

namespace {

template <typename T>
bool IntFits(int64_t v) {
  return v >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
         v <= static_cast<int64_t>(std::numeric_limits<T>::max());
}

// Appends one element of `type` taken from the MetadataValue representation.
absl::Status PutElement(std::vector<uint8_t>& out, ValueType type, int64_t integer, double real,
                        absl::string_view str, absl::string_view key) {
  const auto range_error = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("GgufWriter: value for key '", key, "' does not fit type ", ValueTypeName(type)));
  };
  switch (type) {
#define OSSGATE_PUT_INT(tag, ctype)                        \
  case ValueType::tag:                                     \
    if (!IntFits<ctype>(integer)) return range_error();    \
    Put<ctype>(out, static_cast<ctype>(integer));          \
    return absl::OkStatus();
    OSSGATE_PUT_INT(kUint8, uint8_t)
    OSSGATE_PUT_INT(kInt8, int8_t)
    OSSGATE_PUT_INT(kUint16, uint16_t)
    OSSGATE_PUT_INT(kInt16, int16_t)
    OSSGATE_PUT_INT(kUint32, uint32_t)
    OSSGATE_PUT_INT(kInt32, int32_t)
#undef OSSGATE_PUT_INT
    case ValueType::kUint64:  // stored bit-cast in `integer`, every value fits
      Put<uint64_t>(out, static_cast<uint64_t>(integer));
      return absl::OkStatus();
    case ValueType::kInt64:
      Put<int64_t>(out, integer);
      return absl::OkStatus();
    case ValueType::kBool:
      if (integer != 0 && integer != 1) return range_error();
      Put<uint8_t>(out, static_cast<uint8_t>(integer));
      return absl::OkStatus();
    case ValueType::kFloat32:
      // Converting a finite double outside float's range is undefined behaviour.
      if (std::isfinite(real) && std::fabs(real) > std::numeric_limits<float>::max()) return range_error();
      Put<float>(out, static_cast<float>(real));
      return absl::OkStatus();
    case ValueType::kFloat64:
      Put<double>(out, real);
      return absl::OkStatus();
    case ValueType::kString:
      PutString(out, str);
      return absl::OkStatus();
    case ValueType::kArray: break;
  }
  return absl::InvalidArgumentError(absl::StrCat("GgufWriter: key '", key, "': arrays of arrays are not supported"));
}

}  // namespace

absl::Status GgufWriter::SetValue(std::string key, const MetadataValue& value) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, static_cast<uint32_t>(value.type));
  if (static_cast<uint32_t>(value.type) > static_cast<uint32_t>(ValueType::kFloat64)) {
    return absl::InvalidArgumentError(absl::StrCat("GgufWriter: key '", key, "': unknown value type"));
  }
  if (value.type != ValueType::kArray) {
    if (auto s = PutElement(out, value.type, value.integer, value.real, value.str, key); !s.ok()) return s;
    SetEncoded(std::move(key), std::move(out));
    return absl::OkStatus();
  }
  const ValueType et = value.array_type;
  if (et == ValueType::kArray || static_cast<uint32_t>(et) > static_cast<uint32_t>(ValueType::kFloat64)) {
    return absl::InvalidArgumentError(
        absl::StrCat("GgufWriter: key '", key, "': array element type must be a non-array value type"));
  }
  const bool is_string = et == ValueType::kString;
  const bool is_real = et == ValueType::kFloat32 || et == ValueType::kFloat64;
  if ((!is_string && !value.str_array.empty()) || (!is_real && !value.real_array.empty()) ||
      ((is_string || is_real) && !value.int_array.empty())) {
    return absl::InvalidArgumentError(absl::StrCat("GgufWriter: key '", key, "': array of ", ValueTypeName(et),
                                                   " holds elements in the wrong vector"));
  }
  const size_t n = is_string ? value.str_array.size() : is_real ? value.real_array.size() : value.int_array.size();
  Put<uint32_t>(out, static_cast<uint32_t>(et));
  Put<uint64_t>(out, n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t integer = !is_string && !is_real ? value.int_array[i] : 0;
    const double real = is_real ? value.real_array[i] : 0.0;
    const absl::string_view str = is_string ? absl::string_view(value.str_array[i]) : absl::string_view();
    if (auto s = PutElement(out, et, integer, real, str, key); !s.ok()) return s;
  }
  SetEncoded(std::move(key), std::move(out));
  return absl::OkStatus();
}

absl::Status GgufWriter::CheckAlignment() const {
  if (alignment_ < 8 || alignment_ > 65536 || (alignment_ & (alignment_ - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GgufWriter: alignment ", alignment_, " must be a power of two between 8 and 65536"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> GgufWriter::AddTensor(std::string name, GgmlType type, std::vector<int64_t> ne) {
  if (file_) return absl::FailedPreconditionError("GgufWriter: AddTensor after Begin");
  if (auto s = CheckAlignment(); !s.ok()) return s;
  if (name.empty() || name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("GgufWriter: tensor name '", name, "' must be 1..", kMaxNameBytes, " bytes"));
  }
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) return absl::InvalidArgumentError(absl::StrCat("GgufWriter: duplicate tensor '", name, "'"));
  }
  if (ne.empty() || ne.size() > 4) return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': 1..4 dims"));
  const auto traits = GetTypeTraits(static_cast<uint32_t>(type));
  if (!traits) return absl::InvalidArgumentError("unsupported tensor type");
  uint64_t elements = 1;
  for (int64_t d : ne) {
    if (d <= 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': non-positive dim"));
    if (static_cast<uint64_t>(d) > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / elements) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': element count overflows int64"));
    }
    elements *= static_cast<uint64_t>(d);
  }
  if (ne[0] % traits->block_elems != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': ne[0]=", ne[0], " is not a multiple of the ", traits->name, " block size ",
                     traits->block_elems, "; pick dimensions that are, or another type"));
  }
  // The data section (with padding) must stay far below 2^63 so the reader's
  // int64 sizes and every offset sum fit.
  constexpr uint64_t kMaxDataBytes = 1ull << 62;
  const uint64_t blocks = elements / static_cast<uint64_t>(traits->block_elems);
  if (data_size_ > kMaxDataBytes || blocks > kMaxDataBytes / static_cast<uint64_t>(traits->block_bytes) ||
      blocks * static_cast<uint64_t>(traits->block_bytes) > kMaxDataBytes - data_size_) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': data size overflows"));
  }
  const uint64_t nbytes = blocks * static_cast<uint64_t>(traits->block_bytes);
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
  if (auto s = CheckAlignment(); !s.ok()) return s;
  bool has_alignment_key = false;
  for (const auto& [key, value] : kv_) {
    if (key.empty()) return absl::InvalidArgumentError("GgufWriter: empty metadata key");
    if (key == "general.alignment") {
      // The constructor's alignment lays out the file; a key that disagrees
      // with it (or is not uint32) would make the file unreadable.
      std::vector<uint8_t> expect;
      Put<uint32_t>(expect, static_cast<uint32_t>(ValueType::kUint32));
      Put<uint32_t>(expect, static_cast<uint32_t>(alignment_));
      if (value != expect) {
        return absl::InvalidArgumentError(absl::StrCat(
            "GgufWriter: general.alignment must be the uint32 ", alignment_,
            " given to the constructor; pass the alignment to GgufWriter(alignment) instead of setting the key"));
      }
      has_alignment_key = true;
    }
  }
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) return absl::InternalError(absl::StrCat("cannot create '", path, "': ", std::strerror(errno)));
  std::vector<uint8_t> header;
  Put<uint32_t>(header, kMagic);
  Put<uint32_t>(header, kVersion);
  Put<uint64_t>(header, tensors_.size());
  const bool write_alignment = alignment_ != 32 && !has_alignment_key;
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
