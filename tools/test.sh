#!/usr/bin/env bash
# Sets up the machine, builds everything and runs the test suite (CPU only):
#   1. release build (CUDA code compiled when nvcc exists) + every test not labelled "gpu";
#   2. ASan/UBSan build of the tests labelled "sanitize" and their run;
#   3. the libFuzzer targets (clang, ASan/UBSan; tools/fuzz.sh), 30 s each.
# Usage: bash tools/test.sh            (OSSGATE_JOBS overrides the parallelism)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=${OSSGATE_JOBS:-$(nproc)}

bash "$root/tools/setup.sh"

cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$root/build" -j "$jobs"
ctest --test-dir "$root/build" -LE gpu --output-on-failure -j "$jobs"

cmake -S "$root" -B "$root/build-sanitize" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DOSSGATE_SANITIZE=ON -DOSSGATE_CUDA=OFF
cmake --build "$root/build-sanitize" -j "$jobs" --target sanitize_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build-sanitize" -L sanitize --output-on-failure -j "$jobs"

bash "$root/tools/fuzz.sh" -t 30 -j "$jobs"
echo "test.sh: all tests passed"
