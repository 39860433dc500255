// Corpus of malformed GGUF files. Each case starts from a valid file (the base
// file of gguf_test_util.h, byte-identical in its header to GgufWriter output;
// see gguf_reader_test.cc) or a small single-key / single-tensor file, breaks
// one thing, and names the field and problem the reader must report and, when
// it is meaningful, the byte offset of the offending field.
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "tests/gguf/gguf_test_util.h"

namespace ossgate::gguf::testing {
namespace {

using OffsetFn = std::function<std::optional<uint64_t>(const Layout&)>;

struct MalformedCase {
  std::string name;
  std::function<FileSpec()> make = BaseSpec;   // the file before the breakage
  std::function<void(FileSpec&)> edit_spec;    // breaks the description (optional)
  std::function<void(Layout&)> edit_bytes;     // breaks the bytes after Build (optional)
  std::string field;                           // message fragment naming the field
  std::string problem;                         // message fragment naming the problem
  OffsetFn offset;                             // expected reported offset (null: not checked)
  ReaderLimits limits = {};
};

OffsetFn At(uint64_t v) {
  return [v](const Layout&) { return v; };
}

FileSpec OneKv(std::string key, std::vector<uint8_t> value) {
  FileSpec s;
  s.kv.push_back({std::move(key), std::move(value)});
  return s;
}

FileSpec OneTensor(std::string name, uint32_t type, std::vector<int64_t> ne) {
  FileSpec s;
  s.AddTensor(std::move(name), type, std::move(ne));
  return s;
}

// A Q4_K tensor (2 rows of one super-block: 288 bytes) and a Q6_K one (2 rows:
// 420 bytes, at offset 288, already 32-aligned).
FileSpec KQuantSpec() {
  FileSpec s;
  s.AddTensor("q4k.weight", kTypeQ4_K, {256, 2});
  s.AddTensor("q6k.weight", kTypeQ6_K, {256, 2});
  return s;
}

// Q5_0 (2 rows of one block: 44 bytes), Q5_1 (1 row of two blocks: 48 bytes,
// at offset 64) and Q5_K (2 rows of one super-block: 352 bytes, at offset 128).
FileSpec Q5Spec() {
  FileSpec s;
  s.AddTensor("q5_0.weight", kTypeQ5_0, {32, 2});
  s.AddTensor("q5_1.weight", kTypeQ5_1, {64, 1});
  s.AddTensor("q5k.weight", kTypeQ5_K, {256, 2});
  return s;
}

void Truncate(Layout& l, uint64_t n) { l.bytes.resize(n); }

// Overwrites 8 bytes little-endian at `at`.
void PutU64(Layout& l, uint64_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) l.bytes.at(at + i) = static_cast<uint8_t>(v >> (8 * i));
}

std::vector<uint8_t> U64Bytes(uint64_t v) {
  ByteWriter w;
  w.U64(v);
  return w.bytes();
}

// Cases leave out the members they don't need; GCC 12 warns about every
// member omitted from a designated initializer, which is exactly the intent here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
std::vector<MalformedCase> Cases() {
  const std::string long_key(100, 'k');
  const std::string long_name(60, 'n');
  std::vector<MalformedCase> c;

  // --- Header -------------------------------------------------------------
  c.push_back({.name = "BadMagic", .edit_spec = [](FileSpec& s) { s.magic = 0x46554748; },
               .field = "magic", .problem = "found 0x46554748; this is not a GGUF file", .offset = At(0)});
  c.push_back({.name = "TruncatedInMagic", .edit_bytes = [](Layout& l) { Truncate(l, 3); },
               .field = "magic", .problem = "file ends after 3 of 4 bytes", .offset = At(0)});
  c.push_back({.name = "VersionOne", .edit_spec = [](FileSpec& s) { s.version = 1; },
               .field = "version", .problem = "unsupported version 1; expected 2 or 3 (GGUF v1 is obsolete",
               .offset = At(4)});
  c.push_back({.name = "VersionByteSwapped", .edit_spec = [](FileSpec& s) { s.version = 0x03000000; },
               .field = "version", .problem = "unsupported version 50331648; expected 2 or 3 (looks byte-swapped",
               .offset = At(4)});
  c.push_back({.name = "VersionFour", .edit_spec = [](FileSpec& s) { s.version = 4; },
               .field = "version", .problem = "unsupported version 4; expected 2 or 3", .offset = At(4)});
  c.push_back({.name = "VersionZero", .edit_spec = [](FileSpec& s) { s.version = 0; },
               .field = "version", .problem = "unsupported version 0; expected 2 or 3", .offset = At(4)});
  c.push_back({.name = "TruncatedInVersion", .edit_bytes = [](Layout& l) { Truncate(l, 6); },
               .field = "version", .problem = "file ends after 2 of 4 bytes", .offset = At(4)});
  c.push_back({.name = "TruncatedInTensorCount", .edit_bytes = [](Layout& l) { Truncate(l, 12); },
               .field = "tensor_count", .problem = "file ends after 4 of 8 bytes", .offset = At(8)});
  c.push_back({.name = "TruncatedInKvCount", .edit_bytes = [](Layout& l) { Truncate(l, 17); },
               .field = "kv_count", .problem = "file ends after 1 of 8 bytes", .offset = At(16)});
  c.push_back({.name = "HugeTensorCount", .edit_spec = [](FileSpec& s) { s.tensor_count = 1ull << 40; },
               .field = "tensor_count", .problem = "1099511627776 tensors exceeds the limit of 65536",
               .offset = At(8)});
  c.push_back({.name = "HugeKvCount",
               .edit_spec = [](FileSpec& s) { s.kv_count = std::numeric_limits<uint64_t>::max(); },
               .field = "kv_count", .problem = "18446744073709551615 keys exceeds the limit of 65536",
               .offset = At(16)});
  c.push_back({.name = "CountsCannotFitInFile", .edit_spec = [](FileSpec& s) { s.kv_count = 60000; },
               .field = "tensor_count/kv_count", .problem = "3 tensors and 60000 keys cannot fit",
               .offset = At(8)});
  // Counts at the limits must not overflow the size estimate (limits raised by the caller).
  c.push_back({.name = "CountsOverflowSizeEstimate",
               // 2^61 tensor infos of >= 24 bytes wrap a 64-bit size estimate to 0.
               .edit_spec =
                   [](FileSpec& s) {
                     s.kv_count = 0;
                     s.tensor_count = 1ull << 61;
                   },
               .field = "tensor_count/kv_count", .problem = "2305843009213693952 tensors and 0 keys cannot fit",
               .offset = At(8),
               .limits = {.max_tensors = ~0ull, .max_kv = ~0ull}});

  // --- Keys -----------------------------------------------------------------
  c.push_back({.name = "TruncatedInKey", .make = [=] { return OneKv(long_key, enc::U32(1)); },
               .edit_bytes = [](Layout& l) { Truncate(l, l.key_at[0] + 8 + 50); },
               .field = "key #0", .problem = "string length 100 runs past the end of the file (50 bytes left)",
               .offset = [](const Layout& l) { return l.key_at[0]; }});
  c.push_back({.name = "TruncatedInKeyLength",
               .make =
                   [] {
                     FileSpec s = OneKv("k", enc::Str(std::string(100, 'v')));
                     s.kv.push_back({"k2", enc::U32(1)});
                     return s;
                   },
               .edit_bytes = [](Layout& l) { Truncate(l, l.key_at[1] + 5); },
               .field = "key #1", .problem = "file ends after 5 of 8 bytes",
               .offset = [](const Layout& l) { return l.key_at[1]; }});
  c.push_back({.name = "EmptyKey", .edit_spec = [](FileSpec& s) { s.kv[1].key = ""; },
               .field = "key #1", .problem = "empty key", .offset = [](const Layout& l) { return l.key_at[1]; }});
  c.push_back({.name = "KeyLongerThanLimit",
               .field = "key #0", .problem = "string length 20 exceeds the limit of 16 bytes",
               .offset = [](const Layout& l) { return l.key_at[0]; }, .limits = {.max_key_bytes = 16}});
  c.push_back({.name = "HugeKeyLength",
               .edit_bytes = [](Layout& l) { PutU64(l, l.key_at[2], 1ull << 63); },
               .field = "key #2", .problem = "string length 9223372036854775808 exceeds the limit of 65536 bytes",
               .offset = [](const Layout& l) { return l.key_at[2]; }});
  c.push_back({.name = "DuplicateKey",
               .edit_spec = [](FileSpec& s) { s.kv.push_back({"gpt-oss.block_count", enc::U32(36)}); },
               .field = "key #3", .problem = "duplicate key 'gpt-oss.block_count'",
               .offset = [](const Layout& l) { return l.key_at[3]; }});

  // --- Values ---------------------------------------------------------------
  c.push_back({.name = "TruncatedInValueType", .make = [] { return OneKv("some.key", enc::U32(1)); },
               .edit_bytes = [](Layout& l) { Truncate(l, l.value_at[0] + 2); },
               .field = "value of key 'some.key' (type)", .problem = "file ends after 2 of 4 bytes",
               .offset = [](const Layout& l) { return l.value_at[0]; }});
  c.push_back({.name = "TruncatedInScalarValue", .make = [] { return OneKv("some.key", enc::U64(5)); },
               .edit_bytes = [](Layout& l) { Truncate(l, l.value_at[0] + 4 + 3); },
               .field = "value of key 'some.key'", .problem = "file ends after 3 of 8 bytes",
               .offset = [](const Layout& l) { return l.value_at[0] + 4; }});
  c.push_back({.name = "TruncatedInStringValue",
               .make = [] { return OneKv("some.key", enc::Str(std::string(200, 'v'))); },
               .edit_bytes = [](Layout& l) { Truncate(l, l.value_at[0] + 4 + 8 + 100); },
               .field = "value of key 'some.key'",
               .problem = "string length 200 runs past the end of the file (100 bytes left)",
               .offset = [](const Layout& l) { return l.value_at[0] + 4; }});
  c.push_back({.name = "UnknownValueType",
               .edit_spec = [](FileSpec& s) { s.kv[1].value = enc::Raw(13, U64Bytes(24)); },
               .field = "value of key 'gpt-oss.block_count'", .problem = "unknown value type id 13",
               .offset = [](const Layout& l) { return l.value_at[1]; }});
  c.push_back({.name = "HugeStringLength",
               .edit_spec = [](FileSpec& s) { s.kv[0].value = enc::Raw(8, U64Bytes(1ull << 62)); },
               .field = "value of key 'general.architecture'",
               .problem = "string length 4611686018427387904 exceeds the limit of 1048576 bytes",
               .offset = [](const Layout& l) { return l.value_at[0] + 4; }});
  c.push_back({.name = "BadBool", .edit_spec = [](FileSpec& s) { s.kv[1].value = enc::Bool(2); },
               .field = "value of key 'gpt-oss.block_count'", .problem = "bool value is 2, expected 0 or 1",
               .offset = [](const Layout& l) { return l.value_at[1] + 4; }});
  c.push_back({.name = "NestedArray",
               .edit_spec =
                   [](FileSpec& s) {
                     const std::vector<uint8_t> inner = enc::U32Array({1, 2});
                     // Element type ARRAY: each element would be (type, count, data) without the outer type id.
                     s.kv[2].value = enc::Array(9, 1, std::span(inner).subspan(4));
                   },
               .field = "value of key 'tokenizer.ggml.tokens'", .problem = "arrays of arrays are not supported",
               .offset = [](const Layout& l) { return l.value_at[2] + 4; }});
  c.push_back({.name = "UnknownArrayElementType",
               .edit_spec = [](FileSpec& s) { s.kv[2].value = enc::Array(77, 1, U64Bytes(0)); },
               .field = "value of key 'tokenizer.ggml.tokens'", .problem = "unknown array element type id 77",
               .offset = [](const Layout& l) { return l.value_at[2] + 4; }});
  c.push_back({.name = "HugeArrayLength",
               .edit_spec = [](FileSpec& s) { s.kv[2].value = enc::Array(0, 1ull << 40, {}); },
               .field = "value of key 'tokenizer.ggml.tokens'",
               .problem = "array length 1099511627776 exceeds the limit of 16777216",
               .offset = [](const Layout& l) { return l.value_at[2] + 8; }});
  c.push_back({.name = "ArrayLongerThanFile",
               .edit_spec = [](FileSpec& s) { s.kv[2].value = enc::Array(10, 100000, U64Bytes(1)); },
               .field = "value of key 'tokenizer.ggml.tokens'",
               .problem = "array of 100000 uint64 elements needs at least 800000 bytes",
               .offset = [](const Layout& l) { return l.value_at[2] + 8; }});
  c.push_back({.name = "TruncatedInNumericArray",
               .make = [] { return OneKv("some.key", enc::U32Array(std::vector<uint32_t>(50, 7))); },
               .edit_bytes = [](Layout& l) { Truncate(l, l.value_at[0] + 16 + 100); },
               .field = "value of key 'some.key'",
               .problem = "array of 50 uint32 elements needs at least 200 bytes but only 100 remain",
               .offset = [](const Layout& l) { return l.value_at[0] + 8; }});
  c.push_back({.name = "TruncatedInStringArray",
               .make = [] { return OneKv("some.key", enc::StrArray(std::vector<std::string>(10, std::string(20, 's')))); },
               .edit_bytes = [](Layout& l) { Truncate(l, l.value_at[0] + 16 + 4 * 28 + 8 + 10); },
               .field = "value of key 'some.key'",
               .problem = "string length 20 runs past the end of the file (10 bytes left)",
               .offset = [](const Layout& l) { return l.value_at[0] + 16 + 4 * 28; }});
  c.push_back({.name = "MetadataOverBudget",
               .field = "key #1", .problem = "decoded metadata exceeds the limit of 40 bytes",
               .offset = [](const Layout& l) { return l.key_at[1]; }, .limits = {.max_metadata_bytes = 40}});
  c.push_back({.name = "ArrayStorageOverBudget",
               .make = [] { return OneKv("k", enc::U32Array(std::vector<uint32_t>(100, 7))); },
               .field = "value of key 'k'", .problem = "decoded metadata exceeds the limit of 500 bytes",
               .offset = [](const Layout& l) { return l.value_at[0] + 8; }, .limits = {.max_metadata_bytes = 500}});

  // --- general.alignment ------------------------------------------------------
  c.push_back({.name = "AlignmentWrongType",
               .edit_spec = [](FileSpec& s) { s.kv.push_back({"general.alignment", enc::U64(64)}); },
               .field = "general.alignment", .problem = "must be uint32, found uint64",
               .offset = [](const Layout& l) { return l.value_at[3]; }});
  c.push_back({.name = "AlignmentNotPowerOfTwo",
               .edit_spec = [](FileSpec& s) { s.kv.push_back({"general.alignment", enc::U32(48)}); },
               .field = "general.alignment", .problem = "value 48 must be a power of two",
               .offset = [](const Layout& l) { return l.value_at[3] + 4; }});
  c.push_back({.name = "AlignmentZero",
               .edit_spec = [](FileSpec& s) { s.kv.push_back({"general.alignment", enc::U32(0)}); },
               .field = "general.alignment", .problem = "value 0 must be a power of two",
               .offset = [](const Layout& l) { return l.value_at[3] + 4; }});
  c.push_back({.name = "AlignmentTooLarge",
               .edit_spec = [](FileSpec& s) { s.kv.push_back({"general.alignment", enc::U32(1u << 31)}); },
               .field = "general.alignment", .problem = "value 2147483648 must be a power of two between 8 and 65536",
               .offset = [](const Layout& l) { return l.value_at[3] + 4; }});
  // A valid custom alignment applies to the offsets: 32-aligned is not 64-aligned.
  c.push_back({.name = "OffsetMisalignedForCustomAlignment",
               .edit_spec =
                   [](FileSpec& s) {
                     s.kv.push_back({"general.alignment", enc::U32(64)});
                     s.alignment = 64;
                     s.tensors[1].offset = 96;
                     s.tensors[2].offset = 256;
                   },
               .field = "tensor 'b.weight' offset", .problem = "data offset 96 is not a multiple of the alignment 64",
               .offset = [](const Layout& l) { return l.offset_at[1]; }});

  // --- Tensor infos -------------------------------------------------------------
  c.push_back({.name = "TruncatedInTensorName", .make = [=] { return OneTensor(long_name, kTypeF32, {32}); },
               .edit_bytes = [](Layout& l) { Truncate(l, l.info_at[0] + 8 + 30); },
               .field = "tensor #0 name", .problem = "string length 60 runs past the end of the file (30 bytes left)",
               .offset = [](const Layout& l) { return l.info_at[0]; }});
  c.push_back({.name = "TruncatedInTensorDims",
               .make = [=] { return OneTensor(long_name, kTypeF32, {32, 2, 2, 2}); },
               .edit_bytes = [](Layout& l) { Truncate(l, l.ne_at[0] + 16 + 3); },
               .field = "ne[2]", .problem = "file ends after 3 of 8 bytes",
               .offset = [](const Layout& l) { return l.ne_at[0] + 16; }});
  c.push_back({.name = "TruncatedInTensorType", .make = [=] { return OneTensor(long_name, kTypeF32, {32, 2}); },
               .edit_bytes = [](Layout& l) { Truncate(l, l.type_at[0] + 1); },
               .field = "type", .problem = "file ends after 1 of 4 bytes",
               .offset = [](const Layout& l) { return l.type_at[0]; }});
  c.push_back({.name = "TruncatedInTensorOffset", .make = [=] { return OneTensor(long_name, kTypeF32, {32, 2}); },
               .edit_bytes = [](Layout& l) { Truncate(l, l.offset_at[0] + 5); },
               .field = "offset", .problem = "file ends after 5 of 8 bytes",
               .offset = [](const Layout& l) { return l.offset_at[0]; }});
  c.push_back({.name = "EmptyTensorName", .edit_spec = [](FileSpec& s) { s.tensors[1].name = ""; },
               .field = "tensor #1 name", .problem = "empty tensor name",
               .offset = [](const Layout& l) { return l.info_at[1]; }});
  c.push_back({.name = "TensorNameTooLong", .edit_spec = [](FileSpec& s) { s.tensors[1].name = std::string(64, 'x'); },
               .field = "tensor #1 name", .problem = "name of 64 bytes exceeds ggml's limit of 63",
               .offset = [](const Layout& l) { return l.info_at[1]; }});
  c.push_back({.name = "DuplicateTensorName", .edit_spec = [](FileSpec& s) { s.tensors[2].name = "a.weight"; },
               .field = "tensor #2 name", .problem = "duplicate tensor name 'a.weight'",
               .offset = [](const Layout& l) { return l.info_at[2]; }});
  c.push_back({.name = "NDimsZero", .edit_spec = [](FileSpec& s) { s.tensors[0].n_dims = 0; },
               .field = "tensor 'a.weight' n_dims", .problem = "n_dims is 0, must be 1..4",
               .offset = [](const Layout& l) { return l.ndims_at[0]; }});
  c.push_back({.name = "NDimsFive", .edit_spec = [](FileSpec& s) { s.tensors[0].ne = {8, 2, 1, 1, 1}; },
               .field = "tensor 'a.weight' n_dims", .problem = "n_dims is 5, must be 1..4",
               .offset = [](const Layout& l) { return l.ndims_at[0]; }});
  c.push_back({.name = "NDimsHuge", .edit_spec = [](FileSpec& s) { s.tensors[0].n_dims = 0xFFFFFFFFu; },
               .field = "tensor 'a.weight' n_dims", .problem = "n_dims is 4294967295, must be 1..4",
               .offset = [](const Layout& l) { return l.ndims_at[0]; }});
  c.push_back({.name = "DimZero", .edit_spec = [](FileSpec& s) { s.tensors[0].ne = {8, 0}; },
               .field = "tensor 'a.weight' ne[1]", .problem = "dimension is 0, must be positive",
               .offset = [](const Layout& l) { return l.ne_at[0] + 8; }});
  c.push_back({.name = "DimNegative", .edit_spec = [](FileSpec& s) { s.tensors[0].ne = {-8, 2}; },
               .field = "tensor 'a.weight' ne[0]", .problem = "dimension is -8, must be positive",
               .offset = [](const Layout& l) { return l.ne_at[0]; }});
  c.push_back({.name = "ElementCountOverflow",
               .edit_spec = [](FileSpec& s) { s.tensors[0].ne = {32, 1ll << 31, 1ll << 31, 4}; },
               .field = "tensor 'a.weight' ne[2]", .problem = "element count overflows int64",
               .offset = [](const Layout& l) { return l.ne_at[0] + 16; }});
  c.push_back({.name = "ElementCountOverflowsInt64Only",
               .edit_spec = [](FileSpec& s) { s.tensors[0].ne = {1ll << 32, 1ll << 31}; },
               .field = "tensor 'a.weight' ne[1]", .problem = "element count overflows int64",
               .offset = [](const Layout& l) { return l.ne_at[0] + 8; }});
  c.push_back({.name = "ByteCountOverflow",
               .edit_spec = [](FileSpec& s) { s.tensors[0].ne = {1ll << 62}; },
               .field = "tensor 'a.weight' shape",
               .problem = "byte size of 4611686018427387904 F32 elements overflows int64",
               .offset = [](const Layout& l) { return l.ne_at[0]; }});
  c.push_back({.name = "UnknownGgmlType", .edit_spec = [](FileSpec& s) { s.tensors[1].type = 999; },
               .field = "tensor 'b.weight' type", .problem = "ggml type 999 (unknown) is not supported",
               .offset = [](const Layout& l) { return l.type_at[1]; }});
  c.push_back({.name = "UnsupportedGgmlTypeQ4_0", .edit_spec = [](FileSpec& s) { s.tensors[1].type = kTypeQ4_0; },
               .field = "tensor 'b.weight' type", .problem = "ggml type 2 (Q4_0) is not supported",
               .offset = [](const Layout& l) { return l.type_at[1]; }});
  c.push_back({.name = "Q8_0RowNotBlockMultiple", .edit_spec = [](FileSpec& s) { s.tensors[1].ne = {48, 2}; },
               .field = "tensor 'b.weight' ne[0]", .problem = "ne[0] = 48 is not a multiple of the Q8_0 block size 32",
               .offset = [](const Layout& l) { return l.ne_at[1]; }});
  c.push_back({.name = "UnsupportedGgmlTypeQ3_K", .edit_spec = [](FileSpec& s) { s.tensors[1].type = kTypeQ3_K; },
               .field = "tensor 'b.weight' type",
               .problem = "ggml type 11 (Q3_K) is not supported; supported: F32, F16, BF16, Q8_0, Q5_0, Q5_1, Q4_K, "
                          "Q5_K, Q6_K, MXFP4",
               .offset = [](const Layout& l) { return l.type_at[1]; }});
  // A k-quant row must hold whole super-blocks of 256: 96 is three Q8_0
  // blocks but not a Q4_K one.
  c.push_back({.name = "Q4_KRowNotBlockMultiple", .make = [] { return KQuantSpec(); },
               .edit_spec = [](FileSpec& s) { s.tensors[0].ne = {96, 2}; },
               .field = "tensor 'q4k.weight' ne[0]",
               .problem = "ne[0] = 96 is not a multiple of the Q4_K block size 256",
               .offset = [](const Layout& l) { return l.ne_at[0]; }});
  c.push_back({.name = "Q6_KRowNotBlockMultiple", .make = [] { return KQuantSpec(); },
               .edit_spec = [](FileSpec& s) { s.tensors[1].ne = {384, 1}; },
               .field = "tensor 'q6k.weight' ne[0]",
               .problem = "ne[0] = 384 is not a multiple of the Q6_K block size 256",
               .offset = [](const Layout& l) { return l.ne_at[1]; }});
  // The data section one byte short of the last Q6_K block (420 bytes:
  // 2 rows x 210).
  c.push_back({.name = "Q6_KTensorOneByteShort", .make = [] { return KQuantSpec(); },
               .edit_spec = [](FileSpec& s) { s.data_bytes = s.tensors[1].offset + 419; },
               .field = "tensor 'q6k.weight' data",
               .problem = "needs 420 bytes at data offset 288 but the data section holds 707 bytes",
               .offset = [](const Layout& l) { return l.offset_at[1]; }});
  c.push_back({.name = "Q5_0RowNotBlockMultiple", .make = [] { return Q5Spec(); },
               .edit_spec = [](FileSpec& s) { s.tensors[0].ne = {48, 1}; },
               .field = "tensor 'q5_0.weight' ne[0]",
               .problem = "ne[0] = 48 is not a multiple of the Q5_0 block size 32",
               .offset = [](const Layout& l) { return l.ne_at[0]; }});
  c.push_back({.name = "Q5_KRowNotBlockMultiple", .make = [] { return Q5Spec(); },
               .edit_spec = [](FileSpec& s) { s.tensors[2].ne = {96, 1}; },
               .field = "tensor 'q5k.weight' ne[0]",
               .problem = "ne[0] = 96 is not a multiple of the Q5_K block size 256",
               .offset = [](const Layout& l) { return l.ne_at[2]; }});
  // The data section one byte short of the last Q5_K block (352 bytes: 2
  // rows x 176).
  c.push_back({.name = "Q5_KTensorOneByteShort", .make = [] { return Q5Spec(); },
               .edit_spec = [](FileSpec& s) { s.data_bytes = s.tensors[2].offset + 351; },
               .field = "tensor 'q5k.weight' data",
               .problem = "needs 352 bytes at data offset 128 but the data section holds 479 bytes",
               .offset = [](const Layout& l) { return l.offset_at[2]; }});
  c.push_back({.name = "Mxfp4RowNotBlockMultiple", .edit_spec = [](FileSpec& s) { s.tensors[2].ne = {16, 3}; },
               .field = "tensor 'c.weight' ne[0]",
               .problem = "ne[0] = 16 is not a multiple of the MXFP4 block size 32",
               .offset = [](const Layout& l) { return l.ne_at[2]; }});

  // --- Tensor data placement ------------------------------------------------------
  c.push_back({.name = "MisalignedOffset", .edit_spec = [](FileSpec& s) { s.tensors[1].offset += 16; },
               .field = "tensor 'b.weight' offset", .problem = "data offset 80 is not a multiple of the alignment 32",
               .offset = [](const Layout& l) { return l.offset_at[1]; }});
  c.push_back({.name = "OffsetPastEnd", .edit_spec =
                   [](FileSpec& s) {
                     s.tensors[2].offset = 1 << 20;
                     s.data_bytes = 288;  // what the unbroken file has
                   },
               .field = "tensor 'c.weight' offset",
               .problem = "data offset 1048576 is past the end of the data section",
               .offset = [](const Layout& l) { return l.offset_at[2]; }});
  c.push_back({.name = "OffsetNearUint64Max",
               .edit_spec = [](FileSpec& s) { s.tensors[2].offset = ~uint64_t{31}; },
               .field = "tensor 'c.weight' offset",
               .problem = "data offset 18446744073709551584 is past the end of the data section",
               .offset = [](const Layout& l) { return l.offset_at[2]; }});
  c.push_back({.name = "TensorRunsPastEnd",
               .edit_spec = [](FileSpec& s) { s.data_bytes = s.tensors[2].offset + 20; },
               .field = "tensor 'c.weight' data",
               .problem = "needs 51 bytes at data offset 224 but the data section holds 244 bytes",
               .offset = [](const Layout& l) { return l.offset_at[2]; }});
  c.push_back({.name = "TruncatedInTensorData",
               .edit_bytes = [](Layout& l) { Truncate(l, l.bytes.size() - 40); },
               .field = "tensor 'c.weight' data", .problem = "the file is truncated",
               .offset = [](const Layout& l) { return l.offset_at[2]; }});
  c.push_back({.name = "TruncatedBeforeDataSection",
               .edit_bytes = [](Layout& l) { Truncate(l, l.header_end); },
               .field = "data section", .problem = "the file ends before the data section starts",
               .offset = [](const Layout& l) { return l.header_end; }});
  c.push_back({.name = "OverlappingTensors", .edit_spec = [](FileSpec& s) { s.tensors[1].offset = 32; },
               .field = "tensor 'b.weight' offset", .problem = "overlaps tensor 'a.weight' data [0, 64)",
               .offset = [](const Layout& l) { return l.offset_at[1]; }});
  c.push_back({.name = "SameOffsetTwice",
               .edit_spec = [](FileSpec& s) { s.tensors[2].offset = s.tensors[1].offset; },
               .field = "tensor 'c.weight' offset", .problem = "overlaps tensor 'b.weight' data [64, 200)",
               .offset = [](const Layout& l) { return l.offset_at[2]; }});
  return c;
}
#pragma GCC diagnostic pop

// Keeps gtest from hex-dumping the case struct in test names and failures.
void PrintTo(const MalformedCase& mc, std::ostream* os) { *os << mc.name; }

class MalformedGgufTest : public ::testing::TestWithParam<MalformedCase> {};

Layout BuildCase(const MalformedCase& mc) {
  FileSpec spec = mc.make();
  if (mc.edit_spec) mc.edit_spec(spec);
  Layout l = Build(spec);
  if (mc.edit_bytes) mc.edit_bytes(l);
  return l;
}

TEST(MalformedGgufSetup, UnbrokenFilesParse) {
  // The starting points are valid, so each rejection below is caused by its breakage alone.
  for (const FileSpec& spec : {BaseSpec(), OneKv(std::string(100, 'k'), enc::U32(1)), OneKv("some.key", enc::U64(5)),
                               OneTensor(std::string(60, 'n'), kTypeF32, {32, 2, 2, 2}), KQuantSpec()}) {
    const Layout l = Build(spec);
    ExactBuffer buf(l.bytes);
    EXPECT_TRUE(GgufFile::Parse(buf.span()).ok()) << GgufFile::Parse(buf.span()).status();
  }
}

TEST_P(MalformedGgufTest, IsRejectedNamingFieldOffsetAndProblem) {
  const MalformedCase& mc = GetParam();
  const Layout l = BuildCase(mc);
  ExactBuffer buf(l.bytes);
  const auto parsed = GgufFile::Parse(buf.span(), mc.limits);
  ASSERT_FALSE(parsed.ok()) << "malformed file accepted";
  const absl::Status& s = parsed.status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  const std::string msg(s.message());
  EXPECT_THAT(msg, ::testing::StartsWith("GGUF: "));
  EXPECT_THAT(msg, ::testing::HasSubstr(mc.field + " at byte offset ")) << "field not named";
  EXPECT_THAT(msg, ::testing::HasSubstr(mc.problem)) << "problem not described";
  if (mc.offset) {
    const std::optional<uint64_t> want = mc.offset(l);
    EXPECT_EQ(ReportedOffset(msg), want) << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, MalformedGgufTest, ::testing::ValuesIn(Cases()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST(MalformedGgufCorpus, AtLeastThirtyCasesEachWithItsOwnMessage) {
  std::set<std::string> messages;
  std::set<std::string> names;
  const auto cases = Cases();
  for (const MalformedCase& mc : cases) {
    EXPECT_TRUE(names.insert(mc.name).second) << "duplicate case name " << mc.name;
    const Layout l = BuildCase(mc);
    ExactBuffer buf(l.bytes);
    const auto parsed = GgufFile::Parse(buf.span(), mc.limits);
    ASSERT_FALSE(parsed.ok()) << mc.name;
    EXPECT_TRUE(messages.insert(std::string(parsed.status().message())).second)
        << mc.name << " repeats the message of another case: " << parsed.status().message();
  }
  EXPECT_GE(cases.size(), 30u);
}

}  // namespace
}  // namespace ossgate::gguf::testing
