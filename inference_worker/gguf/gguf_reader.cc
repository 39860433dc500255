// GGUF reader. Every read goes through Cursor, which checks bounds before
// touching memory; every count is checked against the bytes left before
// anything is allocated, and everything the metadata decodes into (keys,
// strings, array storage) is charged to ReaderLimits::max_metadata_bytes, so no
// input can crash the reader, make it loop longer than the file is long, or make
// it allocate more than that budget plus a small multiple of the file size.
// Errors name the field, its byte offset in the file and the problem.
#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "inference_worker/gguf/gguf.h"

namespace ossgate::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxNameBytes = 63;   // ggml GGML_MAX_NAME - 1
constexpr int kMaxDims = 4;
constexpr uint64_t kMaxAlignment = 65536;

// Smallest possible encodings, used to reject impossible counts up front:
// a key/value is a non-empty key (8 + 1), a type (4) and at least 1 value byte;
// a tensor info is a non-empty name (8 + 1), n_dims (4), one dim (8), a type
// (4) and an offset (8).
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

absl::Status Error(uint64_t offset, absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrFormat("GGUF: %s at byte offset %d: %s", field, offset, problem));
}

// A key or tensor name from the file, made printable and short enough for an
// error message (the bytes are hostile: they may hold control characters).
std::string Printable(absl::string_view s) {
  constexpr size_t kMaxShown = 80;
  if (s.size() <= kMaxShown) return absl::CHexEscape(s);
  return absl::StrCat(absl::CHexEscape(s.substr(0, kMaxShown)), "...");
}

// Minimum encoded size of one element of `type`, used to bound counts before
// allocating (strings need at least their 8-byte length).
uint64_t MinEncodedSize(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool: return 1;
    case ValueType::kUint16:
    case ValueType::kInt16: return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32: return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
    case ValueType::kString: return 8;
    case ValueType::kArray: return 12;
  }
  return 1;
}

bool IsKnownValueType(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::kFloat64); }

