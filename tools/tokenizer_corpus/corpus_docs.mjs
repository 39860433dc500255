// The documents of the tokenizer exactness corpora, shared by
// generate_corpus.mjs (o200k) and generate_family_corpus.mjs (Qwen2.5,
// Phi-3). Everything is derived from a seed, so the same code gives
// byte-identical documents.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";

import { CODE_TEMPLATES, EMOJI, ENGLISH_SENTENCES, LANGUAGES, SPECIAL_LIKE, WORDS } from "./corpus_text.mjs";

export const TARGET_BYTES = 1_250_000;
export const SEED = 0x05a7e;

// ---------------------------------------------------------------------------
// Deterministic PRNG (mulberry32).
export function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));  // inclusive
  const pick = (arr) => arr[Math.floor(next() * arr.length)];
  const chance = (p) => next() < p;
  return { next, int, pick, chance };
}

// ---------------------------------------------------------------------------
// Document generators. Each returns a string (valid text) unless noted.

export function identifier(r) {
  const parts = [r.pick(WORDS.noun), r.pick(WORDS.adj), r.pick(WORDS.verb)].slice(0, r.int(1, 3));
  const style = r.int(0, 3);
  if (style === 0) return parts.join("_");
  if (style === 1) return parts.map((p, i) => (i ? p[0].toUpperCase() + p.slice(1) : p)).join("");
  if (style === 2) return parts.map((p) => p[0].toUpperCase() + p.slice(1)).join("");
  return parts.join("_").toUpperCase();
}

export function templatedSentence(r) {
  const forms = [
    () => `The ${r.pick(WORDS.adj)} ${r.pick(WORDS.noun)} ${r.pick(WORDS.verb)} the ${r.pick(WORDS.noun)}.`,
    () => `${r.pick(WORDS.name)} ${r.pick(WORDS.verb)} a ${r.pick(WORDS.adj)} ${r.pick(WORDS.noun)} in ${r.pick(WORDS.place)}.`,
    () => `Why does the ${r.pick(WORDS.noun)} look so ${r.pick(WORDS.adj)} today?`,
    () => `${r.pick(WORDS.name)}'s ${r.pick(WORDS.noun)} isn't ${r.pick(WORDS.adj)} anymore, is it?`,
    () => `In ${r.int(1700, 2030)}, about ${r.int(2, 99999).toLocaleString("en-US")} people lived in ${r.pick(WORDS.place)}.`,
    () => `"${r.pick(WORDS.adj)[0].toUpperCase()}${r.pick(WORDS.adj).slice(1)}!" said ${r.pick(WORDS.name)}.`,
  ];
  return r.pick(forms)();
}

export function englishProse(r) {
  const paragraphs = [];
  for (let p = r.int(1, 4); p > 0; --p) {
    const sentences = [];
    for (let s = r.int(2, 7); s > 0; --s) sentences.push(r.chance(0.6) ? r.pick(ENGLISH_SENTENCES) : templatedSentence(r));
    paragraphs.push(sentences.join(" "));
  }
  return paragraphs.join(r.pick(["\n\n", "\n", "\r\n\r\n", "\n\n\n"]));
}

function code(r) {
  const [lang, template] = r.pick(CODE_TEMPLATES);
  let text = template
    .replace(/\$id/g, () => identifier(r))
    .replace(/\$n/g, () => String(r.int(0, 100000)))
    .replace(/\$s/g, () => r.pick(["x", "hello world", "a-b_c", "ÄÖÜ", "日本", "🙂", "%d", "\\t"]))
    .replace(/\$w/g, () => r.pick(WORDS.noun));
  if (r.chance(0.25)) text = text.replace(/^( {4})+/gm, (m) => "\t".repeat(m.length / 4));  // tabs
  if (r.chance(0.15)) text = text.replace(/\n/g, "\r\n");                                 // CRLF
  if (r.chance(0.2)) text = text.replace(/;$/gm, () => ";" + " ".repeat(r.int(1, 6)));     // trailing spaces
  return `// ${lang}\n` + text;
}

