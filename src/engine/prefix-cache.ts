/**
 * The prefix cache's index: which block holds (KV-cache group, block hash), for attention groups
 * (the K/V of one full logical block) and for state groups (a Mamba / GDN *checkpoint*: the conv
 * and SSM state right after a full block, "align" mode). It owns no memory: blocks come from the
 * BlockPool, and an indexed block whose reference count drops to 0 stays evictable until the pool
 * needs it (then `onEvict` → the entry is dropped and a BlockRemoved event says so).
 *
 * Hits (`lookup`): the attention chain is the leading blocks present in every attention group; a
 * hybrid can resume only where every state group has a checkpoint, so the usable hit is the
 * longest prefix of the chain that ends at one (0 always works: the zero state). A request whose
 * checkpoint was evicted while its attention blocks survived therefore falls back to an earlier
 * checkpoint, never to a state that does not belong to its tokens.
 */
import type {EngineLayout} from '../layout/types.js'
import type {BlockHash} from './block-hash.js'
import {groupHashKey} from './block-hash.js'
import type {BlockPool} from './block-pool.js'

/** vLLM's KVCacheSpecKind names, as KV events carry them. */
export type CacheSpecKind = 'full_attention' | 'mamba'

export type PrefixCacheEvent =
  | {
      readonly type: 'stored'
      readonly group: number
      readonly kind: CacheSpecKind
      readonly hashes: readonly BlockHash[]
      readonly parent: BlockHash | undefined
      /** The token ids of the blocks stored, block after block. */
      readonly tokenIds: readonly number[]
      readonly blockSize: number
    }
  | {readonly type: 'removed'; readonly group: number; readonly hashes: readonly BlockHash[]}
  | {readonly type: 'cleared'}

/** Counts since the engine started (tokens), and what the cache holds now. */
export interface PrefixCacheStats {
  /** Prompt tokens looked up, per group kind (every lookup queries both kinds of a hybrid). */
  readonly queriedTokens: {readonly attention: number; readonly state: number}
  /**
   * Tokens found: attention = the attention chain the lookup found (what attention groups could
   * reuse); state = where the request actually resumed (a checkpoint's position; 0 on the decode
   * side of P/D, which always pulls the final state).
   */
  readonly hitTokens: {readonly attention: number; readonly state: number}
  readonly cachedAttentionBlocks: number
  readonly checkpointBlocks: number
  /** Cached blocks evicted so far (handed out again under memory pressure). */
  readonly evictedBlocks: number
  /** Memory the indexed checkpoints take: blocks × tensors × page bytes × TP ranks. */
  readonly checkpointBytes: number
}

interface Entry {
  readonly key: string
  readonly group: number
  readonly hash: BlockHash
  readonly checkpoint: boolean
}

export interface PrefixHit {
  /** Leading full blocks found in every attention group. */
  readonly attentionBlocks: number
  /** Leading full blocks the request can resume after (≤ attentionBlocks; = it without state groups). */
  readonly usableBlocks: number
}

export class PrefixCache {
  private readonly byKey = new Map<string, number>()
  private readonly byBlock = new Map<number, Entry>()
  private readonly attentionGroups: number[]
  private readonly stateGroups: number[]
  private checkpoints = 0
  private evicted = 0
  private readonly queried = {attention: 0, state: 0}
  private readonly hits = {attention: 0, state: 0}

  constructor(
    private readonly layout: EngineLayout,
    private readonly pool: BlockPool,
    private readonly emit: (event: PrefixCacheEvent) => void,
  ) {
    this.attentionGroups = layout.groups.filter((g) => g.kind === 'attention').map((g) => g.index)
    this.stateGroups = layout.groups.filter((g) => g.kind === 'state').map((g) => g.index)
    pool.onEvict = (id) => {
      this.evicted++
      const e = this.byBlock.get(id)
      this.drop(id)
      // A checkpoint is usable only with every state group's block at that position: one evicted
      // makes the others dead weight, so they stop being indexed too (free at once if unused).
      if (e?.checkpoint) {
        for (const g of this.stateGroups) {
          const sibling = g === e.group ? undefined : this.byKey.get(groupHashKey(g, e.hash))
          if (sibling !== undefined) this.drop(sibling)
        }
      }
    }
  }

  get hasStateGroups(): boolean {
    return this.stateGroups.length > 0
  }

  /** Bytes one block takes in every tensor of every rank (what a checkpoint of one state group costs). */
  get blockBytes(): number {
    return this.layout.numTensors * this.layout.pageBytes * this.layout.tp
  }

  isCached = (id: number): boolean => this.byBlock.has(id)

  get(group: number, hash: BlockHash): number | undefined {
    return this.byKey.get(groupHashKey(group, hash))
  }

  /**
   * The longest cached prefix of a chain (`hashes`, one per full block). `requireState`: a hybrid
   * resuming its computation needs a checkpoint at the end of the hit; a decode worker that pulls
   * the final state does not.
   */
  lookup(hashes: readonly BlockHash[], requireState: boolean): PrefixHit {
    let attentionBlocks = 0
    while (attentionBlocks < hashes.length && this.attentionGroups.every((g) => this.byKey.has(groupHashKey(g, hashes[attentionBlocks])))) attentionBlocks++
    if (this.attentionGroups.length === 0) attentionBlocks = hashes.length
    let usableBlocks = attentionBlocks
    if (requireState && this.stateGroups.length > 0) {
      while (usableBlocks > 0 && !this.stateGroups.every((g) => this.byKey.has(groupHashKey(g, hashes[usableBlocks - 1])))) usableBlocks--
    }
    return {attentionBlocks, usableBlocks}
  }

  /** Per-group hit accounting for one lookup of `queriedTokens` prompt tokens. */
  count(queriedTokens: number, attentionHitTokens: number, stateHitTokens: number): void {
    if (this.attentionGroups.length > 0) {
      this.queried.attention += queriedTokens
      this.hits.attention += attentionHitTokens
    }
    if (this.stateGroups.length > 0) {
      this.queried.state += queriedTokens
      this.hits.state += stateHitTokens
    }
  }

  /**
   * Indexes `block` of `group` under `hash` (its content is final: a full attention block, or a
   * state checkpoint). Returns false, indexing nothing, when the key is already held by another
   * block (two requests computed the same prefix at once: the first one's stays the cached one).
   */
  insert(group: number, hash: BlockHash, block: number, checkpoint: boolean): boolean {
    const key = groupHashKey(group, hash)
    if (this.byKey.has(key) || this.byBlock.has(block)) return false
    this.byKey.set(key, block)
    this.byBlock.set(block, {key, group, hash, checkpoint})
    if (checkpoint) this.checkpoints++
    return true
  }

  /** Stops indexing `block` (evicted, or a checkpoint the policy drops); emits BlockRemoved. */
  drop(block: number): void {
    const e = this.byBlock.get(block)
    if (!e) return
    this.byBlock.delete(block)
    this.byKey.delete(e.key)
    if (e.checkpoint) this.checkpoints--
    this.pool.forget(block)
    this.emit({type: 'removed', group: e.group, hashes: [e.hash]})
  }

  stats(): PrefixCacheStats {
    return {
      queriedTokens: {...this.queried},
      hitTokens: {...this.hits},
      cachedAttentionBlocks: this.byBlock.size - this.checkpoints,
      checkpointBlocks: this.checkpoints,
      evictedBlocks: this.evicted,
      checkpointBytes: this.checkpoints * this.blockBytes,
    }
  }
}
