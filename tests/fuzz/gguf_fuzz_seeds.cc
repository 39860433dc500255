// Writes a few valid GGUF files with GgufWriter as the fuzzer's seed corpus:
//   gguf_fuzz_seeds <dir>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "inference_worker/gguf/gguf.h"

namespace {

using ossgate::gguf::GgmlType;
using ossgate::gguf::GgufWriter;

// Writes the file with every tensor filled with a fixed byte.
bool Write(GgufWriter& w, const std::vector<uint64_t>& sizes, const std::string& path) {
  if (!w.Begin(path).ok()) return false;
  for (uint64_t n : sizes) {
    const std::vector<uint8_t> fill(n, 0x11);
    if (!w.WriteTensorData(fill).ok()) return false;
  }
  return w.Finish().ok();
}

// Declares a tensor and records its size; aborts the seed run on error.
void Add(GgufWriter& w, std::vector<uint64_t>& sizes, std::string name, GgmlType type, std::vector<int64_t> ne) {
  auto n = w.AddTensor(std::move(name), type, std::move(ne));
  if (!n.ok()) {
    std::fprintf(stderr, "%s\n", n.status().ToString().c_str());
    std::exit(1);
  }
  sizes.push_back(*n);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  {
    GgufWriter w;
    w.SetString("general.architecture", "gpt-oss");
    w.SetUint32("gpt-oss.block_count", 24);
    w.SetFloat32("gpt-oss.rope.freq_base", 150000.0f);
    w.SetStringArray("tokenizer.ggml.tokens", {"<|start|>", "hi"});
    w.SetInt32Array("tokenizer.ggml.token_type", {1, 3});
    std::vector<uint64_t> sizes;
    Add(w, sizes, "token_embd.weight", GgmlType::kQ8_0, {64, 2});
    Add(w, sizes, "blk.0.ffn_up_exps.weight", GgmlType::kMXFP4, {32, 2, 2});
    Add(w, sizes, "output_norm.weight", GgmlType::kF32, {8});
    if (!Write(w, sizes, dir + "/seed_model.gguf")) return 1;
  }
  {
    GgufWriter w(64);
    w.SetBool("b", true);
    w.SetUint64("u", 1);
    std::vector<uint64_t> sizes;
    Add(w, sizes, "h", GgmlType::kF16, {3, 2});
    Add(w, sizes, "bf", GgmlType::kBF16, {5});
    if (!Write(w, sizes, dir + "/seed_align64.gguf")) return 1;
  }
  {
    GgufWriter w;
    w.SetString("k", "v");
    if (!Write(w, {}, dir + "/seed_metadata_only.gguf")) return 1;
  }
  return 0;
}
