import type {GroupBlockIds, LayoutPlan, RequestReadPlan} from '../layout/index.js'
import {planRequestReads} from '../layout/index.js'
import type {Peer, TransferAgent} from '../transport/index.js'
import {metadataBytes, type LinkInfo} from './handshake.js'
import {type ListStrategy, PairListCache, type PairRegions, type PairSelection, requestLists, type Shorten} from './lists.js'
import {freedMessage, readDoneMessage} from './messages.js'
import type {RegionTable} from './regions.js'

/**
 * Which descriptor lists serving uses. Measured with `hpd bench transfer --path serve` (see
 * src/kvlink/README.md "Measurements"): per-request lists from the plan's coalesced runs.
 */
export const DEFAULT_LIST_STRATEGY: ListStrategy = 'request'

export interface LinkReaderOptions {
  /** This (decode) engine's shared tensors. */
  readonly regions: RegionTable
  readonly numLogicalBlocks: number
  readonly lists?: ListStrategy
  /**
   * Per-request lists are made from the plan's coalesced runs (few descriptors; serving) or from
   * its reads (one per read; the bench's fault injection aims at one read).
   */
  readonly listSource?: 'runs' | 'reads'
}

/** One request, planned and prepared: what `read` posts. */
export interface PreparedRequest {
  readonly reads: RequestReadPlan
  readonly pairs: readonly PreparedPair[]
}

interface PreparedPair {
  readonly agent: TransferAgent
  readonly peer: Peer
  /** Index into LinkInfo.agents of the owner agent this pair reads from (its grant). */
  readonly remoteAgent: number
  readonly selection: PairSelection
}

export interface ReadResult {
  readonly bytes: number
  /** GETs after the agents merged adjacent descriptor pairs, all pairs. */
  readonly runs: number
  /** Batched reads issued: one per (decode rank, prefill rank) pair. */
  readonly reads: number
  /** Longest pair, post to completion on the agents' progress threads. */
  readonly transferMs: number
  /** Wall time on this event loop, first post to last settled. */
  readonly latencyMs: number
}

/** The reader (decode) side of the KV link: connects to owner engines from their handshakes. */
export class LinkReader {
  constructor(readonly o: LinkReaderOptions) {}

  get lists(): ListStrategy {
    return this.o.lists ?? DEFAULT_LIST_STRATEGY
  }

  /**
   * Connects every local agent to every owner agent some pair of `plan` reads from. `info` must be
   * validated against `plan` (parseLinkInfo) and `plan` must have this engine as its decode side.
   */
  connect(info: LinkInfo, plan: LayoutPlan): RemoteEngine {
    return new RemoteEngine(this, info, plan)
  }
}

/** A link to one owner engine (all its ranks), from one handshake. */
export class RemoteEngine {
  /** `${localAgent}/${remoteAgent}` → peer. */
  private readonly peers = new Map<string, Peer>()
  /** `${decodeRank}/${prefillRank}` → NIXL-style cached lists (lists: 'pair'). */
  private readonly caches = new Map<string, PairListCache>()
  private closed = false

  constructor(
    private readonly reader: LinkReader,
    readonly info: LinkInfo,
    readonly plan: LayoutPlan,
  ) {
    const regions = reader.o.regions
    try {
      for (const pair of plan.mapping.pairs) {
        const key = this.peerKey(pair.decodeRank, pair.prefillRank)
        if (this.peers.has(key)) continue
        this.peers.set(key, regions.agentOf(pair.decodeRank).connect(metadataBytes(info, info.ranks[pair.prefillRank].agent)))
      }
    } catch (error) {
      this.close()
      throw error
    }
  }

  /** How reads from this engine move bytes ('mixed' when pairs differ). */
  get readProtocol(): 'get' | 'served' | 'mixed' {
    const kinds = new Set([...this.peers.values()].map((p) => p.readProtocol))
    return kinds.size === 1 ? [...kinds][0] : 'mixed'
  }

  /** Lists prepared by NIXL-style caches so far (0 with per-request lists). */
  get cachedPrepares(): number {
    return [...this.caches.values()].reduce((s, c) => s + c.prepares, 0)
  }

  /** The layout engine's read plan of one request (the planner is the only place the bytes are decided). */
  planRequest(r: {readonly transferredTokens: number; readonly cachedTokens?: number; readonly localBlockIds?: GroupBlockIds; readonly remoteBlockIds?: GroupBlockIds}): RequestReadPlan {
    return planRequestReads(this.plan, {
      transferredTokens: r.transferredTokens,
      // The reader's prefix-cache hit: attention reads of tokens it holds are skipped.
      ...(r.cachedTokens ? {cachedTokens: r.cachedTokens} : {}),
      ...(r.remoteBlockIds ? {prefillBlockIds: r.remoteBlockIds, prefillNumLogicalBlocks: this.info.numLogicalBlocks} : {}),
      ...(r.localBlockIds ? {decodeBlockIds: r.localBlockIds, decodeNumLogicalBlocks: this.reader.o.numLogicalBlocks} : {}),
    })
  }

