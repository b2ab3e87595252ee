#!/usr/bin/env bash
# Wall time of `hpd doctor` as a whole process on this machine, against references measured in
# the same run (absolute numbers drift with load; compare ratios).
#
#   bash scripts/bench-doctor.sh [RUNS]      # default 7 runs per case; prints the median of each
#
# Cases:
#   node-floor        node -e 0: what any Node process costs here
#   cli-floor         hpd --version: oclif start-up, which today imports EVERY command module
#                     (no oclif.manifest.json), so other commands' top-level imports land here
#   doctor            hpd doctor, piped (plain lines)            <- the figure users see
#   doctor-json       hpd doctor --json
#   doctor-alone      hpd doctor from a copy of the package whose dist/commands holds only
#                     doctor.js: what it costs once oclif loads only the command it runs
#   doctor-tty-alone  the same under a pseudo-terminal (Ink checklist), 100 columns
# Budget: 1.5 s for `hpd doctor` (issue 4).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-7}"
BUDGET_MS=1500

if [[ ! -f dist/commands/doctor.js ]]; then
  echo "dist/commands/doctor.js is missing: run \`npm run build\` first" >&2
  exit 2
fi

# A package copy with only the doctor command (dist copied, everything else linked).
ALONE="$(mktemp -d /tmp/hpd-bench-doctor.XXXXXX)"
trap 'rm -rf "$ALONE"' EXIT
cp -r dist "$ALONE/dist"
find "$ALONE/dist/commands" -mindepth 1 ! -name 'doctor.js' ! -name 'doctor.js.map' -delete
for p in package.json bin node_modules build; do ln -s "$PWD/$p" "$ALONE/$p"; done

median_ms() { # command... ; prints the median wall time in ms over $RUNS runs
  local times=() t0 t1
  for ((i = 0; i < RUNS; i++)); do
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

tty_doctor() { env -u CI TERM=xterm-256color script -qec "stty cols 100 rows 60; node '$ALONE/bin/run.js' doctor" /dev/null; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs per case: $RUNS (median)"
declare -A MS
MS[node-floor]=$(median_ms node -e 0)
MS[cli-floor]=$(median_ms node bin/run.js --version)
MS[doctor]=$(median_ms node bin/run.js doctor)
MS[doctor-json]=$(median_ms node bin/run.js doctor --json)
MS[doctor-alone]=$(median_ms node "$ALONE/bin/run.js" doctor)
if command -v script >/dev/null; then MS[doctor-tty-alone]=$(median_ms tty_doctor); fi

printf '%-18s %8s %10s %12s\n' case ms 'x node' 'x cli-floor'
for k in node-floor cli-floor doctor doctor-json doctor-alone doctor-tty-alone; do
  [[ -n "${MS[$k]:-}" ]] || continue
  awk -v k="$k" -v ms="${MS[$k]}" -v n="${MS[node-floor]}" -v c="${MS[cli-floor]}" \
    'BEGIN {printf "%-18s %8d %10.2f %12.2f\n", k, ms, ms / n, ms / c}'
done
echo "doctor minus cli-floor (the doctor's own work): $((MS[doctor] - MS[cli-floor])) ms"
for k in doctor doctor-alone; do
  if ((MS[$k] <= BUDGET_MS)); then echo "$k: ${MS[$k]} ms, within the ${BUDGET_MS} ms budget"; else echo "$k: ${MS[$k]} ms, OVER the ${BUDGET_MS} ms budget"; fi
done
