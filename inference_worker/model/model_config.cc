#include "inference_worker/model/model_config.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "inference_worker/model/families.h"

namespace ossgate::model {

namespace internal {

absl::Status ReadPositiveInt(const gguf::GgufFile& f, const std::string& key, int max_value, int* out) {
  auto v = f.GetUint(key);
  if (!v.ok()) {
    const std::string arch = key.substr(0, key.find('.'));
    return absl::InvalidArgumentError(absl::StrCat(v.status().message(), " (required ", arch, " hyperparameter)"));
  }
  if (*v == 0 || *v > static_cast<uint64_t>(max_value)) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF metadata key '", key, "' = ", *v, " is out of range 1..", max_value));
  }
  *out = static_cast<int>(*v);
  return absl::OkStatus();
}

absl::Status ReadOptionalFloat(const gguf::GgufFile& f, const std::string& key, float* out) {
  if (!f.FindKey(key)) return absl::OkStatus();
  auto v = f.GetFloat(key);
  if (!v.ok()) return v.status();
  if (!std::isfinite(*v)) return absl::InvalidArgumentError(absl::StrCat("GGUF metadata key '", key, "' is not finite"));
  *out = static_cast<float>(*v);
  return absl::OkStatus();
}

}  // namespace internal

namespace {

using internal::ReadOptionalFloat;
using internal::ReadPositiveInt;

constexpr Family kFamilies[] = {Family::kGptOss, Family::kQwen2, Family::kPhi3};

absl::Status ReadTokenRows(const gguf::GgufFile& f, ModelConfig* c) {
  // A tokenizer shorter or longer than the embedding leaves rows without a
  // token (which a sampler could still pick) or tokens without a row.
  if (f.FindKey("tokenizer.ggml.tokens")) {
    auto tokens = f.GetStringArray("tokenizer.ggml.tokens");
    if (!tokens.ok()) return tokens.status();
    if ((*tokens)->size() != static_cast<size_t>(c->vocab_size)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the tokenizer has ", (*tokens)->size(), " tokens (tokenizer.ggml.tokens) but token_embd.weight has ",
          c->vocab_size, " rows; they must agree (pad the vocabulary with tokens of type UNUSED, as the converter "
          "does, or use a file whose tokenizer matches its embedding)"));
    }
  }
  if (f.FindKey("tokenizer.ggml.token_type")) {
    auto types = f.GetIntArray("tokenizer.ggml.token_type");
    if (!types.ok()) return types.status();
    if ((*types)->size() != static_cast<size_t>(c->vocab_size)) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.ggml.token_type has ", (*types)->size(),
                                                     " entries but token_embd.weight has ", c->vocab_size,
                                                     " rows; they must agree"));
    }
    constexpr int64_t kUnusedType = 5;  // gguf TokenType UNUSED
    for (size_t i = 0; i < (*types)->size(); ++i) {
      if ((**types)[i] == kUnusedType) c->unsampled_tokens.push_back(static_cast<int32_t>(i));
    }
    if (c->unsampled_tokens.size() == (*types)->size()) {
      return absl::InvalidArgumentError("every token of tokenizer.ggml.token_type is UNUSED (5): nothing can be sampled");
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* FamilyName(Family family) {
  switch (family) {
    case Family::kGptOss:
      return "gpt-oss";
    case Family::kQwen2:
      return "qwen2";
    case Family::kPhi3:
      return "phi3";
  }
  return "unknown";
}

std::string ModelConfig::DebugString() const {
  if (family == Family::kGptOss) {
    return absl::StrFormat(
        "arch=gpt-oss layers=%d d_model=%d heads=%d kv_heads=%d head_dim=%d experts=%d top_k=%d d_ff=%d vocab=%d "
        "ctx=%d window=%d rope_theta=%g yarn_factor=%g orig_ctx=%d",
        n_layers, d_model, n_heads, n_kv_heads, head_dim, n_experts, n_experts_used, d_ff, vocab_size,
        context_length, sliding_window, rope_theta, rope_scaling_factor, rope_original_context);
  }
  return absl::StrFormat(
      "arch=%s layers=%d d_model=%d heads=%d kv_heads=%d head_dim=%d d_ff=%d vocab=%d ctx=%d window=%d "
      "rope_theta=%g rms_eps=%g tied_embeddings=%s",
      FamilyName(family), n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, vocab_size, context_length,
      sliding_window, rope_theta, rms_eps, tied_embeddings ? "yes" : "no");
}

namespace internal {

// The gpt-oss keys (spec §3): every size explicit, head_dim from key_length,
// YaRN scaling.
absl::Status ReadGptOssKeys(const gguf::GgufFile& f, ModelConfig* out) {
  const std::string p = "gpt-oss.";
  ModelConfig& c = *out;
  constexpr int kBig = 1 << 20;
  if (auto s = ReadPositiveInt(f, p + "block_count", 4096, &c.n_layers); !s.ok()) return s;
  if (auto s = ReadPositiveInt(f, p + "embedding_length", kBig, &c.d_model); !s.ok()) return s;
  if (auto s = ReadPositiveInt(f, p + "attention.head_count", 4096, &c.n_heads); !s.ok()) return s;
  if (auto s = ReadPositiveInt(f, p + "attention.head_count_kv", 4096, &c.n_kv_heads); !s.ok()) return s;
  if (auto s = ReadPositiveInt(f, p + "attention.key_length", 1024, &c.head_dim); !s.ok()) return s;
  if (auto s = ReadPositiveInt(f, p + "expert_count", 4096, &c.n_experts); !s.ok()) return s;
  if (auto s = ReadPositiveInt(f, p + "expert_used_count", 4096, &c.n_experts_used); !s.ok()) return s;
  if (auto s = ReadPositiveInt(f, p + "expert_feed_forward_length", kBig, &c.d_ff); !s.ok()) return s;
  if (auto s = ReadPositiveInt(f, p + "context_length", 1 << 24, &c.context_length); !s.ok()) return s;
  if (f.FindKey(p + "attention.sliding_window")) {
    if (auto s = ReadPositiveInt(f, p + "attention.sliding_window", 1 << 24, &c.sliding_window); !s.ok()) return s;
  }
  if (f.FindKey(p + "attention.value_length")) {
    int value_length = 0;
    if (auto s = ReadPositiveInt(f, p + "attention.value_length", 1024, &value_length); !s.ok()) return s;
    if (value_length != c.head_dim) {
      return absl::InvalidArgumentError(absl::StrCat("attention.value_length (", value_length,
                                                     ") differs from attention.key_length (", c.head_dim,
                                                     "); gpt-oss uses equal head sizes"));
    }
  }
  auto theta = f.GetFloat(p + "rope.freq_base");
  if (!theta.ok()) return absl::InvalidArgumentError(absl::StrCat(theta.status().message(), " (required)"));
  if (!(*theta > 1.0) || !std::isfinite(*theta)) {
    return absl::InvalidArgumentError(absl::StrCat("rope.freq_base must be > 1, found ", *theta));
  }
  c.rope_theta = static_cast<float>(*theta);
  if (auto s = ReadOptionalFloat(f, p + "attention.layer_norm_rms_epsilon", &c.rms_eps); !s.ok()) return s;
  if (!(c.rms_eps > 0.0f)) return absl::InvalidArgumentError("attention.layer_norm_rms_epsilon must be positive");

  std::string scaling_type = "none";
  if (f.FindKey(p + "rope.scaling.type")) {
    auto t = f.GetString(p + "rope.scaling.type");
    if (!t.ok()) return t.status();
    scaling_type = *t;
  }
  if (scaling_type == "yarn") {
    if (auto s = ReadOptionalFloat(f, p + "rope.scaling.factor", &c.rope_scaling_factor); !s.ok()) return s;
    if (!(c.rope_scaling_factor >= 1.0f)) return absl::InvalidArgumentError("rope.scaling.factor must be >= 1");
    if (auto s = ReadPositiveInt(f, p + "rope.scaling.original_context_length", 1 << 24, &c.rope_original_context);
        !s.ok()) {
      return s;
    }
    if (auto s = ReadOptionalFloat(f, p + "rope.scaling.yarn_beta_fast", &c.yarn_beta_fast); !s.ok()) return s;
    if (auto s = ReadOptionalFloat(f, p + "rope.scaling.yarn_beta_slow", &c.yarn_beta_slow); !s.ok()) return s;
    if (!(c.yarn_beta_fast > c.yarn_beta_slow && c.yarn_beta_slow > 0.0f)) {
      return absl::InvalidArgumentError("YaRN needs yarn_beta_fast > yarn_beta_slow > 0");
    }
  } else if (scaling_type != "none") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported rope.scaling.type '", scaling_type,
                                                   "'; gpt-oss uses \"yarn\" (or none)"));
  }
  if (f.FindKey(p + "rope.dimension_count")) {
    auto n_rot = f.GetUint(p + "rope.dimension_count");
    if (!n_rot.ok()) return n_rot.status();
    if (*n_rot != static_cast<uint64_t>(c.head_dim)) {
      return absl::InvalidArgumentError(absl::StrCat("rope.dimension_count = ", *n_rot, " but gpt-oss rotates the whole head (",
                                                     c.head_dim, ")"));
    }
  }

  if (c.n_heads % c.n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("attention.head_count (", c.n_heads,
                                                   ") must be a multiple of head_count_kv (", c.n_kv_heads, ")"));
  }
  if (c.head_dim % 2 != 0) return absl::InvalidArgumentError("attention.key_length must be even for RoPE");
  if (c.n_experts_used > c.n_experts) {
    return absl::InvalidArgumentError(absl::StrCat("expert_used_count (", c.n_experts_used, ") exceeds expert_count (",
                                                   c.n_experts, ")"));
  }
  return absl::OkStatus();
}

}  // namespace internal

