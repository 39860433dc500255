#!/usr/bin/env bash
# ctest entry of the deployment tests: checks the tools they need and says
# how to get each, then runs SCRIPT.mjs (validate or smoke_test) with node.
# Usage: run.sh validate|smoke_test [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script=$1
shift
if ! command -v node >/dev/null; then
  echo "deploy test: node not found; run tools/setup.sh (it installs nodejs and npm)" >&2
  exit 1
fi
if [[ ! -d "$here/node_modules/kubernetes-models" || ! -d "$here/node_modules/dockerfile-ast" ]]; then
  echo "deploy test: npm packages missing in tests/deploy/node_modules; run tools/setup.sh" \
    "(npm ci --prefix tests/deploy)" >&2
  exit 1
fi
if ! command -v kubectl >/dev/null; then
  echo "deploy test: kubectl not found on PATH. The manifests are rendered with" \
    "\`kubectl kustomize\` (offline; kubectl >= 1.27, the cpp CI image ships v1.32)." \
    "Install kubectl; this test fails rather than skipping without it." >&2
  exit 1
fi
exec node "$here/$script.mjs" "$@"
