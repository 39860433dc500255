#include "tools/make_model/random_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/thread_pool.h"
#include "inference_worker/text/tokenizer_metadata.h"

namespace ossgate::tools {

namespace {

using gguf::GgmlType;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t Hash3(uint64_t seed, uint64_t stream, uint64_t index) {
  return SplitMix64(SplitMix64(SplitMix64(seed) ^ stream) ^ index);
}

// How the values of one tensor are drawn: mean + std * (uniform with unit variance).
struct TensorPlan {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  float mean;
  float std;
};

// Mean square of the 16 E2M1 magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6} is
// 8.5625; with the exponent jittered down by 0 or 1 the std of the decoded
// values is about 2.31 * 2^(e - 127).
constexpr double kMxfp4StdAtUnitScale = 2.31;
// Uniform ints in [-127, 127] have std 127 / sqrt(3) = 73.3.
constexpr double kQ8StdAtUnitScale = 73.3;

// Fills `rows` rows of `cols` elements starting at `row0` in the tensor's
// stored format. Every value depends only on (seed, stream, element), so the
// bytes do not depend on chunking or thread count.
void GenerateRows(const TensorPlan& p, uint64_t seed, uint64_t stream, int64_t row0, int64_t rows, uint8_t* out) {
  const int64_t cols = p.ne[0];
  const int64_t row_bytes = gguf::RowBytes(p.type, cols);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = out + r * row_bytes;
    const int64_t row = row0 + r;
    switch (p.type) {
      case GgmlType::kMXFP4: {
        const int base_e = 127 + static_cast<int>(std::lround(std::log2(p.std / kMxfp4StdAtUnitScale)));
        auto* blocks = reinterpret_cast<gguf::BlockMxfp4*>(dst);
        for (int64_t b = 0; b < cols / 32; ++b) {
          const uint64_t idx = static_cast<uint64_t>(row * (cols / 32) + b) * 3;
          const uint64_t h0 = Hash3(seed, stream, idx), h1 = Hash3(seed, stream, idx + 1),
                         h2 = Hash3(seed, stream, idx + 2);
          blocks[b].e = static_cast<uint8_t>(std::clamp(base_e - static_cast<int>(h2 & 1), 1, 254));
          for (int j = 0; j < 8; ++j) {
            blocks[b].qs[j] = static_cast<uint8_t>(h0 >> (8 * j));
            blocks[b].qs[j + 8] = static_cast<uint8_t>(h1 >> (8 * j));
          }
        }
        break;
      }
      case GgmlType::kQ8_0: {
        auto* blocks = reinterpret_cast<gguf::BlockQ8_0*>(dst);
        for (int64_t b = 0; b < cols / 32; ++b) {
          const uint64_t idx = static_cast<uint64_t>(row * (cols / 32) + b) * 9;
          const float jitter = 0.75f + 0.5f * static_cast<float>(Hash3(seed, stream, idx + 8) >> 40) / 16777216.0f;
          blocks[b].d = gguf::FloatToFp16(static_cast<float>(p.std / kQ8StdAtUnitScale) * jitter);
          for (int j = 0; j < 32; ++j) {
            const uint64_t h = Hash3(seed, stream, idx + j / 4) >> (16 * (j % 4));
            blocks[b].qs[j] = static_cast<int8_t>(static_cast<int>((h & 0xFFFF) % 255) - 127);
          }
        }
        break;
      }
      default: {
        thread_local std::vector<float> values;
        values.resize(cols);
        for (int64_t c = 0; c < cols; ++c) {
          values[c] = p.mean + p.std * 1.7320508f * HashUniform(seed, stream, static_cast<uint64_t>(row * cols + c));
        }
        gguf::QuantizeRow(p.type, values.data(), dst, cols);
        break;
      }
    }
  }
}

std::vector<TensorPlan> PlanGptOss(const RandomModelSpec& spec) {
  const model::ModelConfig& c = spec.config;
  const int64_t D = c.d_model, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim(), E = c.n_experts, F = c.d_ff;
  const float inv_d = 1.0f / std::sqrt(static_cast<float>(D));
  const GgmlType dense = spec.dense_type, ex = spec.expert_type, small = spec.small_type;
  const float rs = spec.residual_scale;  // 1.0f: x * rs == x, the default bytes
  std::vector<TensorPlan> t;
  t.push_back({"token_embd.weight", dense, {D, V}, 0.0f, 1.0f});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    t.push_back({p + "attn_norm.weight", small, {D}, 1.0f, 0.1f});
    t.push_back({p + "attn_q.weight", dense, {D, Q}, 0.0f, inv_d});
    t.push_back({p + "attn_q.bias", small, {Q}, 0.0f, 0.1f});
    t.push_back({p + "attn_k.weight", dense, {D, KV}, 0.0f, inv_d});
    t.push_back({p + "attn_k.bias", small, {KV}, 0.0f, 0.1f});
    t.push_back({p + "attn_v.weight", dense, {D, KV}, 0.0f, inv_d});
    t.push_back({p + "attn_v.bias", small, {KV}, 0.0f, 0.1f});
    t.push_back({p + "attn_output.weight", dense, {Q, D}, 0.0f, 1.0f / std::sqrt(static_cast<float>(Q)) * rs});
    t.push_back({p + "attn_output.bias", small, {D}, 0.0f, 0.1f * rs});
    t.push_back({p + "attn_sinks.weight", small, {c.n_heads}, 0.0f, 1.0f});
    t.push_back({p + "post_attention_norm.weight", small, {D}, 1.0f, 0.1f});
    t.push_back({p + "ffn_gate_inp.weight", small, {D, E}, 0.0f, 2.0f * inv_d});
    t.push_back({p + "ffn_gate_inp.bias", small, {E}, 0.0f, 0.1f});
    // Gate and up are wide enough that the clamp at +-7 takes effect on a few
    // percent of the values, so tests exercise it.
    t.push_back({p + "ffn_gate_exps.weight", ex, {D, F, E}, 0.0f, 3.0f * inv_d});
    t.push_back({p + "ffn_gate_exps.bias", small, {F, E}, 0.0f, 0.1f});
    t.push_back({p + "ffn_up_exps.weight", ex, {D, F, E}, 0.0f, 3.0f * inv_d});
    t.push_back({p + "ffn_up_exps.bias", small, {F, E}, 0.0f, 0.1f});
    t.push_back({p + "ffn_down_exps.weight", ex, {F, D, E}, 0.0f, 0.5f / std::sqrt(static_cast<float>(F)) * rs});
    t.push_back({p + "ffn_down_exps.bias", small, {D, E}, 0.0f, 0.1f * rs});
  }
  t.push_back({"output_norm.weight", small, {D}, 1.0f, 0.1f});
  t.push_back({"output.weight", dense, {D, V}, 0.0f, 2.0f * inv_d});
  return t;
}