  /** Lists for every pair of `reads` (by the reader's strategy); release with `release`. */
  prepare(reads: RequestReadPlan, o: {readonly shorten?: Shorten & {readonly pairIndex: number}} = {}): PreparedRequest {
    const pairs: PreparedPair[] = []
    try {
      reads.pairs.forEach((pair, pairIndex) => {
        if (pair.reads.count === 0) return
        const regions = this.pairRegions(pair.decodeRank, pair.prefillRank)
        const shorten = o.shorten?.pairIndex === pairIndex ? o.shorten : undefined
        let selection: PairSelection
        if (this.reader.lists === 'pair' && !shorten) selection = this.cache(pair.decodeRank, pair.prefillRank, regions).select(pair.reads)
        else selection = requestLists(regions, (this.reader.o.listSource ?? 'runs') === 'runs' && !shorten ? pair.runs : pair.reads, shorten)
        pairs.push({agent: regions.agent, peer: regions.peer, remoteAgent: this.info.ranks[pair.prefillRank].agent, selection})
      })
    } catch (error) {
      for (const p of pairs) p.selection.done()
      throw error
    }
    return {reads, pairs}
  }

  release(prepared: PreparedRequest): void {
    for (const p of prepared.pairs) p.selection.done()
  }

  /**
   * One batched READ per pair, all pairs at once. `grants[a]`: the owner agent a's grant for this
   * request (served reads present it; GETs ignore it).
   */
  async read(prepared: PreparedRequest, o: {readonly grants: readonly string[]; readonly timeoutMs: number}): Promise<ReadResult> {
    const t0 = performance.now()
    const results = await Promise.all(
      prepared.pairs.map((p) => {
        const grant = o.grants[p.remoteAgent]
        const s = p.selection
        return p.agent.read(s.local, s.localIndices, s.remote, s.remoteIndices, {timeoutMs: o.timeoutMs, ...(grant ? {grant} : {})})
      }),
    )
    return {
      bytes: results.reduce((a, r) => a + r.bytes, 0),
      runs: results.reduce((a, r) => a + r.runs, 0),
      reads: results.length,
      transferMs: Math.max(0, ...results.map((r) => r.elapsedMs)),
      latencyMs: performance.now() - t0,
    }
  }

  /** Plan → prepare → read → release: serving's per-request path. */
  async pull(
    r: {readonly transferredTokens: number; readonly cachedTokens?: number; readonly localBlockIds: GroupBlockIds; readonly remoteBlockIds: GroupBlockIds},
    o: {readonly grants: readonly string[]; readonly timeoutMs: number},
  ): Promise<{readonly reads: RequestReadPlan; readonly result: ReadResult}> {
    const reads = this.planRequest(r)
    const prepared = this.prepare(reads)
    try {
      return {reads, result: await this.read(prepared, o)}
    } finally {
      this.release(prepared)
    }
  }

  /**
   * "Read done": each (local agent, owner agent) pair that read (of `reads`, or that the plan maps
   * when it is not at hand) notifies once, every message
   * carrying how many the owner gets in all. With `awaitFreed`, waits (bounded; at once on the
   * owner's death) for the owner's "freed" on each of those pairs (owners that connected back).
   */
  async readDone(requestId: string, reads: RequestReadPlan | undefined, o: {readonly timeoutMs: number; readonly awaitFreed?: boolean}): Promise<void> {
    const links = new Map<string, {agent: TransferAgent; peer: Peer}>()
    // Without the request's plan: every pair the layout maps (serve: one agent a side, so one link).
    const pairs = reads ? reads.pairs.filter((p) => p.reads.count > 0) : this.plan.mapping.pairs
    for (const pair of pairs) {
      const key = this.peerKey(pair.decodeRank, pair.prefillRank)
      links.set(key, {agent: this.reader.o.regions.agentOf(pair.decodeRank), peer: this.peers.get(key)!})
    }
    const message = readDoneMessage(requestId, links.size)
    const freed = freedMessage(requestId)
    await Promise.all(
      [...links.values()].map(async ({agent, peer}) => {
        const waiting = o.awaitFreed ? agent.nextNotification({from: peer, timeoutMs: o.timeoutMs, match: (n) => new TextDecoder().decode(n.payload) === freed}) : undefined
        waiting?.catch(() => undefined) // observed below; a failed notify must not leave it unhandled
        await agent.notify(peer, message, {timeoutMs: o.timeoutMs})
        await waiting
      }),
    )
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    for (const c of this.caches.values()) c.close()
    this.caches.clear()
    for (const [key, peer] of this.peers) {
      const agent = this.reader.o.regions.agents[Number(key.split('/')[0])]
      try {
        if (!agent.closed) agent.disconnect(peer)
      } catch {
        // already gone with its peer
      }
    }
    this.peers.clear()
  }

  /** Peers are per (local agent, owner agent): ranks sharing an agent share its endpoint. */
  private peerKey(decodeRank: number, prefillRank: number): string {
    return `${this.reader.o.regions.agentIndexOf(decodeRank)}/${this.info.ranks[prefillRank].agent}`
  }

  private pairRegions(decodeRank: number, prefillRank: number): PairRegions {
    const regions = this.reader.o.regions
    return {
      agent: regions.agentOf(decodeRank),
      peer: this.peers.get(this.peerKey(decodeRank, prefillRank))!,
      localRegion: (t) => regions.region(decodeRank, t).id,
      remoteRegion: (t) => this.info.ranks[prefillRank].regionIds[t],
    }
  }

  private cache(decodeRank: number, prefillRank: number, regions: PairRegions): PairListCache {
    const key = `${decodeRank}/${prefillRank}`
    let c = this.caches.get(key)
    if (!c) {
      c = new PairListCache(regions, this.plan.decode.numTensors)
      this.caches.set(key, c)
    }
    return c
  }
}
