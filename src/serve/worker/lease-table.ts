/**
 * Prefill-side leases on a request's cache blocks (vLLM #41383 semantics): blocks stay held after
 * prefill until the decode side says it has read them (release), or until the lease runs out
 * (expiry), which the decode side pushes back with heartbeats while it waits for its own blocks.
 * The clock is injectable so tests never sleep.
 */
export interface LeaseTableOptions {
  readonly durationMs: number
  /** No lease outlives this, counted from hold(), however often it is extended (default: no cap). */
  readonly maxHoldMs?: number
  /** Called once per lease that ends, with why; the owner frees the blocks there. */
  readonly onEnd: (requestId: string, why: 'released' | 'expired') => void
  readonly nowMs?: () => number
}

export class LeaseTable {
  private readonly expiresAtMs = new Map<string, number>()
  /** Latest expiry each lease may reach (hold time + maxHoldMs). */
  private readonly deadlineMs = new Map<string, number>()
  private readonly now: () => number
  released = 0
  expired = 0

  constructor(private readonly options: LeaseTableOptions) {
    this.now = options.nowMs ?? Date.now
  }

  get held(): number {
    return this.expiresAtMs.size
  }

  has(requestId: string): boolean {
    return this.expiresAtMs.has(requestId)
  }

  /** Starts a lease; returns its expiry (wall-clock ms). */
  hold(requestId: string): number {
    const now = this.now()
    const at = now + this.options.durationMs
    this.expiresAtMs.set(requestId, at)
    this.deadlineMs.set(requestId, now + Math.max(this.options.durationMs, this.options.maxHoldMs ?? Number.POSITIVE_INFINITY))
    return at
  }

  /** Pushes the expiry to now + duration (at most to the lease's deadline); undefined when the lease already ended. */
  extend(requestId: string): number | undefined {
    if (!this.expiresAtMs.has(requestId)) return undefined
    const at = Math.min(this.now() + this.options.durationMs, this.deadlineMs.get(requestId) ?? Number.POSITIVE_INFINITY)
    this.expiresAtMs.set(requestId, at)
    return at
  }

  /** Ends a lease because the decode side is done with the blocks; false if none was held. */
  release(requestId: string): boolean {
    if (!this.expiresAtMs.delete(requestId)) return false
    this.deadlineMs.delete(requestId)
    this.released++
    this.options.onEnd(requestId, 'released')
    return true
  }

  /** Ends every lease past its expiry; returns their request ids. */
  sweep(): string[] {
    const now = this.now()
    const ended: string[] = []
    for (const [id, at] of this.expiresAtMs) {
      if (at <= now) ended.push(id)
    }
    for (const id of ended) {
      this.expiresAtMs.delete(id)
      this.deadlineMs.delete(id)
      this.expired++
      this.options.onEnd(id, 'expired')
    }
    return ended
  }

  /** Ends every lease (worker shutdown) as expired. */
  clear(): void {
    for (const id of [...this.expiresAtMs.keys()]) {
      this.expiresAtMs.delete(id)
      this.deadlineMs.delete(id)
      this.options.onEnd(id, 'expired')
    }
  }
}
