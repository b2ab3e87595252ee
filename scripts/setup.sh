#!/usr/bin/env bash
# Sets up hpd on a fresh Debian machine: system libraries for the native addon (UCX transport,
# OpenBLAS kernels), etcd (the cluster registry; tests start their own throwaway server) and
# iproute2 (the cross-host tests build hosts as network namespaces), prometheus (its promtool
# checks /metrics in the tests), then the npm packages (whose install step builds the addon) and
# the TS build.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libucx-dev ucx-utils libopenblas-dev g++ make python3 etcd-server etcd-client iproute2 prometheus; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # etcd-server's own service is not used: hpd's tests start throwaway etcds on free ports.
  # promtool is all hpd needs of prometheus: it is installed without its recommended exporters.
  plain=(); for pkg in "${need[@]}"; do [ "$pkg" = prometheus ] || plain+=("$pkg"); done
  if [ ${#plain[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${plain[@]}" >/dev/null; fi
  if [ ${#plain[@]} -ne ${#need[@]} ]; then DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; fi
fi

npm ci --no-audit --no-fund
npm run build
