#!/usr/bin/env bash
# The one script run on the GPU machine (after tools/gpu_bundle.sh here,
# with carry=["bundle"]): GPU tests, the whole-model accuracy comparisons,
# the benchmark, an end-to-end run of both services + the worker on the GPU,
# compute-sanitizer memcheck/racecheck; logs and a results table in $OUT.
#   bash tools/gpu_run.sh [all|tests|bench|serve|e2e|medium|sanitize|serving|big|long|load|families|profile|kernels|ab|ablong|multi|multi120] ...
# Each step has its own time limit and the run stops starting new steps at
# OSSGATE_DEADLINE seconds (default 570), so one call fits a 10-minute slot;
# steps run in the order above (most informative first). "serving" (the
# Poisson-arrival serving benchmark, about 4 minutes), "big" (the 120b
# shape, about 5 minutes), "long" (131,072-token context), "load" (the
# streaming-load tests and a quick 20b benchmark), "families" (Qwen2.5 and
# Phi-3) and "profile" (ncu counters of the main kernels) are not part of
# "all": name them, alone or with others.
# Files in $OUT: summary.md (the table, printed last), tests.log, bench.md,
# bench.log, serve.log, e2e.log, sanitizer.log, serving.md, serving.json,
# big.log, bench-120b.md, long.log, bench-long.md, families.log,
# families-e2e.log, bench-qwen2.md, bench-phi3.md, profile.log, ncu-*.txt,
# serving.log, nvidia-smi.txt.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT:-$root/out}
mkdir -p "$out"
# The bundle travels as one tarball (tools/gpu_bundle.sh); unpack it once.
bundle=${OSSGATE_BUNDLE:-/tmp/ossgate-bundle}
if [[ ! -x "$bundle/bin/gpu_bench" ]]; then
  mkdir -p "$bundle"
  xz -dc "$root/bundle/ossgate-gpu.tar.xz" | tar -C "$bundle" -xf - || { echo "gpu_run: no bundle" >&2; exit 1; }
fi
export OSSGATE_BUNDLE=$bundle
export LD_LIBRARY_PATH=$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export TEST_TMPDIR=${TEST_TMPDIR:-/tmp/ossgate-gpu}
export OSSGATE_SOURCE_DIR=$root  # tests read models/ and tests/quality/data/ from here
mkdir -p "$TEST_TMPDIR"
bin=$bundle/bin
# NCCL for the tensor-parallel ranks: pip's nvidia-nccl-cu13 there (the bundle
# does not carry it); NVLink multicast stays off on these shared hosts.
export NCCL_NVLS_ENABLE=0
if [[ -z "${OSSGATE_NCCL_LIBRARY:-}" ]]; then
  nccl_dir=$(python3 -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null || true)
  nccl_lib=$( [[ -n "$nccl_dir" ]] && find "$nccl_dir" -name 'libnccl.so.2' 2>/dev/null | head -1 || true)
  [[ -n "$nccl_lib" ]] && export OSSGATE_NCCL_LIBRARY=$nccl_lib
fi

# to-file FILE CMD...: runs CMD with its output in FILE (for step, which
# logs to its own file).
if [[ "${1:-}" == "to-file" ]]; then
  f=$2
  shift 2
  exec "$@" > "$f" 2>&1
fi

