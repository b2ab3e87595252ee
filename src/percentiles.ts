/**
 * The one percentile definition in hpd: linear interpolation between closest ranks, numpy's
 * default (what `vllm bench` reports), over unsorted samples. `p` in [0, 100]; undefined for each
 * p when there are no samples. Used by the router's metrics, `hpd bench serve` and `hpd bench
 * transfer` alike, so their p50/p99 mean the same thing.
 */
export function percentiles(samples: readonly number[], ps: readonly number[]): (number | undefined)[] {
  if (samples.length === 0) return ps.map(() => undefined)
  const sorted = [...samples].sort((a, b) => a - b)
  return ps.map((p) => {
    const pos = (p / 100) * (sorted.length - 1)
    const lo = Math.floor(pos)
    const hi = Math.ceil(pos)
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
  })
}
