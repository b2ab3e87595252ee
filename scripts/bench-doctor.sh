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
#   doctor-manifest   hpd doctor from a full copy with an oclif.manifest.json generated from it:
#                     the same, reached the way a published CLI reaches it
#   doctor-tty        hpd doctor under a pseudo-terminal (Ink checklist), 100 columns
#   doctor-tty-alone  doctor-alone under a pseudo-terminal
# Budget: 1.5 s for `hpd doctor` (issue 4).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-7}"
BUDGET_MS=1500

if [[ ! -f dist/commands/doctor.js ]]; then
  echo "dist/commands/doctor.js is missing: run \`npm run build\` first" >&2
  exit 2
fi

# A package copy with only the doctor command. bin/ and dist/ are copied, not linked: Node
# resolves symlinks, and oclif finds its root from bin/run.js's real path.
ALONE="$(mktemp -d /tmp/hpd-bench-doctor.XXXXXX)"
cp -r dist bin package.json "$ALONE/"
find "$ALONE/dist/commands" -mindepth 1 ! -name 'doctor.js' ! -name 'doctor.js.map' -delete
for p in node_modules build; do ln -s "$PWD/$p" "$ALONE/$p"; done

# A package copy with every command and an oclif.manifest.json (what `oclif manifest` writes at
# publish time): oclif then imports only the command it runs.
MANIFEST="$(mktemp -d /tmp/hpd-bench-doctor.XXXXXX)"
trap 'rm -rf "$ALONE" "$MANIFEST"' EXIT
cp -r dist bin package.json "$MANIFEST/"
for p in node_modules build; do ln -s "$PWD/$p" "$MANIFEST/$p"; done
(cd "$MANIFEST" && node --input-type=module -e "
  import {Config} from '@oclif/core'
  import {writeFileSync} from 'node:fs'
  const config = await Config.load(process.cwd())
  const plugin = config.getPluginsList().find((p) => p.root === process.cwd())
  writeFileSync('oclif.manifest.json', JSON.stringify(plugin.manifest))
" 2>/dev/null)

# Runs a case $RUNS times; prints "<median wall ms> <median cpu ms>" (cpu = user + sys of the
# process tree, which a loaded machine inflates less than wall time).
measure() {
  local walls=() cpus=() out
  for ((i = 0; i < RUNS; i++)); do
    # A failed verdict exits 4; that is a result, not a benchmark error.
    out=$(/usr/bin/time -f '%e %U %S' "$@" 2>&1 >/dev/null | tail -1) || true
    walls+=($(awk '{printf "%d", $1 * 1000}' <<<"$out"))
    cpus+=($(awk '{printf "%d", ($2 + $3) * 1000}' <<<"$out"))
  done
  echo "$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
    "$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
}


echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs per case: $RUNS (medians)"
declare -A WALL CPU
run_case() { local k=$1; shift; read -r WALL[$k] CPU[$k] < <(measure "$@"); }
run_case node-floor node -e 0
run_case cli-floor node bin/run.js --version
run_case doctor node bin/run.js doctor
run_case doctor-json node bin/run.js doctor --json
run_case doctor-alone node "$ALONE/bin/run.js" doctor
[[ -f "$MANIFEST/oclif.manifest.json" ]] && run_case doctor-manifest node "$MANIFEST/bin/run.js" doctor
if command -v script >/dev/null; then
  run_case doctor-tty env -u CI TERM=xterm-256color script -qec "stty cols 100 rows 60; node bin/run.js doctor" /dev/null
  run_case doctor-tty-alone env -u CI TERM=xterm-256color script -qec "stty cols 100 rows 60; node '$ALONE/bin/run.js' doctor" /dev/null
fi

printf '%-18s %8s %8s %10s %12s\n' case wall-ms cpu-ms 'wall/node' 'wall/cli'
for k in node-floor cli-floor doctor doctor-json doctor-alone doctor-manifest doctor-tty doctor-tty-alone; do
  [[ -n "${WALL[$k]:-}" ]] || continue
  awk -v k="$k" -v w="${WALL[$k]}" -v c="${CPU[$k]}" -v n="${WALL[node-floor]}" -v f="${WALL[cli-floor]}" \
    'BEGIN {printf "%-18s %8d %8d %10.2f %12.2f\n", k, w, c, w / n, w / f}'
done
echo "doctor minus cli-floor (the doctor's own work, wall): $((WALL[doctor] - WALL[cli-floor])) ms"
for k in doctor doctor-alone doctor-manifest doctor-tty doctor-tty-alone; do
  [[ -n "${WALL[$k]:-}" ]] || continue
  if ((WALL[$k] <= BUDGET_MS)); then verdict=within; else verdict=OVER; fi
  echo "$k: ${WALL[$k]} ms wall, $verdict the ${BUDGET_MS} ms budget"
done
