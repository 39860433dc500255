#!/usr/bin/env bash
# ossgate-generate streams a completion from a qwen2 and a phi3 file on the
# CPU backend (random tiny models with the tiny vocabulary), meets the CUDA
# backend like a gpt-oss file, falls back to the CPU with "auto", and answers
# --chat in the family's chat format (models with the tiny-qwen2 / tiny-phi3
# vocabularies, which hold the ChatML / Phi-3 special tokens and no harmony
# ones: rendering harmony would fail).
# Usage: generate_families_test.sh OSSGATE_MAKE_MODEL OSSGATE_GENERATE
set -uo pipefail
make_model=$1 generate=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0
expect() {  # expect WHAT FILE TEXT: FILE contains TEXT
  if ! grep -qF -- "$3" "$2"; then
    echo "FAIL: $1: no '$3' in:"
    cat "$2"
    fail=1
  fi
}
for family in qwen2 phi3; do
  model=$dir/$family.gguf
  if ! "$make_model" --family=$family --vocab=tiny --seed=3 --out="$model" >"$dir/make.out" 2>&1; then
    echo "FAIL: make-model --family=$family"; cat "$dir/make.out"; fail=1; continue
  fi
  "$generate" --model="$model" --prompt="Once upon a time" --max_tokens=12 --backend=cpu --threads=2 \
    >"$dir/out" 2>"$dir/err"
  rc=$?
  if (( rc != 0 )); then echo "FAIL: $family on cpu exited $rc"; cat "$dir/err"; fail=1; fi
  expect "$family cpu" "$dir/err" "model: arch=$family "
  expect "$family cpu" "$dir/err" "generated 12 tokens"
  if [[ ! -s "$dir/out" ]]; then echo "FAIL: $family: nothing streamed to stdout"; fail=1; fi
  # Greedy decoding repeats itself exactly.
  "$generate" --model="$model" --prompt="Once upon a time" --max_tokens=12 --backend=cpu --threads=1 \
    >"$dir/out2" 2>/dev/null
  if ! cmp -s "$dir/out" "$dir/out2"; then echo "FAIL: $family: greedy output differs between runs"; fail=1; fi

  # The CUDA backend runs every family: without a GPU it fails with its own
  # reason (no device, or no CUDA in the build), never a family refusal.
  "$generate" --model="$model" --prompt="x" --max_tokens=2 --backend=cuda >/dev/null 2>"$dir/err"
  rc=$?
  if (( rc == 0 )); then
    expect "$family cuda" "$dir/err" "backend: cuda"
  else
    expect "$family cuda" "$dir/err" "CUDA backend"
    if grep -q "does not run" "$dir/err"; then echo "FAIL: $family refused on cuda by family"; fail=1; fi
  fi
  "$generate" --model="$model" --prompt="x" --max_tokens=2 --backend=auto >/dev/null 2>"$dir/err"
  rc=$?
  if (( rc != 0 )); then echo "FAIL: $family on auto exited $rc"; cat "$dir/err"; fail=1; fi
  expect "$family auto" "$dir/err" "using the CPU backend"
  expect "$family auto" "$dir/err" "backend: cpu"
done
for pair in "qwen2 chatml" "phi3 phi3"; do
  set -- $pair
  family=$1 format=$2
  model=$dir/$family-chat.gguf
  if ! "$make_model" --family=$family --vocab=tiny-$family --seed=4 --out="$model" >"$dir/make.out" 2>&1; then
    echo "FAIL: make-model --family=$family --vocab=tiny-$family"; cat "$dir/make.out"; fail=1; continue
  fi
  "$generate" --model="$model" --chat="Hello there" --instructions="Be brief." --max_tokens=8 --backend=cpu \
    --threads=1 >"$dir/out" 2>"$dir/err"
  rc=$?
  if (( rc != 0 )); then echo "FAIL: $family --chat exited $rc"; cat "$dir/err"; fail=1; fi
  expect "$family chat" "$dir/err" "chat format: $format,"
  if grep -q '^\[' "$dir/out"; then echo "FAIL: $family chat printed harmony channel markers"; fail=1; fi
done
if (( fail )); then exit 1; fi
echo "ok"
