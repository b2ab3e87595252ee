import {BugError, HpdError, ModelConfigError, UsageError} from '../errors.js'
import {CPU_ENGINE_LAYOUT} from '../layout/cpu-engine.js'
import {planEngineLayout} from '../layout/engine-layout.js'
import type {AttentionBackend, EngineLayout} from '../layout/types.js'
import type {ModelSpec} from '../model/index.js'
import {BlockPool} from './block-pool.js'
import {allocateRankCaches, arrayBufferAllocator, kernelBlockTable, mambaPageGeometry, pagedKvGeometry, type CacheAllocator, type RankCache} from './cache.js'
import {dimsFromSpec, type ModelDims} from './model-dims.js'
import {PrefixCache, type PrefixCacheEvent, type PrefixCacheStats} from './prefix-cache.js'
import {PrefixRequests} from './prefix-requests.js'
import {newRequestState, type RequestState} from './request-state.js'
import {ModelRunner, type SliceWork} from './runner.js'
import {shardWeights} from './tp-shard.js'
import type {Weights} from './weights.js'

/** Logical block ids of a request, one list per KV-cache group (layout.groups order). */
export type GroupBlockIds = readonly (readonly number[])[]

export interface EngineOptions {
  readonly spec: ModelSpec
  readonly weights: Weights
  /** Tensor-parallel ranks, all run in this process. Default 1. */
  readonly tp?: number
  /** Logical blocks per shared tensor (the pool size). Default: enough for 8 × 2048 tokens. */
  readonly numBlocks?: number
  /** Requested logical block size (hybrids grow it to fit a Mamba page; see src/layout). */
  readonly blockSize?: number
  /** Attention kernel backend whose block rules the layout follows. Default `cpu` (hpd's own kernels). */
  readonly attentionBackend?: AttentionBackend
  /** Where cache memory comes from (the transfer agent in workers). Default: ArrayBuffers. */
  readonly allocator?: CacheAllocator
  /**
   * Longest slice one forward pass computes; longer prompts are prefilled in consecutive slices
   * (the cache carries K/V and Mamba state between them), which bounds the scratch memory
   * (~ tokens × in_proj width × 4 bytes per rank). Default 4096.
   */
  readonly maxPrefillTokens?: number
  /**
   * Prefix caching (vLLM V1's automatic prefix caching, "align" mode for hybrids): full logical
   * blocks are indexed by a hash chain of their tokens and shared by later requests with the same
   * prefix (reference counts, LRU eviction of free cached blocks). Default false here; workers
   * turn it on unless `--no-prefix-caching`.
   */
  readonly prefixCaching?: boolean
  /**
   * Hybrids with prefix caching: save the Mamba / GDN state as a checkpoint at every
   * `mambaCheckpointEvery`-th logical-block boundary a request passes (1 = every boundary), plus
   * the latest boundary of each request (held by it, replaced as it moves on, left to the cache
   * when it ends). Default 1. See src/engine/README.md "Prefix caching" for the memory cost.
   */
  readonly mambaCheckpointEvery?: number
  /**
   * Save checkpoints at all (default true). A decode-only worker turns them off: it pulls the final
   * state of every request, so its attention blocks are what it reuses.
   */
  readonly mambaCheckpoints?: boolean
}

/** One request's part of an engine step: tokens fed at its cached length. */
export interface StepEntry {
  readonly requestId: string
  /** At least one token: a prefill chunk, or the one token of a decode step. */
  readonly tokens: readonly number[]
  /** Return the logits of the entry's last token (the LM head runs only for these). */
  readonly wantLogits: boolean
}

/** What a step gives each entry: its last token's logits [vocab], undefined (computed, no logits wanted), or its own error. */
export type StepOutcome = Float32Array | undefined | HpdError

/** What a prefix lookup at allocation gave a request. */
export interface PrefixAllocation {
  readonly blockIds: GroupBlockIds
  /** Leading tokens whose cache the request already holds (a multiple of the logical block size). */
  readonly cachedTokens: number
}