export function multilingual(r) {
  const [tag, sentences] = r.pick(LANGUAGES);
  const out = [];
  for (let i = r.int(2, 8); i > 0; --i) {
    out.push(r.pick(sentences));
    if (r.chance(0.15)) out.push(r.pick(ENGLISH_SENTENCES));
    if (r.chance(0.1)) out.push(String(r.int(0, 1e6)));
  }
  return [tag, out.join(r.pick([" ", "\n", "", "  ", "\n\n"]))];
}

// Code point ranges assigned no later than Unicode 13, so that the character
// properties agree across regex engines of different Unicode versions.
export const RANGES = {
  latin: [[0x41, 0x5a], [0x61, 0x7a], [0xc0, 0xff], [0x100, 0x17f], [0x180, 0x24f], [0x1e00, 0x1eff]],
  letters: [[0x391, 0x3c9], [0x410, 0x44f], [0x531, 0x556], [0x5d0, 0x5ea], [0x620, 0x64a], [0x905, 0x939],
    [0xe01, 0xe30], [0x10d0, 0x10fa], [0x1200, 0x1248], [0x3041, 0x3096], [0x30a1, 0x30fa], [0x4e00, 0x9fa5],
    [0xac00, 0xd7a3], [0x1100, 0x1112], [0xa000, 0xa48c], [0x13a0, 0x13f4], [0x2c00, 0x2c2e]],
  special_letters: [[0x1c5, 0x1c5], [0x1c8, 0x1c8], [0x1cb, 0x1cb], [0x1f2, 0x1f2], [0x2b0, 0x2c1], [0x2c6, 0x2d1],
    [0x3005, 0x3005], [0x3031, 0x3035], [0xaa70, 0xaa70], [0x1d2c, 0x1d6a], [0x17f, 0x17f], [0x212a, 0x212a]],
  marks: [[0x300, 0x36f], [0x483, 0x489], [0x591, 0x5bd], [0x64b, 0x65f], [0x93e, 0x94d], [0xe31, 0xe3a],
    [0xe47, 0xe4e], [0x1ab0, 0x1abe], [0x20d0, 0x20f0], [0xfe20, 0xfe2f], [0x302a, 0x302f], [0x3099, 0x309a]],
  digits: [[0x30, 0x39], [0x660, 0x669], [0x6f0, 0x6f9], [0x966, 0x96f], [0xe50, 0xe59], [0xff10, 0xff19],
    [0x1d7ce, 0x1d7ff], [0xb2, 0xb3], [0xb9, 0xb9], [0xbc, 0xbe], [0x2150, 0x2189], [0x2460, 0x249b], [0x3007, 0x3007]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e], [0xa1, 0xbf], [0x2010, 0x2027], [0x2030, 0x205e],
    [0x3001, 0x3003], [0x300c, 0x3011], [0xff01, 0xff0f], [0x2190, 0x21ff], [0x2200, 0x22ff], [0x2500, 0x257f],
    [0x20a0, 0x20bf], [0xe000, 0xe010], [0x1f300, 0x1f5ff]],
  controls: [[0x0, 0x8], [0xe, 0x1f], [0x7f, 0x84], [0x86, 0x9f], [0x200b, 0x200f], [0x2060, 0x2064], [0xfeff, 0xfeff],
    [0x180e, 0x180e], [0xad, 0xad], [0x34f, 0x34f], [0xfe00, 0xfe0f], [0xe0001, 0xe0001], [0xe0020, 0xe007f]],
  spaces: [[0x20, 0x20], [0x9, 0xd], [0x85, 0x85], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a], [0x2028, 0x2029],
    [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000]],
};

export function fromRanges(r, ranges) {
  const [lo, hi] = r.pick(ranges);
  return String.fromCodePoint(r.int(lo, hi));
}

function unicodeMix(r) {
  const kinds = Object.keys(RANGES);
  let s = "";
  for (let i = r.int(5, 120); i > 0; --i) {
    const kind = r.pick(kinds);
    for (let k = r.int(1, kind === "spaces" ? 4 : 6); k > 0; --k) s += fromRanges(r, RANGES[kind]);
  }
  return s;
}

export function emoji(r) {
  let s = "";
  for (let i = r.int(3, 40); i > 0; --i) {
    if (r.chance(0.3)) s += r.pick([" ", "", "\n", " and ", "!!", ", ", "\u200d", "\ufe0f"]);
    s += r.pick(EMOJI);
    if (r.chance(0.2)) s += r.pick(WORDS.noun);
  }
  return s;
}