// qwen2 and phi3, with the tensor names and shapes llama.cpp's converter
// writes: q/k/v with biases (qwen2) or one attn_qkv (phi3), gate/up/down
// (qwen2) or one ffn_up holding gate then up (phi3), output.weight unless
// the embeddings are tied. Every matrix in the dense type.
std::vector<TensorPlan> PlanDense(const RandomModelSpec& spec) {
  const model::ModelConfig& c = spec.config;
  const int64_t D = c.d_model, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim(), F = c.d_ff;
  const float inv_d = 1.0f / std::sqrt(static_cast<float>(D));
  const GgmlType dense = spec.dense_type, small = spec.small_type;
  const float rs = spec.residual_scale;
  const float wo_std = 1.0f / std::sqrt(static_cast<float>(Q)) * rs;
  const float down_std = 0.5f / std::sqrt(static_cast<float>(F)) * rs;
  const bool phi3 = c.family == model::Family::kPhi3;
  std::vector<TensorPlan> t;
  t.push_back({"token_embd.weight", dense, {D, V}, 0.0f, 1.0f});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    t.push_back({p + "attn_norm.weight", small, {D}, 1.0f, 0.1f});
    if (phi3) {
      t.push_back({p + "attn_qkv.weight", dense, {D, Q + 2 * KV}, 0.0f, inv_d});
    } else {
      // Biases large enough that a pass ignoring them is visibly wrong.
      t.push_back({p + "attn_q.weight", dense, {D, Q}, 0.0f, inv_d});
      t.push_back({p + "attn_q.bias", small, {Q}, 0.0f, 0.2f});
      t.push_back({p + "attn_k.weight", dense, {D, KV}, 0.0f, inv_d});
      t.push_back({p + "attn_k.bias", small, {KV}, 0.0f, 0.2f});
      t.push_back({p + "attn_v.weight", dense, {D, KV}, 0.0f, inv_d});
      t.push_back({p + "attn_v.bias", small, {KV}, 0.0f, 0.2f});
    }
    t.push_back({p + "attn_output.weight", dense, {Q, D}, 0.0f, wo_std});
    t.push_back({p + "ffn_norm.weight", small, {D}, 1.0f, 0.1f});
    if (phi3) {
      t.push_back({p + "ffn_up.weight", dense, {D, 2 * F}, 0.0f, 2.0f * inv_d});
    } else {
      t.push_back({p + "ffn_gate.weight", dense, {D, F}, 0.0f, 2.0f * inv_d});
      t.push_back({p + "ffn_up.weight", dense, {D, F}, 0.0f, 2.0f * inv_d});
    }
    t.push_back({p + "ffn_down.weight", dense, {F, D}, 0.0f, down_std});
  }
  t.push_back({"output_norm.weight", small, {D}, 1.0f, 0.1f});
  if (!c.tied_embeddings) t.push_back({"output.weight", dense, {D, V}, 0.0f, 2.0f * inv_d});
  return t;
}

