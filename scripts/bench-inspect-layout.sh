#!/usr/bin/env bash
# Whole-process benchmark of `hpd inspect-layout` on the largest preset (nemotron-nano-9b-v2) at
# TP 8→2 with a 128k-token prompt. Target: < 0.5 s per process. Not a test: it prints measurements.
#
#   bash scripts/bench-inspect-layout.sh [runs]      (default 7 runs per case; reports min and median)
#
# Cases, measured in the same run so the ratios compare like with like:
#   node-floor       `node -e ''`                                 (Node start-up alone)
#   version-dev      `node bin/run.js --version`                  (oclif start-up in this checkout)
#   inspect-dev      `node bin/run.js inspect-layout ...`         (as run from this checkout)
#   version-packed   same as version-dev, from a copy with an oclif manifest
#   inspect-packed   same as inspect-dev, from a copy with an oclif manifest
# Without `oclif.manifest.json` (a dev checkout) oclif imports every command to list them, so the
# dev figures include the import time of all other commands (serve pulls in Ink and React). A
# packed CLI ships the manifest (oclif's prepack step) and imports only the command it runs; the
# "packed" cases reproduce that from a temporary copy (package.json, bin/ and a manifest; dist/ and
# node_modules/ symlinked), leaving this checkout untouched.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-7}"
ARGS=(inspect-layout --model nemotron-nano-9b-v2 --tp 8 --decode-tp 2 --prompt-tokens 131072 --json)
export NODE_ENV=production

[ -f "$ROOT/dist/commands/inspect-layout.js" ] || (cd "$ROOT" && npx tsc -p tsconfig.build.json)

PACKED="$(mktemp -d)"
trap 'rm -rf "$PACKED"' EXIT
cp "$ROOT/package.json" "$PACKED/"
mkdir "$PACKED/bin" && cp "$ROOT/bin/run.js" "$PACKED/bin/"
ln -s "$ROOT/dist" "$PACKED/dist"
ln -s "$ROOT/node_modules" "$PACKED/node_modules"
(cd "$ROOT" && node --input-type=module -e "
import {writeFileSync} from 'node:fs'
import {Config} from '@oclif/core'
const config = await Config.load('$PACKED')
const root = config.getPluginsList().find((p) => p.isRoot)
writeFileSync('$PACKED/oclif.manifest.json', JSON.stringify(root.manifest))
" 2>/dev/null)

# Check the benchmarked command works and reports what we think it does.
node "$PACKED/bin/run.js" "${ARGS[@]}" 2>/dev/null | node -e '
let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
  const t = JSON.parse(s).result.transfer
  console.log(`checked: ${t.promptTokens} prompt tokens, vLLM descriptor pairs ${t.vllmDescriptorPairs}, hpd reads ${t.hpdReads}, coalesced runs ${t.coalescedRuns}`)
})'

CPU_FILE="$PACKED/cpu.txt"
measure() { # name, command...: prints wall and CPU (user+sys) time, min and median over $RUNS runs
  local name="$1"; shift
  local walls=() cpus=()
  for ((i = 0; i < RUNS; i++)); do
    local t0 t1
    t0=$(date +%s%N)
    /usr/bin/time -f '%U %S' -o "$CPU_FILE" "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    walls+=($(( (t1 - t0) / 1000000 )))
    cpus+=($(awk '{printf "%d", ($1 + $2) * 1000}' "$CPU_FILE"))
  done
  local w c
  w=$(printf '%s\n' "${walls[@]}" | sort -n)
  c=$(printf '%s\n' "${cpus[@]}" | sort -n)
  local mid=$(( (RUNS + 1) / 2 ))
  printf '%-16s wall min %5d ms  median %5d ms   cpu min %5d ms  median %5d ms\n' "$name" \
    "$(echo "$w" | head -1)" "$(echo "$w" | sed -n "${mid}p")" "$(echo "$c" | head -1)" "$(echo "$c" | sed -n "${mid}p")"
  eval "MEDIAN_${name//-/_}=$(echo "$w" | sed -n "${mid}p")"
  eval "MIN_${name//-/_}=$(echo "$w" | head -1)"
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), node $(node --version), $RUNS runs per case"
measure node-floor node -e ''
measure version-dev node "$ROOT/bin/run.js" --version
measure inspect-dev node "$ROOT/bin/run.js" "${ARGS[@]}"
measure version-packed node "$PACKED/bin/run.js" --version
measure inspect-packed node "$PACKED/bin/run.js" "${ARGS[@]}"
awk -v a="$MEDIAN_inspect_packed" -v b="$MEDIAN_version_packed" -v c="$MEDIAN_inspect_dev" -v d="$MEDIAN_version_dev" -v m="$MIN_inspect_packed" -v n="$MEDIAN_node_floor" 'BEGIN {
  printf "ratio inspect/version (median wall): packed %.2f, dev %.2f; inspect-packed / node-floor %.2f\n", a / b, c / d, a / n
  printf "inspect-layout cost above oclif start-up (median wall): packed %d ms, dev %d ms\n", a - b, c - d
  printf "target < 500 ms whole process (packed): median %d ms, min %d ms: %s\n", a, m, (a < 500 ? "met" : (m < 500 ? "met at best, not at median (check the load above)" : "NOT met"))
}'
