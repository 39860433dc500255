#!/usr/bin/env bash
# The main job of ossgate, end to end on one machine:
#   1. set up and build;
#   2. make a development PKI (CA, service and client certificates) and the
#      provenance service's signing keys (first run only);
#   3. start the provenance service (mTLS, SQLite audit log);
#   4. register the bundled default model's SHA-256 as trusted (admin role);
#   5. start the inference worker: it hashes the model, asks the provenance
#      service, verifies the signed approval token, only then loads it;
#   6. stream a chat answer from a client to the terminal, over gRPC and over
#      the OpenAI-compatible HTTP API (docs/http.md);
#   7. show the audit records and verify the whole log offline.
# State lives in run/demo/ (git-ignored). Usage: bash tools/demo.sh ["your question"]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
question=${1:-"Tell me a short story about a lighthouse keeper."}
build=${OSSGATE_BUILD_DIR:-$root/build}
state=$root/run/demo
mkdir -p "$state"

bash tools/setup.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target provenance_service provctl inference_worker ossgate-client ossgate-make-model

bin_prov=$build/provenance_service/provenance_service
bin_provctl=$build/provenance_service/provctl
bin_worker=$build/inference_worker/worker/inference_worker
bin_client=$build/inference_worker/ossgate-client

# The bundled default model: a small gpt-oss-architecture model the project
# trained on the Brown corpus (docs/small_model.md). Without it (a checkout
# that dropped models/), a random model with the real o200k vocabulary is
# generated: it exercises the whole flow but writes no sensible text.
model=$root/models/ossgate-small.gguf
source_uri=ossgate://bundled/ossgate-small.gguf
if [[ ! -f "$model" ]]; then
  model=$state/ossgate-random-small.gguf
  source_uri=ossgate://bundled/ossgate-random-small.gguf
  [[ -f "$model" ]] || "$build/tools/ossgate-make-model" --preset=small --vocab=o200k --seed=1 \
    --name=ossgate-random-small --out="$model"
fi

pki=$state/pki
if [[ ! -f "$pki/ca.pem" ]]; then
  bash tools/certs/make_dev_pki.sh "$pki" worker:worker-1 admin:admin-1 auditor:auditor-1 client:demo-client
fi
if [[ ! -f "$state/token.pem" ]]; then
  "$bin_provctl" keygen --out="$state/token" >/dev/null
  "$bin_provctl" keygen --out="$state/checkpoint" --name=ossgate.local/provenance >"$state/log_key.txt"
  chmod 600 "$state"/*.pem
fi
log_key=$(grep -o 'ossgate.local/provenance+[0-9a-f]*+[A-Za-z0-9+/=]*' "$state/log_key.txt" | head -1)
# An API key for the HTTP API: the worker gets only its hash (api_keys); the
# key itself is kept for this demo's client only.
if [[ ! -f "$state/api_keys" ]]; then
  (umask 077; bash tools/make_api_key.sh demo 2>"$state/api_key.txt" >"$state/api_keys")
fi
api_key=$(grep -o 'sk-ossgate-[0-9a-f]*' "$state/api_key.txt")

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== starting the provenance service (mTLS, audit log $state/provenance.db)"
rm -f "$state/prov.port"
"$bin_prov" --listen=127.0.0.1:0 --port_file="$state/prov.port" --db="$state/provenance.db" \
  --tls_cert="$pki/server.pem" --tls_key="$pki/server.key" --client_ca="$pki/ca.pem" \
  --token_signing_key="$state/token.pem" --checkpoint_signing_key="$state/checkpoint.pem" \
  2>"$state/provenance.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$state/prov.port" ]] && break; sleep 0.1; done
prov_addr=127.0.0.1:$(cat "$state/prov.port")
admin=(--server="$prov_addr" --ca="$pki/ca.pem" --cert="$pki/admin-admin-1.pem" --key="$pki/admin-admin-1.key")
auditor=(--server="$prov_addr" --ca="$pki/ca.pem" --cert="$pki/auditor-auditor-1.pem" --key="$pki/auditor-auditor-1.key")

echo "== registering the bundled model's hash as trusted ($source_uri)"
"$bin_provctl" trust add-file "${admin[@]}" --source=ossgate://bundled --path="${source_uri#ossgate://bundled/}" \
  --file="$model" --description="ossgate bundled default model" 2>&1 | sed 's/^/   /' || true

echo "== starting the inference worker (hash -> verify -> token check -> load)"
worker_port=$(( 20000 + RANDOM % 20000 ))
http_port=$(( worker_port + 1 ))
"$bin_worker" --listen=127.0.0.1:$worker_port --tls_cert="$pki/server.pem" --tls_key="$pki/server.key" \
  --tls_client_ca="$pki/ca.pem" --model="$model" --source_uri="$source_uri" --worker_id=worker-1 \
  --provenance="$prov_addr" --provenance_ca="$pki/ca.pem" --provenance_cert="$pki/worker-worker-1.pem" \
  --provenance_key="$pki/worker-worker-1.key" --pinned_keys="$state/token.pub.pem" --max_sequences=4 \
  --max_context=2048 --http_listen=127.0.0.1:$http_port --http_api_keys="$state/api_keys" 2>"$state/worker.log" &
pids+=($!)
client=("$bin_client" --server=127.0.0.1:$worker_port --ca="$pki/ca.pem" --cert="$pki/client-demo-client.pem"
        --key="$pki/client-demo-client.key")
if ! "${client[@]}" --wait_ready_s=120; then
  echo "worker did not become ready; its log:"; cat "$state/worker.log"; exit 1
fi
grep -E "phase=|ready:" "$state/worker.log" | sed 's/^/   /'

echo "== streaming a chat answer"
echo "user> $question"
"${client[@]}" --chat="$question" --max_tokens=300 --temperature=0.8 --seed=6

echo "== the same question over the OpenAI-compatible HTTP API (server-sent events; same seed, same answer)"
echo "user> $question"
# The worker's model id is the file name without .gguf (--model_name).
body=$(python3 -c 'import json, sys; print(json.dumps({"model": sys.argv[2], "stream": True, "max_tokens": 300,
  "temperature": 0.8, "seed": 6, "reasoning_effort": "low", "messages": [{"role": "user", "content": sys.argv[1]}]}))' "$question" \
  "$(basename "$model" .gguf)")
curl -sSN --fail-with-body --cacert "$pki/ca.pem" -H "Authorization: Bearer $api_key" \
  "https://127.0.0.1:$http_port/v1/chat/completions" -d "$body" | python3 -c '
import json, sys
for line in sys.stdin:
    if not line.startswith("data: ") or line.startswith("data: [DONE]"):
        continue
    event = json.loads(line[6:])
    if "error" in event:
        sys.exit("error: " + event["error"]["message"])
    for choice in event["choices"]:
        delta = choice["delta"]
        print(delta.get("reasoning_content") or delta.get("content") or "", end="", flush=True)
        if choice.get("finish_reason"):
            print("\nfinish_reason:", choice["finish_reason"])
'

echo "== audit log (auditor role)"
"$bin_provctl" audit query "${auditor[@]}" --kind=verify_model --limit=5 | sed 's/^/   /'
cleanup
pids=()
echo "== offline verification of the whole audit log"
"$bin_provctl" audit verify --db="$state/provenance.db" --log_key="$log_key" | sed 's/^/   /'