/**
 * The layout an engine for `spec` uses: src/layout's `CPU_ENGINE_LAYOUT` (hpd's `cpu` attention
 * backend, DS conv layout, fp32 K/V, conv and SSM state: the CPU kernels compute and cache in fp32
 * whatever the checkpoint dtype). That constant is the single source of truth: `inspect-layout
 * --attention-backend cpu` and `bench transfer` resolve `auto` dtypes to the same fp32.
 */
export function engineLayout(spec: ModelSpec, options: {tp: number; blockSize?: number; attentionBackend?: AttentionBackend}): EngineLayout {
  return planEngineLayout({
    ...CPU_ENGINE_LAYOUT,
    model: spec,
    tp: options.tp,
    blockSize: options.blockSize,
    attentionBackend: options.attentionBackend ?? CPU_ENGINE_LAYOUT.attentionBackend,
  })
}

/** Logical blocks per KV-cache group for a request of `numTokens` tokens (state groups: one page). */
export function blocksNeeded(layout: EngineLayout, numTokens: number): number[] {
  return layout.groups.map((g) => (g.kind === 'state' ? 1 : Math.max(1, Math.ceil(numTokens / layout.logicalBlockSize))))
}

/**
 * The CPU engine: one model at one TP size, its cache in the layout engine's shared tensors, a
 * block pool shared by all KV-cache groups, and per-request block tables. Not thread-safe:
 * one caller (the worker's event loop) drives it; each call runs to completion.
 *
 * Entry points (src/engine/README.md): allocate → prefill (local, or N−1 tokens for a remote
 * decode) | adopt (a transferred cache) → decodeStep (batched) → free.
 */
export class HybridEngine {
  readonly dims: ModelDims
  readonly layout: EngineLayout
  readonly numBlocks: number
  readonly caches: readonly RankCache[]
  private readonly runner: ModelRunner
  private readonly pool: BlockPool
  private readonly requests = new Map<string, RequestState>()
  private readonly maxPrefillTokens: number
  private closed = false
  /** Requests of the step now running off the main thread (their pages are being written). */
  private readonly inStep = new Set<string>()
  /** free() calls for requests of the running step: done when it ends. */
  private readonly freeAfterStep = new Set<string>()
  private stepping = false
  /** The prefix cache's index (undefined: prefix caching off). */
  private readonly prefixCache: PrefixCache | undefined
  /** What prefix caching does to requests (allocate with a hit, index, checkpoint); with prefixCache. */
  private readonly prefix: PrefixRequests | undefined
  private readonly saveCheckpoints: boolean
  private readonly cacheListeners = new Set<(event: PrefixCacheEvent) => void>()

  constructor(options: EngineOptions) {
    const tp = options.tp ?? 1
    this.dims = dimsFromSpec(options.spec)
    if (options.spec.dtype !== 'fp32' && options.spec.dtype !== 'bf16' && options.spec.dtype !== 'fp16') {
      throw new ModelConfigError('HPD_ENGINE_UNSUPPORTED_DTYPE', `the CPU engine cannot run torch_dtype ${options.spec.dtype}`)
    }
    this.layout = engineLayout(options.spec, {tp, blockSize: options.blockSize, attentionBackend: options.attentionBackend})
    this.numBlocks = options.numBlocks ?? Math.max(16, Math.ceil((8 * 2048) / this.layout.logicalBlockSize) * this.layout.groups.length)
    if (!Number.isInteger(this.numBlocks) || this.numBlocks < 1) {
      throw new UsageError('HPD_ENGINE_BAD_NUM_BLOCKS', `numBlocks ${this.numBlocks} is not a positive integer`)
    }
    this.caches = allocateRankCaches(this.layout, this.numBlocks, options.allocator ?? arrayBufferAllocator)
    const ranks = Array.from({length: tp}, (_x, r) => shardWeights(this.dims, options.weights, tp, r))
    this.runner = new ModelRunner(this.dims, ranks, this.layout, this.caches, this.numBlocks)
    this.pool = new BlockPool(this.numBlocks)
    const checkpointEvery = options.mambaCheckpointEvery ?? 1
    if (!Number.isInteger(checkpointEvery) || checkpointEvery < 1) {
      throw new UsageError('HPD_ENGINE_BAD_CHECKPOINT_EVERY', `mambaCheckpointEvery ${checkpointEvery} is not a positive integer`)
    }
    const emit = (e: PrefixCacheEvent) => this.cacheListeners.forEach((l) => l(e))
    this.prefixCache = options.prefixCaching ? new PrefixCache(this.layout, this.pool, emit) : undefined
    this.saveCheckpoints = (options.mambaCheckpoints ?? true) && this.prefixCache?.hasStateGroups === true
    this.prefix = this.prefixCache
      ? new PrefixRequests({
          layout: this.layout,
          pool: this.pool,
          cache: this.prefixCache,
          checkpointEvery,
          saveCheckpoints: this.saveCheckpoints,
          copyBlock: (src, dst) => this.copyBlock(src, dst),
          zeroStatePages: (state) => this.zeroStatePages(state),
          emit,
        })
      : undefined
    this.maxPrefillTokens = options.maxPrefillTokens ?? 4096
    if (!Number.isInteger(this.maxPrefillTokens) || this.maxPrefillTokens < 1) {
      throw new UsageError('HPD_ENGINE_BAD_PREFILL_SLICE', `maxPrefillTokens ${this.maxPrefillTokens} is not a positive integer`)
    }
  }

