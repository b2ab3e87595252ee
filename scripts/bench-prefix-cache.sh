#!/usr/bin/env bash
# Prefix caching benchmark (issue 14): 4096-token prompts sharing a 90 % prefix (3686 tokens, one
# prefix, vllm bench serve's prefix-repetition shape), each server kind run with
# --no-prefix-caching and then with prefix caching, in one run: median TTFT on / off (the bar is
# ≤ 0.3×, disaggregated and colocated) and the KV bytes a decode worker pulls per request without
# and with a decode-side hit. Concurrency 1, so TTFT is the prefill, not queueing. Numbers are
# machine-dependent: compare the columns of one run.
#
#   scripts/bench-prefix-cache.sh [extra hpd bench serve flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/commands/bench/serve.js ] || npm run build >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
node bin/run.js bench serve --compare-colocated --compare-prefix-caching \
  --prompt-tokens 4096 --shared-prefix-tokens 3686 --concurrency 1 --requests 16 --output-tokens 8 "$@"
