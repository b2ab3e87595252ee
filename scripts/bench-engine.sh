#!/usr/bin/env bash
# Engine benchmark: prefill FLOP/s vs OpenBLAS sgemm (same run), decode tok/s, memory per token.
# Usage: scripts/bench-engine.sh [--tokens 2048] [--decode 32] [--batch 4] [--tp 1] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
exec npx tsx scripts/bench-engine.ts "$@"
