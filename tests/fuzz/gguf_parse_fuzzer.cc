// libFuzzer target for the GGUF reader: any input must parse to OK or
// InvalidArgument, and an accepted file must keep every tensor inside the
// input and decode without touching anything else. Built by the standalone
// project in this folder (clang only); see CMakeLists.txt for how to run it.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/gguf/gguf.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ossgate::gguf;
  const std::span<const uint8_t> bytes(data, size);
  const auto file = GgufFile::Parse(bytes);
  if (!file.ok()) {
    Check(file.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  Check(file->version() == 2 || file->version() == 3);
  std::vector<float> row;
  int64_t budget = 1 << 20;  // decode at most this many elements per input
  for (const TensorInfo& t : file->tensors()) {
    Check(t.data >= data && t.nbytes <= size && t.data + t.nbytes <= data + size);
    Check(t.offset % file->alignment() == 0);
    Check(static_cast<int64_t>(t.nbytes) == RowBytes(t.type, t.ne[0]) * t.rows());
    if (t.ne[0] > budget) continue;
    row.resize(static_cast<size_t>(t.ne[0]));
    for (int64_t r = 0; r < t.rows() && budget >= t.ne[0]; ++r, budget -= t.ne[0]) {
      DequantizeRow(t.type, t.data + r * static_cast<int64_t>(t.row_bytes()), row.data(), t.ne[0]);
    }
  }
  for (const auto& [key, value] : file->metadata()) {
    Check(file->FindKey(key) == &value);
    (void)file->GetUint(key);
    (void)file->GetFloat(key);
    (void)file->GetIntArray(key);
  }
  return 0;
}
