/**
 * Admission of requests into a worker's KV pool, first come first served (vLLM's FCFS waiting
 * queue): a request is admitted once the blocks it can ever hold (../kv-capacity.ts, at full
 * length) fit beside those of the requests admitted before it; until then it waits, in arrival
 * order, and a large request is never overtaken by a stream of small ones. An admitted request
 * therefore never runs out of blocks midway (there is no preemption to fall back on).
 *
 * The gate counts commitments, not pool blocks: the engine allocates as it goes, sharing prefix
 * blocks, so real use stays at or below what was committed. A block freed during an engine step is
 * back in the pool when the step ends, so a caller whose allocation still finds the pool short
 * right after admission retries shortly (it is within its commitment).
 *
 * Every wait is bounded by the caller's signal (the request's timeout, its client going away).
 */
import {ServeError} from '../backend.js'

interface Waiter {
  readonly blocks: number
  readonly resolve: (release: () => void) => void
}

export class BlockGate {
  private committed = 0
  private readonly queue: Waiter[] = []

  constructor(readonly capacityBlocks: number) {}

  /** Blocks committed to admitted requests. */
  get committedBlocks(): number {
    return this.committed
  }

  /** Requests waiting for blocks. */
  get waiting(): number {
    return this.queue.length
  }

  /**
   * Resolves with the release function of `blocks` once they are committed to the caller; rejects
   * with `signal.reason` when the signal aborts first, and at once (400 `kv_capacity_exceeded`) when
   * the pool could never hold them. Call release exactly once, after the request's blocks are freed.
   */
  acquire(blocks: number, signal: AbortSignal): Promise<() => void> {
    if (blocks > this.capacityBlocks) {
      return Promise.reject(new ServeError(400, 'kv_capacity_exceeded', `the request needs ${blocks} KV blocks at full length, more than this worker's whole pool (${this.capacityBlocks} blocks): lower n, max_tokens or the prompt length`))
    }
    if (signal.aborted) return Promise.reject(signal.reason)
    if (this.queue.length === 0 && this.committed + blocks <= this.capacityBlocks) return Promise.resolve(this.commit(blocks))
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        blocks,
        resolve: (release) => {
          signal.removeEventListener('abort', onAbort)
          resolve(release)
        },
      }
      const onAbort = () => {
        const i = this.queue.indexOf(waiter)
        if (i >= 0) this.queue.splice(i, 1)
        reject(signal.reason)
        // The head may have been what held the others back.
        this.drain()
      }
      signal.addEventListener('abort', onAbort, {once: true})
      this.queue.push(waiter)
    })
  }

  private commit(blocks: number): () => void {
    this.committed += blocks
    let released = false
    return () => {
      if (released) return
      released = true
      this.committed -= blocks
      this.drain()
    }
  }

  /** Admits waiters from the head while they fit (strictly in order). */
  private drain(): void {
    while (this.queue.length > 0 && this.committed + this.queue[0].blocks <= this.capacityBlocks) {
      const w = this.queue.shift()!
      w.resolve(this.commit(w.blocks))
    }
  }
}