# ------------------------------------------------------------------ e2e ----
# The GPU-machine equivalent of tools/demo.sh (which builds, so cannot run
# there): dev PKI (made by gpu_bundle.sh, or here if openssl exists), the
# provenance service, trust registration of the bundled trained model, the
# worker on the CUDA backend streaming a greedy chat answer, then the same
# request to a worker on the CPU backend, the two answers compared, and the
# audit log verified offline.
if [[ "${1:-}" == "e2e-inner" ]]; then
  set -e
  state=/tmp/ossgate-e2e
  rm -rf "$state"
  mkdir -p "$state"
  pki=$bundle/pki
  if [[ ! -f "$pki/ca.pem" ]]; then
    pki=$state/pki
    bash "$root/tools/certs/make_dev_pki.sh" "$pki" worker:worker-1 admin:admin-1 auditor:auditor-1 client:gpu-client
  fi
  # Another model than the bundled one: OSSGATE_E2E_MODEL (its file name is
  # the path registered under ossgate://bundled), e.g. the families step.
  model=${OSSGATE_E2E_MODEL:-$root/models/ossgate-small.gguf}
  file=$(basename "$model")
  question=${OSSGATE_E2E_QUESTION:-"Tell me a short story about a lighthouse keeper."}
  "$bin/provctl" keygen --out="$state/token" >/dev/null
  "$bin/provctl" keygen --out="$state/checkpoint" --name=ossgate.local/provenance >"$state/log_key.txt"
  chmod 600 "$state"/*.pem
  log_key=$(grep -o 'ossgate.local/provenance+[0-9a-f]*+[A-Za-z0-9+/=]*' "$state/log_key.txt" | head -1)
  pids=()
  cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
  trap cleanup EXIT
  echo "== provenance service"
  "$bin/provenance_service" --listen=127.0.0.1:0 --port_file="$state/prov.port" --db="$state/provenance.db" \
    --tls_cert="$pki/server.pem" --tls_key="$pki/server.key" --client_ca="$pki/ca.pem" \
    --token_signing_key="$state/token.pem" --checkpoint_signing_key="$state/checkpoint.pem" 2>"$state/provenance.log" &
  pids+=($!)
  for _ in $(seq 100); do [[ -s "$state/prov.port" ]] && break; sleep 0.1; done
  prov=127.0.0.1:$(cat "$state/prov.port")
  admin=(--server="$prov" --ca="$pki/ca.pem" --cert="$pki/admin-admin-1.pem" --key="$pki/admin-admin-1.key")
  auditor=(--server="$prov" --ca="$pki/ca.pem" --cert="$pki/auditor-auditor-1.pem" --key="$pki/auditor-auditor-1.key")
  echo "== trust $file"
  "$bin/provctl" trust add-file "${admin[@]}" --source=ossgate://bundled --path="$file" --file="$model" \
    --description="ossgate bundled default model" 2>&1 | sed 's/^/   /'
  for backend in ${OSSGATE_E2E_BACKENDS:-cuda cpu}; do  # (cpu alone: a dry run of this script without a GPU)
    port=$(( 20000 + RANDOM % 20000 ))
    echo "== worker --backend=$backend (hash -> verify -> token check -> load)"
    t0=$(date +%s%N)
    "$bin/inference_worker" --backend=$backend --load_to_device=true --listen=127.0.0.1:$port --tls_cert="$pki/server.pem" \
      --tls_key="$pki/server.key" --tls_client_ca="$pki/ca.pem" --model="$model" \
      --source_uri="ossgate://bundled/$file" --worker_id=worker-1 --provenance="$prov" \
      --provenance_ca="$pki/ca.pem" --provenance_cert="$pki/worker-worker-1.pem" \
      --provenance_key="$pki/worker-worker-1.key" --pinned_keys="$state/token.pub.pem" --max_sequences=4 \
      --max_context=2048 2>"$state/worker-$backend.log" &
    wpid=$!
    pids+=($wpid)
    client=("$bin/ossgate-client" --server=127.0.0.1:$port --ca="$pki/ca.pem" --cert="$pki/client-gpu-client.pem"
            --key="$pki/client-gpu-client.key")
    if ! "${client[@]}" --wait_ready_s=120; then
      echo "worker ($backend) did not become ready; its log:"; cat "$state/worker-$backend.log"; exit 1
    fi
    echo "   ready after $(( ($(date +%s%N) - t0) / 1000000 )) ms (process start to SERVING)"
    grep -iE "backend|cuda|phase=|ready" "$state/worker-$backend.log" | head -8 | sed 's/^/   /'
    echo "== streaming a greedy chat answer ($backend)"
    echo "user> $question"
    "${client[@]}" --chat="$question" --max_tokens=120 --temperature=0 | tee "$state/answer-$backend.txt"
    kill "$wpid"
    wait "$wpid" 2>/dev/null || true
  done
  # Greedy answers part only where the CPU's top two logits are nearly tied
  # (gpu_backend_test TrainedModel.EndToEndChatRequestPartsOnlyAtANearTie
  # renders this same request and checks that); report how far they agree.
  if cmp -s "$state/answer-cuda.txt" "$state/answer-cpu.txt"; then
    echo "== GPU and CPU greedy answers are IDENTICAL ($(wc -c < "$state/answer-cuda.txt") bytes)"
  else
    same=$(cmp "$state/answer-cuda.txt" "$state/answer-cpu.txt" | grep -o 'byte [0-9]*' | grep -o '[0-9]*' || true)
    echo "== GPU and CPU greedy answers DIFFER from byte ${same:-?} on (identical before it):"
    diff "$state/answer-cuda.txt" "$state/answer-cpu.txt" || true
  fi
  echo "== audit log (auditor role)"
  "$bin/provctl" audit query "${auditor[@]}" --kind=verify_model --limit=5 | sed 's/^/   /'
  cleanup
  pids=()
  echo "== offline verification of the whole audit log"
  "$bin/provctl" audit verify --db="$state/provenance.db" --log_key="$log_key" | sed 's/^/   /'
  exit 0
fi

deadline=${OSSGATE_DEADLINE:-570}
start=$(date +%s)
modes=${*:-all}
summary=$out/summary.md
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)

{
  echo "# GPU run"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $(tr '\n' ' ' < "$bundle/commit" 2>/dev/null)"
  echo "- card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  echo
  echo "| step | result | seconds |"
  echo "|---|---|---:|"
} > "$summary"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1

want() { [[ " $modes " == *" all "* || " $modes " == *" $1 "* ]]; }

# step NAME LOGFILE LIMIT CMD...: runs CMD with a time limit, appends its
# output to LOGFILE, records the result.
step() {
  local name=$1 log=$2 limit=$3
  shift 3
  local now=$(date +%s)
  if (( now - start + 15 > deadline )); then
    echo "| $name | skipped (deadline) | 0 |" >> "$summary"
    return
  fi
  (( limit > deadline - (now - start) )) && limit=$(( deadline - (now - start) ))
  echo "===== $name ($(date -u +%T)): $*" >> "$out/$log"
  timeout --kill-after=10 "$limit" "$@" >> "$out/$log" 2>&1
  local rc=$? t=$(( $(date +%s) - now ))
  local result="pass"
  (( rc == 124 || rc == 137 )) && result="TIMEOUT (${limit}s)"
  (( rc != 0 && rc != 124 && rc != 137 )) && result="FAIL (rc $rc)"
  echo "| $name | $result | $t |" >> "$summary"
  echo "===== $name: $result in ${t}s" >> "$out/$log"
}

if want tests; then
  step "repack layout (CPU)" tests.log 30 "$bin/repack_test"
  step "CPU reference: router recording and forcing (CPU)" tests.log 60 "$bin/cpu_reference_test"
  step "kernels vs CPU reference" tests.log 150 "$bin/gpu_kernels_test"
  step "tiny + trained + k-quant models vs CPU, invariance" tests.log 320 "$bin/gpu_backend_test"
  step "streaming load: device repack and scan, backend from a device image" tests.log 90 \
    "$bin/gpu_streaming_load_test"
  step "dense families (qwen2, phi3) vs CPU" tests.log 120 "$bin/gpu_dense_families_test"
  step "tensor-parallel ranks on one GPU vs the whole model" tests.log 90 "$bin/gpu_sharded_test" \
    --gtest_filter='-*MultiGpu*'

fi
# "load" (not in "all"; a short run when device time is scarce): the
# streaming-load tests and the 20b's streaming load with a quick benchmark.
if [[ " $modes " == *" load "* ]]; then
  step "streaming load: device repack and scan, backend from a device image" tests.log 90 \
    "$bin/gpu_streaming_load_test"
  step "generate 20b-shape model" bench.log 90 "$bin/ossgate-make-model" --preset=20b --vocab=placeholder:201088 \
    --out=/tmp/ossgate-20b.gguf
  step "streaming load + quick benchmark (20b shape)" bench.log 200 "$bin/gpu_bench" --model=/tmp/ossgate-20b.gguf \
    --quick --big_kv=false --out="$out/bench-quick.md"
  rm -f /tmp/ossgate-20b.gguf
fi
if want bench; then
  step "generate 20b-shape model" bench.log 90 "$bin/ossgate-make-model" --preset=20b --vocab=placeholder:201088 \
    --out=/tmp/ossgate-20b.gguf
  step "benchmark (20b shape)" bench.log 240 "$bin/gpu_bench" --model=/tmp/ossgate-20b.gguf --out="$out/bench.md"
  rm -f /tmp/ossgate-20b.gguf
fi
if want serve; then
  # The worker serving streams from the CUDA backend through both services
  # (mTLS, provenance gate) at several concurrencies, greedy and at gpt-oss's
  # default temperature 1.0: the 20b shape with the real o200k_harmony
  # vocabulary, 128-token prompts, 256 generated tokens each.
  xz -dc "$root/assets/tokenizer/o200k_harmony.vocab.xz" > "$TEST_TMPDIR/o200k_harmony.vocab"
  step "worker load on the CUDA backend (20b shape)" serve.log 300 "$bin/worker_load_bench" --backend=cuda \
    --bin_dir="$bin" --source_dir="$root" --preset=20b --vocab="$TEST_TMPDIR/o200k_harmony.vocab" \
    --concurrency=1,64,128 --temperatures=0,1.0 --seconds=8 --warmup_seconds=3 --prompt_tokens=128 --max_tokens=256 \
    --step_token_budget=512
fi
if want e2e; then
  step "e2e: services + worker --backend=cuda vs cpu" e2e.log 120 bash "$0" e2e-inner
fi
if want medium; then
  step "medium models, 1000-token prompts vs CPU" tests.log 240 "$bin/gpu_backend_medium_test"
fi
if want sanitize && [ -n "$sanitizer" ]; then
  # Parametrized suites carry a prefix (Shapes/AttentionTest..., Formats/GemmTest...).
  step "memcheck: kernels" sanitizer.log 150 "$sanitizer" --tool memcheck --error-exitcode 1 \
    "$bin/gpu_kernels_test"
  step "racecheck: kernels with shared memory" sanitizer.log 200 "$sanitizer" --tool racecheck --error-exitcode 1 \
    "$bin/gpu_kernels_test" \
    --gtest_filter='*AttentionTest.*:MoeTest.*:*GemmTest.*/MXFP4:*GemmTest.*/Q8_0:SampleTest.*:RouterTest.*:AddNormTest.*:RopeTest.*'
  step "memcheck: streaming load (device repack, scan, backend from an image)" sanitizer.log 90 "$sanitizer" \
    --tool memcheck --error-exitcode 1 "$bin/gpu_streaming_load_test"
  step "memcheck: backend (tiny models)" sanitizer.log 150 "$sanitizer" --tool memcheck --error-exitcode 1 \
    "$bin/gpu_backend_test" --gtest_filter='*Greedy*:*Invariance*:*Rejects*'
