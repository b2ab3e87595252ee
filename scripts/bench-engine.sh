#!/usr/bin/env bash
# Engine benchmark: prefill FLOP/s vs OpenBLAS sgemm (same run), decode tok/s at batch 1 and 8,
# resident memory, with fp32 and bf16 weights (each in its own process).
# Usage: scripts/bench-engine.sh [--model nemotron-h|nemotron-h-moe|granite-h|falcon-h1|qwen3-next|PRESET|DIR]
#          [--weights both|fp32|bf16] [--tokens 2048] [--decode 32] [--batch 1,8] [--tp 1] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
exec npx tsx scripts/bench-engine.ts "$@"
