// SentencePiece BPE tokenizer (GGUF tokenizer.ggml.model = "llama"), as
// Phi-3-mini uses it: Llama 2's 32000 pieces plus Phi-3's chat tokens.
// Internal to ossgate_text: Tokenizer::Create and FromGguf build it.
//
// Encoding a text segment (the whole text, or each piece between special
// tokens when they are split out), as SentencePiece, llama.cpp and the
// Hugging Face "legacy" Llama tokenizer do:
//   1. with add_space_prefix, "▁" (U+2581) goes in front, and every space
//      becomes "▁" (no other normalization: Llama's model is "identity");
//   2. the segment starts as one symbol per character; the adjacent pair
//      whose concatenation is the kNormal piece of highest score merges
//      first (equal scores: the leftmost pair), until no pair is a piece;
//   3. a symbol that is no piece (a character outside the vocabulary)
//      becomes the byte tokens <0xXX> of its UTF-8 bytes (byte fallback).
// Special tokens listed in rstrip_ids swallow the whitespace after them
// (Phi-3's tokenizer.json marks its chat tokens so).
//
// Decoding: "▁" is a space, <0xXX> its byte, special tokens their text; the
// first space of each text segment (the prefix step 1 added) is dropped.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::text {

// Validates `spec` (model "llama": one finite score per token, the 256 byte
// tokens "<0x00>".."<0xFF>", unique pieces and special texts, special ids in
// range) and builds the tokenizer. InvalidArgument names the bad token.
absl::StatusOr<std::unique_ptr<Tokenizer>> CreateSentencePieceTokenizer(VocabSpec spec);

// "<0x0A>" for 0x0A: the text of a byte-fallback token.
std::string ByteTokenText(unsigned char byte);

}  // namespace ossgate::text
