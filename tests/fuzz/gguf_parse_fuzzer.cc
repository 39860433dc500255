// Fuzz target: a model file as the worker loads it. The bytes go through the
// GGUF reader, then (when they parse) the model config, the weight binding
// and the tokenizer built from the file's metadata, the steps between
// ReadModelFile and a serving engine. Properties:
//  - every rejection is InvalidArgument (a clear error, never a crash);
//  - a header parsed from a prefix (the streaming load) asks for more bytes
//    or agrees with the whole file's parse;
//  - an accepted file keeps every tensor inside the input, and every bound
//    weight matrix inside the tensor it came from;
//  - a tokenizer built from the file encodes and decodes without leaving its
//    vocabulary, and round-trips text.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/model/weights.h"
#include "inference_worker/text/tokenizer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace ossgate;

bool Inside(const uint8_t* p, uint64_t n, const uint8_t* data, size_t size) {
  return p >= data && n <= size && static_cast<uint64_t>(p - data) <= size - n;
}

void CheckMatrix(const model::Matrix& m, const uint8_t* data, size_t size) {
  FUZZ_CHECK(m.cols > 0 && m.rows > 0 && m.n_mats > 0);
  FUZZ_CHECK(m.row_bytes == static_cast<uint64_t>(gguf::RowBytes(m.type, m.cols)));
  FUZZ_CHECK(Inside(m.data, m.bytes(), data, size));
}

void CheckWeights(const model::Weights& w, const model::ModelConfig& c, const uint8_t* data, size_t size) {
  CheckMatrix(w.token_embd, data, size);
  CheckMatrix(w.output, data, size);
  FUZZ_CHECK(w.token_embd.rows == c.vocab_size && w.token_embd.cols == c.d_model);
  FUZZ_CHECK(static_cast<int>(w.output_norm.size()) == c.d_model);
  // One layer list per family: gpt-oss's MoE layers or the dense ones.
  const bool gpt_oss = c.family == model::Family::kGptOss;
  FUZZ_CHECK(static_cast<int>(w.layers.size()) == (gpt_oss ? c.n_layers : 0));
  FUZZ_CHECK(static_cast<int>(w.dense_layers.size()) == (gpt_oss ? 0 : c.n_layers));
  FUZZ_CHECK((w.output.data == w.token_embd.data) == c.tied_embeddings);
  for (const model::DenseLayerWeights& l : w.dense_layers) {
    for (const model::Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) CheckMatrix(*m, data, size);
    FUZZ_CHECK(l.wq.rows == c.q_dim() && l.wk.rows == c.kv_dim() && l.wv.rows == c.kv_dim());
    FUZZ_CHECK(l.gate.rows == c.d_ff && l.up.rows == c.d_ff && l.down.rows == c.d_model && l.wo.rows == c.d_model);
    FUZZ_CHECK(static_cast<int>(l.attn_norm.size()) == c.d_model && static_cast<int>(l.ffn_norm.size()) == c.d_model);
  }
  for (const model::LayerWeights& l : w.layers) {
    for (const model::Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.router, &l.gate_exps, &l.up_exps, &l.down_exps}) {
      CheckMatrix(*m, data, size);
    }
    FUZZ_CHECK(l.wq.rows == c.q_dim() && l.wk.rows == c.kv_dim() && l.wo.rows == c.d_model);
    FUZZ_CHECK(l.gate_exps.n_mats == c.n_experts && l.down_exps.rows == c.d_model);
    FUZZ_CHECK(static_cast<int>(l.sinks.size()) == c.n_heads);
  }
}

void CheckTokenizer(const text::Tokenizer& tok) {
  const int32_t vocab = tok.vocab_size();
  FUZZ_CHECK(vocab >= 256);
  const std::string sample = "Hello, world! <|start|>user 123 \xc3\xa9t\xc3\xa9";
  for (bool special : {false, true}) {
    const std::vector<int32_t> ids = tok.Encode(sample, special);
    for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < vocab);
    FUZZ_CHECK(tok.Decode(ids) == sample);
  }
  // Every id decodes (special ones to their text); out-of-range ids to nothing.
  std::vector<int32_t> all;
  for (int32_t id = 0; id < vocab && id < 4096; ++id) all.push_back(id);
  (void)tok.Decode(all);
  FUZZ_CHECK(tok.TokenBytes(-1).empty() && tok.TokenBytes(vocab).empty());
}

}  // namespace

