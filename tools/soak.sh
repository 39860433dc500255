#!/usr/bin/env bash
# Soak test (not in CI; docs/testing.md, "Soak test"): the provenance service
# and the inference worker on the CPU backend, with mutual TLS and the bundled
# model loaded through the provenance gate, under N concurrent Generate
# streams (greedy and sampled, some cancelled by the client, some aborted, some
# stalled readers the worker must cancel) for a while, with provctl commands
# against the provenance service alongside. tools/soak/soak_driver.py makes the
# load and measures; this script builds, starts and stops the services and
# checks what they leave behind (exit status, log, audit log).
#
# Usage: bash tools/soak.sh [--minutes=10] [--streams=64] [--report=FILE]
#          [--stall_timeout_s=5] [--max_sequences=32] [--threads=0] [--seed=1]
#          [--mix=greedy:30,sampled:30,cancel:15,abort:15,stall:10] [--no_build]
# Exit status 0 when there were no unexpected errors and RSS and open fds
# stayed within the driver's bounds; the report (default run/soak/report.md)
# says which check failed. State lives in run/soak/ (git-ignored), made anew
# each run. The build directory is $OSSGATE_BUILD_DIR (default build/),
# configured with -DOSSGATE_CUDA=OFF when it does not exist yet.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

minutes=10 streams=64 report=$root/run/soak/report.md stall=5 max_sequences=32 threads=0 seed=1 build_it=1
mix=greedy:30,sampled:30,cancel:15,abort:15,stall:10
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
for arg in "$@"; do
  case $arg in
    --minutes=*) minutes=${arg#*=} ;;
    --streams=*) streams=${arg#*=} ;;
    --report=*) report=$(realpath -m "${arg#*=}") ;;
    --stall_timeout_s=*) stall=${arg#*=} ;;
    --max_sequences=*) max_sequences=${arg#*=} ;;
    --threads=*) threads=${arg#*=} ;;
    --seed=*) seed=${arg#*=} ;;
    --mix=*) mix=${arg#*=} ;;
    --no_build) build_it=0 ;;
    -h|--help) usage ;;
    *) echo "soak.sh: unknown argument '$arg'" >&2; usage ;;
  esac
