import {hostname} from 'node:os'

import {encodeDigests, type LinkInfo, LinkOwner, RegionTable} from '../../kvlink/index.js'
import {type GroupBlockIds, planRequestReads, type RequestReadPlan} from '../../layout/index.js'
import {fillPattern, TransferAgent} from '../../transport/index.js'
import {errorToJson} from '../../child/index.js'
import {type BenchPlan, faultTarget, linkRequestId, planBench, previousRequest} from './cases.js'
import {byTensor, locatePrefillByte, prefillParts, PREFILL_ENGINE} from './geometry.js'
import {ShuffledPool} from './pool.js'
import type {FromWorker, WorkerReady} from './protocol.js'
import type {BenchTransferOptions} from './types.js'

/**
 * The prefill side: its engine's shared tensors allocated through its transfer agents exactly as
 * the layout sizes them (--path case: one agent per TP rank, as on separate GPUs; --path serve: one
 * agent for all ranks, as a serve worker), owned through the KV link (src/kvlink): fills a
 * request's blocks with the position-keyed pattern, holds them for the reader under grants (as
 * serving does), digests them for --verify digest, and frees them once every reader said "read
 * done", answering "freed".
 */
export class PrefillWorker {
  private readonly bench: BenchPlan
  private readonly agents: TransferAgent[] = []
  private regions!: RegionTable
  private owner!: LinkOwner
  private pool: ShuffledPool | undefined
  /** --path serve: the blocks each held request took from the pool. */
  private readonly taken = new Map<string, GroupBlockIds>()

  constructor(
    private readonly options: BenchTransferOptions,
    private readonly send: (m: FromWorker) => void,
  ) {
    this.bench = planBench(options)
  }

  init(): WorkerReady {
    const t0 = performance.now()
    const {plan, prefillTensorBytes, prefillBlocks} = this.bench
    const agentOptions = {transport: this.options.transport, tcpSegmentBytes: this.options.tcpSegmentBytes, defaultTimeoutMs: this.options.timeoutMs, ...(this.options.cluster ? {bindAddress: this.options.cluster.host} : {})}
    if (this.options.path === 'serve') {
      this.agents.push(TransferAgent.create({name: 'prefill', ...agentOptions}))
      this.regions = RegionTable.oneAgent(this.agents[0], plan.prefill.tp, plan.prefill.numTensors)
      this.pool = new ShuffledPool(plan.prefill, prefillBlocks, this.options.seed)
    } else {
      for (let rank = 0; rank < plan.prefill.tp; rank++) this.agents.push(TransferAgent.create({name: `prefill-r${rank}`, ...agentOptions}))
      this.regions = RegionTable.agentPerRank(this.agents, plan.prefill.numTensors)
    }
    for (let rank = 0; rank < plan.prefill.tp; rank++) {
      for (let t = 0; t < plan.prefill.numTensors; t++) this.regions.set(rank, t, this.regions.agentOf(rank).allocRegion(prefillTensorBytes))
      // As on the decode side: a serving pool's pages are not first-touched by the request being measured.
      if (this.pool) for (let t = 0; t < plan.prefill.numTensors; t++) new Uint8Array(this.regions.region(rank, t).buffer).fill(0)
    }
    this.owner = new LinkOwner({
      regions: this.regions,
      layout: plan.prefill,
      numLogicalBlocks: prefillBlocks,
      onReadDone: (id) => {
        const ids = this.taken.get(id)
        this.taken.delete(id)
        if (ids) this.pool!.release(ids)
      },
      onProblem: (error) => this.send({type: 'error', error: errorToJson(error)}),
    })
    return {link: this.owner.handshake(), registrationMs: performance.now() - t0, host: hostname()}
  }

  /** Connects back to the decode side's agents, for the "freed" answers. */
  connect(peer: LinkInfo): FromWorker {
    const t0 = performance.now()
    this.owner.connectBack(peer)
    return {type: 'connected', handshakeMs: performance.now() - t0, prepareMs: 0}
  }

  /** The request's blocks (the case's contiguous ids, or taken from the pool), filled, digested, held. */
  async fill(caseIndex: number, request: number, wantDigests: boolean): Promise<FromWorker> {
    const {plan} = this.bench
    const id = linkRequestId(caseIndex, request)
    const req = this.requestPlan(caseIndex, id)
    await Promise.all(
      Array.from({length: plan.prefill.tp}, async (_, rank) => {
        const parts = byTensor(prefillParts(plan, req, rank, request), plan.prefill.numTensors)
        await Promise.all(parts.map((ranges, t) => (ranges.length === 0 ? undefined : fillPattern(this.regions.region(rank, t).buffer, ranges))))
      }),
    )
    const grants = this.owner.hold(id, {blockIds: req.prefillBlockIds, transferredTokens: req.transferredTokens})
    // Digests describe what the prefill side wrote; faults strike after them, as in-flight or
    // late-writer damage would.
    const digests = wantDigests ? encodeDigests(await this.owner.digests(id, plan)) : undefined
    if (caseIndex === 0 && request === 0) await this.injectFault(req, request)
    return {type: 'filled', grants, ...(this.pool ? {blockIds: req.prefillBlockIds} : {}), ...(digests ? {digests} : {})}
  }

  close(): void {
    this.owner?.close()
    for (const a of this.agents) a.close()
  }

  /** The prefill side's view of the request: its block ids (the decode side's are its own business). */
  private requestPlan(caseIndex: number, id: string): RequestReadPlan {
    const req = this.bench.requests[caseIndex]
    if (!this.pool) return req
    const blockIds = this.pool.take(req.transferredTokens)
    this.taken.set(id, blockIds)
    return planRequestReads(this.bench.plan, {transferredTokens: req.transferredTokens, prefillBlockIds: blockIds, prefillNumLogicalBlocks: this.bench.prefillBlocks})
  }

  private async injectFault(req: RequestReadPlan, request: number): Promise<void> {
    const fault = this.options.fault
    if (fault !== 'corrupt' && fault !== 'stale') return
    const target = faultTarget(req)
    const pair = req.pairs[target.pairIndex]
    if (pair.reads.count === 0) return
    const i = target.readIndex
    const t = pair.reads.tensorIndex[i]
    const buffer = this.regions.region(pair.prefillRank, t).buffer
    const offset = pair.reads.remoteOffsetBytes[i]
    const length = pair.reads.lengthBytes[i]
    if (fault === 'corrupt') {
      new Uint8Array(buffer)[offset + Math.floor(length / 2)] ^= 0x5a
      return
    }
    const loc = locatePrefillByte(this.bench.plan, req, pair.prefillRank, pair.reads.partIndex[i], offset)
    const key = {engine: PREFILL_ENGINE, request: previousRequest(request), rank: pair.prefillRank, tensor: t, block: loc.block, part: loc.partIndex}
    await fillPattern(buffer, [{offsetBytes: offset, sizeBytes: length, key, partOffsetBytes: loc.partOffsetBytes}])
  }
}

