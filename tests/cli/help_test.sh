#!/usr/bin/env bash
# `--help` of the three binaries the README points to prints their flags
# (Abseil lists only flags of a file named after the program unless told
# otherwise, so these printed "No flags matched."), grouped by purpose, with
# defaults and an example. Usage: help_test.sh INFERENCE_WORKER PROVENANCE_SERVICE OSSGATE_GENERATE
set -uo pipefail
fail=0
check() {  # check BINARY TEXT...: every TEXT appears in BINARY --help
  local bin=$1 out
  shift
  out=$("$bin" --help 2>&1)
  if grep -q "No flags matched" <<<"$out"; then
    echo "FAIL: $(basename "$bin") --help printed 'No flags matched.'"
    fail=1
  fi
  for text in "$@"; do
    if ! grep -qF -- "$text" <<<"$out"; then
      echo "FAIL: $(basename "$bin") --help lacks: $text"
      fail=1
    fi
  done
}
# A flag's description and default, a purpose heading, the example.
check "$1" "Flags by purpose" "Example" "-model (path of the GGUF model file (required))" \
  'default: "127.0.0.1:50061"' "HTTP API" "--http_listen"
check "$2" "Flags by purpose" "Example" "-db (SQLite database holding the audit log)" 'default: "127.0.0.1:7443"' \
  "Approval tokens" "--token_ttl"
check "$3" "Flags by purpose" "Example" "-temperature (sampling temperature; 0 = greedy)" "default: 128" \
  "Sampling" "--chat"
if (( fail )); then exit 1; fi
echo "help_test: all three binaries print their flags"
