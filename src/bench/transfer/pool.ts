import {blocksNeeded, type EngineLayout, type GroupBlockIds} from '../../layout/index.js'
import {uniformStream} from '../../engine/random.js'

/**
 * The serve path's block pool: a server's free list after a while, block ids in no order. The free
 * list starts shuffled (seeded: both sides of a run, even on two hosts, get the same sequence) and
 * freed blocks go to its end, so consecutive requests land on scattered, rarely adjacent blocks.
 */
export class ShuffledPool {
  private readonly free: number[]

  constructor(
    private readonly engine: EngineLayout,
    readonly numBlocks: number,
    seed: number,
  ) {
    const rng = uniformStream(seed)
    this.free = Array.from({length: numBlocks}, (_, i) => i)
    for (let i = numBlocks - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1))
      ;[this.free[i], this.free[j]] = [this.free[j], this.free[i]]
    }
  }

  /** Block ids per group for `tokens` transferred tokens; throws if the pool is short (a sizing bug). */
  take(tokens: number): GroupBlockIds {
    const need = blocksNeeded(this.engine, tokens)
    const total = need.reduce((a, b) => a + b, 0)
    if (total > this.free.length) throw new RangeError(`the bench pool has ${this.free.length} free blocks, a request needs ${total}`)
    const ids = this.free.splice(0, total)
    let at = 0
    return need.map((n) => ids.slice(at, (at += n)))
  }

  release(ids: GroupBlockIds): void {
    for (const group of ids) this.free.push(...group)
  }
}

