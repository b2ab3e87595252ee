/** Nearest-rank percentile (p in [0, 100]) of unsorted samples; 0 for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return 0
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

/** Bytes per millisecond → GB/s (10^9 bytes per second). */
export function gbPerSecond(bytes: number, ms: number): number {
  return ms > 0 ? bytes / ms / 1e6 : 0
}
