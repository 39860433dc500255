// Writing a vocabulary into GGUF tokenizer metadata, in one place for every
// tool that makes model files (tools/make_model, tests), with the keys and
// the key order llama.cpp's converter (convert_hf_to_gguf.py) writes for the
// tokenizer, so Tokenizer::FromGguf reads back the same tokenizer:
//
//   "gpt2"   model, pre, tokens, token_type, merges, bos/eos/unknown/padding
//            token ids (those set), add_bos_token
//   "llama"  model, pre, tokens, scores, token_type, the token ids (those
//            set), add_bos_token, add_eos_token (false), add_space_prefix
//            (only when false: llama.cpp's default is true)
#pragma once

#include "absl/status/status.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::text {

// InvalidArgument (and nothing written) when the arrays of `vocab` disagree
// in length or its model is neither "gpt2" nor "llama".
absl::Status WriteTokenizerMetadata(const VocabSpec& vocab, gguf::GgufWriter& writer);

}  // namespace ossgate::text
