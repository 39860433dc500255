#include "provenance_service/core/default_registry.h"

namespace ossgate::provenance {

std::vector<RegistryChange> DefaultRegistryChanges() {
  // Families are the GGUF general.architecture of the repositories' files;
  // ossgate://bundled holds any family, so its files name their own.
  struct Seed {
    const char* uri;
    const char* family;
    const char* description;
  };
  static constexpr Seed kSeeds[] = {
      {"hf://openai/gpt-oss-20b", "gpt-oss", "OpenAI gpt-oss-20b (official repository)"},
      {"hf://openai/gpt-oss-120b", "gpt-oss", "OpenAI gpt-oss-120b (official repository)"},
      // OpenAI publishes safetensors; the GGUF files the worker loads are the
      // ggml-org conversions (gpt-oss-20b-MXFP4.gguf, gpt-oss-120b-mxfp4-*.gguf).
      {"hf://ggml-org/gpt-oss-20b-GGUF", "gpt-oss", "gpt-oss-20b GGUF (ggml-org conversion of the OpenAI weights)"},
      {"hf://ggml-org/gpt-oss-120b-GGUF", "gpt-oss", "gpt-oss-120b GGUF (ggml-org conversion of the OpenAI weights)"},
      {"hf://Qwen/Qwen2.5-0.5B-Instruct", "qwen2", "Qwen2.5-0.5B-Instruct (official repository)"},
      {"hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2", "Qwen2.5-0.5B-Instruct GGUF (official, by Qwen)"},
      {"hf://microsoft/Phi-3-mini-4k-instruct", "phi3", "Microsoft Phi-3-mini 4k instruct (official repository)"},
      {"hf://microsoft/Phi-3-mini-4k-instruct-gguf", "phi3", "Microsoft Phi-3-mini 4k instruct GGUF (official, by Microsoft)"},
      {"hf://microsoft/Phi-3-mini-128k-instruct", "phi3", "Microsoft Phi-3-mini 128k instruct (official repository)"},
      {"ossgate://bundled", "", "Models bundled with ossgate; only explicitly registered hashes verify"},
  };
  std::vector<RegistryChange> out;
  for (const Seed& s : kSeeds) {
    RegistryChange c;
    c.action = ChangeAction::kAddSource;
    c.uri = s.uri;
    c.description = s.description;
    c.family = s.family;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace ossgate::provenance