fi
# ------------------------------------------------------------------ multi ----
# Not in "all"; on a machine with several GPUs (docs/parallel.md): the
# tensor-parallel test across GPUs 0 and 1 over NCCL, gpu_bench of the 20b
# shape on 1 GPU and with --tensor_parallel=2, 4, 8 (as many as there are),
# then the Poisson serving benchmark of the 20b shape (one level of 16
# requests/s and 128 closed-loop streams) with --tensor_parallel=1 and 2.
# Reports: bench-tp*.md, serving-tp1.md, serving-tp2.md.
if [[ " $modes " == *" multi "* || " $modes " == *" multi120 "* ]]; then
  ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
  echo "- GPUs: $ngpu" >> "$summary"
fi
# bench_tp SHAPE MODEL REPORT_PREFIX: gpu_bench --quick on one GPU, then
# --tensor_parallel=2, 4, 8 as far as there are GPUs.
bench_tp() {
  local shape=$1 model=$2 prefix=$3 tp
  step "benchmark, $shape shape, 1 GPU (quick)" multi.log 200 "$bin/gpu_bench" --model="$model" --quick \
    --big_kv=false --out="$out/$prefix-tp1.md"
  for tp in 2 4 8; do
    (( tp <= ngpu )) || continue
    step "benchmark, $shape shape, $tp GPUs" multi.log 200 "$bin/gpu_bench" --model="$model" --tensor_parallel=$tp \
      --out="$out/$prefix-tp$tp.md"
  done
}
# multi120 (not in "all"): the 120b shape in /dev/shm, one GPU against 2
# (and 4, 8 where present) with gpu_bench. Reports: bench120-tp*.md.
if [[ " $modes " == *" multi120 "* ]]; then
  step "generate 120b-shape model in /dev/shm" multi.log 330 "$bin/ossgate-make-model" --preset=120b \
    --vocab=placeholder:201088 --out=/dev/shm/ossgate-120b.gguf
  bench_tp 120b /dev/shm/ossgate-120b.gguf bench120
  rm -f /dev/shm/ossgate-120b.gguf