  get tp(): number {
    return this.layout.tp
  }

  usage(): {usedBlocks: number; totalBlocks: number} {
    return {usedBlocks: this.pool.usedBlocks, totalBlocks: this.numBlocks}
  }

  /** Whether prefix caching is on. */
  get prefixCaching(): boolean {
    return this.prefixCache !== undefined
  }

  /** Prefix-cache counts and what it holds (undefined: prefix caching off). */
  prefixCacheStats(): PrefixCacheStats | undefined {
    return this.prefixCache?.stats()
  }

  /** Blocks stored in / removed from the prefix cache, as they happen (KV events). Returns the unsubscribe. */
  onCacheEvent(listener: (event: PrefixCacheEvent) => void): () => void {
    this.cacheListeners.add(listener)
    return () => this.cacheListeners.delete(listener)
  }

  /**
   * Where a prefill chunk starting at `position` must end at the latest: the next logical-block
   * boundary when Mamba checkpoints are saved (a state can only be saved where a step ends), else
   * undefined (any length). The step scheduler cuts chunks there ("align" mode).
   */
  chunkBoundary(position: number): number | undefined {
    if (!this.saveCheckpoints) return undefined
    const b = this.layout.logicalBlockSize
    return (Math.floor(position / b) + 1) * b
  }

  /** Tokens request `requestId` found cached when it was allocated. */
  cachedTokens(requestId: string): number {
    return this.request(requestId).cachedTokens
  }

  /** Blocks a request of `numTokens` tokens needs in each group. */
  blocksNeeded(numTokens: number): number[] {
    return blocksNeeded(this.layout, numTokens)
  }

  /**
   * Reserves blocks for `numTokens` tokens of a new request (state pages zeroed). Returns its
   * block ids per group, or null (nothing reserved) when the pool is short.
   */
  allocate(requestId: string, numTokens: number): GroupBlockIds | null {
    if (this.requests.has(requestId)) throw new UsageError('HPD_ENGINE_DUPLICATE_REQUEST', `request ${requestId} already holds blocks`)
    const need = this.blocksNeeded(numTokens)
    const total = need.reduce((a, b) => a + b, 0)
    const ids = this.pool.take(total)
    if (!ids) return null
    let o = 0
    const blocks = need.map((n) => {
      const part = ids.slice(o, o + n)
      o += n
      return part
    })
    const state = newRequestState(blocks, [])
    this.requests.set(requestId, state)
    this.zeroStatePages(state)
    return this.blockIds(requestId)
  }

  /**
   * Allocates a new request for prompt `tokens` with what the prefix cache holds of it: the
   * cached attention blocks are shared, the state pages start from the checkpoint at the end of
   * the hit (copied), and only the rest needs computing. Returns the tokens already cached (0
   * without prefix caching). `wantLogits`: the last token must be computed (its logits are
   * needed), so the hit stops before it. All or nothing: HPD_ENGINE_POOL_FULL takes nothing.
   */
  admitPrompt(requestId: string, tokens: readonly number[], options: {wantLogits: boolean}): number {
    if (this.requests.has(requestId)) throw new UsageError('HPD_ENGINE_DUPLICATE_REQUEST', `request ${requestId} already holds blocks`)
    if (!this.prefixCache) {
      if (this.allocate(requestId, tokens.length) === null) throw this.poolFull(requestId)
      return 0
    }
    const maxHit = options.wantLogits ? tokens.length - 1 : tokens.length
    const state = this.prefix!.allocate(tokens, maxHit, true, this.blocksNeeded(tokens.length))
    if (!state) throw this.poolFull(requestId)
    this.requests.set(requestId, state)
    return state.cachedTokens
  }