absl::StatusOr<ModelConfig> ReadModelConfig(const gguf::GgufFile& f) {
  auto arch = f.GetString("general.architecture");
  if (!arch.ok()) return absl::InvalidArgumentError(absl::StrCat(arch.status().message(), "; not a model GGUF"));
  ModelConfig c;
  bool known = false;
  for (Family family : kFamilies) {
    if (*arch == FamilyName(family)) {
      c.family = family;
      known = true;
    }
  }
  if (!known) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported model architecture '", *arch,
                                                   "': ossgate serves gpt-oss, qwen2 and phi3 models "
                                                   "(general.architecture = \"gpt-oss\", \"qwen2\" or \"phi3\")"));
  }
  absl::Status read;
  switch (c.family) {
    case Family::kGptOss:
      read = internal::ReadGptOssKeys(f, &c);
      break;
    case Family::kQwen2:
      read = internal::ReadQwen2Keys(f, &c);
      break;
    case Family::kPhi3:
      read = internal::ReadPhi3Keys(f, &c);
      break;
  }
  if (!read.ok()) return read;
  const gguf::TensorInfo* embd = f.FindTensor("token_embd.weight");
  if (!embd) return absl::InvalidArgumentError("tensor 'token_embd.weight' is missing");
  if (embd->n_dims != 2 || embd->ne[1] > (1 << 24)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor 'token_embd.weight' has shape ", embd->ShapeString(),
                                                   ", expected [d_model, vocab]"));
  }
  c.vocab_size = static_cast<int>(embd->ne[1]);
  if (absl::Status s = ReadTokenRows(f, &c); !s.ok()) return s;
  return c;
}

