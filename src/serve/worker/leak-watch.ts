/**
 * Notices KV blocks that no request owns: blocks in use while nothing runs (no request in flight,
 * in a batch, or under a lease) for longer than a grace period. Such blocks can never be freed
 * by the worker itself, and a pool that fills up with them stalls every request routed here, so
 * the worker reports itself unhealthy (the supervisor restarts it; the router routes elsewhere).
 */
export class LeakWatch {
  private idleSinceMs: number | undefined

  constructor(
    private readonly usedBlocks: () => number,
    private readonly running: () => number,
    /** Long enough for any in-between state (a request leaving a batch) to settle. */
    private readonly graceMs = 5000,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** Why this worker is unhealthy, or undefined when it is not. Call it on each health poll. */
  problem(): string | undefined {
    const used = this.usedBlocks()
    if (used === 0 || this.running() > 0) {
      this.idleSinceMs = undefined
      return undefined
    }
    const now = this.nowMs()
    this.idleSinceMs ??= now
    if (now - this.idleSinceMs < this.graceMs) return undefined
    return `${used} KV blocks are held while no request runs (leaked for ${Math.round((now - this.idleSinceMs) / 1000)} s); restart this worker`
  }
}
