#!/usr/bin/env bash
# Fails when a shipped binary holds the absolute path of the source or build
# tree it was built from: such a binary looks for files that exist only on the
# build machine (a benchmark once looked for its helper script under the build
# tree's source path and failed on the GPU machine), and leaks that path.
#   no_build_paths_test.sh <source_dir> <build_dir> <binary>...
set -euo pipefail
src=${1%/}
build=${2%/}
shift 2
[[ $# -gt 0 ]] || { echo "usage: $0 <source_dir> <build_dir> <binary>..." >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for bin in "$@"; do
  [[ -f "$bin" ]] || { echo "missing binary: $bin" >&2; fail=1; continue; }
  # The CUDA fatbin's line tables (-lineinfo, for compute-sanitizer and the
  # profilers) name the .cu files as CMake handed them to nvcc, which has no
  # prefix map for device code; nothing reads them at run time, so that one
  # section is left out. Everything else (code, data, the host's debug
  # information) is scanned with grep -a.
  scan=$tmp/$(basename "$bin")
  objcopy --remove-section=.nv_fatbin "$bin" "$scan" 2>/dev/null || cp "$bin" "$scan"
  for dir in "$src" "$build"; do
    hits=$( (LC_ALL=C grep -a -o -F "$dir/" "$scan" || true) | wc -l)
    if [[ "$hits" -gt 0 ]]; then
      echo "FAIL: $(basename "$bin") holds the build machine path $dir/ ($hits times), for example:" >&2
      LC_ALL=C grep -a -o -E "$(printf '%s' "$dir" | sed 's/[][\.*^$]/\\&/g')/[[:print:]]{0,60}" "$scan" | head -3 | sed 's/^/    /' >&2
      fail=1
    fi
  done
done
[[ $fail -eq 0 ]] && echo "no build machine path in $# binaries"
exit $fail
