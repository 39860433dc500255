// Test-side GGUF assembly, written independently of gguf_writer.cc: an
// explicit little-endian byte encoder, a file description (FileSpec) that can
// be bent into any malformed shape, and a Layout that records where every
// field landed so tests can assert the byte offsets the reader reports.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/gguf/gguf.h"

namespace ossgate::gguf::testing {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian uint32

// ggml type ids, spelled out here rather than taken from GgmlType so the test
// table is an independent statement of the format (spec §1).
inline constexpr uint32_t kTypeF32 = 0, kTypeF16 = 1, kTypeQ4_0 = 2, kTypeQ5_0 = 6, kTypeQ5_1 = 7, kTypeQ8_0 = 8,
                          kTypeQ3_K = 11, kTypeQ4_K = 12, kTypeQ5_K = 13, kTypeQ6_K = 14, kTypeBF16 = 30,
                          kTypeMXFP4 = 39;

// Bytes of a tensor of `type` and shape `ne` per spec §1, or 0 for a type the
// table does not know.
uint64_t SpecTensorBytes(uint32_t type, const std::vector<int64_t>& ne);

// Little-endian encoder, byte by byte (no memcpy of host integers).
class ByteWriter {
 public:
  void U8(uint8_t v) { b_.push_back(v); }
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void I64(int64_t v) { Le(static_cast<uint64_t>(v), 8); }
  void F32(float v);
  void F64(double v);
  void Str(std::string_view s);  // uint64 length + bytes
  void Raw(std::span<const uint8_t> bytes) {
    for (uint8_t x : bytes) b_.push_back(x);
  }
  size_t size() const { return b_.size(); }
  std::vector<uint8_t>& bytes() { return b_; }

 private:
  void Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> b_;
};

// Encoded metadata values: the uint32 type id followed by the payload.
namespace enc {
std::vector<uint8_t> U8(uint8_t v);
std::vector<uint8_t> I8(int8_t v);
std::vector<uint8_t> U16(uint16_t v);
std::vector<uint8_t> I16(int16_t v);
std::vector<uint8_t> U32(uint32_t v);
std::vector<uint8_t> I32(int32_t v);
std::vector<uint8_t> F32(float v);
std::vector<uint8_t> Bool(uint8_t raw);  // raw byte, so 2 can be written
std::vector<uint8_t> Str(std::string_view s);
std::vector<uint8_t> U64(uint64_t v);
std::vector<uint8_t> I64(int64_t v);
std::vector<uint8_t> F64(double v);
// ARRAY header (element type, count) followed by already-encoded elements.
std::vector<uint8_t> Array(uint32_t elem_type, uint64_t count, std::span<const uint8_t> elements);
std::vector<uint8_t> StrArray(const std::vector<std::string>& v);
std::vector<uint8_t> U32Array(const std::vector<uint32_t>& v);
// Type id alone with an arbitrary payload (unknown types, truncated values).
std::vector<uint8_t> Raw(uint32_t type, std::span<const uint8_t> payload);
}  // namespace enc

struct KvSpec {
  std::string key;
  std::vector<uint8_t> value;  // type id + payload
};

struct TensorSpec {
  std::string name;
  uint32_t type = kTypeF32;
  std::vector<int64_t> ne;  // written as n_dims = ne.size() dims
  uint64_t offset = 0;
  std::optional<uint32_t> n_dims;  // override the n_dims field (the dims written stay ne)
};

// A whole file. Build() writes it exactly as given; nothing is validated.
struct FileSpec {
  uint32_t magic = kGgufMagic;
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count;  // default: tensors.size()
  std::optional<uint64_t> kv_count;      // default: kv.size()
  std::vector<KvSpec> kv;
  std::vector<TensorSpec> tensors;
  uint64_t alignment = 32;  // padding before the data section
  // Length of the data section; default: up to the end of the furthest tensor,
  // rounded up to the alignment (what GgufWriter produces).
  std::optional<uint64_t> data_bytes;

  // Appends a tensor at the next aligned offset after the previous one.
  void AddTensor(std::string name, uint32_t type, std::vector<int64_t> ne);
};

struct Layout {
  std::vector<uint8_t> bytes;
  std::vector<uint64_t> key_at;    // key i: its length field
  std::vector<uint64_t> value_at;  // key i: its value's type id
  std::vector<uint64_t> info_at;   // tensor i: its name's length field
  std::vector<uint64_t> ndims_at, ne_at, type_at, offset_at;  // tensor i fields (ne_at = ne[0])
  uint64_t header_end = 0;  // first byte after the last tensor info
  uint64_t data_start = 0;  // header_end rounded up to the alignment
};

// Data bytes are a fixed pattern (DataByte) so tests can check pointers.
Layout Build(const FileSpec& spec);
inline uint8_t DataByte(uint64_t data_offset) { return static_cast<uint8_t>(data_offset * 131 + 7); }

// The valid base file of the malformed corpus: three keys (string, uint32,
// string array) and an F32, a Q8_0 and an MXFP4 tensor.
FileSpec BaseSpec();

// A heap copy of exactly the given bytes, so ASan flags any read past the end.
class ExactBuffer {
 public:
  explicit ExactBuffer(std::span<const uint8_t> bytes);
  std::span<const uint8_t> span() const { return {data_.get(), size_}; }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t size_;
};

// Writes `writer` to a temporary file (feeding each declared tensor `data`
// in order), reads it back and deletes it.
absl::StatusOr<std::vector<uint8_t>> WriteToBytes(GgufWriter& writer,
                                                  const std::vector<std::vector<uint8_t>>& tensor_data);

// Offset reported by a reader error ("... at byte offset N: ..."), if any.
std::optional<uint64_t> ReportedOffset(std::string_view message);

}  // namespace ossgate::gguf::testing
