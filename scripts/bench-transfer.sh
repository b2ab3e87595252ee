#!/usr/bin/env bash
# The transfer measurements reported for issue 3 (a benchmark, not a test). Prints measured ratios:
#   1. same-host shared memory: a 4096-token Nemotron-H-8B request vs memcpy of the same bytes,
#      measured in the same run (target >= 0.9x);
#   2. TCP with hpd's tuned 256 KiB segments vs UCX's default TCP settings, same model and size,
#      back to back on the same machine (target >= 4x).
# Usage: scripts/bench-transfer.sh [model] [prompt-tokens] [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-nemotron-h-8b}
tokens=${2:-4096}
requests=${3:-8}
run() { ./bin/run.js bench transfer --model "$model" --prompt-tokens "$tokens" --requests "$requests" --json "$@"; }
field() { node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8"));if(!r.ok){console.error(JSON.stringify(r.error));process.exit(1)}const c=r.result.cases[0];console.log(JSON.stringify({gbPerSecond:+c.gbPerSecond.toFixed(3),memcpyGbPerSecond:+c.memcpyGbPerSecond.toFixed(3),ratioToMemcpy:+c.ratioToMemcpy.toFixed(3),bestGbPerSecond:+c.bestGbPerSecond.toFixed(3),bestMemcpyGbPerSecond:+c.bestMemcpyGbPerSecond.toFixed(3),ratioBestToMemcpy:+c.ratioBestToMemcpy.toFixed(3),bytesPerRequest:c.bytesPerRequest,runsPerRequest:c.runsPerRequest,p50Ms:+c.p50Ms.toFixed(2),p99Ms:+c.p99Ms.toFixed(2)}))'; }

echo "== shared memory (transport auto), $model, $tokens tokens, $requests requests"
shm=$(run --transport auto | field)
echo "$shm"
echo "== TCP, hpd tuned segments (256 KiB)"
tuned=$(run --transport tcp --verify digest | field)
echo "$tuned"
echo "== TCP, UCX default segments (8K TX / 64K RX)"
default=$(run --transport tcp --verify digest --tcp-segment-bytes 0 | field)
echo "$default"
node -e '
const [shm, tuned, dflt] = process.argv.slice(1).map((s) => JSON.parse(s))
console.log(`shm read / memcpy (same run): ${shm.ratioToMemcpy.toFixed(2)}x median of paired requests, ${shm.ratioBestToMemcpy.toFixed(2)}x best vs best  (target >= 0.9x)`)
console.log(`tcp tuned / tcp UCX default:  ${(tuned.gbPerSecond / dflt.gbPerSecond).toFixed(2)}x mean (${tuned.gbPerSecond.toFixed(2)} vs ${dflt.gbPerSecond.toFixed(2)} GB/s), ${(tuned.bestGbPerSecond / dflt.bestGbPerSecond).toFixed(2)}x best (${tuned.bestGbPerSecond.toFixed(2)} vs ${dflt.bestGbPerSecond.toFixed(2)}); target >= 4x`)
' "$shm" "$tuned" "$default"