done
if ! [[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] || [[ $minutes =~ ^0*([.]0*)?$ ]]; then
  echo "soak.sh: --minutes must be a positive number, got '$minutes'" >&2; exit 2
fi
for pair in "streams:$streams" "max_sequences:$max_sequences" "threads:$threads" "seed:$seed"; do
  if ! [[ ${pair#*:} =~ ^[0-9]+$ ]]; then
    echo "soak.sh: --${pair%%:*} must be a whole number, got '${pair#*:}'" >&2; exit 2
  fi
done
if ! [[ $stall =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "soak.sh: --stall_timeout_s must be a positive number of seconds, got '$stall'" >&2; exit 2
fi

build=${OSSGATE_BUILD_DIR:-$root/build}
python=${OSSGATE_PYTHON:-/usr/bin/python3}  # Debian's python3-grpcio lives there
model=$root/models/ossgate-small.gguf
source_base=ossgate://bundled
source_path=ossgate-small.gguf
max_context=2048
if [[ ! -f "$model" ]]; then
  echo "soak.sh: the bundled model $model is missing (docs/small_model.md)" >&2; exit 1
fi

if ((build_it)); then
  [[ -f "$build/build.ninja" || -f "$build/Makefile" ]] ||
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOSSGATE_CUDA=OFF >/dev/null
  nice cmake --build "$build" -j "$(nproc)" --target provenance_service provctl inference_worker \
    ossgate_python_stubs
fi
bin_prov=$build/provenance_service/provenance_service
bin_provctl=$build/provenance_service/provctl
bin_worker=$build/inference_worker/worker/inference_worker
stubs=$build/tests/worker/python
for f in "$bin_prov" "$bin_provctl" "$bin_worker" "$stubs/ossgate/inference/v1/inference_pb2.py"; do
  [[ -e $f ]] || { echo "soak.sh: $f is missing; build without --no_build" >&2; exit 1; }
done

state=$root/run/soak/state
rm -rf "$state"
mkdir -p "$state" "$(dirname "$report")"
echo "== dev PKI and signing keys in $state"
bash tools/certs/make_dev_pki.sh "$state/pki" worker:worker-1 admin:admin-1 auditor:auditor-1 client:soak-client
pki=$state/pki
"$bin_provctl" keygen --out="$state/token" >/dev/null
"$bin_provctl" keygen --out="$state/checkpoint" --name=ossgate.local/provenance >"$state/log_key.txt"
chmod 600 "$state"/*.pem
log_key=$(grep -o 'ossgate.local/provenance+[0-9a-f]*+[A-Za-z0-9+/=]*' "$state/log_key.txt" | head -1)

prov_pid='' worker_pid=''
stop() {  # stop PID NAME: SIGTERM, then its exit status (0 expected)
  local pid=$1 name=$2 rc=0
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  echo "$name exited with status $rc"
  return "$rc"
}
cleanup() {
  [[ -z $worker_pid ]] || kill -TERM "$worker_pid" 2>/dev/null || true
  [[ -z $prov_pid ]] || kill -TERM "$prov_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "== starting the provenance service"
"$bin_prov" --listen=127.0.0.1:0 --port_file="$state/prov.port" --db="$state/provenance.db" \
  --tls_cert="$pki/server.pem" --tls_key="$pki/server.key" --client_ca="$pki/ca.pem" \
  --token_signing_key="$state/token.pem" --checkpoint_signing_key="$state/checkpoint.pem" \
  2>"$state/provenance.log" &
prov_pid=$!
for _ in $(seq 100); do [[ -s "$state/prov.port" ]] && break; sleep 0.1; done
if [[ ! -s "$state/prov.port" ]]; then
  echo "soak.sh: the provenance service did not start; its log:"; cat "$state/provenance.log"; exit 1
fi
prov_addr=127.0.0.1:$(cat "$state/prov.port")
as_admin=(--server="$prov_addr" --ca="$pki/ca.pem" --cert="$pki/admin-admin-1.pem" --key="$pki/admin-admin-1.key")
as_auditor=(--server="$prov_addr" --ca="$pki/ca.pem" --cert="$pki/auditor-auditor-1.pem"
            --key="$pki/auditor-auditor-1.key")
as_worker=(--server="$prov_addr" --ca="$pki/ca.pem" --cert="$pki/worker-worker-1.pem"
           --key="$pki/worker-worker-1.key")
"$bin_provctl" trust add-file "${as_admin[@]}" --source=$source_base --path=$source_path \
  --file="$model" --description="ossgate bundled default model" >/dev/null

echo "== starting the inference worker (CPU backend, stall timeout ${stall} s)"
worker_port=$(free_port)
metrics_port=$(free_port)
worker_flags=(--backend=cpu --threads="$threads" --max_sequences="$max_sequences" --max_waiting=64
              --max_context=$max_context --stall_timeout_s="$stall")
"$bin_worker" --listen=127.0.0.1:"$worker_port" --metrics_listen=127.0.0.1:"$metrics_port" \
  --tls_cert="$pki/server.pem" --tls_key="$pki/server.key" --tls_client_ca="$pki/ca.pem" \
  --model="$model" --source_uri=$source_base/$source_path --worker_id=worker-1 \
  --provenance="$prov_addr" --provenance_ca="$pki/ca.pem" --provenance_cert="$pki/worker-worker-1.pem" \
  --provenance_key="$pki/worker-worker-1.key" --pinned_keys="$state/token.pub.pem" "${worker_flags[@]}" \
  2>"$state/worker.log" &
worker_pid=$!
client=(--server=127.0.0.1:"$worker_port" --ca="$pki/ca.pem" --cert="$pki/client-soak-client.pem"
        --key="$pki/client-soak-client.key")
if ! PYTHONPATH=$stubs "$python" tools/client/ossgate_client.py "${client[@]}" --wait_ready_s=120; then
  echo "soak.sh: the worker did not become ready; its log:"; cat "$state/worker.log"; exit 1
fi

sha=$(sha256sum "$model" | cut -d' ' -f1)
size=$(stat -c %s "$model")
json_argv() { "$python" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }
prov_cmds=(
  --prov_cmd="$(json_argv "$bin_provctl" verify "${as_worker[@]}" --name=$source_path \
    --source=$source_base/$source_path --sha256="$sha" --size="$size" --worker_id=worker-1)"
  --prov_cmd="$(json_argv "$bin_provctl" audit query "${as_auditor[@]}" --limit=20)"
  --prov_cmd="$(json_argv "$bin_provctl" checkpoint show "${as_auditor[@]}")"
  --prov_cmd="$(json_argv "$bin_provctl" trust list "${as_admin[@]}" --files)"
  --prov_cmd="$(json_argv "$bin_provctl" keys list "${as_auditor[@]}")"
)

commit=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain --untracked-files=no) ]] || commit="$commit (with uncommitted changes)"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
seconds=$("$python" -c "print(float('$minutes') * 60)")
echo "== soak: $streams streams for $minutes min (worker pid $worker_pid, provenance service pid $prov_pid)"
driver_rc=0
PYTHONPATH=$stubs "$python" tools/soak/soak_driver.py "${client[@]}" \
  --metrics_url=http://127.0.0.1:"$metrics_port"/metrics --streams="$streams" --duration_s="$seconds" \
  --stall_timeout_s="$stall" --max_context=$max_context --mix="$mix" --seed="$seed" \
  --watch=worker="$worker_pid" --watch=provenance="$prov_pid" --prov_interval_s=1 "${prov_cmds[@]}" \
  --report="$report" \
  --describe="date=$(date -u '+%Y-%m-%d %H:%M UTC')" \
  --describe="commit=$commit" \
  --describe="command=\`bash tools/soak.sh $*\`" \
  --describe="machine=$(nproc) vCPU $cpu, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM" \
  --describe="load average at the start=$(cut -d' ' -f1-3 /proc/loadavg)" \
  --describe="worker=\`${worker_flags[*]}\`, mutual TLS, /metrics" || driver_rc=$?

echo "== stopping the services (SIGTERM; exit status 0 expected)"
services_rc=0
stop "$worker_pid" inference_worker || services_rc=1
worker_pid=''
stop "$prov_pid" provenance_service || services_rc=1
prov_pid=''
echo "== offline verification of the whole audit log"
audit_rc=0
"$bin_provctl" audit verify --db="$state/provenance.db" --log_key="$log_key" | sed 's/^/   /' || audit_rc=1
# Crashes and sanitizer or check failures show in the logs.
log_rc=0
if grep -nE 'Check failed|AddressSanitizer|runtime error|terminate called|Segmentation|FATAL' \
    "$state/worker.log" "$state/provenance.log"; then
  log_rc=1
fi
{
  echo "### After the load"
  echo
  echo "| check | result |"
  echo "|---|---|"
  echo "| worker and provenance service exit 0 on SIGTERM | $( ((services_rc)) && echo '**FAIL**' || echo pass) |"
  echo "| \`provctl audit verify\` of the whole audit log | $( ((audit_rc)) && echo '**FAIL**' || echo pass) |"
  echo "| no crash or check failure in the services' logs | $( ((log_rc)) && echo '**FAIL**' || echo pass) |"
  echo
} | tee -a "$report"
echo "report: $report"
rc=$((driver_rc || services_rc || audit_rc || log_rc))
result=$( ((rc)) && echo FAIL || echo PASS)
echo "**Result: $result** (the driver's checks above and these)." >>"$report"
echo "soak: $result"
exit "$rc"