fi
if [[ " $modes " == *" multi "* ]]; then
  step "tensor-parallel ranks on GPUs 0 and 1 (NCCL) vs one GPU" tests.log 120 "$bin/gpu_sharded_test" \
    --gtest_filter='*MultiGpu*'
  step "generate 20b-shape model" multi.log 90 "$bin/ossgate-make-model" --preset=20b --vocab=placeholder:201088 \
    --out=/dev/shm/ossgate-20b.gguf
  bench_tp 20b /dev/shm/ossgate-20b.gguf bench
  rm -f /dev/shm/ossgate-20b.gguf
  [[ -s "$TEST_TMPDIR/o200k_harmony.vocab" ]] ||
    xz -dc "$root/assets/tokenizer/o200k_harmony.vocab.xz" > "$TEST_TMPDIR/o200k_harmony.vocab"
  for tp in 1 2; do
    step "serving benchmark, 20b shape, --tensor_parallel=$tp" serving.log 200 "$bin/serving_bench" --backend=cuda \
      --bin_dir="$bin" --source_dir="$root" --preset=20b --vocab="$TEST_TMPDIR/o200k_harmony.vocab" \
      --rates=16 --closed_loop_streams=128 --duration_s=20 --num_requests=200 --drain_s=20 \
      --prompt_len=lognormal:512:0.8:64:4096 --output_len=lognormal:256:0.8:32:1024 --temperature=1 --seed=0 \
      --max_sequences=128 --step_token_budget=2048 --worker_args="--tensor_parallel=$tp,--expert_parallel=1" \
      --out="$out/serving-tp$tp.md"
  done