std::vector<TensorPlan> PlanTensors(const RandomModelSpec& spec) {
  if (spec.config.family == model::Family::kGptOss) return PlanGptOss(spec);
  std::vector<TensorPlan> t = PlanDense(spec);
  if (spec.llama_q4_k_m) {
    for (TensorPlan& p : t) {
      if (p.ne.size() < 2) continue;  // norms and biases keep the small type
      int layer = -1;
      if (p.name.rfind("blk.", 0) == 0) layer = std::atoi(p.name.c_str() + 4);
      p.type = LlamaQ4KMType(p.name, p.ne[0], layer, spec.config.n_layers, spec.config.tied_embeddings);
    }
  }
  return t;
}

// llama.cpp's use_more_bits: the layers of attn_v / ffn_down that Q4_K_M
// gives Q6_K.
bool UseMoreBits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

}  // namespace

GgmlType LlamaQ4KMType(const std::string& name, int64_t ne0, int layer, int n_layers, bool tied) {
  const auto has = [&name](const char* s) { return name.find(s) != std::string::npos; };
  GgmlType t = GgmlType::kQ4_K;
  if (name == "output.weight" || (tied && name == "token_embd.weight")) {
    // The unembedding skips the fallback below: Q8_0 straight away.
    return ne0 % gguf::kQK_K != 0 ? GgmlType::kQ8_0 : GgmlType::kQ6_K;
  }
  if (has("attn_v.weight") || has("ffn_down")) {
    if (UseMoreBits(layer, n_layers)) t = GgmlType::kQ6_K;
  } else if (has("attn_qkv.weight")) {
    t = GgmlType::kQ5_K;
  }
  if (ne0 % gguf::kQK_K != 0) {
    t = t == GgmlType::kQ4_K ? GgmlType::kQ5_0 : t == GgmlType::kQ5_K ? GgmlType::kQ5_1 : GgmlType::kQ8_0;
    if (ne0 % 32 != 0) t = GgmlType::kF16;
  }
  return t;
}

