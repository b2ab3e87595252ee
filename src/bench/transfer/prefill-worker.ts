import {fillPattern, digestRanges, type Grant, type Peer, type Region, TransferAgent} from '../../transport/index.js'
import type {RequestReadPlan} from '../../layout/index.js'
import {type BenchPlan, faultTarget, freedMessage, previousRequest, planBench} from './cases.js'
import {byTensor, locatePrefillByte, prefillParts, PREFILL_ENGINE} from './geometry.js'
import {type AgentAnnouncement, type FromWorker, serializeError} from './protocol.js'
import type {BenchTransferOptions} from './types.js'

/**
 * The prefill side: one agent per TP rank (as on separate GPUs), each with its own shared tensors
 * allocated through the agent exactly as the layout sizes them. Fills a request's blocks with the
 * position-keyed pattern and grants each reading decode rank exactly the ranges it will read (as
 * serving grants a request's blocks); frees a request, revoking its grants, once every decode
 * rank that read it has notified.
 */
export class PrefillWorker {
  private readonly bench: BenchPlan
  private readonly agents: TransferAgent[] = []
  private readonly tensors: Region[][] = []
  private readonly received = new Map<string, number[]>()
  /** `${rank}/${case}/${request}` → that rank's grants for the request, revoked when it is freed. */
  private readonly grants = new Map<string, Grant[]>()
  /** [rank] → decode-rank peers by id (as connect() returned them). */
  private readonly peers: Map<number, Peer>[] = []

  constructor(private readonly options: BenchTransferOptions, private readonly send: (m: FromWorker) => void) {
    this.bench = planBench(options)
  }

  init(): FromWorker {
    const t0 = performance.now()
    const {plan, prefillTensorBytes} = this.bench
    for (let rank = 0; rank < plan.prefill.tp; rank++) {
      const agent = TransferAgent.create({name: `prefill-r${rank}`, transport: this.options.transport, tcpSegmentBytes: this.options.tcpSegmentBytes, defaultTimeoutMs: this.options.timeoutMs})
      this.agents.push(agent)
      this.tensors.push(Array.from({length: plan.prefill.numTensors}, () => agent.allocRegion(prefillTensorBytes)))
    }
    const registrationMs = performance.now() - t0
    const agents: AgentAnnouncement[] = this.agents.map((a, rank) => ({
      rank,
      metadata: Buffer.from(a.metadata()).toString('base64'),
      regionIds: this.tensors[rank].map((r) => r.id),
    }))
    return {type: 'ready', agents, registrationMs}
  }

  /** Connects back to every decode rank (for the "freed" notifications) and listens. */
  connect(peers: readonly AgentAnnouncement[]): FromWorker {
    const t0 = performance.now()
    this.agents.forEach((agent, rank) => {
      const byId = new Map<number, Peer>()
      for (const p of peers) {
        const peer = agent.connect(Buffer.from(p.metadata, 'base64'))
        byId.set(peer.id, peer)
      }
      this.peers[rank] = byId
      agent.onNotification((n) => void this.onNotification(rank, n.peer, n.payload))
    })
    return {type: 'connected', handshakeMs: performance.now() - t0, prepareMs: 0}
  }

  private async onNotification(rank: number, peerId: number | undefined, payload: Uint8Array): Promise<void> {
    const message = JSON.parse(new TextDecoder().decode(payload)) as {read?: [number, number]}
    if (!message.read || peerId === undefined) return
    const [caseIndex, request] = message.read
    const key = `${rank}/${caseIndex}/${request}`
    const senders = this.received.get(key) ?? []
    senders.push(peerId)
    this.received.set(key, senders)
    const expected = this.bench.requests[caseIndex].notificationsPerPrefillRank[rank]
    if (senders.length < expected) return
    this.received.delete(key)
    // Every reader is done: the request's blocks may be reused, and nobody may read them any more.
    for (const g of this.grants.get(key) ?? []) this.agents[rank].revokeGrant(g)
    this.grants.delete(key)
    // Tell each reader.
    try {
      await Promise.all(senders.map((id) => this.agents[rank].notify(this.peers[rank].get(id)!, freedMessage(caseIndex, request))))
    } catch (error) {
      this.send({type: 'error', error: serializeError(error)})
    }
  }