const BASE_WORDS = ["cafe", "resume", "naive", "Zoe", "uber", "Ha Noi", "o", "a", "ZALGO", "Ĳ", "ﬁ", "Å", "ﬃ"];
function combining(r) {
  let s = "";
  for (let i = r.int(3, 30); i > 0; --i) {
    const base = r.chance(0.5) ? r.pick(BASE_WORDS) : fromRanges(r, RANGES.latin);
    for (const ch of base) {
      s += ch;
      for (let m = r.chance(0.5) ? r.int(1, 8) : 0; m > 0; --m) s += fromRanges(r, RANGES.marks);
    }
    s += r.pick([" ", "", "\n", ". ", "\u0301 ", "-"]);
  }
  // Decomposed text that normalization would change (none is applied).
  if (r.chance(0.5)) s += " " + "Crème brûlée, naïve café, Ångström".normalize("NFD");
  if (r.chance(0.3)) s += " " + "한국어 텍스트".normalize("NFD");
  return s;
}

function whitespace(r) {
  const pieces = [];
  for (let i = r.int(2, 25); i > 0; --i) {
    const kind = r.int(0, 9);
    if (kind === 0) pieces.push(" ".repeat(r.int(1, 64)));
    else if (kind === 1) pieces.push("\t".repeat(r.int(1, 12)));
    else if (kind === 2) pieces.push("\n".repeat(r.int(1, 9)));
    else if (kind === 3) pieces.push("\r\n".repeat(r.int(1, 5)));
    else if (kind === 4) pieces.push(" \n \n  \t\n".slice(0, r.int(1, 8)));
    else if (kind === 5) pieces.push(fromRanges(r, RANGES.spaces).repeat(r.int(1, 6)));
    else if (kind === 6) pieces.push(r.pick(WORDS.noun));
    else if (kind === 7) pieces.push(String(r.int(0, 99999)));
    else if (kind === 8) pieces.push(r.pick(["!", "...", "//", "?\n", "){", ";"]));
    else pieces.push(r.pick(ENGLISH_SENTENCES));
  }
  return pieces.join("");
}

function longWhitespace(r) {
  const unit = r.pick([" ", "\t", "\n", "\r\n", " \n", "  \t", "\u3000", "\u00a0 "]);
  const head = r.chance(0.5) ? r.pick(WORDS.noun) : "";
  const tail = r.pick(["", "x", " end", "\n", "!", "42"]);
  return head + unit.repeat(r.int(2000, 12000)) + tail;
}

function digits(r) {
  const parts = [];
  for (let i = r.int(3, 30); i > 0; --i) {
    const kind = r.int(0, 8);
    if (kind === 0) parts.push(String(r.int(0, 9)).repeat(r.int(1, 40)));
    else if (kind === 1) parts.push((r.next() * 1e6).toFixed(r.int(0, 6)));
    else if (kind === 2) parts.push(`+1 (${r.int(200, 999)}) ${r.int(200, 999)}-${r.int(1000, 9999)}`);
    else if (kind === 3) parts.push(`${r.int(1900, 2100)}-${String(r.int(1, 12)).padStart(2, "0")}-${String(r.int(1, 28)).padStart(2, "0")}`);
    else if (kind === 4) parts.push(`0x${r.int(0, 0xffffff).toString(16)}`);
    else if (kind === 5) parts.push(`${r.pick(WORDS.noun)}${r.int(0, 999)}${r.pick(WORDS.adj)}`);
    else if (kind === 6) for (let k = r.int(1, 8); k > 0; --k) parts.push(fromRanges(r, RANGES.digits));
    else if (kind === 7) parts.push(r.int(1, 1e9).toLocaleString("en-US"));
    else parts.push(`${r.next().toExponential(r.int(1, 8))}`);
  }
  return parts.join(r.pick([" ", "", ", ", "\n", "\t"]));
}

