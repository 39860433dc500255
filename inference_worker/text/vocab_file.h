// Vocabulary files and the built-in tiny vocabulary.
//
// The ossgate vocabulary file is a line-based text format (docs/tokenizer.md
// has the full grammar); assets/tokenizer/o200k_harmony.vocab.xz holds the
// real gpt-oss vocabulary in it, and the build decompresses that into the
// path the CMake variable OSSGATE_O200K_VOCAB_PATH names.
//
//   ossgate-bpe-vocab 1
//   tokens <N>
//   <type> <token text>      N lines, id = line order; type = gguf TokenType
//   merges <M>
//   <delta> <split>          M lines, rank = line order (see below)
//   end
//
// A merge line names its result token id as the previous result id plus
// `delta` (the first is relative to 0), and `split` is the number of code
// points of the left part; the rule is "A B" with A = the first `split` code
// points of that token's text and B = the rest. Since every merge's result is
// a token, this holds the merge list exactly in a fraction of the space.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::text {

// Parses a vocabulary file's contents. InvalidArgument names the line and
// what is wrong with it. The result still has to pass Tokenizer::Create.
absl::StatusOr<VocabSpec> ParseVocab(absl::string_view contents);

// Reads and parses the vocabulary file at `path` (uncompressed; the build
// runs `xz -dc` on the asset). NotFound when the file cannot be opened.
absl::StatusOr<VocabSpec> LoadVocabFile(const std::string& path);

// Serializes `spec` in the format above. InvalidArgument if a token holds a
// line break or a merge's parts do not concatenate to a BPE token.
absl::StatusOr<std::string> SerializeVocab(const VocabSpec& spec);

// A small deterministic byte-level vocabulary for tests and tiny models:
// ids 0..255 are the single bytes (id = byte value), then the tokens of
// kTinyVocabMerges merges learned by BPE training on a fixed English text
// (most frequent pair first, ties to the smallest pair of ids), then the
// harmony special tokens as kControl tokens, in this order: <|startoftext|>
// <|endoftext|> <|return|> <|constrain|> <|channel|> <|start|> <|end|>
// <|message|> <|call|>. Special ids therefore differ from o200k's: always
// look them up with Tokenizer::SpecialTokenId.
inline constexpr int kTinyVocabMerges = 300;
VocabSpec MakeTinyVocab();

// The English text MakeTinyVocab learns from.
absl::string_view TinyVocabTrainingText();

}  // namespace ossgate::text
