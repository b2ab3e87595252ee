import {BugError} from '../errors.js'

/**
 * Logical block ids shared by every KV-cache group (vLLM's hybrid manager): a block id names one
 * page in every shared tensor, and whichever group holds it uses that page in its own slots.
 * Lowest free ids are handed out first, so allocation order is deterministic.
 */
export class BlockPool {
  private readonly free: number[]

  constructor(readonly numBlocks: number) {
    this.free = Array.from({length: numBlocks}, (_, i) => numBlocks - 1 - i)
  }

  get freeBlocks(): number {
    return this.free.length
  }

  get usedBlocks(): number {
    return this.numBlocks - this.free.length
  }

  /** `count` block ids, or undefined (nothing taken) when fewer are free. */
  take(count: number): number[] | undefined {
    if (count > this.free.length) return undefined
    const out: number[] = []
    for (let i = 0; i < count; i++) out.push(this.free.pop()!)
    return out
  }

  release(ids: readonly number[]): void {
    for (const id of ids) {
      if (id < 0 || id >= this.numBlocks || this.free.includes(id)) throw new BugError('HPD_ENGINE_DOUBLE_FREE', `block ${id} freed twice or out of range`)
      this.free.push(id)
    }
    this.free.sort((a, b) => b - a)
  }
}
