#!/usr/bin/env bash
# Builds the release binaries of both services (no tests) and installs them,
# stripped, into OUT/bin: provenance_service, provctl, inference_worker,
# ossgate-client (or the subset named in OSSGATE_TARGETS). Same CMake
# configuration as tools/test.sh (RelWithDebInfo, Ninja), so the binaries that
# ship are built the way the tested ones are.
# Run tools/setup.sh first (the container images in deploy/docker/ do).
# Usage: bash tools/build.sh [OUT]          (default OUT: <build dir>/dist)
# Environment: OSSGATE_BUILD_DIR (default build-release), OSSGATE_JOBS (default nproc),
#   OSSGATE_CUDA (AUTO|ON|OFF, default AUTO: CUDA backend when nvcc exists),
#   OSSGATE_CUDA_ARCHS (e.g. "90a"; default: the project's portable "80;89;90a"),
#   OSSGATE_TARGETS (space-separated subset of the four binaries).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${OSSGATE_BUILD_DIR:-$root/build-release}
out=${1:-$build/dist}
jobs=${OSSGATE_JOBS:-$(nproc)}
cuda=${OSSGATE_CUDA:-AUTO}
read -r -a targets <<<"${OSSGATE_TARGETS:-provenance_service provctl inference_worker ossgate-client}"

args=(-S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DOSSGATE_CUDA=$cuda")
if [[ -n "${OSSGATE_CUDA_ARCHS:-}" ]]; then args+=("-DCMAKE_CUDA_ARCHITECTURES=$OSSGATE_CUDA_ARCHS"); fi
cmake "${args[@]}"
cmake --build "$build" -j "$jobs" --target "${targets[@]}"

mkdir -p "$out/bin"
for t in "${targets[@]}"; do
  bin=$(find "$build" -type f -name "$t" -perm -u+x -not -path '*/CMakeFiles/*' -print -quit)
  [[ -n "$bin" ]] || { echo "build.sh: $t was not built" >&2; exit 1; }
  install -m 0755 -s "$bin" "$out/bin/$t"
done
echo "build.sh: installed ${targets[*]} into $out/bin"
