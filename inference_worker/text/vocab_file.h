// Vocabulary files and the built-in tiny vocabulary.
//
// The ossgate vocabulary file is a line-based text format (docs/tokenizer.md
// has the full grammar); assets/tokenizer/*.vocab.xz hold the real gpt-oss
// (o200k_harmony), Qwen2.5 and Phi-3 vocabularies in it, and the build
// decompresses them into the paths the CMake variables
// OSSGATE_{O200K,QWEN2,PHI3}_VOCAB_PATH name.
//
//   ossgate-vocab 2          (version 1, "ossgate-bpe-vocab 1", has no header keys: gpt-oss)
//   model <gpt2|llama>       header keys, each optional: model, pre, bos, eos, unk,
//   pre <name>               padding (ids), add_bos, add_space_prefix (0/1),
//   ...                      rstrip <id> <id>...
//   tokens <N>
//   <type> <token text>      N lines, id = line order; type = gguf TokenType
//                            ("llama": <type> <score> <token text>)
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

// Serializes `spec` in the format above (version 2). InvalidArgument if a
// token holds a line break or a merge's parts do not concatenate to a BPE
// token.
absl::StatusOr<std::string> SerializeVocab(const VocabSpec& spec);

// Sets the special ids the gpt-oss GGUF names (BOS <|startoftext|>, EOS
// <|return|>, padding <|endoftext|>; -1 where the vocabulary lacks one) and
// add_bos = false. Version-1 files and MakeTinyVocab get them so.
void SetHarmonySpecialIds(VocabSpec* spec);

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

// Small vocabularies of the other families, for tests and tiny models, built
// from MakeTinyVocab's learned tokens (special ids differ from the real
// vocabularies': look them up with SpecialTokenId):
//   "qwen2": MakeTinyVocab's bytes and merges, pre "qwen2", then the CONTROL
//            tokens <|endoftext|> (BOS, padding) <|im_start|> <|im_end|> (EOS).
//   "phi3":  SentencePiece ("llama"): <unk> <s> </s> (USER_DEFINED), the 256
//            <0xXX> byte tokens, "▁" and the printable ASCII characters, then
//            MakeTinyVocab's ASCII tokens (spaces as "▁") scored in the order
//            they were learned, then the CONTROL tokens <|endoftext|> (EOS,
//            padding) <|assistant|> <|system|> <|end|> <|user|>, the rstrip
//            ones as Phi3RstripIds says.
// InvalidArgument for another family.
absl::StatusOr<VocabSpec> MakeTinyFamilyVocab(absl::string_view family);

// The English text MakeTinyVocab learns from.
absl::string_view TinyVocabTrainingText();

}  // namespace ossgate::text
