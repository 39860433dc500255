#!/usr/bin/env bash
# serving_bench end to end, a few seconds: both services with mTLS and the
# provenance gate, a tiny model, one Poisson level and one closed-loop level
# of 6 requests each with 4-token outputs (ignore_eos, so exactly 24 output
# tokens a level). Checks the markdown report (a row per level, every
# request done, 0 errors, positive throughput) and the JSON (token counts,
# latencies).
#   serving_smoke_test.sh SERVING_BENCH SOURCE_DIR
set -euo pipefail
bench=$(realpath "$1")
src=$(realpath "$2")
tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/serving_smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bench" --source_dir="$src" --preset=tiny --vocab=tiny --backend=cpu --threads=1 --rates=20 \
  --closed_loop_streams=2 --num_requests=6 --duration_s=0 --drain_s=30 --prompt_len=uniform:4:12 \
  --output_len=fixed:4 --max_sequences=4 --out="$tmp/report.md" --json_out="$tmp/report.json"
cat "$tmp/report.md"

# | load | sent | done | errors | unfinished | duration s | req/s | output tok/s | TTFT p50 ms | ...
rows=$(sed '/^Engine steps/q' "$tmp/report.md" | grep -E '^\| (Poisson|closed loop)') || fail "no result rows in the report"
steps=$(sed -n '/^Engine steps/,$p' "$tmp/report.md" | grep -E '^\| (Poisson|closed loop)') || fail "no engine-step rows"
[[ $(wc -l <<<"$steps") -eq 2 ]] || fail "expected 2 engine-step rows: $steps"
[[ $(wc -l <<<"$rows") -eq 2 ]] || fail "expected 2 rows (Poisson 20 req/s, closed loop): $rows"
grep -q '^| Poisson 20 req/s |' <<<"$rows" || fail "no Poisson row: $rows"
grep -q '^| closed loop, 2 streams |' <<<"$rows" || fail "no closed-loop row: $rows"
awk -F'|' '{ exit !($3 == 6 && $4 == 6 && $5 == 0 && $6 == 0 && $8 + 0 > 0 && $9 + 0 > 0 && $10 + 0 > 0) }' \
  <<<"$(sed -n 1p <<<"$rows")" || fail "Poisson row: expected 6 sent and done, 0 errors, positive throughput"
awk -F'|' '{ exit !($3 == 6 && $4 == 6 && $5 == 0 && $6 == 0 && $8 + 0 > 0 && $9 + 0 > 0 && $10 + 0 > 0) }' \
  <<<"$(sed -n 2p <<<"$rows")" || fail "closed-loop row: expected 6 sent and done, 0 errors, positive throughput"

python3 - "$tmp/report.json" <<'PY'
import json, sys
levels = json.load(open(sys.argv[1]))["levels"]
assert len(levels) == 2, levels
for l in levels:
    assert (l["sent"], l["completed"], l["errors"], l["unfinished"]) == (6, 6, 0, 0), l
    assert l["output_tokens"] == 24, l  # ignore_eos: every request its 4 tokens
    assert 6 * 4 <= l["input_tokens"] <= 6 * 12, l
    assert l["request_throughput"] > 0 and l["output_throughput"] > 0, l
    assert abs(l["output_throughput"] - 24 / l["duration_s"]) < 0.01 * l["output_throughput"] + 0.01, l
    assert 0 < l["ttft_ms"]["p50"] <= l["ttft_ms"]["p99"] <= l["e2el_ms"]["max"], l
    assert l["tpot_ms"]["p50"] > 0 and l["itl_ms"]["p50"] > 0, l
    # The worker's engine steps over the level (its /metrics): every prompt
    # token prefilled, every output token but each request's last fed back.
    e = l["engine_steps"]
    assert e["prefill_tokens"] == l["input_tokens"], (e, l["input_tokens"])
    assert e["decode_tokens"] == l["output_tokens"] - l["completed"], e
    steps = sum(e[k]["count"] for k in ("decode", "mixed", "prefill"))
    assert steps >= 4 and all(e[k]["seconds"] >= 0 for k in ("decode", "mixed", "prefill")), e
assert levels[0]["rate"] == 20 and levels[0]["streams"] is None, levels[0]
assert levels[1]["rate"] is None and levels[1]["streams"] == 2, levels[1]
print("json ok")
PY
echo "PASS"
