#include "inference_worker/text/tokenizer_metadata.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ossgate::text {

absl::Status WriteTokenizerMetadata(const VocabSpec& vocab, gguf::GgufWriter& w) {
  const bool bpe = vocab.model == kByteLevelBpeModel;
  if (!bpe && vocab.model != kSentencePieceModel) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary model \"", vocab.model, "\" is neither \"",
                                                   kByteLevelBpeModel, "\" nor \"", kSentencePieceModel, "\""));
  }
  if (vocab.tokens.empty() || vocab.token_types.size() != vocab.tokens.size()) {
    return absl::InvalidArgumentError("vocabulary is empty or token_types has the wrong length");
  }
  if (!bpe && vocab.scores.size() != vocab.tokens.size()) {
    return absl::InvalidArgumentError("a SentencePiece vocabulary needs one score per token");
  }
  const int64_t n = static_cast<int64_t>(vocab.tokens.size());
  for (int32_t id : {vocab.bos_id, vocab.eos_id, vocab.unk_id, vocab.padding_id}) {
    if (id < -1 || id >= n) {
      return absl::InvalidArgumentError(absl::StrCat("special token id ", id, " is outside the vocabulary of ", n));
    }
  }
  w.SetString("tokenizer.ggml.model", vocab.model);
  w.SetString("tokenizer.ggml.pre", vocab.pre);
  w.SetStringArray("tokenizer.ggml.tokens", vocab.tokens);
  if (bpe) {
    w.SetInt32Array("tokenizer.ggml.token_type", vocab.token_types);
    w.SetStringArray("tokenizer.ggml.merges", vocab.merges);
  } else {
    w.SetFloat32Array("tokenizer.ggml.scores", vocab.scores);
    w.SetInt32Array("tokenizer.ggml.token_type", vocab.token_types);
  }
  for (auto [key, id] : {std::pair{"tokenizer.ggml.bos_token_id", vocab.bos_id},
                         std::pair{"tokenizer.ggml.eos_token_id", vocab.eos_id},
                         std::pair{"tokenizer.ggml.unknown_token_id", vocab.unk_id},
                         std::pair{"tokenizer.ggml.padding_token_id", vocab.padding_id}}) {
    if (id >= 0) w.SetUint32(key, static_cast<uint32_t>(id));
  }
  w.SetBool("tokenizer.ggml.add_bos_token", vocab.add_bos);
  if (!bpe) {
    w.SetBool("tokenizer.ggml.add_eos_token", false);
    if (!vocab.add_space_prefix) w.SetBool("tokenizer.ggml.add_space_prefix", false);
  }
  return absl::OkStatus();
}

}  // namespace ossgate::text
