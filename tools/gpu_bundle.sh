#!/usr/bin/env bash
# Builds the CUDA binaries on this machine and collects them, with the shared
# libraries they need (found by ldd; glibc, libstdc++, libgcc and the driver
# are left to the GPU machine), into bundle/ossgate-gpu.tar.xz (git-ignored).
# tools/gpu_run.sh unpacks and runs them on the GPU machine:
#   bash tools/gpu_bundle.sh            # then run(carry=["bundle"], "bash tools/gpu_run.sh")
# Environment: OSSGATE_CUDA_BUILD (build dir, default build-cuda),
# OSSGATE_CUDA_ARCHS (default 90a; e.g. "80;89;90a" for a portable build),
# OSSGATE_JOBS (default 2), OSSGATE_BASE_COMMIT (a commit whose gpu_bench is
# built too, in a git worktree at <build>.base-src with build dir
# <build>.base, into bundle/gpu_bench.base.xz: the base binary of gpu_run.sh's
# ab and ablong modes; e.g. OSSGATE_BASE_COMMIT=HEAD~1).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${OSSGATE_CUDA_BUILD:-$root/build-cuda}
archs=${OSSGATE_CUDA_ARCHS:-90a}
jobs=${OSSGATE_JOBS:-2}
base_rev=
if [[ -n "${OSSGATE_BASE_COMMIT:-}" ]]; then  # checked before anything is built
  base_rev=$(git -C "$root" rev-parse --verify --quiet "$OSSGATE_BASE_COMMIT^{commit}") || {
    echo "gpu_bundle: OSSGATE_BASE_COMMIT=$OSSGATE_BASE_COMMIT is not a commit of this repository" >&2
    exit 1
  }
fi
# GPU tests and benchmark, the CPU checks they rely on, the model generator,
# the services + client for the end-to-end run (gpu_run.sh e2e), and the
# serving benchmarks (gpu_run.sh serve, serving).
targets=(gpu_kernels_test gpu_backend_test gpu_streaming_load_test gpu_dense_families_test gpu_backend_medium_test gpu_sharded_test repack_test cpu_reference_test gpu_bench
         worker_load_bench serving_bench ossgate-make-model inference_worker provenance_service provctl
         ossgate-client)

log=$(mktemp)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOSSGATE_CUDA=ON \
  "-DCMAKE_CUDA_ARCHITECTURES=$archs" > "$log" 2>&1 || { cat "$log"; rm -f "$log"; exit 1; }
rm -f "$log"
cmake --build "$build" -j "$jobs" --target "${targets[@]}"

# The files are assembled in $build/bundle-staging and shipped as one
# xz-compressed tarball (about 20 MB instead of 150: what travels to the GPU
# machine is limited to 64 MiB with the repository); gpu_run.sh unpacks it.
bundle=$build/bundle-staging
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"
for t in "${targets[@]}"; do
  bin=$(find "$build" -type f -name "$t" -perm -u+x | head -1)
  [ -n "$bin" ] || { echo "gpu_bundle: $t was not built" >&2; exit 1; }
  cp "$bin" "$bundle/bin/"
done
# Shared libraries by soname, except those every Linux (and the GPU driver) has.
for b in "$bundle"/bin/*; do
  ldd "$b" | awk '/=> \// {print $1, $3}'
done | sort -u | while read -r soname path; do
  case "$soname" in
    libc.so*|libm.so*|libstdc++.so*|libgcc_s.so*|ld-linux*|libpthread.so*|libdl.so*|librt.so*|libcuda.so*) ;;
    *) cp -L "$path" "$bundle/lib/$soname" ;;
  esac
done
# A development PKI for the end-to-end run (the GPU machine may lack the
# openssl command line); development certificates only, valid 30 days.
bash "$root/tools/certs/make_dev_pki.sh" "$bundle/pki" worker:worker-1 admin:admin-1 auditor:auditor-1 \
  client:gpu-client >/dev/null
out=$root/bundle
rm -rf "$out"
mkdir -p "$out"
git -C "$root" rev-parse --short HEAD > "$out/commit" 2>/dev/null || echo unknown > "$out/commit"
if ! git -C "$root" diff --quiet HEAD 2>/dev/null || [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then
  echo "with uncommitted changes" >> "$out/commit"
fi
cp "$out/commit" "$bundle/commit"
if [[ -n "$base_rev" ]]; then
  base_src=$build.base-src
  git -C "$root" worktree remove --force "$base_src" 2>/dev/null || rm -rf "$base_src"
  git -C "$root" worktree prune
  git -C "$root" worktree add --detach -q "$base_src" "$base_rev"
  trap 'git -C "$root" worktree remove --force "$base_src" 2>/dev/null || true' EXIT
  log=$(mktemp)
  cmake -S "$base_src" -B "$build.base" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOSSGATE_CUDA=ON \
    "-DCMAKE_CUDA_ARCHITECTURES=$archs" > "$log" 2>&1 || { cat "$log"; rm -f "$log"; exit 1; }
  rm -f "$log"
  cmake --build "$build.base" -j "$jobs" --target gpu_bench
  base_bin=$(find "$build.base" -type f -name gpu_bench -perm -u+x | head -1)
  [ -n "$base_bin" ] || { echo "gpu_bundle: gpu_bench of $base_rev was not built" >&2; exit 1; }
  xz -T1 -c "$base_bin" > "$out/gpu_bench.base.xz"
  git -C "$root" rev-parse --short "$base_rev" > "$out/gpu_bench.base.commit"
fi
# One xz stream with a dictionary larger than a binary: every test binary
# carries the same CUDA fatbin, which a large window stores once (20 MB
# instead of 33 with the default 8 MiB dictionary and threads).
tar -C "$bundle" -cf - bin lib pki commit | xz -T1 --lzma2=preset=6,dict=192MiB > "$out/ossgate-gpu.tar.xz"
du -sh "$bundle" "$out/ossgate-gpu.tar.xz"
# What travels to the GPU machine (the tracked files and the bundle) is
# limited to 64 MiB.
tracked=$(git -C "$root" ls-files -z | (cd "$root" && xargs -0 du -cb 2>/dev/null) | tail -1 | cut -f1)
total=$(( tracked + $(du -cb "$out"/* | tail -1 | cut -f1) ))
if (( total > 64 * 1048576 )); then
  echo "gpu_bundle: the checkout ($tracked bytes) and the bundle together exceed the 64 MiB the GPU machine" \
       "accepts; leave test binaries out of the bundle or shrink the fixtures" >&2
  exit 1
fi