  /**
   * Decode side of P/D: allocates a request whose first `tokens.length` tokens will be pulled,
   * sharing the attention blocks this engine already caches for them (its own earlier turn). The
   * state is always pulled (the prefill side's final state), never taken from here, so only
   * attention blocks count. The pull skips the cached tokens (`planRequestReads`' cachedTokens).
   * Null (nothing taken) when the pool is short.
   */
  allocateForPull(requestId: string, tokens: readonly number[]): PrefixAllocation | null {
    if (this.requests.has(requestId)) throw new UsageError('HPD_ENGINE_DUPLICATE_REQUEST', `request ${requestId} already holds blocks`)
    if (!this.prefixCache) {
      const blockIds = this.allocate(requestId, tokens.length)
      if (blockIds) this.request(requestId).tokens = [...tokens]
      return blockIds && {blockIds, cachedTokens: 0}
    }
    const state = this.prefix!.allocate(tokens, tokens.length, false, this.blocksNeeded(tokens.length))
    if (!state) return null
    this.requests.set(requestId, state)
    return {blockIds: this.blockIds(requestId), cachedTokens: state.cachedTokens}
  }

  blockIds(requestId: string): GroupBlockIds {
    return this.request(requestId).blocks.map((b) => [...b])
  }

  numCachedTokens(requestId: string): number {
    return this.request(requestId).numTokens
  }

  /**
   * Computes `tokens` into the request's cache (allocating it when new), continuing at its cached
   * length. Returns the last token's logits, or undefined with `remoteDecode` (a prefill worker
   * computing N−1 prompt tokens for a decode worker skips the LM head).
   */
  prefill(requestId: string, tokens: readonly number[], options: {remoteDecode?: boolean} = {}): Float32Array | undefined {
    this.assertNotStepping('prefill')
    if (tokens.length === 0) throw new UsageError('HPD_ENGINE_EMPTY_PROMPT', `prefill of request ${requestId} with no tokens`)
    this.checkVocab(tokens)
    let begin = 0
    if (!this.requests.has(requestId)) begin = this.admitPrompt(requestId, tokens, {wantLogits: !options.remoteDecode})
    const state = this.request(requestId)
    this.ensureCapacity(requestId, state, state.numTokens + tokens.length - begin)
    let logits: Float32Array | undefined
    while (begin < tokens.length) {
      // Slices end at multiples of maxPrefillTokens from where they start, and at block
      // boundaries when checkpoints are saved (so a slicing depends on positions only).
      const end = Math.min(tokens.length, begin + this.maxPrefillTokens, this.sliceEnd(state.numTokens) - state.numTokens + begin)
      const part = tokens.slice(begin, end)
      const last = end === tokens.length
      ;[logits] = this.runner.forward([this.slice(state, Int32Array.from(part), last && !options.remoteDecode)])
      this.advance(state, part)
      begin = end
    }
    return logits
  }

  /** Declares that `numTokens` tokens of a request's cache were filled from elsewhere (a transfer). */
  adopt(requestId: string, numTokens: number): void {
    const state = this.request(requestId)
    const capacity = state.blocks.length === 0 ? 0 : this.capacityTokens(state)
    if (numTokens > capacity) throw new UsageError('HPD_ENGINE_ADOPT_TOO_LONG', `request ${requestId} holds ${capacity} tokens of blocks, cannot adopt ${numTokens}`)
    state.numTokens = numTokens
    // Pulled blocks are indexed only now, when their bytes are in (tokens known from allocateForPull).
    if (state.tokens && state.tokens.length < numTokens) state.tokens = undefined
    this.prefix?.index(state)
  }

