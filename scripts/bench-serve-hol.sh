#!/usr/bin/env bash
# Head-of-line blocking: the median TTFT of short requests (128-token prompts, 16 output tokens,
# concurrency 2) on an idle server, then while one 8000-token prompt is kept in flight the whole
# time, for a disaggregated (1P+1D) and a --colocated server. Issue 12's bar: the loaded median
# stays within 2x of the idle one and no worker turns unhealthy. Both numbers of a row come from
# the same run on the same machine; compare them, not runs on different machines. The two phases
# send different prompts (another seed for the loaded one), so prefix caching (on, as users run it)
# cannot serve the loaded phase from the idle phase's cache; each row reports its phases' hits (0).
#
#   scripts/bench-serve-hol.sh [extra hpd bench serve flags, e.g. --long-prefill-tokens 128]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/commands/bench/serve.js ] || npm run build >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
node bin/run.js bench serve --compare-colocated --concurrency 2 --requests 64 --prompt-tokens 128 --output-tokens 16 --long-prompt-tokens 8000 "$@"