RopeTables ComputeRope(const ModelConfig& c) {
  RopeTables t;
  const int half = c.head_dim / 2;
  t.inv_freq.resize(half);
  const double base = c.rope_theta;
  for (int i = 0; i < half; ++i) t.inv_freq[i] = 1.0 / std::pow(base, 2.0 * i / c.head_dim);
  if (c.rope_scaling_factor > 1.0f) {
    const double s = c.rope_scaling_factor;
    const double two_pi = 2.0 * std::numbers::pi;
    // HF transformers' correction range with truncate=false (gpt-oss's
    // config): unrounded, but clamped to [0, head_dim - 1]. The clamp only
    // bites outside the reference's domain (original context below about
    // beta_fast·2π ≈ 201 tokens, or a tiny base); without it such files'
    // logits differ from HF and llama.cpp by tens of percent.
    const double low =
        std::max(half * std::log(c.rope_original_context / (c.yarn_beta_fast * two_pi)) / std::log(base), 0.0);
    double high = std::min(half * std::log(c.rope_original_context / (c.yarn_beta_slow * two_pi)) / std::log(base),
                           c.head_dim - 1.0);
    if (high == low) high += 0.001;  // HF's guard against 0/0 (ReadModelConfig's beta_fast > beta_slow makes it rare)
    for (int i = 0; i < half; ++i) {
      const double extrapolated = t.inv_freq[i];
      const double interpolated = extrapolated / s;
      const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      t.inv_freq[i] = ramp * interpolated + (1.0 - ramp) * extrapolated;
    }
    t.attention_factor = 0.1 * std::log(s) + 1.0;
  }
  return t;
}

}  // namespace ossgate::model