fi
# ---------------------------------------------------------------- kernels ----
# Not in "all": the kernel tests alone (a short first step after a kernel
# change, e.g. "kernels ab").
if [[ " $modes " == *" kernels "* ]]; then
  step "kernels vs CPU reference" tests.log 150 "$bin/gpu_kernels_test"
fi
# --------------------------------------------------------------------- ab ----
# Not in "all": A/B comparison on the 20b shape of the bundle's gpu_bench, of
# the same binary with each setting of OSSGATE_AB_ENV (space-separated
# VAR=VALUE, e.g. "OSSGATE_GEMM_WGMMA=0"), and of a base binary if
# bundle/gpu_bench.base.xz exists (OSSGATE_BASE_COMMIT=<rev> bash
# tools/gpu_bundle.sh builds it; its commit is copied to base-commit.txt).
# "ab": quick benchmark (512-token prefill, batch-1 decode, 64 sequences)
# and 128 sequences, reports ab-*.md; "ablong": the long-context
# measurements (32,768 and 131,040-token prefill, batch-1 decode at 131k),
# reports ablong-*.md. Log: ab.log.
if [[ " $modes " == *" ab "* || " $modes " == *" ablong "* ]]; then
  step "generate 20b-shape model" ab.log 90 "$bin/ossgate-make-model" --preset=20b --vocab=placeholder:201088 \
    --out=/dev/shm/ossgate-20b.gguf
  variants=("new:")
  for e in ${OSSGATE_AB_ENV:-}; do variants+=("$e:$e"); done
  if [[ -f "$root/bundle/gpu_bench.base.xz" ]]; then
    xz -dc "$root/bundle/gpu_bench.base.xz" > "$TEST_TMPDIR/gpu_bench.base" && chmod +x "$TEST_TMPDIR/gpu_bench.base"
    cp "$root/bundle/gpu_bench.base.commit" "$out/base-commit.txt" 2>/dev/null || true
    variants+=("base:")
  fi
  for v in "${variants[@]}"; do
    name=${v%%:*} env_set=${v#*:}
    exe=$bin/gpu_bench
    [[ "$name" == base ]] && exe=$TEST_TMPDIR/gpu_bench.base
    tag=$(echo "$name" | tr -c 'A-Za-z0-9_\n-' '_')
    if [[ " $modes " == *" ab "* ]]; then
      step "ab $name: quick benchmark" ab.log 120 env $env_set "$exe" --model=/dev/shm/ossgate-20b.gguf --quick \
        --big_kv=false --out="$out/ab-$tag.md"
      step "ab $name: 128 sequences" ab.log 90 bash "$0" to-file "$TEST_TMPDIR/ab128.txt" env $env_set "$exe" \
        --model=/dev/shm/ossgate-20b.gguf --decode_only=128 --big_kv=false
      grep '^decode, ' "$TEST_TMPDIR/ab128.txt" >> "$out/ab-$tag.md"
    fi
    if [[ " $modes " == *" ablong "* ]]; then
      step "ablong $name: long context" ab.log 150 env $env_set "$exe" --model=/dev/shm/ossgate-20b.gguf \
        --long_context --out="$out/ablong-$tag.md"
    fi
  done
  rm -f /dev/shm/ossgate-20b.gguf
fi
# ------------------------------------------------------------------- big ----
# Not in "all" (about 5 minutes): the 120b shape (63 GB as MXFP4/Q8_0 GGUF)
# written to /dev/shm (the disk may be smaller than the file), loaded by the
# streaming load (file freed from the device piece by piece while repacked)
# and benchmarked briefly (gpu_bench --quick). Report: bench-120b.md.
if [[ " $modes " == *" big "* ]]; then
  big_dir=/dev/shm
  (( $(df -B1 --output=avail "$big_dir" 2>/dev/null | tail -1) > 64000000000 )) || big_dir=/tmp
  df -h "$big_dir" >> "$out/big.log" 2>&1
  step "generate 120b-shape model in $big_dir" big.log 330 "$bin/ossgate-make-model" --preset=120b \
    --vocab=placeholder:201088 --out="$big_dir/ossgate-120b.gguf"
  step "benchmark (120b shape, streaming load, quick)" big.log 240 "$bin/gpu_bench" \
    --model="$big_dir/ossgate-120b.gguf" --quick --big_kv=false --out="$out/bench-120b.md"
  rm -f "$big_dir/ossgate-120b.gguf"
fi
# ------------------------------------------------------------- families ----
# Not in "all": the other trusted families at full shape (issue 15): the
# Qwen2.5-0.5B shape in Q8_0 (its 896-wide matrices hold no 256-element
# k-quant super-blocks) and the Phi-3-mini-4k shape with every matrix Q4_K,
# each benchmarked briefly (gpu_bench --quick: 512-token prefill, batch-1
# decode at context 128, 64 sequences). Reports: bench-qwen2.md, bench-phi3.md.
# First a small model of each family with its real vocabulary streams a chat
# answer (ChatML, Phi-3's format) through both services on the CUDA and the
# CPU backend (the e2e step's script; log: families-e2e.log).
if [[ " $modes " == *" families "* ]]; then
  for fam in qwen2:qwen2.5 phi3:phi3-mini; do
    f=${fam%%:*} vocab=/tmp/ossgate-${fam#*:}.vocab
    xz -dc "$root/assets/tokenizer/${fam#*:}.vocab.xz" > "$vocab"
    step "generate $f-tiny model (real vocabulary)" families-e2e.log 60 "$bin/ossgate-make-model" \
      --preset=$f-tiny --vocab="$vocab" --out=/tmp/ossgate-$f-tiny.gguf
    step "e2e: services + worker --backend=cuda vs cpu ($f-tiny)" families-e2e.log 120 \
      env OSSGATE_E2E_MODEL=/tmp/ossgate-$f-tiny.gguf bash "$0" e2e-inner
    rm -f /tmp/ossgate-$f-tiny.gguf "$vocab"
  done
  step "generate Qwen2.5-0.5B-shape model (Q8_0)" families.log 60 "$bin/ossgate-make-model" \
    --preset=qwen2.5-0.5b --vocab=placeholder:151936 --dense_type=q8_0 --out=/tmp/ossgate-qwen2.gguf
  step "benchmark (Qwen2.5-0.5B shape, quick)" families.log 120 "$bin/gpu_bench" \
    --model=/tmp/ossgate-qwen2.gguf --quick --big_kv=false --out="$out/bench-qwen2.md"
  rm -f /tmp/ossgate-qwen2.gguf
  step "generate Phi-3-mini-shape model (Q4_K)" families.log 150 "$bin/ossgate-make-model" \
    --preset=phi3-mini --vocab=placeholder:32064 --dense_type=q4_k --out=/tmp/ossgate-phi3.gguf
  step "benchmark (Phi-3-mini shape, Q4_K, quick)" families.log 150 "$bin/gpu_bench" \
    --model=/tmp/ossgate-phi3.gguf --quick --big_kv=false --out="$out/bench-phi3.md"
  rm -f /tmp/ossgate-phi3.gguf
fi
# ------------------------------------------------------------------ long ----
# Not in "all": the 20b shape at 131,072 tokens of context (prefill of
# 32,768 and 131,040-token prompts, batch-1 decode at 131k). Report:
# bench-long.md.
if [[ " $modes " == *" long "* ]]; then
  step "generate 20b-shape model" long.log 90 "$bin/ossgate-make-model" --preset=20b --vocab=placeholder:201088 \
    --out=/tmp/ossgate-20b.gguf
  step "long context (20b shape)" long.log 300 "$bin/gpu_bench" --model=/tmp/ossgate-20b.gguf --long_context \
    --out="$out/bench-long.md"
  rm -f /tmp/ossgate-20b.gguf
fi
# ---------------------------------------------------------------- serving ----
# Not in "all" (about 4 minutes). vLLM benchmark_serving-style traffic through
# both services (mTLS, provenance gate) to the worker on the CUDA backend: the
# 20b shape with the real o200k_harmony vocabulary; lognormal prompts of
# 64-4,096 tokens (median 512) and outputs of 32-1,024 (median 256), sampled
# at temperature 1.0 with ignore_eos; Poisson arrivals at 4, 16 and 64
# requests/s and a closed loop of 128 streams, each level 20 s or 200
# requests and at most 20 s more to finish. Report: serving.md, serving.json.
if [[ " $modes " == *" serving "* ]]; then
  [[ -s "$TEST_TMPDIR/o200k_harmony.vocab" ]] ||
    xz -dc "$root/assets/tokenizer/o200k_harmony.vocab.xz" > "$TEST_TMPDIR/o200k_harmony.vocab"
  step "serving benchmark, Poisson arrivals (20b shape)" serving.log 270 "$bin/serving_bench" --backend=cuda \
    --bin_dir="$bin" --source_dir="$root" --preset=20b --vocab="$TEST_TMPDIR/o200k_harmony.vocab" \
    --rates=4,16,64 --closed_loop_streams=128 --duration_s=20 --num_requests=200 --drain_s=20 \
    --prompt_len=lognormal:512:0.8:64:4096 --output_len=lognormal:256:0.8:32:1024 --temperature=1 --seed=0 \
    --max_sequences=128 --step_token_budget=2048 --out="$out/serving.md" --json_out="$out/serving.json"
fi
# ---------------------------------------------------------------- profile ----
# Not in "all" (about 4 minutes). Hardware counters (Nsight Compute: speed of
# light, memory workload, warp stalls, occupancy, scheduler, launch) of the
# kernels that decide issue 11's targets, on the 20b shape: the expert and
# dense GEMMs of a 128-sequence decode step (the prefill of 128-token prompts
# runs the same MoE tiles, so kernels are taken after the first 48), the
# batch-1 decode kernels (small-batch GEMMs, attention, router) and a 512-token
# prefill's large-batch GEMMs. Reports: ncu-decode128.txt, ncu-batch1.txt,
# ncu-prefill.txt. Clocks are left alone (--clock-control none).
if [[ " $modes " == *" profile "* ]]; then
  ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [[ -z "$ncu" ]]; then
    echo "| profile | skipped (no ncu) | 0 |" >> "$summary"
  else
    sections=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy
              --section LaunchStats --section SchedulerStats --section ComputeWorkloadAnalysis)
    step "generate 20b-shape model" profile.log 90 "$bin/ossgate-make-model" --preset=20b \
      --vocab=placeholder:201088 --out=/dev/shm/ossgate-20b.gguf
    model=/dev/shm/ossgate-20b.gguf
    step "ncu: large-batch GEMMs, 128 sequences" profile.log 150 bash "$0" to-file "$out/ncu-decode128.txt" "$ncu" \
      --clock-control none --kernel-name regex:GemmLargeBatch --launch-skip 48 --launch-count 6 "${sections[@]}" \
      "$bin/gpu_bench" --model=$model --decode_only=128 --big_kv=false --decode_steps=2
    step "ncu: batch-1 decode kernels" profile.log 120 bash "$0" to-file "$out/ncu-batch1.txt" "$ncu" \
      --clock-control none --kernel-name regex:'GemmSmall|Attention|Router' --launch-skip 40 --launch-count 12 \
      "${sections[@]}" "$bin/gpu_bench" --model=$model --decode_only=1 --big_kv=false --decode_steps=3
    step "ncu: 512-token prefill GEMMs" profile.log 120 bash "$0" to-file "$out/ncu-prefill.txt" "$ncu" \
      --clock-control none --kernel-name regex:GemmLargeBatch --launch-count 4 "${sections[@]}" \
      "$bin/gpu_bench" --model=$model --quick --big_kv=false
    rm -f /dev/shm/ossgate-20b.gguf
  fi
fi
echo >> "$summary"
echo "total: $(( $(date +%s) - start )) s" >> "$summary"
# Short digest of the numbers that matter.
{
  echo
  grep -hE "^#### accuracy|^#### dense family|GPU \(bf16 KV\) vs CPU \||GPU with fp16 KV vs CPU|forced to the GPU|positions with equal routing|^\| GPU|near-ties|greedy continuations|stress case:" \
    "$out"/tests.log 2>/dev/null
  grep -hE "FAILED|Failure|ERROR SUMMARY|RACECHECK SUMMARY|IDENTICAL|DIFFER" "$out"/tests.log "$out"/sanitizer.log \
    "$out"/e2e.log 2>/dev/null | head -30
} >> "$summary"
cat "$summary"
[ -f "$out/bench.md" ] && cat "$out/bench.md"
[ -f "$out/serving.md" ] && cat "$out/serving.md"
[ -f "$out/bench-120b.md" ] && cat "$out/bench-120b.md"
[ -f "$out/bench-long.md" ] && cat "$out/bench-long.md"
[ -f "$out/bench-quick.md" ] && cat "$out/bench-quick.md"
for f in "$out"/bench-tp*.md "$out"/bench120-tp*.md "$out"/serving-tp*.md; do [ -f "$f" ] && { echo "### $f"; cat "$f"; }; done
for f in "$out"/ab-*.md; do [ -f "$f" ] && { echo "### $f"; grep -E "^\\| (512|128|64) \\||^decode, " "$f"; }; done
exit 0
