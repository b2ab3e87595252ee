/**
 * What prefix caching does to a request (src/engine/README.md "Prefix caching"): allocate it with
 * the cached part of its prompt (shared attention blocks, the checkpointed state copied into its
 * own state pages), index its attention blocks as they become full, and save Mamba/GDN
 * checkpoints at logical-block boundaries under the policy. HybridEngine calls these; the index
 * itself is prefix-cache.ts, the memory block-pool.ts.
 */
import type {EngineLayout} from '../layout/types.js'
import {blockHashes, extendBlockHashes} from './block-hash.js'
import type {BlockPool} from './block-pool.js'
import type {PrefixCache, PrefixCacheEvent} from './prefix-cache.js'
import {newRequestState, type RequestState} from './request-state.js'

export interface PrefixRequestsOptions {
  readonly layout: EngineLayout
  readonly pool: BlockPool
  readonly cache: PrefixCache
  /** Policy: checkpoints on every k-th boundary go to the cache at once; others are the request's latest. */
  readonly checkpointEvery: number
  /** False on decode-only workers (they always pull the final state). */
  readonly saveCheckpoints: boolean
  /** Copies logical block `src` to `dst` in every tensor of every rank (HybridEngine.copyBlock). */
  readonly copyBlock: (src: number, dst: number) => void
  /** Zeroes a new request's state pages (HybridEngine.zeroStatePages). */
  readonly zeroStatePages: (state: RequestState) => void
  readonly emit: (event: PrefixCacheEvent) => void
}

export class PrefixRequests {
  constructor(private readonly o: PrefixRequestsOptions) {}

  /**
   * A new request holding the cached prefix of `tokens` (at most `maxHitTokens` of them): shared
   * attention blocks, and with `resume` the checkpointed state copied into its own state pages and
   * its length set past the hit (else zeroed pages and length 0: the state is pulled). `need`:
   * blocks per group for the whole prompt. Null, nothing taken, when the pool is short.
   */
  allocate(tokens: readonly number[], maxHitTokens: number, resume: boolean, need: readonly number[]): RequestState | null {
    const {cache, layout, pool} = this.o
    const B = layout.logicalBlockSize
    const hashes = blockHashes(tokens, B)
    const hit = cache.lookup(hashes.slice(0, Math.floor(Math.max(0, maxHitTokens) / B)), resume)
    const h = resume ? hit.usableBlocks : hit.attentionBlocks
    const shared = layout.groups.map((g) => (g.kind === 'attention' ? Array.from({length: h}, (_x, j) => cache.get(g.index, hashes[j])!) : []))
    const sources = resume && h > 0 ? layout.groups.map((g) => (g.kind === 'state' ? cache.get(g.index, hashes[h - 1])! : -1)) : []
    const pinned = [...shared.flat(), ...sources.filter((b) => b >= 0)]
    const fresh = need.reduce((a, n, gi) => a + n - shared[gi].length, 0)
    // Pinning takes evictable blocks out of the free count: what is left must cover the rest.
    const pinnedFree = new Set(pinned.filter((b) => pool.isEvictable(b))).size
    if (fresh > pool.freeBlocks - pinnedFree) return null
    cache.count(tokens.length, hit.attentionBlocks * B, resume ? h * B : 0)
    // The checkpoints are pinned too while fresh blocks are taken: taking may evict.
    for (const b of pinned) pool.share(b)
    const ids = pool.take(fresh)!
    let o = 0
    const blocks = need.map((n, gi) => {
      const own = ids.slice(o, o + n - shared[gi].length)
      o += own.length
      return [...shared[gi], ...own]
    })
    const state = newRequestState(blocks, [...tokens])
    state.hashes.push(...hashes)
    state.indexedBlocks = h
    state.cachedTokens = h * B
    this.o.zeroStatePages(state)
    if (sources.length > 0) {
      layout.groups.forEach((g, gi) => {
        if (g.kind === 'state') this.o.copyBlock(sources[gi], blocks[gi][0])
      })
      pool.release(
        sources.filter((b) => b >= 0),
        cache.isCached,
      )
    }
    if (resume) state.numTokens = h * B
    return state
  }

  /** Indexes the request's attention blocks that became full (K/V final) and emits BlockStored. */
  index(state: RequestState): void {
    const {cache, layout} = this.o
    if (!state.tokens) return
    const B = layout.logicalBlockSize
    const full = Math.floor(state.numTokens / B)
    if (full <= state.indexedBlocks) return
    extendBlockHashes(state.hashes, state.tokens, B, full)
    for (const g of layout.groups) {
      if (g.kind !== 'attention') continue
      let run: number[] = []
      const flush = () => {
        if (run.length === 0) return
        const first = run[0]
        this.o.emit({type: 'stored', group: g.index, kind: 'full_attention', hashes: run.map((j) => state.hashes[j]), parent: state.hashes[first - 1], tokenIds: state.tokens!.slice(first * B, (run.at(-1)! + 1) * B), blockSize: B})
        run = []
      }
      for (let j = state.indexedBlocks; j < full; j++) {
        if (cache.insert(g.index, state.hashes[j], state.blocks[g.index][j], false)) run.push(j)
        else flush()
      }
      flush()
    }
    state.indexedBlocks = full
  }

  /**
   * At a logical-block boundary, copies each state group's state into a checkpoint block indexed
   * under the chain hash of the tokens so far. Policy: on every `checkpointEvery`-th boundary the
   * checkpoint is left to the cache at once (evictable, LRU); any other boundary's is held by the
   * request as its latest (the previous latest is dropped) until it ends. Best effort: with no
   * block free, no checkpoint (hits fall back to an earlier one).
   */
  checkpoint(state: RequestState): void {
    const {cache, layout, pool} = this.o
    if (!this.o.saveCheckpoints || !state.tokens) return
    const B = layout.logicalBlockSize
    if (state.numTokens === 0 || state.numTokens % B !== 0) return
    const b = state.numTokens / B
    const hash = state.hashes[b - 1]
    const onGrid = b % this.o.checkpointEvery === 0
    for (const g of layout.groups) {
      if (g.kind !== 'state' || cache.get(g.index, hash) !== undefined) continue
      const [block] = pool.take(1) ?? []
      if (block === undefined) return
      this.o.copyBlock(state.blocks[g.index][0], block)
      cache.insert(g.index, hash, block, true)
      this.o.emit({type: 'stored', group: g.index, kind: 'mamba', hashes: [hash], parent: state.hashes[b - 2], tokenIds: state.tokens.slice((b - 1) * B, b * B), blockSize: B})
      if (onGrid) {
        pool.release([block], cache.isCached)
        continue
      }
      const previous = state.held.get(g.index)
      if (previous !== undefined) {
        cache.drop(previous)
        pool.release([previous])
      }
      state.held.set(g.index, block)
    }
  }
}
