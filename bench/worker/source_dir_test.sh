#!/usr/bin/env bash
# worker_load_bench takes the ossgate checkout at run time (--source_dir or
# $OSSGATE_SOURCE_DIR), not the path it was built in: with a checkout at
# another path, its copy of tools/certs/make_dev_pki.sh must be the one that
# runs. (Before, the build path was compiled in, so a moved checkout failed
# with "make_dev_pki.sh failed: ... No such file or directory".) Also checks
# the errors for a directory that is not a checkout and for none given.
#   source_dir_test.sh WORKER_LOAD_BENCH SOURCE_DIR
set -euo pipefail
bench=$(realpath "$1")
src=$(realpath "$2")
tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/source_dir_test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The checkout at another path holds only what the benchmark reads from it:
# the PKI script, wrapped so that each run of it leaves a line in pki-calls.
moved=$tmp/moved-checkout
mkdir -p "$moved/tools/certs"
cp "$src/tools/certs/make_dev_pki.sh" "$moved/tools/certs/real_make_dev_pki.sh"
cat > "$moved/tools/certs/make_dev_pki.sh" <<WRAPPER
#!/usr/bin/env bash
echo "\$*" >> "$tmp/pki-calls"
exec bash "\$(dirname "\$0")/real_make_dev_pki.sh" "\$@"
WRAPPER
calls() { [[ -f "$tmp/pki-calls" ]] && wc -l < "$tmp/pki-calls" || echo 0; }

# Runs from $tmp (not a checkout), so nothing is found by accident; a short
# run: tiny model, one stream, half a second.
run() {
  (cd "$tmp" && env -u OSSGATE_SOURCE_DIR "$@" "$bench" --preset=tiny --vocab=tiny --concurrency=1 --seconds=0.5 \
    --warmup_seconds=0 --prompt_tokens=8 --max_tokens=4 --threads=1 ${flag:+"$flag"})
}
# The table row of one stream: | temperature | 1 | tokens/s | requests done | ... | errors |
check_row() {
  local row
  row=$(grep -E '^\| [0-9.]+ \| +1 \|' <<<"$1") || fail "no result row in: $1"
  awk -F'|' '{ exit !($4 + 0 > 0 && $5 + 0 > 0 && $(NF-1) + 0 == 0) }' <<<"$row" ||
    fail "expected positive tokens/s and requests, 0 errors: $row"
}

echo "== --source_dir at another path"
flag=--source_dir=$moved
out=$(run) || fail "worker_load_bench --source_dir=$moved failed: $out"
check_row "$out"
[[ $(calls) -eq 1 ]] || fail "the moved make_dev_pki.sh did not run (calls: $(calls))"

echo "== \$OSSGATE_SOURCE_DIR at another path"
flag=
out=$(run OSSGATE_SOURCE_DIR="$moved") || fail "worker_load_bench with OSSGATE_SOURCE_DIR=$moved failed: $out"
check_row "$out"
[[ $(calls) -eq 2 ]] || fail "OSSGATE_SOURCE_DIR was not used: the moved make_dev_pki.sh ran $(calls) times, not 2"

echo "== a directory that is not a checkout"
flag=--source_dir=$tmp/nowhere
rc=0
out=$(run 2>&1) || rc=$?
[[ $rc -eq 2 ]] || fail "expected exit code 2, got $rc: $out"
grep -q -- "--source_dir='$tmp/nowhere' is not an ossgate checkout" <<<"$out" || fail "unclear error: $out"

echo "== no checkout given"
flag=
rc=0
out=$(run 2>&1) || rc=$?
[[ $rc -eq 2 ]] || fail "expected exit code 2, got $rc: $out"
grep -q -- "pass --source_dir=" <<<"$out" || fail "unclear error: $out"
echo "PASS"