  /**
   * One batched step: feeds one token per request (at its cached length) and returns each
   * request's next-token logits [vocab], in entry order. After `adopt(N−1)`, feeding the last
   * prompt token is the "recompute the last prompt token" step. Throws the first entry's error
   * (see decodeStepEach for a step that fails entries one by one).
   */
  decodeStep(entries: readonly {requestId: string; tokenId: number}[]): Float32Array[] {
    const out = this.decodeStepEach(entries)
    const failed = out.find((o): o is HpdError => o instanceof HpdError)
    if (failed) throw failed
    return out as Float32Array[]
  }

  /**
   * The batched step with per-request outcomes: an entry that cannot run (unknown request, token
   * outside the vocabulary, no block left to grow into) gets its typed error and is left out of
   * the step, untouched; the others run together. Throws only for what fails the step as a whole
   * (a duplicate request in the batch, a kernel failure).
   */
  decodeStepEach(entries: readonly {requestId: string; tokenId: number}[]): (Float32Array | HpdError)[] {
    this.assertNotStepping('decodeStep')
    const ids = new Set(entries.map((e) => e.requestId))
    if (ids.size !== entries.length) {
      throw new UsageError('HPD_ENGINE_DUPLICATE_IN_BATCH', 'a decode step feeds each request at most one token', {
        details: {requests: entries.map((e) => e.requestId)},
      })
    }
    const out: (Float32Array | HpdError)[] = []
    const runIndex: number[] = []
    const slices: SliceWork[] = []
    entries.forEach((e, i) => {
      try {
        this.checkVocab([e.tokenId])
        const state = this.request(e.requestId)
        this.ensureCapacity(e.requestId, state, state.numTokens + 1)
        slices.push(this.slice(state, Int32Array.of(e.tokenId), true))
        runIndex.push(i)
      } catch (error) {
        if (!(error instanceof HpdError)) throw error
        out[i] = error
      }
    })
    if (slices.length > 0) {
      const logits = this.runner.forward(slices)
      runIndex.forEach((entry, k) => {
        this.advance(this.request(entries[entry].requestId), [entries[entry].tokenId])
        out[entry] = logits[k]
      })
    }
    return out
  }

  /**
   * One engine step with its kernels off the JS main thread: every entry's tokens are fed at its
   * cached length in one forward pass (prefill chunks and decode tokens mixed, as vLLM's chunked
   * prefill), while the event loop stays free. Per-entry outcomes as decodeStepEach (an entry that
   * cannot run gets its own error and is left untouched). One step at a time: the caller awaits
   * each (src/engine/step-scheduler.ts serialises them).
   */
  async step(entries: readonly StepEntry[]): Promise<StepOutcome[]> {
    this.assertNotStepping('step')
    if (new Set(entries.map((e) => e.requestId)).size !== entries.length) {
      throw new UsageError('HPD_ENGINE_DUPLICATE_IN_BATCH', 'a step feeds each request at most one slice', {details: {requests: entries.map((e) => e.requestId)}})
    }
    const out: StepOutcome[] = new Array(entries.length).fill(undefined)
    const runIndex: number[] = []
    const slices: SliceWork[] = []
    entries.forEach((e, i) => {
      try {
        if (e.tokens.length === 0) throw new UsageError('HPD_ENGINE_EMPTY_PROMPT', `step entry of request ${e.requestId} has no tokens`)
        this.checkVocab(e.tokens)
        const state = this.request(e.requestId)
        this.ensureCapacity(e.requestId, state, state.numTokens + e.tokens.length)
        slices.push(this.slice(state, Int32Array.from(e.tokens), e.wantLogits))
        runIndex.push(i)
      } catch (error) {
        if (!(error instanceof HpdError)) throw error
        out[i] = error
      }
    })
    if (slices.length === 0) return out
    this.stepping = true
    for (const i of runIndex) this.inStep.add(entries[i].requestId)
    try {
      const logits = await this.runner.forwardAsync(slices)
      let k = 0
      for (const i of runIndex) {
        const state = this.requests.get(entries[i].requestId)
        if (state) this.advance(state, entries[i].tokens)
        if (entries[i].wantLogits) out[i] = logits[k++]
      }
      return out
    } finally {
      this.stepping = false
      this.inStep.clear()
      for (const id of this.freeAfterStep) this.free(id)
      this.freeAfterStep.clear()
    }
  }