function punctuation(r) {
  const atoms = ["...", "!!!", "?!", "---", "***", "===", "///", "\\\\", "://", "/usr/local/bin/", "./a.out", "../..",
    ":-)", ";-(", "<3", "->", "=>", "::", "&&", "||", "!=", "<=", ">=", "**/*.js", "$$", "#!", "@@", "%%", "^^", "~~",
    "|---|---|", "(([]))", "{}", "</>", "\"'`", "''", "«»", "“”", "‘’", "—", "…", "¿¡", "。", "、", "「」", "・"];
  let s = "";
  for (let i = r.int(5, 60); i > 0; --i) {
    s += r.pick(atoms);
    if (r.chance(0.3)) s += r.pick(["\n", "\r\n", "/", " ", "\n\n", "/\n", " /", ""]);
    if (r.chance(0.2)) s += r.pick(WORDS.noun);
  }
  return s;
}

function contractions(r) {
  const suffixes = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];
  const caseVariants = (sfx) => [sfx, sfx.toUpperCase(), sfx[0] + sfx[1].toUpperCase() + sfx.slice(2), sfx.slice(0, -1) + sfx.slice(-1).toUpperCase()];
  const bases = ["it", "IT", "It", "don", "DON", "we", "WE", "they", "THEY", "I", "you", "he", "she", "Mary", "NASA",
    "can", "won", "who", "what", "that", "x", "élan", "Ñandú", "日本", "ǅemal", "ʰa", "3", "__", ""];
  const words = [];
  for (let i = r.int(5, 40); i > 0; --i) {
    let w = r.pick(bases) + r.pick(caseVariants(r.pick(suffixes)));
    if (r.chance(0.2)) w += r.pick(["s", "ve", "'", "'s", "re", "d", "x"]);
    if (r.chance(0.1)) w = w.replace("'", "’");
    words.push(w);
  }
  return words.join(r.pick([" ", " ", "\n", "", ", ", "  "]));
}

export function specialLike(r) {
  let s = "";
  for (let i = r.int(2, 20); i > 0; --i) {
    s += r.pick(SPECIAL_LIKE);
    if (r.chance(0.5)) s += r.pick([" ", "", "\n", "user", "assistant", "final", "Hello", "analysis", " to=functions.x"]);
  }
  return s;
}

// Harmony-formatted text of the kinds the renderer produces, for "special" mode.
export function harmonyText(r) {
  const user = r.chance(0.5) ? r.pick(ENGLISH_SENTENCES) : r.pick(r.pick(LANGUAGES)[1]);
  const parts = [
    `<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-0${r.int(1, 9)}-1${r.int(0, 9)}\n\nReasoning: ${r.pick(["low", "medium", "high"])}\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>`,
    `<|start|>user<|message|>${user}<|end|>`,
  ];
  if (r.chance(0.5)) parts.push(`<|start|>assistant<|channel|>analysis<|message|>${templatedSentence(r)}<|end|>`);
  if (r.chance(0.4)) {
    parts.push(`<|start|>assistant<|channel|>commentary to=functions.${identifier(r)} <|constrain|>json<|message|>{"location":"${r.pick(WORDS.place)}"}<|call|>`);
    parts.push(`<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"sunny": true, "temperature": ${r.int(-20, 40)}}<|end|>`);
  }
  if (r.chance(0.5)) parts.push(`<|start|>assistant<|channel|>final<|message|>${r.pick(ENGLISH_SENTENCES)}<|return|>`);
  parts.push("<|start|>assistant");
  return parts.join("");
}

// Invalid UTF-8: valid text with bytes damaged. Returns a Uint8Array.
function invalidUtf8(r) {
  const base = new TextEncoder().encode(r.chance(0.5) ? englishProse(r) : multilingual(r)[1] + emoji(r));
  const out = [];
  const bad = [[0x80], [0xbf], [0xc0, 0xaf], [0xc1, 0x81], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf],
    [0xf0, 0x80, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf5], [0xff], [0xfe], [0xe2, 0x82], [0xf0, 0x9f, 0x98],
    [0xc3], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe0, 0xa0], [0xf1, 0x80, 0x80]];
  for (let i = 0; i < base.length; ++i) {
    if (r.chance(0.03)) out.push(...r.pick(bad));
    if (r.chance(0.01)) continue;  // drop a byte, often cutting a sequence
    out.push(base[i]);
  }
  if (r.chance(0.5)) out.push(...r.pick(bad));  // damaged end
  return Uint8Array.from(out);
}

// ---------------------------------------------------------------------------

