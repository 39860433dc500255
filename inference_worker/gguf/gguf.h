// GGUF container: a reader that treats the bytes as hostile, and a streaming
// writer used by the project's model generator and trainer.
//
// Format: docs/gguf.md of ggml and §1 of docs/gpt-oss-spec.md. Versions 2 and
// 3 are read (they differ only in what v1 had, which is rejected).
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <span>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "inference_worker/gguf/ggml_types.h"

namespace ossgate::gguf {

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
const char* ValueTypeName(ValueType type);

// One metadata value. Scalars of integer type (and bool) live in `integer`
// (uint64 values above INT64_MAX are kept bit-cast; use `uint_value()`),
// floats in `real`, strings in `str`. Arrays keep their element type and one
// of the vectors below; arrays of arrays are rejected by the reader.
struct MetadataValue {
  ValueType type = ValueType::kUint8;
  ValueType array_type = ValueType::kUint8;  // valid when type == kArray
  int64_t integer = 0;
  double real = 0.0;
  std::string str;
  std::vector<int64_t> int_array;     // integer or bool elements
  std::vector<double> real_array;     // float elements
  std::vector<std::string> str_array;  // string elements

  bool is_integer() const;
  bool is_float() const { return type == ValueType::kFloat32 || type == ValueType::kFloat64; }
  uint64_t uint_value() const { return static_cast<uint64_t>(integer); }
  size_t array_size() const;
};

struct TensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  int n_dims = 0;
  std::array<int64_t, 4> ne = {1, 1, 1, 1};  // ne[0] is contiguous
  uint64_t offset = 0;                        // relative to the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // points into the parsed bytes

  int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  uint64_t row_bytes() const { return nbytes / static_cast<uint64_t>(rows()); }
  std::string ShapeString() const;
};

// Limits that keep a hostile header from making the reader allocate without
// bound. The defaults admit the real gpt-oss files with a wide margin.
struct ReaderLimits {
  uint64_t max_tensors = 1u << 16;
  uint64_t max_kv = 1u << 16;
  uint64_t max_string_bytes = 1u << 20;       // one string
  uint64_t max_array_elements = 1u << 24;     // one array
  uint64_t max_key_bytes = 1u << 16;          // one key (and the length field of a tensor name)
  // Everything the metadata decodes into, together: key bytes, string bytes
  // and the storage of every array (8 bytes per number, sizeof(std::string)
  // per string element), charged before it is allocated.
  uint64_t max_metadata_bytes = 1ull << 31;
};

// A parsed GGUF file. It does not own the bytes: every TensorInfo::data points
// into the span given to Parse, which must outlive this object. Immutable
// after Parse, so it is safe to share between threads.
class GgufFile {
 public:
  // Validates and indexes `bytes`. On any defect returns InvalidArgument
  // naming the field, the byte offset and the problem.
  static absl::StatusOr<GgufFile> Parse(std::span<const uint8_t> bytes, const ReaderLimits& limits = {});
  // The same checks from the first bytes of a file of `file_size` bytes whose
  // data section starts at data_base + data_offset() (data_base may be device
  // memory: it is never dereferenced here; TensorInfo::data points there).
  // OutOfRange when the header runs past `prefix`: call again with more.
  static absl::StatusOr<GgufFile> ParseHeader(std::span<const uint8_t> prefix, uint64_t file_size,
                                              const uint8_t* data_base, const ReaderLimits& limits = {});

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return file_size_; }

  const std::vector<std::pair<std::string, MetadataValue>>& metadata() const { return kv_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }

  const MetadataValue* FindKey(absl::string_view key) const;
  const TensorInfo* FindTensor(absl::string_view name) const;

  // Typed getters: NotFound when absent, InvalidArgument when the stored type
  // does not fit. GetUint accepts any integer type (not bool) with a value >= 0;
  // GetFloat any float or integer type; GetIntArray arrays of any integer
  // element type (not bool; uint64 elements above INT64_MAX stay bit-cast).
  absl::StatusOr<std::string> GetString(absl::string_view key) const;
  absl::StatusOr<uint64_t> GetUint(absl::string_view key) const;
  absl::StatusOr<double> GetFloat(absl::string_view key) const;  // any float or integer type
  absl::StatusOr<const std::vector<std::string>*> GetStringArray(absl::string_view key) const;
  absl::StatusOr<const std::vector<int64_t>*> GetIntArray(absl::string_view key) const;

 private:
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  uint64_t file_size_ = 0;
  std::vector<std::pair<std::string, MetadataValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Streaming GGUF v3 writer. Usage: add every metadata key and every tensor
// info (name, type, shape), then call Begin() which writes the header, then
// write each tensor's bytes in the order the infos were added (in as many
// WriteTensorData calls as convenient), then Finish(). Tensor data never has
// to be in memory all at once, so a 12 GB file streams through a small buffer.
// Setting a key that is already set replaces its value (keys stay in the order
// they were first set). Everything the writer accepts, GgufFile::Parse accepts
// (sizes beyond the default ReaderLimits aside).
// Not thread-safe.
class GgufWriter {
 public:
  // `alignment` must be a power of two in [8, 65536] (what the reader
  // accepts); otherwise AddTensor and Begin return InvalidArgument. Anything
  // other than 32 is recorded as general.alignment.
  explicit GgufWriter(uint64_t alignment = 32) : alignment_(alignment) {}

  void SetUint32(std::string key, uint32_t v);
  void SetInt32(std::string key, int32_t v);
  void SetUint64(std::string key, uint64_t v);
  void SetFloat32(std::string key, float v);
  void SetBool(std::string key, bool v);
  void SetString(std::string key, std::string v);
  void SetStringArray(std::string key, std::vector<std::string> v);
  void SetInt32Array(std::string key, std::vector<int32_t> v);
  void SetFloat32Array(std::string key, std::vector<float> v);
  // Sets any value in the form GgufFile::Parse returns it (scalar of any type
  // or array of any non-array element type), e.g. to copy metadata between
  // files. InvalidArgument when an integer or float does not fit its declared
  // type, a bool is not 0/1, the element type is kArray, or (for an array) a
  // vector other than the one for its element type is non-empty.
  absl::Status SetValue(std::string key, const MetadataValue& value);

  // Declares a tensor; ne[0] is contiguous and must be a multiple of the
  // type's block size. The name must be 1..63 bytes and unique. Returns its
  // byte size.
  absl::StatusOr<uint64_t> AddTensor(std::string name, GgmlType type, std::vector<int64_t> ne);

  // Opens `path` and writes the header and tensor infos. InvalidArgument for
  // a bad alignment, an empty key, or a general.alignment key that is not the
  // uint32 alignment given to the constructor.
  absl::Status Begin(const std::string& path);
  // Appends bytes of the current tensor; moves to the next tensor when full.
  absl::Status WriteTensorData(std::span<const uint8_t> bytes);
  // Checks every tensor was completely written, flushes and closes.
  absl::Status Finish();

  ~GgufWriter();

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    uint64_t nbytes;
    uint64_t offset;
  };
  void SetEncoded(std::string key, std::vector<uint8_t> value);
  absl::Status CheckAlignment() const;
  absl::Status WriteRaw(const void* p, size_t n);
  absl::Status PadTo(uint64_t multiple);

  uint64_t alignment_;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> kv_;  // key -> encoded type+value
  std::vector<PendingTensor> tensors_;
  uint64_t data_size_ = 0;
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
  size_t current_ = 0;
  uint64_t current_written_ = 0;
};

}  // namespace ossgate::gguf