  /**
   * Makes a request hold blocks for `numTokens` tokens: allocates a new request (state pages
   * zeroed) or grows an existing one. Throws HPD_ENGINE_POOL_FULL (nothing taken) when the pool
   * is short, so a long prompt is refused before its first chunk rather than midway.
   */
  reserve(requestId: string, numTokens: number): void {
    const state = this.requests.get(requestId)
    if (!state) {
      if (this.allocate(requestId, numTokens) === null) throw this.poolFull(requestId)
      return
    }
    const missing = this.blocksNeeded(numTokens).reduce((a, n, gi) => a + Math.max(0, n - state.blocks[gi].length), 0)
    if (missing > this.pool.freeBlocks) throw this.poolFull(requestId)
    this.ensureCapacity(requestId, state, numTokens)
  }

  /**
   * Copies request `requestId`'s cache into new requests `childIds` (n > 1 continuations of one
   * prompt): each child gets its own blocks, holding a copy of every attention block the parent
   * uses and of its Mamba state page, at the parent's length. Copied, not shared: the pool has no
   * reference counts, and a hybrid's state page is rewritten by every step anyway. All or nothing:
   * HPD_ENGINE_POOL_FULL leaves no child behind.
   */
  fork(requestId: string, childIds: readonly string[]): void {
    if (this.inStep.has(requestId)) throw new BugError('HPD_ENGINE_FORK_IN_STEP', `request ${requestId} is being computed; fork it after its step`)
    const parent = this.request(requestId)
    const made: string[] = []
    try {
      for (const child of childIds) {
        if (this.allocate(child, parent.numTokens) === null) throw this.poolFull(child)
        made.push(child)
        const state = this.request(child)
        this.layout.groups.forEach((_g, gi) => {
          parent.blocks[gi].forEach((src, j) => this.copyBlock(src, state.blocks[gi][j]))
        })
        state.numTokens = parent.numTokens
        // The copies hold the parent's tokens; the parent's blocks stay the indexed ones.
        state.tokens = parent.tokens && [...parent.tokens]
        state.hashes.push(...parent.hashes)
        state.indexedBlocks = Math.floor(parent.numTokens / this.layout.logicalBlockSize)
      }
    } catch (error) {
      for (const child of made) this.free(child)
      throw error
    }
  }

  free(requestId: string): void {
    if (this.inStep.has(requestId)) {
      this.freeAfterStep.add(requestId)
      return
    }
    const state = this.requests.get(requestId)
    if (!state) return
    this.requests.delete(requestId)
    // Released in eviction order (first out first): its held checkpoints, then the attention
    // blocks tail first (vLLM frees a request's blocks in reverse so its prefix outlives its tail).
    const isCached = this.prefixCache?.isCached
    this.pool.release([...state.held.values()], isCached)
    this.layout.groups.forEach((g, gi) => {
      if (g.kind === 'state') this.pool.release(state.blocks[gi], isCached)
    })
    this.layout.groups.forEach((g, gi) => {
      if (g.kind === 'attention') this.pool.release([...state.blocks[gi]].reverse(), isCached)
    })
  }

  /** Releases the cache memory (deregistration happens in the allocator). Idempotent. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const c of this.caches) for (const a of c.allocations) a.release()
  }

  private assertNotStepping(what: string): void {
    if (this.stepping) throw new BugError('HPD_ENGINE_BUSY', `${what} called while an engine step runs: steps are serialised by their caller`)
  }

  /** Logical block `src` → `dst` in every tensor of every rank (the page, or its K and V halves when kv-first). */
  private copyBlock(src: number, dst: number): void {
    if (this.layout.kvLayout === 'blocks-first') {
      const page = this.layout.pageBytes / 4
      for (const c of this.caches) for (const t of c.tensors) t.copyWithin(dst * page, src * page, (src + 1) * page)
      return
    }
    const r = this.layout.blocksPerLogical
    const half = this.layout.kvHalfBytes / 4
    this.caches.forEach((c, rank) => {
      const g = pagedKvGeometry(this.layout, rank, this.numBlocks)
      for (const t of c.tensors) {
        for (let i = 0; i < r; i++) {
          const from = (src * r + i) * g.blockStride
          const to = (dst * r + i) * g.blockStride
          t.copyWithin(to + g.kOffset, from + g.kOffset, from + g.kOffset + half)
          t.copyWithin(to + g.vOffset, from + g.vOffset, from + g.vOffset + half)
        }
      }
    })
  }