namespace {

// general.file_type (llama.cpp's LlamaFileType) of a dense model whose
// matrices are all `type`; none for a type without a code here (the
// k-quants' mixes, e.g. MOSTLY_Q4_K_M = 15, once the generator writes them).
std::optional<uint32_t> DenseFileType(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return 0;  // ALL_F32
    case GgmlType::kF16:
      return 1;  // MOSTLY_F16
    case GgmlType::kQ8_0:
      return 7;  // MOSTLY_Q8_0
    case GgmlType::kBF16:
      return 32;  // MOSTLY_BF16
    default:
      return std::nullopt;
  }
}

void WriteGptOssKeys(const RandomModelSpec& spec, gguf::GgufWriter& w) {
  const model::ModelConfig& c = spec.config;
  if (spec.expert_type == GgmlType::kMXFP4) w.SetUint32("general.file_type", 38);  // MOSTLY_MXFP4_MOE
  w.SetUint32("gpt-oss.block_count", c.n_layers);
  w.SetUint32("gpt-oss.context_length", c.context_length);
  w.SetUint32("gpt-oss.embedding_length", c.d_model);
  w.SetUint32("gpt-oss.feed_forward_length", c.d_ff);
  w.SetUint32("gpt-oss.expert_feed_forward_length", c.d_ff);
  w.SetUint32("gpt-oss.attention.head_count", c.n_heads);
  w.SetUint32("gpt-oss.attention.head_count_kv", c.n_kv_heads);
  w.SetUint32("gpt-oss.attention.key_length", c.head_dim);
  w.SetUint32("gpt-oss.attention.value_length", c.head_dim);
  w.SetFloat32("gpt-oss.attention.layer_norm_rms_epsilon", c.rms_eps);
  w.SetUint32("gpt-oss.attention.sliding_window", c.sliding_window);
  w.SetUint32("gpt-oss.expert_count", c.n_experts);
  w.SetUint32("gpt-oss.expert_used_count", c.n_experts_used);
  w.SetFloat32("gpt-oss.rope.freq_base", c.rope_theta);
  if (c.rope_scaling_factor > 1.0f) {
    w.SetString("gpt-oss.rope.scaling.type", "yarn");
    w.SetFloat32("gpt-oss.rope.scaling.factor", c.rope_scaling_factor);
    w.SetUint32("gpt-oss.rope.scaling.original_context_length", c.rope_original_context);
  }
}

// The keys convert_hf_to_gguf.py writes for Qwen2Model (TextModel's) and
// Phi3MiniModel: head sizes only when they differ from D / H (the converter
// writes them only when the HF config names a head_dim); phi3 adds the
// rotated dimensions, the original context and the window.
void WriteDenseKeys(const RandomModelSpec& spec, gguf::GgufWriter& w) {
  const model::ModelConfig& c = spec.config;
  const std::string p = absl::StrCat(model::FamilyName(c.family), ".");
  if (spec.llama_q4_k_m) {
    w.SetUint32("general.file_type", 15);  // MOSTLY_Q4_K_M
  } else if (auto file_type = DenseFileType(spec.dense_type)) {
    w.SetUint32("general.file_type", *file_type);
  }
  w.SetUint32(p + "block_count", c.n_layers);
  w.SetUint32(p + "context_length", c.context_length);
  w.SetUint32(p + "embedding_length", c.d_model);
  w.SetUint32(p + "feed_forward_length", c.d_ff);
  w.SetUint32(p + "attention.head_count", c.n_heads);
  w.SetUint32(p + "attention.head_count_kv", c.n_kv_heads);
  if (c.head_dim * c.n_heads != c.d_model) {
    w.SetUint32(p + "attention.key_length", c.head_dim);
    w.SetUint32(p + "attention.value_length", c.head_dim);
  }
  w.SetFloat32(p + "rope.freq_base", c.rope_theta);
  w.SetFloat32(p + "attention.layer_norm_rms_epsilon", c.rms_eps);
  if (c.family == model::Family::kPhi3) {
    w.SetUint32(p + "rope.dimension_count", c.head_dim);
    w.SetUint32(p + "rope.scaling.original_context_length", c.context_length);
    w.SetUint32(p + "attention.sliding_window", c.sliding_window);
  }
}

}  // namespace

