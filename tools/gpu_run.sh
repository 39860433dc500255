#!/usr/bin/env bash
# The one script run on the GPU machine (after tools/gpu_bundle.sh here):
# GPU tests, compute-sanitizer memcheck/racecheck, the whole-model
# comparisons and the benchmark, with logs and a results table in $OUT.
#   bash tools/gpu_run.sh [all|tests|sanitize|bench] ...
# Each step has its own time limit and the run stops starting new steps at
# OSSGATE_DEADLINE seconds (default 560), so one call fits a 10-minute slot.
# Files in $OUT: summary.md (the table, printed last), tests.log,
# sanitizer.log, bench.md, bench.log, nvidia-smi.txt.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT:-$root/out}
mkdir -p "$out"
bundle=$root/bundle
export LD_LIBRARY_PATH=$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export TEST_TMPDIR=${TEST_TMPDIR:-/tmp/ossgate-gpu}
mkdir -p "$TEST_TMPDIR"
deadline=${OSSGATE_DEADLINE:-560}
start=$(date +%s)
modes=${*:-all}
summary=$out/summary.md
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)

{
  echo "# GPU run"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $(tr '\n' ' ' < "$bundle/commit" 2>/dev/null)"
  echo "- card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  echo
  echo "| step | result | seconds |"
  echo "|---|---|---:|"
} > "$summary"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1

want() { [[ " $modes " == *" all "* || " $modes " == *" $1 "* ]]; }

# step NAME LOGFILE LIMIT CMD...: runs CMD with a time limit, appends its
# output to LOGFILE, records the result.
step() {
  local name=$1 log=$2 limit=$3
  shift 3
  local now=$(date +%s)
  if (( now - start + 10 > deadline )); then
    echo "| $name | skipped (deadline) | 0 |" >> "$summary"
    return
  fi
  (( limit > deadline - (now - start) )) && limit=$(( deadline - (now - start) ))
  echo "===== $name ($(date -u +%T)): $*" >> "$out/$log"
  timeout --kill-after=10 "$limit" "$@" >> "$out/$log" 2>&1
  local rc=$? t=$(( $(date +%s) - now ))
  local result="pass"
  (( rc == 124 || rc == 137 )) && result="TIMEOUT (${limit}s)"
  (( rc != 0 && rc != 124 && rc != 137 )) && result="FAIL (rc $rc)"
  echo "| $name | $result | $t |" >> "$summary"
  echo "===== $name: $result in ${t}s" >> "$out/$log"
}

bin=$bundle/bin
if want tests; then
  step "repack layout (CPU)" tests.log 60 "$bin/repack_test"
  step "kernels vs CPU reference" tests.log 180 "$bin/gpu_kernels_test"
  step "tiny models vs CPU backend, invariance" tests.log 240 "$bin/gpu_backend_test"
fi
if want bench; then
  step "generate 20b-shape model" bench.log 120 "$bin/ossgate-make-model" --preset=20b --vocab=placeholder:201088 \
    --out=/tmp/ossgate-20b.gguf
  step "benchmark (20b shape)" bench.log 300 "$bin/gpu_bench" --model=/tmp/ossgate-20b.gguf --out="$out/bench.md"
  rm -f /tmp/ossgate-20b.gguf
fi
if want tests; then
  step "medium model, 1000-token prompt vs CPU" tests.log 300 "$bin/gpu_backend_medium_test"
fi
if want sanitize && [ -n "$sanitizer" ]; then
  step "memcheck: kernels" sanitizer.log 200 "$sanitizer" --tool memcheck --error-exitcode 1 \
    "$bin/gpu_kernels_test" --gtest_filter='-SampleTest.*:GemmTest.*/F32'
  step "memcheck: backend (tiny models)" sanitizer.log 200 "$sanitizer" --tool memcheck --error-exitcode 1 \
    "$bin/gpu_backend_test" --gtest_filter='*Greedy*:*Invariance*:*Rejects*'
  step "racecheck: attention, GEMM, MoE, sampling" sanitizer.log 200 "$sanitizer" --tool racecheck --error-exitcode 1 \
    "$bin/gpu_kernels_test" --gtest_filter='AttentionTest.*:MoeTest.*:GemmTest.*/MXFP4:SampleTest.*'
fi
echo >> "$summary"
echo "total: $(( $(date +%s) - start )) s" >> "$summary"
# Short digest of the numbers that matter.
grep -hE "worst rel err|argmax equal|FAILED|Failure|ERROR SUMMARY|RACECHECK SUMMARY" "$out"/tests.log "$out"/sanitizer.log 2>/dev/null | head -40 >> "$summary"
cat "$summary"
[ -f "$out/bench.md" ] && cat "$out/bench.md"
exit 0
