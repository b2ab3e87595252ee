import {BugError} from '../errors.js'

/**
 * Logical block ids shared by every KV-cache group (vLLM's hybrid manager): a block id names one
 * page in every shared tensor, and whichever group holds it uses that page in its own slots.
 *
 * Blocks are reference counted (a prefix-cache hit shares a full attention block between
 * requests). A block whose count drops to 0 is free; if the prefix cache still indexes it, it is
 * *evictable*: free, but kept as it is in LRU order until a `take` needs it (then `onEvict` tells
 * the cache to forget it). `take` hands out never-cached free blocks first (lowest id first, so
 * allocation order is deterministic), then evicts the least recently freed cached ones: a cache
 * hit is worth more than a block nobody indexes.
 */
export class BlockPool {
  /** Free blocks the cache does not index, highest id first (pop = lowest). */
  private readonly free: number[]
  /** Free blocks the cache indexes, least recently freed first (Map keeps insertion order). */
  private readonly evictable = new Map<number, true>()
  private readonly refs: Int32Array
  /** Called for an evictable block just before it is handed out again (its cached content dies). */
  onEvict: (block: number) => void = () => undefined

  constructor(readonly numBlocks: number) {
    this.free = Array.from({length: numBlocks}, (_, i) => numBlocks - 1 - i)
    this.refs = new Int32Array(numBlocks)
  }

  /** Blocks a `take` can hand out: never-cached free ones plus evictable cached ones. */
  get freeBlocks(): number {
    return this.free.length + this.evictable.size
  }

  /** Blocks some request (or a held checkpoint) references: what KV usage reports. */
  get usedBlocks(): number {
    return this.numBlocks - this.freeBlocks
  }

  /** Free blocks kept for the prefix cache. */
  get evictableBlocks(): number {
    return this.evictable.size
  }

  refCount(id: number): number {
    return this.refs[id]
  }

  isEvictable(id: number): boolean {
    return this.evictable.has(id)
  }

  /** `count` block ids (reference count 1 each), or undefined (nothing taken) when fewer are free. */
  take(count: number): number[] | undefined {
    if (count > this.freeBlocks) return undefined
    const out: number[] = []
    for (let i = 0; i < count; i++) {
      let id = this.free.pop()
      if (id === undefined) {
        id = this.evictable.keys().next().value as number
        this.evictable.delete(id)
        this.onEvict(id)
      }
      this.refs[id] = 1
      out.push(id)
    }
    return out
  }

  /** One more reference to `id` (a cache hit): an evictable block is revived. */
  share(id: number): void {
    if (this.refs[id] === 0) {
      if (!this.evictable.delete(id)) throw new BugError('HPD_ENGINE_SHARE_FREE_BLOCK', `block ${id} is free and not cached: it cannot be shared`)
    }
    this.refs[id]++
  }

  /**
   * Drops one reference to each id; a block reaching 0 becomes evictable when `cached(id)` (the
   * prefix cache indexes it), else free. Ids are released in the order given, so the first of
   * them is evicted first.
   */
  release(ids: readonly number[], cached: (id: number) => boolean = () => false): void {
    let freed = false
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.numBlocks || this.refs[id] <= 0) throw new BugError('HPD_ENGINE_DOUBLE_FREE', `block ${id} freed twice or out of range`)
      if (--this.refs[id] > 0) continue
      if (cached(id)) this.evictable.set(id, true)
      else {
        this.free.push(id)
        freed = true
      }
    }
    if (freed) this.free.sort((a, b) => b - a)
  }

  /** An evictable block the cache stops indexing (its entry replaced or dropped): plain free. */
  forget(id: number): void {
    if (!this.evictable.delete(id)) return
    this.free.push(id)
    this.free.sort((a, b) => b - a)
  }
}