const GENERATORS = [
  ["english", 16, (r) => englishProse(r)],
  ["code", 14, (r) => code(r)],
  ["multilingual", 20, (r) => { const [tag, t] = multilingual(r); return [`lang-${tag}`, t]; }],
  ["unicode-mix", 8, (r) => unicodeMix(r)],
  ["emoji", 5, (r) => emoji(r)],
  ["combining", 5, (r) => combining(r)],
  ["whitespace", 8, (r) => whitespace(r)],
  ["long-whitespace", 0.35, (r) => longWhitespace(r)],
  ["digits", 6, (r) => digits(r)],
  ["punctuation", 6, (r) => punctuation(r)],
  ["contractions", 6, (r) => contractions(r)],
  ["special-like", 4, (r) => specialLike(r)],
  ["invalid-utf8", 4, (r) => invalidUtf8(r)],
];

// `chat` makes the documents of a chat format (special mode) with label
// `chatLabel`; the defaults are the o200k corpus's.
export function buildDocuments({ seed = SEED, targetBytes = TARGET_BYTES, chat = harmonyText, chatLabel = "harmony",
  extraFixed = [] } = {}) {
  const r = makeRng(seed);
  const total = GENERATORS.reduce((a, g) => a + g[1], 0);
  const docs = [];  // {mode, label, bytes}
  const enc = new TextEncoder();
  const add = (mode, label, content) => {
    const bytes = typeof content === "string" ? enc.encode(content) : content;
    docs.push({ mode, label, bytes });
    return bytes.length;
  };
  // Fixed documents first: the spec's vectors and edge cases worth naming.
  const fixed = ["2 + 2 = 4.", "What is the capital of Sweden?", "user", "assistant", "analysis", "final",
    'User asks: "What is 2 + 2?" Simple arithmetic. Provide answer.', "", " ", "\n", "a", "'s", "'S", "''", "\u0000",
    "\ufeff", "\u0085", "\u180e", "a\u0085b", "x \u180e y", "  \ufeff", "\u200b\u200b", "\u2028\u2029", "\r", "\r\r\n",
    " ".repeat(1000) + "a", "\n".repeat(500), "a" + " ".repeat(3) + "\n" + " ".repeat(3) + "b",
    "<|endoftext|>", "<|start|>user<|message|>hi<|end|>", "Hello world", "HELLO WORLD", "hello World",
    "don't DON'T Don'T don'T we've WE'VE I'm I'M they'll THEY'LL he'd HE'D you're YOU'RE",
    "it'ſ don'ſo x'\u212aa", "ǅungla ǅUNGLA", "ʰello", "Ⅻ ½ ² ①", "१२३ ٤٥٦ ７８９", "9999999999", "1,234,567.89",
    "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "é" + "\u0301".repeat(30)];
  for (const t of fixed) add("ordinary", "fixed", t);
  for (const [mode, t] of extraFixed) add(mode, "fixed", t);
  add("ordinary", "long-spaces", " ".repeat(40000));
  add("ordinary", "long-newlines", "\n".repeat(20000) + "x");
  add("ordinary", "long-letters", "a".repeat(20000));
  add("ordinary", "long-word-mixed", "Ab".repeat(8000));
  add("ordinary", "long-digits", "1234567890".repeat(3000));
  add("ordinary", "long-punct", "!?".repeat(8000) + "\n/");
  add("ordinary", "long-cjk", "日本語の文章".repeat(3000));
  let bytes = docs.reduce((a, d) => a + d.bytes.length, 0);
  while (bytes < targetBytes) {
    let x = r.next() * total;
    let g = GENERATORS[0];
    for (const cand of GENERATORS) {
      if (x < cand[1]) { g = cand; break; }
      x -= cand[1];
    }
    let label = g[0];
    let content = g[2](r);
    if (Array.isArray(content)) [label, content] = content;
    bytes += add("ordinary", label, content);
    if (label === "special-like" || (label === "english" && r.chance(0.1))) {
      bytes += add("special", label, content);  // same text with special tokens allowed
    }
    if (r.chance(0.05)) bytes += add("special", chatLabel, chat(r));
  }
  return docs;
}

export function xzWrite(path, text) {
  const compressed = execFileSync("xz", ["-9e", "-T1", "-c"], { input: Buffer.from(text, "latin1"), maxBuffer: 1 << 30 });
  writeFileSync(path, compressed);
  return compressed.length;
}
