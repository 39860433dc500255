#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang, ASan and UBSan in
# build-fuzz/ and runs each for a given time, one after the other (one
# fuzzing process at a time). Fails if a target crashes, hangs or leaks.
#
# Usage: tools/fuzz.sh [-t SECONDS] [-j JOBS] [TARGET...]
#   -t  seconds per target (default 60); -j  build parallelism (default:
#   $OSSGATE_JOBS or nproc); TARGET  e.g. model_uri (default: all).
#   FUZZ_ARGS  extra libFuzzer flags, e.g. FUZZ_ARGS="-jobs=1 -seed=7".
#
# Each target starts from its committed seed corpus (tests/fuzz/corpus/<t>)
# plus a working corpus that grows across runs (build-fuzz/corpus/<t>), with
# its dictionary (tests/fuzz/<t>.dict) if there is one. A crashing input is
# saved as build-fuzz/crashes/<t>/crash-<sha1>; reproduce it with
#   build-fuzz/tests/fuzz/<t>_fuzzer build-fuzz/crashes/<t>/crash-<sha1>
# and, once fixed, commit it to tests/fuzz/regressions/<t>/ (ctest replays
# those in every build). The summary gives each target's executions.
# Needs clang and libclang-rt-14-dev (tools/setup.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=60
jobs=${OSSGATE_JOBS:-$(nproc)}
while getopts "t:j:h" opt; do
  case $opt in
    t) seconds=$OPTARG ;;
    j) jobs=$OPTARG ;;
    *) sed -n '2,21p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if ! [[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]]; then
  echo "fuzz.sh: -t wants a positive number of seconds, not '$seconds'" >&2
  exit 2
fi
for tool in clang clang++; do
  if ! command -v "$tool" >/dev/null; then
    echo "fuzz.sh: $tool not found; run tools/setup.sh (it installs clang and libclang-rt-14-dev)" >&2
    exit 1
  fi
done

all=(gguf_parse tokenizer harmony_parser tool_schema paseto_token model_uri provenance_request worker_request http_request)
targets=("${@%_fuzzer}")
if ((${#targets[@]} == 0)); then targets=("${all[@]}"); fi
for t in "${targets[@]}"; do
  if [[ ! " ${all[*]} " == *" $t "* ]]; then
    echo "fuzz.sh: unknown target '$t' (known: ${all[*]})" >&2
    exit 2
  fi
done

build="$root/build-fuzz"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DOSSGATE_FUZZ=ON -DOSSGATE_CUDA=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target "${targets[@]/%/_fuzzer}"
export OSSGATE_O200K_VOCAB="$build/assets/tokenizer/o200k_harmony.vocab"
export OSSGATE_QWEN2_VOCAB="$build/assets/tokenizer/qwen2.5.vocab"
export OSSGATE_PHI3_VOCAB="$build/assets/tokenizer/phi3-mini.vocab"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

summary=()
failed=0
total=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  crashes="$build/crashes/$t"
  log="$build/logs/$t.log"
  mkdir -p "$corpus" "$crashes" "$build/logs"
  args=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=2560 -print_final_stats=1
        -artifact_prefix="$crashes/")
  if [[ -f "$root/tests/fuzz/$t.dict" ]]; then args+=(-dict="$root/tests/fuzz/$t.dict"); fi
  # shellcheck disable=SC2206  # FUZZ_ARGS is a list of flags
  args+=(${FUZZ_ARGS:-})
  echo "fuzz.sh: $t for ${seconds}s (log: $log)"
  rc=0
  "$build/tests/fuzz/${t}_fuzzer" "${args[@]}" "$corpus" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  execs=${execs:-0}
  total=$((total + execs))
  if ((rc != 0)); then
    failed=1
    summary+=("$t: FAILED (exit $rc) after $execs executions; see $log and $crashes")
    tail -n 40 "$log" >&2
  else
    summary+=("$t: $execs executions, 0 crashes, corpus $(find "$corpus" -type f | wc -l) files")
  fi
done
echo "fuzz.sh: summary (${seconds}s per target, $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))"
printf '  %s\n' "${summary[@]}"
echo "  total: $total executions"
exit $failed