  async fill(caseIndex: number, request: number, wantDigests: boolean): Promise<FromWorker> {
    const {plan, requests} = this.bench
    const req = requests[caseIndex]
    const injectNow = caseIndex === 0 && request === 0
    const target = faultTarget(req)
    await Promise.all(
      this.tensors.map(async (regions, rank) => {
        const parts = byTensor(prefillParts(plan, req, rank, request), plan.prefill.numTensors)
        await Promise.all(parts.map((ranges, t) => fillPattern(regions[t].buffer, ranges)))
      }),
    )
    // Digests describe what the prefill side wrote; faults strike after them, as in-flight or
    // late-writer damage would.
    const digests = !wantDigests ? undefined : await Promise.all(
      req.pairs.map(async (p) => {
        const out = new BigUint64Array(p.reads.count)
        const ranges = Array.from({length: p.reads.count}, (_, i) => ({tensorIndex: p.reads.tensorIndex[i], index: i, offsetBytes: p.reads.remoteOffsetBytes[i], sizeBytes: p.reads.lengthBytes[i]}))
        const groups = byTensor(ranges, plan.prefill.numTensors)
        await Promise.all(
          groups.map(async (g, t) => {
            if (g.length === 0) return
            const d = await digestRanges(this.tensors[p.prefillRank][t].buffer, g)
            g.forEach((r, j) => (out[r.index] = d[j]))
          }),
        )
        return Buffer.from(out.buffer).toString('base64')
      }),
    )
    const grants = req.pairs.map((p) => this.grantReads(caseIndex, request, p))
    const pair = req.pairs[target.pairIndex]
    if (injectNow && (this.options.fault === 'corrupt' || this.options.fault === 'stale') && pair.reads.count > 0) {
      const i = target.readIndex
      const t = pair.reads.tensorIndex[i]
      const buffer = this.tensors[pair.prefillRank][t].buffer
      const offset = pair.reads.remoteOffsetBytes[i]
      const length = pair.reads.lengthBytes[i]
      if (this.options.fault === 'corrupt') {
        new Uint8Array(buffer)[offset + Math.floor(length / 2)] ^= 0x5a
      } else {
        const loc = locatePrefillByte(plan, req, pair.prefillRank, pair.reads.partIndex[i], offset)
        const key = {engine: PREFILL_ENGINE, request: previousRequest(request), rank: pair.prefillRank, tensor: t, block: loc.block, part: loc.partIndex}
        await fillPattern(buffer, [{offsetBytes: offset, sizeBytes: length, key, partOffsetBytes: loc.partOffsetBytes}])
      }
    }
    return digests ? {type: 'filled', digests, grants} : {type: 'filled', grants}
  }

  /** The prefill rank's grant over exactly the ranges this pair's decode rank will read. */
  private grantReads(caseIndex: number, request: number, p: RequestReadPlan['pairs'][number]): string | null {
    if (p.reads.count === 0) return null
    const ranges = Array.from({length: p.reads.count}, (_, i) => ({
      region: this.tensors[p.prefillRank][p.reads.tensorIndex[i]],
      offsetBytes: p.reads.remoteOffsetBytes[i],
      sizeBytes: p.reads.lengthBytes[i],
    }))
    const grant = this.agents[p.prefillRank].grant(ranges)
    const key = `${p.prefillRank}/${caseIndex}/${request}`
    this.grants.set(key, [...(this.grants.get(key) ?? []), grant])
    return grant.id
  }

  close(): void {
    for (const a of this.agents) a.close()
  }
}
