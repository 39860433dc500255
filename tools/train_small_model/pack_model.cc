// ossgate-pack-model: writes the bundled small model's GGUF with the
// project's own writer (gguf::GgufWriter) from what train.py exported.
//
//   ossgate-pack-model --weights=weights.bin --vocab=small.vocab --out=models/ossgate-small.gguf
//
// weights.bin (train.py) is a text header followed by raw tensor bytes:
//   ossgate-small-weights 1
//   config <key> <value>                       (ModelConfig fields, see kConfigKeys)
//   tensor <name> <F32|Q8_0|MXFP4> <ne0>[x<ne1>[x<ne2>]] <nbytes>
//   ...
//   data
//   <bytes of every tensor, in header order>
// Tensors already hold their GGUF bytes (ggml block layouts, spec §2): the
// quantized experts the training's last steps ran with are written
// unchanged, so the engine and the PyTorch reference use identical weights.
// Tensors named "master.<name>" are the float weights <name> was quantized
// from; for those the tool re-quantizes with gguf::QuantizeRow and requires
// the bytes to be identical (proof that train.py's quantizer is the
// project's), and does not write them to the GGUF.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/vocab_file.h"

ABSL_FLAG(std::string, weights, "", "weights file written by train.py");
ABSL_FLAG(std::string, vocab, "", "vocabulary file (ossgate-small-data vocab)");
ABSL_FLAG(std::string, out, "", "output GGUF path");
ABSL_FLAG(std::string, name, "ossgate-small", "general.name");

namespace {

using ossgate::gguf::GgmlType;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "ossgate-pack-model: %s\n", message.c_str());
  std::exit(1);
}

struct BlobTensor {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;
};

GgmlType ParseType(const std::string& s) {
  if (s == "F32") return GgmlType::kF32;
  if (s == "BF16") return GgmlType::kBF16;
  if (s == "Q8_0") return GgmlType::kQ8_0;
  if (s == "MXFP4") return GgmlType::kMXFP4;
  Die("unknown tensor type " + s);
}

