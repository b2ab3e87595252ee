#!/usr/bin/env bash
# Serving benchmark: the same load against a disaggregated (1P+1D) and a --colocated hpd serve,
# side by side, as `vllm bench serve` reports it, plus the ratios colocated / disaggregated and
# the share of TTFT spent on handshake + KV transfer. Numbers are machine-dependent: compare the
# two columns of one run, not runs on different machines.
#
#   scripts/bench-serve.sh [extra hpd bench serve flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/commands/bench/serve.js ] || npm run build >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
for shape in "128 32" "512 16"; do
  set -- $shape "${@:3}"
  echo "== prompt ${1} tokens, output ${2} tokens, concurrency 8, 64 requests ==" >&2
  node bin/run.js bench serve --compare-colocated --concurrency 8 --requests 64 --prompt-tokens "$1" --output-tokens "$2" "${@:3}"
done