// The streaming load parses the header from a prefix kept on the host:
// whatever the prefix, ParseHeader either asks for more (OutOfRange) or
// agrees with Parse of the whole file, error message included.
void CheckHeaderPrefix(const uint8_t* data, size_t size, const absl::StatusOr<gguf::GgufFile>& whole) {
  const size_t k = size == 0 ? 0 : static_cast<size_t>(data[size - 1]) * size / 255;
  const auto part = gguf::GgufFile::ParseHeader(std::span<const uint8_t>(data, k), size, data);
  if (part.status().code() == absl::StatusCode::kOutOfRange) {
    FUZZ_CHECK(k < size);
    return;
  }
  FUZZ_CHECK(part.ok() == whole.ok());
  if (!part.ok()) {
    FUZZ_CHECK(part.status() == whole.status());
    return;
  }
  FUZZ_CHECK(part->data_offset() == whole->data_offset());
  FUZZ_CHECK(part->tensors().size() == whole->tensors().size());
  FUZZ_CHECK(part->metadata().size() == whole->metadata().size());
  for (size_t i = 0; i < part->tensors().size(); ++i) {
    FUZZ_CHECK(part->tensors()[i].data == whole->tensors()[i].data);
    FUZZ_CHECK(part->tensors()[i].name == whole->tensors()[i].name);
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = gguf::GgufFile::Parse(std::span<const uint8_t>(data, size));
  CheckHeaderPrefix(data, size, file);
  if (!file.ok()) {
    FUZZ_CHECK(file.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(file->version() == 2 || file->version() == 3);
  std::vector<float> row;
  int64_t budget = 1 << 20;  // decode at most this many elements per input
  for (const gguf::TensorInfo& t : file->tensors()) {
    FUZZ_CHECK(Inside(t.data, t.nbytes, data, size));
    FUZZ_CHECK(t.offset % file->alignment() == 0);
    FUZZ_CHECK(static_cast<int64_t>(t.nbytes) == gguf::RowBytes(t.type, t.ne[0]) * t.rows());
    FUZZ_CHECK(file->FindTensor(t.name) == &t);
    if (t.ne[0] > budget) continue;
    row.resize(static_cast<size_t>(t.ne[0]));
    for (int64_t r = 0; r < t.rows() && budget >= t.ne[0]; ++r, budget -= t.ne[0]) {
      gguf::DequantizeRow(t.type, t.data + r * static_cast<int64_t>(t.row_bytes()), row.data(), t.ne[0]);
    }
  }
  for (const auto& [key, value] : file->metadata()) {
    FUZZ_CHECK(file->FindKey(key) == &value);
    (void)file->GetUint(key);
    (void)file->GetFloat(key);
    (void)file->GetIntArray(key);
    (void)file->GetStringArray(key);
    (void)file->GetString(key);
  }

  const auto config = model::ReadModelConfig(*file);
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument);
  } else {
    FUZZ_CHECK(config->n_layers > 0 && config->d_model > 0 && config->n_heads > 0 && config->head_dim > 0);
    FUZZ_CHECK(config->n_experts_used <= config->n_experts);
    FUZZ_CHECK(config->vocab_size > 0);
    (void)config->DebugString();
    const model::RopeTables rope = model::ComputeRope(*config);
    FUZZ_CHECK(static_cast<int>(rope.inv_freq.size()) == config->head_dim / 2);
    const auto weights = model::BindWeights(*file, *config);
    if (!weights.ok()) {
      FUZZ_CHECK(weights.status().code() == absl::StatusCode::kInvalidArgument);
    } else {
      CheckWeights(*weights, *config, data, size);
    }
  }

  const auto tokenizer = text::Tokenizer::FromGguf(*file);
  if (!tokenizer.ok()) {
    FUZZ_CHECK(tokenizer.status().code() == absl::StatusCode::kInvalidArgument);
  } else {
    CheckTokenizer(**tokenizer);
  }
  return 0;
}