uint64_t NBytes(GgmlType type, const std::vector<int64_t>& ne) {
  uint64_t rows = 1;
  for (size_t i = 1; i < ne.size(); ++i) rows *= static_cast<uint64_t>(ne[i]);
  return static_cast<uint64_t>(ossgate::gguf::RowBytes(type, ne[0])) * rows;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ossgate-pack-model --weights=W --vocab=V --out=M.gguf (docs/small_model.md)");
  absl::ParseCommandLine(argc, argv);
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (absl::GetFlag(FLAGS_weights).empty() || absl::GetFlag(FLAGS_vocab).empty() || out_path.empty()) {
    Die("--weights, --vocab and --out are required");
  }

  // The vocabulary.
  auto vocab = ossgate::text::LoadVocabFile(absl::GetFlag(FLAGS_vocab));
  if (!vocab.ok()) Die(std::string(vocab.status().message()));
  if (auto t = ossgate::text::Tokenizer::Create(*vocab); !t.ok()) Die(std::string(t.status().message()));

  // The weights file.
  std::ifstream in(absl::GetFlag(FLAGS_weights), std::ios::binary);
  if (!in) Die("cannot read " + absl::GetFlag(FLAGS_weights));
  const std::vector<uint8_t> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, std::string> config;
  std::vector<BlobTensor> tensors;
  size_t pos = 0;
  bool first = true;
  for (;;) {
    const auto nl = std::find(blob.begin() + static_cast<std::ptrdiff_t>(pos), blob.end(), '\n');
    if (nl == blob.end()) Die("weights file: header without a 'data' line");
    const std::string line(blob.begin() + static_cast<std::ptrdiff_t>(pos), nl);
    pos = static_cast<size_t>(nl - blob.begin()) + 1;
    if (first) {
      if (line != "ossgate-small-weights 1") Die("weights file: bad magic line '" + line + "'");
      first = false;
      continue;
    }
    if (line == "data") break;
    const std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f[0] == "config" && f.size() == 3) {
      config[f[1]] = f[2];
    } else if (f[0] == "tensor" && f.size() == 5) {
      BlobTensor t;
      t.name = f[1];
      t.type = ParseType(f[2]);
      for (absl::string_view d : absl::StrSplit(f[3], 'x')) {
        int64_t v = 0;
        if (!absl::SimpleAtoi(d, &v) || v <= 0) Die("weights file: bad shape in '" + line + "'");
        t.ne.push_back(v);
      }
      if (!absl::SimpleAtoi(f[4], &t.nbytes) || t.nbytes != NBytes(t.type, t.ne)) {
        Die("weights file: byte count does not match type and shape in '" + line + "'");
      }
      tensors.push_back(std::move(t));
    } else {
      Die("weights file: bad header line '" + line + "'");
    }
  }
  for (BlobTensor& t : tensors) {
    if (pos + t.nbytes > blob.size()) Die("weights file is truncated at tensor " + t.name);
    t.data = blob.data() + pos;
    pos += t.nbytes;
  }
  if (pos != blob.size()) Die("weights file has trailing bytes");
  std::map<std::string, const BlobTensor*> by_name;
  for (const BlobTensor& t : tensors) by_name[t.name] = &t;

  auto cfg_int = [&](const std::string& k) -> uint32_t {
    auto it = config.find(k);
    uint32_t v = 0;
    if (it == config.end() || !absl::SimpleAtoi(it->second, &v)) Die("weights file: config " + k + " missing");
    return v;
  };
  auto cfg_float = [&](const std::string& k) -> float {
    auto it = config.find(k);
    float v = 0;
    if (it == config.end() || !absl::SimpleAtof(it->second, &v)) Die("weights file: config " + k + " missing");
    return v;
  };
  const uint32_t L = cfg_int("n_layers"), D = cfg_int("d_model"), H = cfg_int("n_heads"), Hkv = cfg_int("n_kv_heads"),
                 hd = cfg_int("head_dim"), E = cfg_int("n_experts"), K = cfg_int("n_experts_used"),
                 F = cfg_int("d_ff"), V = cfg_int("vocab_size");
  if (V != vocab->tokens.size()) Die(absl::StrCat("vocab_size ", V, " != vocabulary tokens ", vocab->tokens.size()));

  // Check master copies: the quantized bytes must be what QuantizeRow makes.
  for (const BlobTensor& m : tensors) {
    if (m.name.rfind("master.", 0) != 0) continue;
    auto it = by_name.find(m.name.substr(7));
    if (it == by_name.end()) Die("no tensor for " + m.name);
    const BlobTensor& q = *it->second;
    if (m.type != GgmlType::kF32 || m.ne != q.ne) Die(m.name + ": must be F32 of the same shape as " + q.name);
    const int64_t cols = q.ne[0], rows = static_cast<int64_t>(m.nbytes / 4 / static_cast<uint64_t>(cols));
    const int64_t row_bytes = ossgate::gguf::RowBytes(q.type, cols);
    std::vector<float> row(static_cast<size_t>(cols));
    std::vector<uint8_t> quant(static_cast<size_t>(row_bytes));
    int64_t bad_rows = 0;
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(row.data(), m.data + r * cols * 4, static_cast<size_t>(cols) * 4);
      ossgate::gguf::QuantizeRow(q.type, row.data(), quant.data(), cols);
      if (std::memcmp(quant.data(), q.data + r * row_bytes, static_cast<size_t>(row_bytes)) != 0) ++bad_rows;
    }
    if (bad_rows) Die(absl::StrCat(q.name, ": ", bad_rows, " of ", rows, " rows differ from gguf::QuantizeRow"));
    std::fprintf(stderr, "pack: %s: %lld rows bit-identical to gguf::QuantizeRow(%s)\n", q.name.c_str(),
                 static_cast<long long>(rows), ossgate::gguf::GgmlTypeName(static_cast<uint32_t>(q.type)));
  }

  ossgate::gguf::GgufWriter w;
  w.SetString("general.architecture", "gpt-oss");
  w.SetString("general.name", absl::GetFlag(FLAGS_name));
  w.SetString("general.description",
              "Small gpt-oss model trained by the ossgate project on the Brown Corpus (docs/small_model.md)");
  w.SetUint32("general.quantization_version", 2);
  w.SetUint32("general.file_type", 38);  // MOSTLY_MXFP4_MOE
  w.SetUint32("gpt-oss.block_count", L);
  w.SetUint32("gpt-oss.context_length", cfg_int("context_length"));
  w.SetUint32("gpt-oss.embedding_length", D);
  w.SetUint32("gpt-oss.feed_forward_length", F);
  w.SetUint32("gpt-oss.expert_feed_forward_length", F);
  w.SetUint32("gpt-oss.attention.head_count", H);
  w.SetUint32("gpt-oss.attention.head_count_kv", Hkv);
  w.SetUint32("gpt-oss.attention.key_length", hd);
  w.SetUint32("gpt-oss.attention.value_length", hd);
  w.SetFloat32("gpt-oss.attention.layer_norm_rms_epsilon", cfg_float("rms_eps"));
  w.SetUint32("gpt-oss.attention.sliding_window", cfg_int("sliding_window"));
  w.SetUint32("gpt-oss.expert_count", E);
  w.SetUint32("gpt-oss.expert_used_count", K);
  w.SetFloat32("gpt-oss.rope.freq_base", cfg_float("rope_theta"));
  w.SetString("gpt-oss.rope.scaling.type", "yarn");
  w.SetFloat32("gpt-oss.rope.scaling.factor", cfg_float("rope_scaling_factor"));
  w.SetUint32("gpt-oss.rope.scaling.original_context_length", cfg_int("rope_original_context"));
  w.SetString("tokenizer.ggml.model", ossgate::text::kByteLevelBpeModel);
  w.SetString("tokenizer.ggml.pre", ossgate::text::kO200kPreTokenizer);
  w.SetStringArray("tokenizer.ggml.tokens", vocab->tokens);
  w.SetInt32Array("tokenizer.ggml.token_type", vocab->token_types);
  w.SetStringArray("tokenizer.ggml.merges", vocab->merges);
  auto special = [&](const std::string& text) -> uint32_t {
    for (size_t i = 0; i < vocab->tokens.size(); ++i) {
      if (vocab->tokens[i] == text) return static_cast<uint32_t>(i);
    }
    Die("vocabulary lacks " + text);
  };
  w.SetUint32("tokenizer.ggml.bos_token_id", special("<|startoftext|>"));
  w.SetUint32("tokenizer.ggml.eos_token_id", special("<|return|>"));
  w.SetUint32("tokenizer.ggml.padding_token_id", special("<|endoftext|>"));
  w.SetBool("tokenizer.ggml.add_bos_token", false);

  // Tensors in the order and with the shapes of the official files (spec §4).
  struct Want {
    std::string name;
    std::vector<int64_t> ne;
  };
  std::vector<Want> want;
  const int64_t Q = int64_t{H} * hd, KV = int64_t{Hkv} * hd;
  want.push_back({"token_embd.weight", {D, V}});
  for (uint32_t l = 0; l < L; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    want.push_back({p + "attn_norm.weight", {D}});
    want.push_back({p + "attn_q.weight", {D, Q}});
    want.push_back({p + "attn_q.bias", {Q}});
    want.push_back({p + "attn_k.weight", {D, KV}});
    want.push_back({p + "attn_k.bias", {KV}});
    want.push_back({p + "attn_v.weight", {D, KV}});
    want.push_back({p + "attn_v.bias", {KV}});
    want.push_back({p + "attn_output.weight", {Q, D}});
    want.push_back({p + "attn_output.bias", {D}});
    want.push_back({p + "attn_sinks.weight", {H}});
    want.push_back({p + "post_attention_norm.weight", {D}});
    want.push_back({p + "ffn_gate_inp.weight", {D, E}});
    want.push_back({p + "ffn_gate_inp.bias", {E}});
    want.push_back({p + "ffn_gate_exps.weight", {D, F, E}});
    want.push_back({p + "ffn_gate_exps.bias", {F, E}});
    want.push_back({p + "ffn_up_exps.weight", {D, F, E}});
    want.push_back({p + "ffn_up_exps.bias", {F, E}});
    want.push_back({p + "ffn_down_exps.weight", {F, D, E}});
    want.push_back({p + "ffn_down_exps.bias", {D, E}});
  }
  want.push_back({"output_norm.weight", {D}});
  want.push_back({"output.weight", {D, V}});

  size_t model_tensors = 0;
  for (const BlobTensor& t : tensors) model_tensors += t.name.rfind("master.", 0) != 0;
  if (model_tensors != want.size()) Die(absl::StrCat("weights file has ", model_tensors, " tensors, expected ", want.size()));
  std::vector<const BlobTensor*> order;
  for (const Want& x : want) {
    auto it = by_name.find(x.name);
    if (it == by_name.end()) Die("weights file lacks " + x.name);
    if (it->second->ne != x.ne) Die("weights file: " + x.name + " has the wrong shape");
    const bool expert = x.name.find("_exps.weight") != std::string::npos;
    const bool dense = !expert && x.ne.size() == 2 && x.name.find("ffn_gate_inp") == std::string::npos;
    const GgmlType type = it->second->type;
    if (expert && type != GgmlType::kMXFP4) Die(x.name + " must be MXFP4");
    if (dense && type != GgmlType::kQ8_0 && type != GgmlType::kBF16 && type != GgmlType::kF32) {
      Die(x.name + " must be Q8_0, BF16 or F32");
    }
    if (!expert && !dense && type != GgmlType::kF32) Die(x.name + " must be F32");
    auto added = w.AddTensor(x.name, type, x.ne);
    if (!added.ok()) Die(std::string(added.status().message()));
    order.push_back(it->second);
  }
  if (auto s = w.Begin(out_path); !s.ok()) Die(std::string(s.message()));
  for (const BlobTensor* t : order) {
    if (auto s = w.WriteTensorData({t->data, t->nbytes}); !s.ok()) Die(std::string(s.message()));
  }
  if (auto s = w.Finish(); !s.ok()) Die(std::string(s.message()));

  // Read it back the way the engine does.
  std::ifstream back(out_path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(back)), std::istreambuf_iterator<char>());
  auto file = ossgate::gguf::GgufFile::Parse(bytes);
  if (!file.ok()) Die("written file does not parse: " + std::string(file.status().message()));
  auto cfg = ossgate::model::ReadModelConfig(*file);
  if (!cfg.ok()) Die("written file's config: " + std::string(cfg.status().message()));
  auto tok = ossgate::text::Tokenizer::FromGguf(*file);
  if (!tok.ok()) Die("written file's tokenizer: " + std::string(tok.status().message()));
  std::fprintf(stderr, "pack: %s: %zu bytes, %zu tensors; %s\n", out_path.c_str(), bytes.size(), want.size(),
               cfg->DebugString().c_str());
  return 0;
}
