// The model the CUDA backend computes for a file with k-quant matrices: the
// same file with every k-quant matrix the upload re-quantizes converted to
// Q8_0 by RequantizeQ8Block, the function the upload uses
// (kernels/repack_tile.h): every Q6_K matrix it tiles (all but the embedding,
// which the device gathers in its raw form), and Q4_K matrices fused with a
// part of another type (q/k/v, gate/up: kernels::FusedFormatForTypes); other
// Q4_K matrices keep their own tiles and stay. Its Q8_0 blocks are the bytes
// of the device tiles, so the GPU runs the two files alike, and the CPU
// backend on it gives the CPU counterpart of the GPU's k-quant model. Test
// code.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "inference_worker/gguf/gguf.h"
#include "kernels/repack.h"
#include "kernels/repack_tile.h"

namespace ossgate::testing {

inline absl::Status WriteRequantizedCopy(const gguf::GgufFile& src, const std::string& path) {
  gguf::GgufWriter w(src.alignment());
  for (const auto& [key, value] : src.metadata()) {
    if (absl::Status s = w.SetValue(key, value); !s.ok()) return s;
  }
  // The tensors fused with t on the device: blk.N.attn_{q,k,v}.weight, and
  // blk.N.ffn_{gate,up}[_exps].weight.
  auto fusion_group = [](const std::string& name) -> std::string {
    const size_t dot = name.find('.', name.find('.') + 1);  // after "blk.N"
    if (name.rfind("blk.", 0) != 0 || dot == std::string::npos) return name;
    const std::string layer = name.substr(0, dot), rest = name.substr(dot + 1);
    if (rest == "attn_q.weight" || rest == "attn_k.weight" || rest == "attn_v.weight") return layer + ".qkv";
    if (rest == "ffn_gate.weight" || rest == "ffn_up.weight") return layer + ".gate_up";
    if (rest == "ffn_gate_exps.weight" || rest == "ffn_up_exps.weight") return layer + ".gate_up_exps";
    return name;
  };
  std::map<std::string, std::vector<gguf::GgmlType>> group_types;
  for (const gguf::TensorInfo& t : src.tensors()) group_types[fusion_group(t.name)].push_back(t.type);
  auto converted = [&](const gguf::TensorInfo& t) {
    const kernels::RowEncoding enc = kernels::EncodingForType(t.type);
    if (enc == kernels::RowEncoding::kTileFormat || t.name == "token_embd.weight") return false;
    const absl::StatusOr<kernels::WFormat> fmt = kernels::FusedFormatForTypes(group_types[fusion_group(t.name)]);
    return fmt.ok() && *fmt == kernels::WFormat::kQ8_0;
  };
  for (const gguf::TensorInfo& t : src.tensors()) {
    std::vector<int64_t> ne(t.ne.begin(), t.ne.begin() + t.n_dims);
    auto added = w.AddTensor(t.name, converted(t) ? gguf::GgmlType::kQ8_0 : t.type, std::move(ne));
    if (!added.ok()) return added.status();
  }
  if (absl::Status s = w.Begin(path); !s.ok()) return s;
  std::vector<uint8_t> row;
  for (const gguf::TensorInfo& t : src.tensors()) {
    if (!converted(t)) {
      if (absl::Status s = w.WriteTensorData({t.data, t.nbytes}); !s.ok()) return s;
      continue;
    }
    const int64_t blocks = t.ne[0] / kernels::kBlockK;
    row.resize(static_cast<size_t>(blocks * kernels::kQ8_0BlockBytes));
    for (int64_t r = 0; r < t.rows(); ++r) {
      for (int64_t kb = 0; kb < blocks; ++kb) {
        kernels::RequantizeQ8Block(kernels::EncodingForType(t.type), t.data + r * t.row_bytes(), kb,
                                   row.data() + kb * kernels::kQ8_0BlockBytes);
      }
      if (absl::Status s = w.WriteTensorData(row); !s.ok()) return s;
    }
  }
  return w.Finish();
}

// A copy of `src` with the tensors named in `types` re-quantized (dequantized
// and quantized again) to the given types: mixed-type layers as a Q4_K_M
// file has them (Q4_K attn_q and attn_k, Q6_K attn_v).
inline absl::Status WriteRetypedCopy(const gguf::GgufFile& src, const std::map<std::string, gguf::GgmlType>& types,
                                     const std::string& path) {
  gguf::GgufWriter w(src.alignment());
  for (const auto& [key, value] : src.metadata()) {
    if (absl::Status s = w.SetValue(key, value); !s.ok()) return s;
  }
  auto type_of = [&](const gguf::TensorInfo& t) {
    const auto it = types.find(t.name);
    return it == types.end() ? t.type : it->second;
  };
  for (const gguf::TensorInfo& t : src.tensors()) {
    auto added = w.AddTensor(t.name, type_of(t), std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims));
    if (!added.ok()) return added.status();
  }
  if (absl::Status s = w.Begin(path); !s.ok()) return s;
  std::vector<float> values;
  std::vector<uint8_t> row;
  for (const gguf::TensorInfo& t : src.tensors()) {
    const gguf::GgmlType to = type_of(t);
    if (to == t.type) {
      if (absl::Status s = w.WriteTensorData({t.data, t.nbytes}); !s.ok()) return s;
      continue;
    }
    values.resize(static_cast<size_t>(t.ne[0]));
    row.resize(static_cast<size_t>(gguf::RowBytes(to, t.ne[0])));
    for (int64_t r = 0; r < t.rows(); ++r) {
      gguf::DequantizeRow(t.type, t.data + r * t.row_bytes(), values.data(), t.ne[0]);
      gguf::QuantizeRow(to, values.data(), row.data(), t.ne[0]);
      if (absl::Status s = w.WriteTensorData(row); !s.ok()) return s;
    }
  }
  return w.Finish();
}

}  // namespace ossgate::testing
