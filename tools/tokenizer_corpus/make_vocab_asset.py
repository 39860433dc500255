#!/usr/bin/env python3
"""Converts the gpt-oss tokenizer.json (Hugging Face format) into the compact
ossgate vocabulary file (format: docs/tokenizer.md), xz-compressed.

Usage:
  python3 tools/tokenizer_corpus/make_vocab_asset.py \
      /work/shared/data/gpt-oss-tokenizer.json.xz assets/tokenizer/o200k_harmony.vocab.xz

The output holds the vocabulary exactly as the official GGUF carries it
(spec section 7.1): 201088 entries; ids 0..199997 are the byte-level BPE tokens
(type NORMAL) in GPT-2 byte-to-unicode form, ids 199998..200018 the added
special tokens (type CONTROL) as literal text, and the ids the tokenizer.json
does not name are filled with "[PAD<id>]" of type UNUSED, as llama.cpp's
converter does. Merges are stored as (result id delta, split point) pairs and
expand back to the exact "A B" strings of tokenizer.json, in the same order;
the script checks that round trip before writing.
"""
import json
import lzma
import sys

GGUF_VOCAB_SIZE = 201088  # gpt-oss config vocab_size (spec section 7.1)
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


def load_json(path):
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    src, dst = argv[1], argv[2]
    tj = load_json(src)
    model = tj["model"]
    if model.get("type") != "BPE":
        sys.exit(f"{src}: model.type is {model.get('type')!r}, expected 'BPE'")

    tokens = [None] * GGUF_VOCAB_SIZE
    types = [UNUSED] * GGUF_VOCAB_SIZE
    for text, i in model["vocab"].items():
        if not 0 <= i < GGUF_VOCAB_SIZE or tokens[i] is not None:
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
    for i in range(GGUF_VOCAB_SIZE):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
    for i, t in enumerate(tokens):
        if not t or "\n" in t or "\r" in t:
            sys.exit(f"token {i} {t!r} is empty or contains a line break; the format cannot hold it")

    index = {t: i for i, t in enumerate(tokens) if types[i] == NORMAL}
    merges = []
    for m in model["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ")
        merges.append((a, b))

    lines = ["ossgate-bpe-vocab 1", f"tokens {len(tokens)}"]
    lines += [f"{types[i]} {t}" for i, t in enumerate(tokens)]
    lines.append(f"merges {len(merges)}")
    prev = 0
    for a, b in merges:
        r = index.get(a + b)
        if r is None:
            sys.exit(f"merge {a!r} {b!r}: {a + b!r} is not a token")
        lines.append(f"{r - prev} {len(a)}")
        # Round-trip check: the pair expands back to the same strings.
        assert tokens[r][: len(a)] == a and tokens[r][len(a):] == b
        prev = r
    lines.append("end")
    data = ("\n".join(lines) + "\n").encode("utf-8")
    with lzma.open(dst, "wb", preset=9 | lzma.PRESET_EXTREME) as f:
        f.write(data)
    print(f"{dst}: {len(tokens)} tokens, {len(merges)} merges, {len(data)} bytes uncompressed")


if __name__ == "__main__":
    main(sys.argv)
