#!/usr/bin/env bash
# Makes a development PKI for the provenance service with openssl:
#   OUT/ca.pem, ca.key                  a self-signed CA (EC P-256)
#   OUT/server.pem, server.key          server cert: DNS:localhost, IP:127.0.0.1, IP:::1
#                                       (+ $OSSGATE_PKI_SERVER_SANS, e.g. "DNS:prov.svc,IP:10.0.0.5")
#   OUT/<role>-<id>.pem, .key           client certs with exactly one URI SAN
#                                       spiffe://ossgate/role/<role>/<id>
# Usage: make_dev_pki.sh OUT [role:id ...]   (default: worker:worker-1 admin:admin-1 auditor:auditor-1)
# Reuses OUT/ca.pem and ca.key if present, so more client certs can be added later.
# Keys are written mode 0600. Validity: $OSSGATE_PKI_DAYS days (default 30).
# Development and tests only: production certificates come from the deployment's CA.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  sed -n '2,12p' "$0" >&2
  exit 2
fi
out=$1
shift
roles=("$@")
if ((${#roles[@]} == 0)); then roles=(worker:worker-1 admin:admin-1 auditor:auditor-1); fi
days=${OSSGATE_PKI_DAYS:-30}
mkdir -p "$out"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# openssl chatter goes to a log that is shown only when a step fails.
trap 'echo "make_dev_pki: openssl failed:" >&2; cat "$tmp/log" >&2' ERR

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>>"$tmp/log"; }

if [[ ! -f "$out/ca.pem" || ! -f "$out/ca.key" ]]; then
  newkey "$out/ca.key"
  openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/O=ossgate/CN=ossgate dev CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$out/ca.pem" 2>>"$tmp/log"
fi

# issue NAME CN EXTENSIONS
issue() {
  local name=$1 cn=$2 ext=$3
  newkey "$out/$name.key"
  openssl req -new -key "$out/$name.key" -subj "/O=ossgate/CN=$cn" -out "$tmp/$name.csr" 2>>"$tmp/log"
  printf '%s\n' "$ext" >"$tmp/$name.ext"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -sha256 -days "$days" -extfile "$tmp/$name.ext" -out "$out/$name.pem" 2>>"$tmp/log"
}

server_sans="DNS:localhost,IP:127.0.0.1,IP:::1${OSSGATE_PKI_SERVER_SANS:+,$OSSGATE_PKI_SERVER_SANS}"
issue server provenance-service "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$server_sans"

for spec in "${roles[@]}"; do
  role=${spec%%:*}
  id=${spec#*:}
  if [[ "$spec" != *:* || ! "$role" =~ ^[a-z]+$ || ! "$id" =~ ^[A-Za-z0-9._-]+$ ]]; then
    echo "make_dev_pki: bad role:id '$spec'" >&2
    exit 2
  fi
  issue "$role-$id" "$role:$id" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=URI:spiffe://ossgate/role/$role/$id"
done
chmod 644 "$out"/*.pem
echo "make_dev_pki: wrote $out (CA, server, ${roles[*]})"
