#!/usr/bin/env bash
# Prints, one per line, the Debian/Ubuntu packages that own the shared
# libraries the given binaries load (ldd), so a runtime image installs exactly
# those and no -dev package, compiler or build tool. Run in the build stage of
# an image, on the distribution the runtime stage uses.
# Usage: runtime-packages.sh BIN_OR_DIR...
# Libraries the NVIDIA container runtime injects from the host driver
# (libcuda, libnvidia-*) are left out. Any other library that no package owns
# is an error: the runtime image would not have it.
set -euo pipefail
if (($# == 0)); then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
bins=()
for arg in "$@"; do
  if [[ -d "$arg" ]]; then
    while IFS= read -r f; do bins+=("$f"); done < <(find "$arg" -maxdepth 1 -type f -perm -u+x | sort)
  else
    bins+=("$arg")
  fi
done
((${#bins[@]})) || { echo "runtime-packages: no binaries in $*" >&2; exit 2; }

# soname -> resolved path of every library any binary loads (ldd).
declare -A libs=()
status=0
for b in "${bins[@]}"; do
  while read -r soname path; do
    case "$soname" in
      libcuda.so*|libnvidia-*) continue ;;
    esac
    if [[ "$path" == "not" || -z "$path" ]]; then
      echo "runtime-packages: $b needs $soname, which is not found" >&2
      status=1
      continue
    fi
    libs[$path]=$b
  done < <(ldd "$b" | awk '/=>/ {print $1, $3} !/=>/ && $1 ~ /^\// {print $1, $1}')
done

# dpkg records either the /usr or the merged-/usr spelling of a path: ask for
# every spelling in one dpkg-query call (one call per library takes minutes).
spellings() { printf '%s\n' "$1" "$(readlink -f "$1")" "${1#/usr}" "/usr$1"; }
declare -A owner=()
while IFS= read -r line; do
  pkg=${line%%: *}
  pkg=${pkg%%,*}
  owner[${line#*: }]=${pkg%%:*}
done < <(for p in "${!libs[@]}"; do spellings "$p"; done | sort -u | xargs -d '\n' dpkg-query -S 2>/dev/null || true)

declare -A pkgs=()
for p in "${!libs[@]}"; do
  found=""
  while IFS= read -r c; do
    if [[ -n "${owner[$c]:-}" ]]; then found=${owner[$c]}; break; fi
  done < <(spellings "$p")
  if [[ -n "$found" ]]; then
    pkgs[$found]=1
  else
    echo "runtime-packages: no package owns $p (needed by ${libs[$p]})" >&2
    status=1
  fi
done
((status == 0)) || exit "$status"
printf '%s\n' "${!pkgs[@]}" | sort
