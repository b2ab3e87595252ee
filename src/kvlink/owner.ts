import {type EngineLayout, type GroupBlockIds, type LayoutPlan, logicalBlockRanges, planRequestReads} from '../layout/index.js'
import type {Grant, Notification, Peer} from '../transport/index.js'
import {unknownRequest} from './errors.js'
import {metadataBytes, type LinkInfo} from './handshake.js'
import {freedMessage, parseLinkMessage} from './messages.js'
import type {RegionTable} from './regions.js'
import {ownerDigests, type PairDigests} from './verify.js'

/** What the owner keeps of a request while its blocks are held for readers. */
interface HeldRequest {
  readonly blockIds: GroupBlockIds
  readonly transferredTokens: number
  /** [agent index] that agent's grant over the request's blocks. */
  readonly grants: readonly Grant[]
  /** (owner agent, sender peer) of each read-done notification so far; the key dedups repeats. */
  readonly reported: Map<string, {agent: number; peer: number | undefined}>
}

export interface LinkOwnerOptions {
  readonly regions: RegionTable
  /** This engine's layout: where a logical block's bytes lie in each shared tensor. */
  readonly layout: EngineLayout
  readonly numLogicalBlocks: number
  /** Every reader reported the request read: free its blocks (the owner revokes its grants first). */
  readonly onReadDone: (requestId: string) => void
  /** A link message that failed to parse, or a "freed" reply that could not be sent. */
  readonly onProblem?: (error: Error) => void
}

/**
 * The owner (prefill) side of the KV link: serves the handshake, grants each held request's blocks
 * to its readers (served reads check every piece against the grant; a one-sided GET cannot be
 * checked, see src/transport/README.md), counts the readers' "read done" notifications and frees
 * the request once all arrived, and digests a request's planned reads for a verifying reader.
 *
 * Ownership: the caller owns the blocks; `hold` ↔ `end` brackets the grants (end revokes them,
 * and must come before the blocks are reused).
 */
export class LinkOwner {
  private readonly held = new Map<string, HeldRequest>()
  /** [agent index] reader peers connected back (connectBack), by peer id: "freed" goes to them. */
  private readonly readers: Map<number, Peer>[]
  private readonly unsubscribe: (() => void)[]

  constructor(private readonly o: LinkOwnerOptions) {
    this.readers = o.regions.agents.map(() => new Map())
    this.unsubscribe = o.regions.agents.map((agent, i) => agent.onNotification((n) => this.onNotification(i, n)))
  }

  handshake(): LinkInfo {
    return this.o.regions.info(this.o.numLogicalBlocks)
  }

  /**
   * Holds a request's blocks for readers: one grant per agent over every page of the request's
   * blocks in every region of that agent (all a reader of any TP may have served). Returns the
   * grant ids by agent index, to hand to the request's reader over the authenticated control plane.
   */
  hold(requestId: string, request: {readonly blockIds: GroupBlockIds; readonly transferredTokens: number}): readonly string[] {
    this.end(requestId)
    const blocks = [...new Set(request.blockIds.flat())]
    const grants = this.o.regions.agents.map((agent, a) => {
      const ranges = this.o.regions.ranksOf(a).flatMap((rank) =>
        Array.from({length: this.o.regions.numTensors}, (_, t) => this.o.regions.region(rank, t)).flatMap((region) =>
          blocks.flatMap((b) => logicalBlockRanges(this.o.layout, b, this.o.numLogicalBlocks).map((r) => ({region, ...r}))),
        ),
      )
      return agent.grant(ranges)
    })
    this.held.set(requestId, {blockIds: request.blockIds, transferredTokens: request.transferredTokens, grants, reported: new Map()})
    return grants.map((g) => g.id)
  }

  holds(requestId: string): boolean {
    return this.held.has(requestId)
  }

  /** Revokes the request's grants and forgets it (idempotent). Call before its blocks are reused. */
  end(requestId: string): boolean {
    const h = this.held.get(requestId)
    if (!h) return false
    this.held.delete(requestId)
    h.grants.forEach((g, a) => {
      const agent = this.o.regions.agents[a]
      if (!agent.closed) agent.revokeGrant(g)
    })
    return true
  }

  /**
   * The owner's digests of a held request's planned reads, for a reader whose plan is `plan`
   * (this engine as its prefill side): the same reads the reader's plan lists, digested here.
   */
  async digests(requestId: string, plan: LayoutPlan, cachedTokens = 0): Promise<PairDigests[]> {
    const h = this.held.get(requestId)
    if (!h) throw unknownRequest(requestId)
    // `cachedTokens`: the reader's prefix-cache hit (it skipped those attention reads).
    const reads = planRequestReads(plan, {transferredTokens: h.transferredTokens, cachedTokens, prefillBlockIds: h.blockIds, prefillNumLogicalBlocks: this.o.numLogicalBlocks})
    const d = await ownerDigests(this.o.regions, reads)
    // The request may have ended while the kernels ran: its blocks may hold another's bytes now.
    if (this.held.get(requestId) !== h) throw unknownRequest(requestId)
    return d
  }

  /** Connects each agent to a reader engine's agents, so they get "freed" replies (the bench waits for them). */
  connectBack(info: LinkInfo): void {
    this.o.regions.agents.forEach((agent, a) => {
      for (let i = 0; i < info.agents.length; i++) {
        const peer = agent.connect(metadataBytes(info, i))
        this.readers[a].set(peer.id, peer)
      }
    })
  }

  close(): void {
    for (const off of this.unsubscribe) off()
    for (const id of [...this.held.keys()]) this.end(id)
  }

  private onNotification(agent: number, n: Notification): void {
    let message
    try {
      message = parseLinkMessage(new TextDecoder().decode(n.payload))
    } catch (error) {
      this.o.onProblem?.(error as Error)
      return
    }
    if (message?.kind !== 'read-done') return
    const h = this.held.get(message.requestId)
    if (!h) return // already freed (a repeat, or its lease ended): nothing to do
    h.reported.set(`${agent}/${n.peer ?? n.peerName}`, {agent, peer: n.peer})
    if (h.reported.size < message.expected) return
    this.end(message.requestId)
    this.o.onReadDone(message.requestId)
    for (const {agent: a, peer} of h.reported.values()) {
      const reader = peer === undefined ? undefined : this.readers[a].get(peer)
      if (!reader) continue
      this.o.regions.agents[a].notify(reader, freedMessage(message.requestId)).catch((error: Error) => this.o.onProblem?.(error))
    }
  }
}