// Reads the header from `bytes`, the first bytes of a file of `file_size`
// bytes (all of it for Parse; a prefix for ParseHeader, where running past
// the prefix inside the file is OutOfRange so the caller can supply more).
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, uint64_t file_size) : bytes_(bytes), file_size_(file_size) {}
  uint64_t pos() const { return pos_; }
  // Bytes of the file (not only of the prefix) after the cursor.
  uint64_t remaining() const { return file_size_ - pos_; }

  template <typename T>
  absl::Status Read(absl::string_view field, T* out) {
    if (remaining() < sizeof(T)) {
      return Error(pos_, field, absl::StrCat("file ends after ", remaining(), " of ", sizeof(T),
                                             " bytes; the file is truncated"));
    }
    if (absl::Status s = InPrefix(sizeof(T)); !s.ok()) return s;
    std::memcpy(out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  // Reads a gguf string (uint64 length + bytes) of at most max_len bytes.
  absl::Status ReadString(absl::string_view field, uint64_t max_len, std::string* out) {
    const uint64_t at = pos_;
    uint64_t len = 0;
    if (auto s = Read(field, &len); !s.ok()) return s;
    if (len > max_len) {
      return Error(at, field, absl::StrCat("string length ", len, " exceeds the limit of ", max_len, " bytes"));
    }
    if (len > remaining()) {
      return Error(at, field, absl::StrCat("string length ", len, " runs past the end of the file (",
                                           remaining(), " bytes left); the file is truncated or the length is corrupt"));
    }
    if (absl::Status s = InPrefix(len); !s.ok()) return s;
    out->assign(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += len;
    return absl::OkStatus();
  }

 private:
  absl::Status InPrefix(uint64_t n) const {
    if (n <= bytes_.size() - pos_) return absl::OkStatus();
    return absl::OutOfRangeError(absl::StrCat("the GGUF header continues past the first ", bytes_.size(),
                                              " bytes kept of the file"));
  }

  std::span<const uint8_t> bytes_;
  uint64_t file_size_;
  uint64_t pos_ = 0;
};

bool CheckedMul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

// What is left of ReaderLimits::max_metadata_bytes. Charged for every key,
// every decoded string and the storage of every array before it is allocated.
class MetadataBudget {
 public:
  explicit MetadataBudget(uint64_t limit) : limit_(limit), left_(limit) {}
  absl::Status Charge(uint64_t at, absl::string_view field, uint64_t bytes) {
    if (bytes > left_) {
      return Error(at, field,
                   absl::StrCat("decoded metadata exceeds the limit of ", limit_,
                                " bytes (ReaderLimits::max_metadata_bytes)"));
    }
    left_ -= bytes;
    return absl::OkStatus();
  }

 private:
  const uint64_t limit_;
  uint64_t left_;
};

absl::Status ReadScalar(Cursor& cur, ValueType type, absl::string_view field, int64_t* integer, double* real,
                        std::string* str, const ReaderLimits& limits, MetadataBudget& budget) {
  switch (type) {
#define OSSGATE_INT_CASE(tag, ctype)                          \
  case ValueType::tag: {                                      \
    ctype v{};                                                \
    if (auto s = cur.Read(field, &v); !s.ok()) return s;      \
    *integer = static_cast<int64_t>(v);                       \
    return absl::OkStatus();                                  \
  }
    OSSGATE_INT_CASE(kUint8, uint8_t)
    OSSGATE_INT_CASE(kInt8, int8_t)
    OSSGATE_INT_CASE(kUint16, uint16_t)
    OSSGATE_INT_CASE(kInt16, int16_t)
    OSSGATE_INT_CASE(kUint32, uint32_t)
    OSSGATE_INT_CASE(kInt32, int32_t)
    OSSGATE_INT_CASE(kUint64, uint64_t)
    OSSGATE_INT_CASE(kInt64, int64_t)
#undef OSSGATE_INT_CASE
    case ValueType::kBool: {
      const uint64_t at = cur.pos();
      uint8_t v = 0;
      if (auto s = cur.Read(field, &v); !s.ok()) return s;
      if (v > 1) return Error(at, field, absl::StrCat("bool value is ", v, ", expected 0 or 1"));
      *integer = v;
      return absl::OkStatus();
    }
    case ValueType::kFloat32: {
      float v = 0;
      if (auto s = cur.Read(field, &v); !s.ok()) return s;
      *real = v;
      return absl::OkStatus();
    }
    case ValueType::kFloat64: {
      double v = 0;
      if (auto s = cur.Read(field, &v); !s.ok()) return s;
      *real = v;
      return absl::OkStatus();
    }
    case ValueType::kString: {
      const uint64_t at = cur.pos();
      if (auto s = cur.ReadString(field, limits.max_string_bytes, str); !s.ok()) return s;
      return budget.Charge(at, field, str->size());
    }
    case ValueType::kArray: break;
  }
  return absl::InternalError("ReadScalar called with array type");
}

absl::Status ReadValue(Cursor& cur, const std::string& key, MetadataValue* out, const ReaderLimits& limits,
                       MetadataBudget& budget) {
  const std::string field = absl::StrCat("value of key '", Printable(key), "'");
  const uint64_t type_at = cur.pos();
  uint32_t raw_type = 0;
  if (auto s = cur.Read(field + " (type)", &raw_type); !s.ok()) return s;
  if (!IsKnownValueType(raw_type)) {
    return Error(type_at, field, absl::StrCat("unknown value type id ", raw_type, " (valid: 0..12)"));
  }
  out->type = static_cast<ValueType>(raw_type);
  if (out->type != ValueType::kArray) {
    return ReadScalar(cur, out->type, field, &out->integer, &out->real, &out->str, limits, budget);
  }
  const uint64_t elem_at = cur.pos();
  uint32_t raw_elem = 0;
  if (auto s = cur.Read(field + " (array element type)", &raw_elem); !s.ok()) return s;
  if (!IsKnownValueType(raw_elem)) {
    return Error(elem_at, field, absl::StrCat("unknown array element type id ", raw_elem, " (valid: 0..12 except 9)"));
  }
  if (raw_elem == static_cast<uint32_t>(ValueType::kArray)) {
    return Error(elem_at, field, "arrays of arrays are not supported");
  }
  out->array_type = static_cast<ValueType>(raw_elem);
  const uint64_t count_at = cur.pos();
  uint64_t count = 0;
  if (auto s = cur.Read(field + " (array length)", &count); !s.ok()) return s;
  if (count > limits.max_array_elements) {
    return Error(count_at, field,
                 absl::StrCat("array length ", count, " exceeds the limit of ", limits.max_array_elements));
  }
  uint64_t min_bytes = 0;
  if (!CheckedMul(count, MinEncodedSize(out->array_type), &min_bytes) || min_bytes > cur.remaining()) {
    return Error(count_at, field,
                 absl::StrCat("array of ", count, " ", ValueTypeName(out->array_type), " elements needs at least ",
                              min_bytes, " bytes but only ", cur.remaining(),
                              " remain; the file is truncated or corrupt"));
  }
  const ValueType et = out->array_type;
  const bool is_string = et == ValueType::kString;
  const bool is_real = et == ValueType::kFloat32 || et == ValueType::kFloat64;
  // count <= remaining bytes, so this product cannot overflow.
  const uint64_t storage = count * (is_string ? sizeof(std::string) : is_real ? sizeof(double) : sizeof(int64_t));
  if (auto s = budget.Charge(count_at, field, storage); !s.ok()) return s;
  if (is_string) {
    out->str_array.resize(count);
  } else if (is_real) {
    out->real_array.resize(count);
  } else {
    out->int_array.resize(count);
  }
  std::string scratch;
  for (uint64_t i = 0; i < count; ++i) {
    int64_t integer = 0;
    double real = 0;
    std::string* str = is_string ? &out->str_array[i] : &scratch;
    if (auto s = ReadScalar(cur, et, field, &integer, &real, str, limits, budget); !s.ok()) return s;
    if (is_real) {
      out->real_array[i] = real;
    } else if (!is_string) {
      out->int_array[i] = integer;
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kUint8: return "uint8";
    case ValueType::kInt8: return "int8";
    case ValueType::kUint16: return "uint16";
    case ValueType::kInt16: return "int16";
    case ValueType::kUint32: return "uint32";
    case ValueType::kInt32: return "int32";
    case ValueType::kFloat32: return "float32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kUint64: return "uint64";
    case ValueType::kInt64: return "int64";
    case ValueType::kFloat64: return "float64";
  }
  return "unknown";
}

bool MetadataValue::is_integer() const {
  switch (type) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kUint16:
    case ValueType::kInt16:
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kUint64:
    case ValueType::kInt64: return true;
    default: return false;
  }
}

size_t MetadataValue::array_size() const {
  if (type != ValueType::kArray) return 0;
  return std::max({int_array.size(), real_array.size(), str_array.size()});
}

std::string TensorInfo::ShapeString() const {
  std::string s = "[";
  for (int i = 0; i < n_dims; ++i) absl::StrAppend(&s, i ? ", " : "", ne[i]);
  return s + "]";
}

absl::StatusOr<GgufFile> GgufFile::Parse(std::span<const uint8_t> bytes, const ReaderLimits& limits) {
  return ParseHeader(bytes, bytes.size(), bytes.data(), limits);
}

absl::StatusOr<GgufFile> GgufFile::ParseHeader(std::span<const uint8_t> prefix, uint64_t file_size,
                                               const uint8_t* data_base, const ReaderLimits& limits) {
  if (prefix.size() > file_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF header prefix of ", prefix.size(), " bytes is longer than the file (", file_size, ")"));
  }
  GgufFile f;
  f.file_size_ = file_size;
  Cursor cur(prefix, file_size);

  uint32_t magic = 0;
  if (auto s = cur.Read("magic", &magic); !s.ok()) return s;
  if (magic != kMagic) {
    return Error(0, "magic", absl::StrFormat("expected 'GGUF' (0x46554747), found 0x%08x; this is not a GGUF file", magic));
  }
  if (auto s = cur.Read("version", &f.version_); !s.ok()) return s;
  if (f.version_ != 2 && f.version_ != 3) {
    const uint32_t v = f.version_;
    const uint32_t swapped = (v >> 24) | ((v >> 8) & 0xFF00u) | ((v << 8) & 0xFF0000u) | (v << 24);
    std::string hint = swapped >= 1 && swapped <= 3 ? " (looks byte-swapped: big-endian files are not supported)"
                       : v == 1                     ? " (GGUF v1 is obsolete; re-convert the model)"
                                                    : "";
    return Error(4, "version", absl::StrCat("unsupported version ", v, "; expected 2 or 3", hint));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  if (auto s = cur.Read("tensor_count", &n_tensors); !s.ok()) return s;
  if (auto s = cur.Read("kv_count", &n_kv); !s.ok()) return s;
  if (n_tensors > limits.max_tensors) {
    return Error(8, "tensor_count", absl::StrCat(n_tensors, " tensors exceeds the limit of ", limits.max_tensors));
  }
  if (n_kv > limits.max_kv) {
    return Error(16, "kv_count", absl::StrCat(n_kv, " keys exceeds the limit of ", limits.max_kv));
  }
  // Reject counts that cannot fit before reserving anything for them. Checked
  // arithmetic: the limits are the caller's and may be as large as 2^64 - 1.
  uint64_t kv_min = 0, tensor_min = 0;
  if (!CheckedMul(n_kv, kMinKvBytes, &kv_min) || !CheckedMul(n_tensors, kMinTensorInfoBytes, &tensor_min) ||
      kv_min > cur.remaining() || tensor_min > cur.remaining() - kv_min) {
    return Error(8, "tensor_count/kv_count",
                 absl::StrCat(n_tensors, " tensors and ", n_kv, " keys cannot fit in the ", cur.remaining(),
                              " bytes that follow the header; the file is truncated or corrupt"));
  }

  MetadataBudget budget(limits.max_metadata_bytes);
  uint64_t alignment_value_at = 0;  // where general.alignment's type id sits, for error messages
  f.kv_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t key_at = cur.pos();
    std::string key;
    const std::string field = absl::StrCat("key #", i);
    if (auto s = cur.ReadString(field, limits.max_key_bytes, &key); !s.ok()) return s;
    if (key.empty()) return Error(key_at, field, "empty key");
    if (f.kv_index_.contains(key)) return Error(key_at, field, absl::StrCat("duplicate key '", Printable(key), "'"));
    if (auto s = budget.Charge(key_at, field, key.size()); !s.ok()) return s;
    if (key == "general.alignment") alignment_value_at = cur.pos();
    MetadataValue value;
    if (auto s = ReadValue(cur, key, &value, limits, budget); !s.ok()) return s;
    f.kv_index_.emplace(key, f.kv_.size());
    f.kv_.emplace_back(std::move(key), std::move(value));
  }

  if (const MetadataValue* a = f.FindKey("general.alignment")) {
    if (a->type != ValueType::kUint32) {
      return Error(alignment_value_at, "general.alignment", absl::StrCat("must be uint32, found ", ValueTypeName(a->type)));
    }
    const uint64_t al = a->uint_value();
    if (al < 8 || (al & (al - 1)) != 0 || al > kMaxAlignment) {
      return Error(alignment_value_at + 4, "general.alignment",
                   absl::StrCat("value ", al, " must be a power of two between 8 and ", kMaxAlignment));
    }
    f.alignment_ = al;
  }

  f.tensors_.reserve(n_tensors);
  std::vector<uint64_t> offset_field_at;  // per tensor, for error messages
  offset_field_at.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    const uint64_t info_at = cur.pos();
    std::string field = absl::StrCat("tensor #", i, " name");
    if (auto s = cur.ReadString(field, limits.max_key_bytes, &t.name); !s.ok()) return s;
    if (t.name.empty()) return Error(info_at, field, "empty tensor name");
    if (t.name.size() > kMaxNameBytes) {
      return Error(info_at, field, absl::StrCat("name of ", t.name.size(), " bytes exceeds ggml's limit of ", kMaxNameBytes));
    }
    if (f.tensor_index_.contains(t.name)) {
      return Error(info_at, field, absl::StrCat("duplicate tensor name '", Printable(t.name), "'"));
    }
    field = absl::StrCat("tensor '", Printable(t.name), "'");
    const uint64_t dims_at = cur.pos();
    uint32_t n_dims = 0;
    if (auto s = cur.Read(field + " n_dims", &n_dims); !s.ok()) return s;
    if (n_dims == 0 || n_dims > kMaxDims) {
      return Error(dims_at, field + " n_dims", absl::StrCat("n_dims is ", n_dims, ", must be 1..4"));
    }
    t.n_dims = static_cast<int>(n_dims);
    const uint64_t ne0_at = cur.pos();
    uint64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne_at = cur.pos();
      const std::string ne_field = absl::StrCat(field, " ne[", d, "]");
      int64_t ne = 0;
      if (auto s = cur.Read(ne_field, &ne); !s.ok()) return s;
      if (ne <= 0) return Error(ne_at, ne_field, absl::StrCat("dimension is ", ne, ", must be positive"));
      if (!CheckedMul(elements, static_cast<uint64_t>(ne), &elements) ||
          elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(ne_at, ne_field, "element count overflows int64");
      }
      t.ne[d] = ne;
    }
    const uint64_t type_at = cur.pos();
    uint32_t raw_type = 0;
    if (auto s = cur.Read(field + " type", &raw_type); !s.ok()) return s;
    const auto traits = GetTypeTraits(raw_type);
    if (!traits) {
      return Error(type_at, field + " type",
                   absl::StrCat("ggml type ", raw_type, " (", GgmlTypeName(raw_type),
                                ") is not supported; supported: F32, F16, BF16, Q8_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, MXFP4"));
    }
    t.type = static_cast<GgmlType>(raw_type);
    if (t.ne[0] % traits->block_elems != 0) {
      return Error(ne0_at, field + " ne[0]",
                   absl::StrCat("ne[0] = ", t.ne[0], " is not a multiple of the ", traits->name, " block size ",
                                traits->block_elems));
    }
    // Kept within int64 so callers may use signed sizes and pointer differences.
    const uint64_t blocks = elements / static_cast<uint64_t>(traits->block_elems);
    if (!CheckedMul(blocks, static_cast<uint64_t>(traits->block_bytes), &t.nbytes) ||
        t.nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error(ne0_at, field + " shape",
                   absl::StrCat("byte size of ", elements, " ", traits->name, " elements overflows int64"));
    }
    const uint64_t off_at = cur.pos();
    if (auto s = cur.Read(field + " offset", &t.offset); !s.ok()) return s;
    if (t.offset % f.alignment_ != 0) {
      return Error(off_at, field + " offset",
                   absl::StrCat("data offset ", t.offset, " is not a multiple of the alignment ", f.alignment_));
    }
    f.tensor_index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
    offset_field_at.push_back(off_at);
  }

  const uint64_t header_end = cur.pos();
  f.data_offset_ = (header_end + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  if (f.data_offset_ > file_size && !f.tensors_.empty()) {
    return Error(header_end, "data section",
                 absl::StrCat("the file ends before the data section starts at byte ", f.data_offset_,
                              "; the file is truncated"));
  }
  const uint64_t data_size = file_size >= f.data_offset_ ? file_size - f.data_offset_ : 0;

  // Bounds, then overlap: sort by offset and require each tensor to end before
  // the next starts. Errors point at the tensor info's offset field (an absolute
  // data address could overflow for a hostile offset).
  for (size_t i = 0; i < f.tensors_.size(); ++i) {
    TensorInfo& t = f.tensors_[i];
    const std::string field = absl::StrCat("tensor '", Printable(t.name), "'");
    if (t.offset > data_size) {
      return Error(offset_field_at[i], field + " offset",
                   absl::StrCat("data offset ", t.offset, " is past the end of the data section (", data_size,
                                " bytes); the file is truncated or the tensor info is corrupt"));
    }
    if (t.nbytes > data_size - t.offset) {
      return Error(offset_field_at[i], field + " data",
                   absl::StrCat("needs ", t.nbytes, " bytes at data offset ", t.offset, " but the data section holds ",
                                data_size, " bytes; the file is truncated or the tensor info is corrupt"));
    }
    t.data = data_base + f.data_offset_ + t.offset;
  }
  std::vector<size_t> order(f.tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // Ties keep info order, so the later of two tensors at one offset is blamed.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return f.tensors_[a].offset < f.tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const TensorInfo& prev = f.tensors_[order[k - 1]];
    const TensorInfo& t = f.tensors_[order[k]];
    // Both ranges are inside the data section, so these sums cannot overflow.
    if (prev.offset + prev.nbytes > t.offset) {
      return Error(offset_field_at[order[k]], absl::StrCat("tensor '", Printable(t.name), "' offset"),
                   absl::StrCat("data [", t.offset, ", ", t.offset + t.nbytes, ") overlaps tensor '",
                                Printable(prev.name), "' data [", prev.offset, ", ", prev.offset + prev.nbytes, ")"));
    }
  }
  return f;
}

const MetadataValue* GgufFile::FindKey(absl::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* GgufFile::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<std::string> GgufFile::GetString(absl::string_view key) const {
  const MetadataValue* v = FindKey(key);
  if (!v) return absl::NotFoundError(absl::StrCat("GGUF metadata key '", key, "' is missing"));
  if (v->type != ValueType::kString) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF metadata key '", key, "' must be a string, found ", ValueTypeName(v->type)));
  }
  return v->str;
}

absl::StatusOr<uint64_t> GgufFile::GetUint(absl::string_view key) const {
  const MetadataValue* v = FindKey(key);
  if (!v) return absl::NotFoundError(absl::StrCat("GGUF metadata key '", key, "' is missing"));
  if (!v->is_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF metadata key '", key, "' must be an integer, found ", ValueTypeName(v->type)));
  }
  if (v->type != ValueType::kUint64 && v->integer < 0) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF metadata key '", key, "' is negative (", v->integer, ")"));
  }
  return v->uint_value();
}