std::vector<TensorSpec> RandomModelTensors(const RandomModelSpec& spec, int vocab_size) {
  RandomModelSpec sized = spec;
  sized.config.vocab_size = vocab_size;
  std::vector<TensorSpec> out;
  for (const TensorPlan& p : PlanTensors(sized)) out.push_back({p.name, p.type, p.ne});
  return out;
}

float HashUniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<float>(static_cast<int64_t>(Hash3(seed, stream, index) >> 40) - (1 << 23)) / 8388608.0f;
}

absl::Status ApplyPreset(const std::string& preset, model::ModelConfig* c) {
  if (preset == "qwen2-tiny" || preset == "qwen2.5-0.5b") {
    // Qwen2.5-0.5B's hyperparameters (its config.json); the tiny one keeps
    // everything but the sizes.
    *c = model::ModelConfig{};
    c->family = model::Family::kQwen2;
    c->rope_theta = 1000000.0f, c->rms_eps = 1e-6f, c->context_length = 32768, c->tied_embeddings = true;
    if (preset == "qwen2-tiny") {
      c->n_layers = 2, c->d_model = 64, c->n_heads = 4, c->n_kv_heads = 2, c->head_dim = 16, c->d_ff = 128;
    } else {
      c->n_layers = 24, c->d_model = 896, c->n_heads = 14, c->n_kv_heads = 2, c->head_dim = 64, c->d_ff = 4864;
    }
    return absl::OkStatus();
  }
  if (preset == "phi3-tiny" || preset == "phi3-mini") {
    // Phi-3-mini-4k-instruct's (window 2047 as its config.json says).
    *c = model::ModelConfig{};
    c->family = model::Family::kPhi3;
    c->rope_theta = 10000.0f, c->rms_eps = 1e-5f, c->context_length = 4096, c->sliding_window = 2047;
    if (preset == "phi3-tiny") {
      c->n_layers = 2, c->d_model = 64, c->n_heads = 4, c->n_kv_heads = 4, c->head_dim = 16, c->d_ff = 128;
    } else {
      c->n_layers = 32, c->d_model = 3072, c->n_heads = 32, c->n_kv_heads = 32, c->head_dim = 96, c->d_ff = 8192;
    }
    return absl::OkStatus();
  }
  // Fields shared by every gpt-oss preset.
  *c = model::ModelConfig{};
  c->rope_theta = 150000.0f;
  c->rope_scaling_factor = 32.0f;
  c->rope_original_context = 4096;
  c->rms_eps = 1e-5f;
  c->n_experts_used = 4;
  c->sliding_window = 128;
  c->context_length = 131072;
  if (preset == "tiny") {
    c->n_layers = 2, c->d_model = 64, c->n_heads = 4, c->n_kv_heads = 2, c->head_dim = 16;
    c->n_experts = 8, c->d_ff = 64;
  } else if (preset == "small") {
    c->n_layers = 4, c->d_model = 128, c->n_heads = 8, c->n_kv_heads = 2, c->head_dim = 32;
    c->n_experts = 8, c->d_ff = 128;
  } else if (preset == "medium") {
    c->n_layers = 4, c->d_model = 2880, c->n_heads = 64, c->n_kv_heads = 8, c->head_dim = 64;
    c->n_experts = 32, c->d_ff = 2880;
  } else if (preset == "20b" || preset == "120b") {
    c->n_layers = preset == "20b" ? 24 : 36;
    c->d_model = 2880, c->n_heads = 64, c->n_kv_heads = 8, c->head_dim = 64;
    c->n_experts = preset == "20b" ? 32 : 128;
    c->d_ff = 2880;
  } else {
    return absl::NotFoundError(absl::StrCat("unknown preset '", preset,
                                              "' (gpt-oss: tiny, small, medium, 20b, 120b; qwen2: qwen2-tiny, "
                                              "qwen2.5-0.5b; phi3: phi3-tiny, phi3-mini)"));
  }
  return absl::OkStatus();
}

