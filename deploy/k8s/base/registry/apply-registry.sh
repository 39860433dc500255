#!/bin/sh
# Applies the model registry entries of this deployment to the provenance
# service, as the admin role. The service seeds its default registry itself
# (trusted sources, no hashes: docs/provenance.md); this adds what the overlay
# ships: for each *.entry file in REGISTRY_DIR, an optional source and one file
# hash taken from a Git LFS pointer.
#
# Entry file (key=value lines, '#' comments):
#   source=hf://ggml-org/gpt-oss-20b-GGUF     source the file belongs to
#   add_source=true                           add the source if it is not trusted yet
#   source_description=...                    its description
#   source_family=gpt-oss                     model family of a source it adds (optional)
#   path=gpt-oss-20b-MXFP4.gguf               file path inside the source
#   pointer=gpt-oss-20b-MXFP4.gguf.pointer    LFS pointer (oid sha256 + size), looked up
#                                             in REGISTRY_DIR, then in POINTER_DIR
#   description=...                           description of the file entry
#   family=gpt-oss                            model family (GGUF general.architecture) of
#                                             the file; optional: else the source's, else
#                                             gpt-oss (docs/provenance.md, "Model families")
#
# Idempotent: entries already present are skipped (listing them does not add
# to the audit log; every add does, also a refused one). Needs provctl and a
# POSIX shell (the provenance image has both).
# Environment: PROVENANCE_ADDR (host:port), ADMIN_DIR (tls.crt, tls.key,
# ca.crt), REGISTRY_DIR, POINTER_DIR, WAIT_S (default 300).
set -eu
: "${PROVENANCE_ADDR:?}" "${ADMIN_DIR:?}" "${REGISTRY_DIR:?}"
POINTER_DIR=${POINTER_DIR:-/nonexistent}
WAIT_S=${WAIT_S:-300}
PROVCTL=${PROVCTL:-provctl}

ctl() {
  "$PROVCTL" --server="$PROVENANCE_ADDR" --ca="$ADMIN_DIR/ca.crt" --cert="$ADMIN_DIR/tls.crt" \
    --key="$ADMIN_DIR/tls.key" "$@"
}
value() { sed -n "s/^$1=//p" "$2" | head -n 1; }

waited=0
until ctl trust list >/dev/null 2>&1; do
  if [ "$waited" -ge "$WAIT_S" ]; then
    echo "apply-registry: provenance service at $PROVENANCE_ADDR not answering after ${WAIT_S}s:" >&2
    ctl trust list >&2 || true
    exit 1
  fi
  sleep 5
  waited=$((waited + 5))
done

status=0
found=0
for entry in "$REGISTRY_DIR"/*.entry; do
  [ -f "$entry" ] || continue
  found=$((found + 1))
  name=$(basename "$entry" .entry)
  source=$(value source "$entry")
  path=$(value path "$entry")
  pointer=$(value pointer "$entry")
  if [ -z "$source" ] || [ -z "$pointer" ]; then
    echo "apply-registry: $name: source= and pointer= are required" >&2
    status=1
    continue
  fi
  if [ "$(value add_source "$entry")" = "true" ]; then
    if ctl trust list --json | grep -F -q "\"$source\""; then
      echo "apply-registry: $name: source $source already trusted"
    else
      ctl trust add-source --uri="$source" --description="$(value source_description "$entry")" \
        --family="$(value source_family "$entry")" || status=1
    fi
  fi
  ptr=""
  for dir in "$REGISTRY_DIR" "$POINTER_DIR"; do
    if [ -f "$dir/$pointer" ]; then ptr="$dir/$pointer"; break; fi
  done
  if [ -z "$ptr" ]; then
    echo "apply-registry: $name: LFS pointer $pointer not found; create it with" >&2
    echo "  kubectl create configmap ossgate-registry-pointers --from-file=$pointer" >&2
    status=1
    continue
  fi
  sha=$(sed -n 's/^oid sha256://p' "$ptr")
  if [ -n "$sha" ] && ctl trust list --files --source="$source" --sha256="$sha" --json | grep -F -q "$sha"; then
    echo "apply-registry: $name: $source ${path:-*} sha256=$sha already registered"
    continue
  fi
  ctl trust add-file --source="$source" --path="$path" --lfs-pointer="$ptr" \
    --description="$(value description "$entry")" --family="$(value family "$entry")" || status=1
done
echo "apply-registry: $found entries, exit $status"
exit "$status"
