#!/usr/bin/env bash
# Installs the Debian packages ossgate builds and tests with. Idempotent: only
# missing packages are installed. CUDA is not installed here; when nvcc exists
# the CUDA backend is built too.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git xz-utils ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libssl-dev libpcre2-dev libsqlite3-dev
  # NFC normalization of the Qwen2 tokenizer (inference_worker/text/normalize.cc)
  libicu-dev
  libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev
  # JSON Schemas of function tools (inference_worker/text/tool_schema.cc) and the
  # worker's OpenAI-compatible HTTP face (inference_worker/http)
  libcpp-httplib-dev nlohmann-json3-dev
  python3 python3-numpy python3-grpcio python3-protobuf
  wamerican nodejs npm openssl
  # tools/fuzz.sh (run by tools/test.sh): clang with libFuzzer and the
  # sanitizer runtimes (libclang-rt is only a recommendation of clang).
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    # nodejs/npm may come from elsewhere than Debian: accept any working binary.
    case "$p" in
      nodejs) command -v node >/dev/null && continue ;;
      npm) command -v npm >/dev/null && continue ;;
    esac
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# npm packages of the provenance interop test (tests/provenance/interop: the
# independent PASETO implementation); reinstalled only when the lock changes.
interop="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/provenance/interop"
if [[ ! -d "$interop/node_modules/paseto" || "$interop/package-lock.json" -nt "$interop/node_modules/.package-lock.json" ]]; then
  echo "setup: npm ci in tests/provenance/interop"
  npm ci --prefix "$interop" --no-audit --no-fund
fi

# npm packages of the deployment tests (tests/deploy: Kubernetes API schemas,
# Dockerfile parser and linter); reinstalled only when the lock changes.
deploy_tests="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/deploy"
if [[ ! -d "$deploy_tests/node_modules/kubernetes-models" || "$deploy_tests/package-lock.json" -nt "$deploy_tests/node_modules/.package-lock.json" ]]; then
  echo "setup: npm ci in tests/deploy"
  npm ci --prefix "$deploy_tests" --no-audit --no-fund
fi

# npm packages of the HTTP API end-to-end test (tests/http: the official
# `openai` client, pinned); reinstalled only when the lock changes.
http_tests="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/http"
if [[ ! -d "$http_tests/node_modules/openai" || "$http_tests/package-lock.json" -nt "$http_tests/node_modules/.package-lock.json" ]]; then
  echo "setup: npm ci in tests/http"
  npm ci --prefix "$http_tests" --no-audit --no-fund
fi