absl::Status WriteRandomModel(const RandomModelSpec& spec_in, const text::VocabSpec& vocab, const std::string& path) {
  RandomModelSpec spec = spec_in;
  model::ModelConfig& c = spec.config;
  c.vocab_size = static_cast<int>(vocab.tokens.size());
  if (c.vocab_size == 0 || vocab.token_types.size() != vocab.tokens.size()) {
    return absl::InvalidArgumentError("vocabulary is empty or token_types has the wrong length");
  }
  if (c.n_layers <= 0 || c.d_model <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 || c.d_ff <= 0) {
    return absl::InvalidArgumentError("layers, d_model, heads, kv_heads, head_dim and d_ff must be positive");
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("heads (", c.n_heads, ") must be a multiple of kv_heads (", c.n_kv_heads, ")"));
  }
  if (!(spec.residual_scale > 0.0f) || !std::isfinite(spec.residual_scale)) {
    return absl::InvalidArgumentError("residual_scale must be a positive finite number");
  }

  gguf::GgufWriter w;
  w.SetString("general.architecture", model::FamilyName(c.family));
  w.SetString("general.name", spec.name);
  w.SetUint32("general.quantization_version", 2);
  if (c.family == model::Family::kGptOss) {
    WriteGptOssKeys(spec, w);
  } else {
    WriteDenseKeys(spec, w);
  }
  if (absl::Status s = text::WriteTokenizerMetadata(vocab, w); !s.ok()) return s;

  const std::vector<TensorPlan> plans = PlanTensors(spec);
  // Every row must hold whole blocks of its type (32 elements for Q8_0 and
  // MXFP4; the k-quants' 256 once gguf::QuantizeRow writes them).
  for (const TensorPlan& p : plans) {
    const auto traits = gguf::GetTypeTraits(static_cast<uint32_t>(p.type));
    if (!traits) return absl::InvalidArgumentError(absl::StrCat("tensor '", p.name, "': unsupported type"));
    if (p.ne[0] % traits->block_elems != 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", p.name, "' has rows of ", p.ne[0], " elements, not a ",
                                                     "multiple of the ", traits->name, " block (", traits->block_elems,
                                                     "): choose sizes that are"));
    }
  }
  for (const TensorPlan& p : plans) {
    auto added = w.AddTensor(p.name, p.type, p.ne);
    if (!added.ok()) return added.status();
  }
  if (absl::Status s = w.Begin(path); !s.ok()) return s;

  model::ThreadPool pool(spec.threads);
  std::vector<uint8_t> buffer;
  constexpr int64_t kChunkBytes = 64 << 20;
  for (size_t ti = 0; ti < plans.size(); ++ti) {
    const TensorPlan& p = plans[ti];
    int64_t rows = 1;
    for (size_t d = 1; d < p.ne.size(); ++d) rows *= p.ne[d];
    const int64_t row_bytes = gguf::RowBytes(p.type, p.ne[0]);
    const int64_t chunk_rows = std::max<int64_t>(1, kChunkBytes / row_bytes);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - r0);
      buffer.resize(static_cast<size_t>(n * row_bytes));
      pool.ParallelFor(n, std::max<int64_t>(1, n / (pool.size() * 4)), [&](int64_t b, int64_t e) {
        GenerateRows(p, spec.seed, ti, r0 + b, e - b, buffer.data() + b * row_bytes);
      });
      if (absl::Status s = w.WriteTensorData(buffer); !s.ok()) return s;
    }
  }
  return w.Finish();
}

}  // namespace ossgate::tools
