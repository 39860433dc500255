#!/usr/bin/env bash
# Makes an API key for the worker's HTTP API (docs/http.md): prints the key
# once on stderr (hand it to the client) and the key file line
# "<key id> <sha256 of the key>" on stdout (append it to --http_api_keys,
# then send SIGHUP to the worker). The key itself is stored nowhere.
# Usage: bash tools/make_api_key.sh KEY_ID >> keys.txt
set -euo pipefail
if [[ $# -ne 1 || ! $1 =~ ^[A-Za-z0-9._-]{1,64}$ ]]; then
  echo "usage: $0 KEY_ID   (1..64 characters of [A-Za-z0-9._-])" >&2
  exit 2
fi
key="sk-ossgate-$(openssl rand -hex 24)"
hash=$(printf %s "$key" | openssl dgst -sha256 -r | cut -d' ' -f1)
echo "API key for $1 (shown once): $key" >&2
echo "$1 $hash"
