#!/usr/bin/env bash
# The cost of `hpd serve --verify-transfers` per request (a benchmark, not a test): the same load
# (`hpd bench serve`, one request at a time so nothing queues) against a disaggregated server
# without and with verification, back to back; prints TTFT p50 of both and, from the verifying
# server's /metrics, the time verification itself took per request (both sides' digests + the
# round trip to the prefill worker).
# Usage: scripts/bench-verify.sh [model] [prompt-tokens] [requests] [prefill-tp] [decode-tp]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-tiny-hybrid}
tokens=${2:-1024}
requests=${3:-32}
ptp=${4:-1}
dtp=${5:-1}
port=$((18000 + RANDOM % 1000))
pid=
stop() { if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi; }
trap stop EXIT
for verify in off on; do
  flags=(--model "$model" --prefill-tp "$ptp" --decode-tp "$dtp" --port "$port" --json-logs)
  [ "$verify" = on ] && flags+=(--verify-transfers)
  ./bin/run.js serve "${flags[@]}" 2>/dev/null &
  pid=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  ./bin/run.js bench serve --url "http://127.0.0.1:$port" --concurrency 1 --requests "$requests" --prompt-tokens "$tokens" --output-tokens 1 --json 2>/dev/null \
    | node -e 'const s=JSON.parse(require("fs").readFileSync(0,"utf8")).result.runs[0]; console.log(`verify ${process.argv[1]}: TTFT median ${s.ttft.medianMs.toFixed(2)} ms, mean ${s.ttft.meanMs.toFixed(2)} ms; e2e median ${s.e2e.medianMs.toFixed(2)} ms`)' "$verify"
  if [ "$verify" = on ]; then
    sleep 1.5 # the router polls worker stats every second
    curl -s "http://127.0.0.1:$port/metrics" | node -e '
      const t = require("fs").readFileSync(0, "utf8")
      const n = +(/^hpd_kv_verified_transfers_total\{[^}]*\} (\S+)$/m.exec(t)?.[1] ?? NaN)
      const s = +(/^hpd_kv_verify_seconds_total\{[^}]*\} (\S+)$/m.exec(t)?.[1] ?? NaN)
      console.log(`verification: ${n} transfers, ${(1000 * s / n).toFixed(3)} ms per request (digests of both sides + the round trip)`)'
  fi
  stop
done