  /** Where a slice starting at `position` must end at the latest (a block boundary when checkpoints are saved). */
  private sliceEnd(position: number): number {
    return this.chunkBoundary(position) ?? Number.MAX_SAFE_INTEGER
  }

  /** The request computed `tokens` at its cached length: count them, then index what became final. */
  private advance(state: RequestState, tokens: readonly number[]): void {
    const at = state.numTokens
    if (state.tokens) {
      if (state.tokens.length === at) state.tokens.push(...tokens)
      else if (state.tokens.length < at + tokens.length || tokens.some((t, i) => state.tokens![at + i] !== t)) {
        // Fed something else than the prompt it was admitted with: only what was fed counts.
        state.tokens.length = at
        state.tokens.push(...tokens)
        state.hashes.length = Math.min(state.hashes.length, Math.floor(at / this.layout.logicalBlockSize))
      }
    }
    state.numTokens = at + tokens.length
    this.prefix?.index(state)
    this.prefix?.checkpoint(state)
  }

  private request(requestId: string): RequestState {
    const state = this.requests.get(requestId)
    if (!state) throw new UsageError('HPD_ENGINE_UNKNOWN_REQUEST', `request ${requestId} holds no blocks in this engine`)
    return state
  }

  private capacityTokens(state: RequestState): number {
    const attn = this.layout.groups.findIndex((g) => g.kind === 'attention')
    return attn < 0 ? Number.MAX_SAFE_INTEGER : state.blocks[attn].length * this.layout.logicalBlockSize
  }

  private ensureCapacity(requestId: string, state: RequestState, numTokens: number): void {
    const need = this.blocksNeeded(numTokens)
    this.layout.groups.forEach((_g, gi) => {
      const missing = need[gi] - state.blocks[gi].length
      if (missing <= 0) return
      const ids = this.pool.take(missing)
      if (!ids) throw this.poolFull(requestId)
      state.blocks[gi].push(...ids)
      state.tables.delete(gi)
    })
  }

  private slice(state: RequestState, tokens: Int32Array, wantLogits: boolean): SliceWork {
    const attentionTables = new Map<number, Int32Array>()
    const statePages = new Map<number, number>()
    this.layout.groups.forEach((g, gi) => {
      if (g.kind === 'state') {
        statePages.set(gi, state.blocks[gi][0])
        return
      }
      let table = state.tables.get(gi)
      if (!table) {
        table = kernelBlockTable(state.blocks[gi], this.layout.blocksPerLogical)
        state.tables.set(gi, table)
      }
      attentionTables.set(gi, table)
    })
    return {tokens, pos0: state.numTokens, attentionTables, statePages, wantLogits}
  }

  private zeroStatePages(state: RequestState): void {
    // State groups (Mamba2 or Gated DeltaNet): conv and SSM state start at zero.
    this.layout.groups.forEach((g, gi) => {
      if (g.kind !== 'state') return
      const page = state.blocks[gi][0]
      this.caches.forEach((c, rank) => {
        const geo = mambaPageGeometry(this.layout, rank)
        g.layers.forEach((layer, slot) => {
          if (layer === null) return
          c.tensors[slot].fill(0, page * geo.pageStride, page * geo.pageStride + geo.ssmOffset + geo.ssmElems)
        })
      })
    })
  }

  private checkVocab(tokens: readonly number[]): void {
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= this.dims.vocabSize) {
        throw new UsageError('HPD_ENGINE_BAD_TOKEN', `token id ${t} is outside the vocabulary [0, ${this.dims.vocabSize})`)
      }
    }
  }

  private poolFull(requestId: string): UsageError {
    return new UsageError('HPD_ENGINE_POOL_FULL', `no free cache blocks for request ${requestId} (${this.pool.usedBlocks}/${this.numBlocks} in use)`, {
      hint: 'Free finished requests or create the engine with more numBlocks.',
    })
  }
}
