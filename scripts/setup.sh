#!/usr/bin/env bash
# Sets up hpd on a fresh Debian machine: system libraries for the native addon (UCX transport,
# OpenBLAS kernels), then the npm packages (whose install step builds the addon) and the TS build.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libucx-dev ucx-utils libopenblas-dev g++ make python3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
npm run build