absl::StatusOr<double> GgufFile::GetFloat(absl::string_view key) const {
  const MetadataValue* v = FindKey(key);
  if (!v) return absl::NotFoundError(absl::StrCat("GGUF metadata key '", key, "' is missing"));
  if (v->is_float()) return v->real;
  if (v->type == ValueType::kUint64) return static_cast<double>(v->uint_value());
  if (v->is_integer()) return static_cast<double>(v->integer);
  return absl::InvalidArgumentError(
      absl::StrCat("GGUF metadata key '", key, "' must be a number, found ", ValueTypeName(v->type)));
}

absl::StatusOr<const std::vector<std::string>*> GgufFile::GetStringArray(absl::string_view key) const {
  const MetadataValue* v = FindKey(key);
  if (!v) return absl::NotFoundError(absl::StrCat("GGUF metadata key '", key, "' is missing"));
  if (v->type != ValueType::kArray || v->array_type != ValueType::kString) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF metadata key '", key, "' must be an array of strings"));
  }
  return &v->str_array;
}

absl::StatusOr<const std::vector<int64_t>*> GgufFile::GetIntArray(absl::string_view key) const {
  const MetadataValue* v = FindKey(key);
  if (!v) return absl::NotFoundError(absl::StrCat("GGUF metadata key '", key, "' is missing"));
  if (v->type != ValueType::kArray || v->array_type == ValueType::kString || v->array_type == ValueType::kFloat32 ||
      v->array_type == ValueType::kFloat64 || v->array_type == ValueType::kBool) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF metadata key '", key, "' must be an array of integers"));
  }
  return &v->int_array;
}

}  // namespace ossgate::gguf
