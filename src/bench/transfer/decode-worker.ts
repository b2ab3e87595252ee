import {hostname} from 'node:os'

import {errorToJson} from '../../child/index.js'
import {VerificationError} from '../../errors.js'
import {compareDigests, decodeDigests, KVLINK_CODES, type LinkInfo, LinkReader, parseLinkInfo, type PreparedRequest, readerDigests, RegionTable, type RemoteEngine} from '../../kvlink/index.js'
import {CACHE_PARTS, type GroupBlockIds, type PairReadPlan, type RequestReadPlan} from '../../layout/index.js'
import {type Descriptor, type PreparedList, type Region, TransferAgent, verifyPattern} from '../../transport/index.js'
import {type BenchPlan, faultTarget, linkRequestId, planBench, previousRequest} from './cases.js'
import {byTensor, expectedRanges, locatePrefillByte, type PartRange} from './geometry.js'
import {ShuffledPool} from './pool.js'
import type {FromWorker, ReadReport, WorkerReady} from './protocol.js'
import type {BenchTransferOptions} from './types.js'

/** The memcpy reference of one pair: the same descriptor pairs, local list ← this rank's mirror. */
interface MirrorPair {
  readonly agent: TransferAgent
  readonly local: PreparedList
  readonly mirror: PreparedList
  readonly indices: Uint32Array
}

/**
 * The decode side: its engine's shared tensors (as the prefill side, one agent per rank or one for
 * all) plus, bench only, a private mirror of the prefill geometry per rank for the memcpy
 * reference. Reads each request through the KV link (src/kvlink) exactly as a decode worker does
 * (--path serve) or over lists prepared once per case (--path case), verifies, says "read done"
 * and waits for "freed", then copies the same descriptor pairs from the mirror.
 */
export class DecodeWorker {
  private readonly bench: BenchPlan
  private readonly agents: TransferAgent[] = []
  private regions!: RegionTable
  private readonly mirrors: Region[][] = []
  private reader!: LinkReader
  private remote: RemoteEngine | undefined
  private pool: ShuffledPool | undefined
  /** --path case: [case] → its lists, prepared once, and the memcpy reference's. */
  private prepared: {request: PreparedRequest; mirror: MirrorPair[]}[] = []
  private closing = false

  constructor(
    private readonly options: BenchTransferOptions,
    private readonly send: (m: FromWorker) => void,
  ) {
    this.bench = planBench(options)
  }

  init(): WorkerReady {
    const {plan, decodeTensorBytes, prefillTensorBytes, decodeBlocks} = this.bench
    const agentOptions = {transport: this.options.transport, tcpSegmentBytes: this.options.tcpSegmentBytes, readProtocol: this.options.readProtocol, defaultTimeoutMs: this.options.timeoutMs, ...(this.options.cluster ? {bindAddress: this.options.cluster.host} : {})}
    if (this.options.path === 'serve') {
      this.agents.push(TransferAgent.create({name: 'decode', ...agentOptions}))
      this.regions = RegionTable.oneAgent(this.agents[0], plan.decode.tp, plan.decode.numTensors)
      this.pool = new ShuffledPool(plan.decode, decodeBlocks, this.options.seed + 1)
    } else {
      for (let rank = 0; rank < plan.decode.tp; rank++) this.agents.push(TransferAgent.create({name: `decode-r${rank}`, ...agentOptions}))
      this.regions = RegionTable.agentPerRank(this.agents, plan.decode.numTensors)
    }
    let registrationMs = 0
    for (let rank = 0; rank < plan.decode.tp; rank++) {
      const agent = this.regions.agentOf(rank)
      const t0 = performance.now()
      for (let t = 0; t < plan.decode.numTensors; t++) this.regions.set(rank, t, agent.allocRegion(decodeTensorBytes))
      registrationMs += performance.now() - t0
      // A serving pool's pages were all written long ago; without this the first read into each
      // scattered block would pay its page faults inside the measured transfer.
      if (this.options.path === 'serve') for (let t = 0; t < plan.decode.numTensors; t++) new Uint8Array(this.regions.region(rank, t).buffer).fill(0)
      const mirrors = Array.from({length: plan.prefill.numTensors}, () => agent.allocRegion(prefillTensorBytes))
      // Written once so the reference copies materialized pages, as the reads do (never-written
      // shared memory can be served from one zero page, which would flatter memcpy).
      for (const m of mirrors) new Uint8Array(m.buffer).fill(0xa5)
      this.mirrors.push(mirrors)
    }
    for (const agent of this.agents) {
      // A dead prefill rank ends the run at once, whatever the worker is doing.
      agent.onPeerFailure((f) => {
        if (!this.closing) this.send({type: 'error', error: errorToJson(f.error)})
      })
    }
    this.reader = new LinkReader({regions: this.regions, numLogicalBlocks: decodeBlocks, lists: this.options.lists, listSource: this.options.path === 'case' ? 'reads' : 'runs'})
    return {link: this.regions.info(decodeBlocks), registrationMs, host: hostname()}
  }

  /** Connects to the prefill engine (the KV link handshake); --path case prepares every case's lists once. */
  connect(peer: LinkInfo): FromWorker {
    const {plan, requests} = this.bench
    const t0 = performance.now()
    this.remote = this.reader.connect(parseLinkInfo(peer, {tp: plan.prefill.tp, numTensors: plan.prefill.numTensors}), plan)
    const handshakeMs = performance.now() - t0
    const t1 = performance.now()
    if (this.options.path === 'case') {
      this.prepared = requests.map((req, caseIndex) => {
        const target = faultTarget(req)
        const read = req.pairs[target.pairIndex].reads
        // --inject-fault short: that read's descriptor stops before the end of its bytes.
        const shorten = this.options.fault === 'short' && caseIndex === 0 ? {pairIndex: target.pairIndex, index: target.readIndex, bytes: Math.min(64, Math.ceil(read.lengthBytes[target.readIndex] / 2))} : undefined
        return {request: this.remote!.prepare(req, shorten ? {shorten} : {}), mirror: this.mirrorLists(req, 'reads')}
      })
    }
    return {type: 'connected', handshakeMs, prepareMs: performance.now() - t1, readProtocol: this.remote.readProtocol}
  }

  /** `grants`: [owner agent] the prefill side's grant for this request, as serving passes it. */
  async read(caseIndex: number, request: number, grants: readonly string[], prefillBlockIds: GroupBlockIds | undefined, digests: unknown): Promise<FromWorker> {
    const remote = this.remote!
    const timeoutMs = this.options.timeoutMs
    const id = linkRequestId(caseIndex, request)
    const t0 = performance.now()
    let prepared: PreparedRequest
    let mirror: MirrorPair[]
    let localIds: GroupBlockIds | undefined
    if (this.pool) {
      // Serving's per-request path: local blocks from the pool, the plan over both sides' ids,
      // lists per request (or selected from per-pair lists), released after the read.
      localIds = this.pool.take(this.bench.requests[caseIndex].transferredTokens)
      const reads = remote.planRequest({transferredTokens: this.bench.requests[caseIndex].transferredTokens, localBlockIds: localIds, remoteBlockIds: prefillBlockIds})
      prepared = remote.prepare(reads)
      mirror = []
    } else {
      ;({request: prepared, mirror} = this.prepared[caseIndex])
    }
    const prepareMs = performance.now() - t0
    try {
      const result = await remote.read(prepared, {grants, timeoutMs})
      if (this.pool) remote.release(prepared)
      const latencyMs = performance.now() - t0
      const reads = prepared.reads

      let verifiedBytes = 0
      let verifyMs: number | undefined
      if (this.options.verify === 'full') verifiedBytes = await this.verifyFull(caseIndex, request, reads)
      else if (this.options.verify === 'digest') {
        const v0 = performance.now()
        verifiedBytes = await this.verifyDigests(id, caseIndex, request, reads, digests)
        verifyMs = performance.now() - v0
      }

      // "Request read, free its blocks": the KV link's read-done, then the owner's "freed" (bounded;
      // rejects at once if the owner dies).
      await remote.readDone(id, reads, {timeoutMs, awaitFreed: true})

      // The reference: the same descriptor pairs as memcpy, same threads, same run.
      if (this.pool) mirror = this.mirrorLists(reads, 'runs')
      const copies = await Promise.all(mirror.map((m) => m.agent.copy(m.local, m.indices, m.mirror, m.indices)))
      if (this.pool) this.releaseMirror(mirror)

      const report: ReadReport = {
        latencyMs,
        transferMs: result.transferMs,
        copyMs: Math.max(0, ...copies.map((r) => r.elapsedMs)),
        prepareMs,
        ...(verifyMs === undefined ? {} : {verifyMs}),
        bytes: result.bytes,
        runs: result.runs,
        plannedRuns: reads.coalescedRuns,
        verifiedBytes,
      }
      return {type: 'read-done', report, ...(this.options.lists === 'pair' && this.pool ? {pairListPrepares: remote.cachedPrepares} : {})}
    } finally {
      if (this.pool) remote.release(prepared) // idempotent
      if (localIds) this.pool!.release(localIds)
    }
  }

  close(): void {
    this.closing = true
    this.remote?.close()
    for (const a of this.agents) a.close()
  }

  /** Local and mirror lists over the request's reads (or runs): the memcpy reference's descriptor pairs. */
  private mirrorLists(req: RequestReadPlan, source: 'reads' | 'runs'): MirrorPair[] {
    return req.pairs
      .filter((p) => p.reads.count > 0)
      .map((pair) => {
        const list = source === 'reads' ? pair.reads : pair.runs
        const agent = this.regions.agentOf(pair.decodeRank)
        const local: Descriptor[] = []
        const mirror: Descriptor[] = []
        for (let i = 0; i < list.count; i++) {
          const t = list.tensorIndex[i]
          local.push({region: this.regions.region(pair.decodeRank, t).id, offsetBytes: list.localOffsetBytes[i], sizeBytes: list.lengthBytes[i]})
          mirror.push({region: this.mirrors[pair.decodeRank][t].id, offsetBytes: list.remoteOffsetBytes[i], sizeBytes: list.lengthBytes[i]})
        }
        return {agent, local: agent.prepareLocal(local), mirror: agent.prepareLocal(mirror), indices: Uint32Array.from({length: list.count}, (_, i) => i)}
      })
  }

  private releaseMirror(pairs: readonly MirrorPair[]): void {
    for (const m of pairs) {
      m.agent.releaseList(m.local)
      m.agent.releaseList(m.mirror)
    }
  }

  private async verifyFull(caseIndex: number, request: number, req: RequestReadPlan): Promise<number> {
    const {plan} = this.bench
    let bytes = 0
    for (const pair of req.pairs) {
      const expected = expectedRanges(plan, req, pair, request)
      const groups = byTensor(expected.map((r, index) => ({...r, index})), plan.decode.numTensors)
      for (let t = 0; t < groups.length; t++) {
        const ranges = groups[t]
        if (ranges.length === 0) continue
        const buffer = this.regions.region(pair.decodeRank, t).buffer
        const bad = await verifyPattern(buffer, ranges)
        if (bad) throw await this.mismatch(caseIndex, request, pair, ranges[bad.part].index, ranges[bad.part], bad.byteOffset, bad.expected, bad.actual)
        for (const r of ranges) bytes += r.sizeBytes
      }
    }
    return bytes
  }

  /** The KV link's check (as --verify-transfers runs it), its mismatch named in the bench's terms. */
  private async verifyDigests(id: string, caseIndex: number, request: number, req: RequestReadPlan, digests: unknown): Promise<number> {
    const {plan} = this.bench
    try {
      compareDigests(id, req, await readerDigests(this.regions, req), decodeDigests(digests ?? []))
    } catch (error) {
      if (!(error instanceof VerificationError) || error.code !== KVLINK_CODES.digestMismatch) throw error
      const d = error.details as {decodeRank: number; prefillRank: number; read: number; tensor: number; layer: number; part: string; lengthBytes: number}
      const pair = req.pairs.find((p) => p.decodeRank === d.decodeRank && p.prefillRank === d.prefillRank)!
      const loc = locatePrefillByte(plan, req, pair.prefillRank, pair.reads.partIndex[d.read], pair.reads.remoteOffsetBytes[d.read])
      const promptTokens = this.bench.promptTokens[caseIndex]
      throw new VerificationError(
        'HPD_BENCH_DIGEST_MISMATCH',
        `request ${request} (${promptTokens} tokens): decode rank ${d.decodeRank} ← prefill rank ${d.prefillRank}: tensor ${d.tensor} layer ${d.layer} block ${loc.block} part ${d.part}: digest of the ${d.lengthBytes} bytes read differs from the prefill side's`,
        {hint: 'Re-run with --verify full to see the first wrong byte.', details: {request, promptTokens, decodeRank: d.decodeRank, prefillRank: d.prefillRank, tensor: d.tensor, layer: d.layer, block: loc.block, part: d.part, read: d.read}},
      )
    }
    return req.pairs.reduce((s, p) => s + p.bytes, 0)
  }

  /** Names the first wrong byte and says what it looks like (stale data, a short read, corruption). */
  private async mismatch(caseIndex: number, request: number, pair: PairReadPlan, readIndex: number, range: PartRange, byteOffset: number, expected: number, actual: number): Promise<VerificationError> {
    const promptTokens = this.bench.promptTokens[caseIndex]
    const buffer = this.regions.region(pair.decodeRank, range.tensorIndex).buffer
    const stale = (await verifyPattern(buffer, [{...range, key: {...range.key, request: previousRequest(request)}}])) === null
    const lastByte = {...range, offsetBytes: range.offsetBytes + range.sizeBytes - 1, sizeBytes: 1, partOffsetBytes: range.partOffsetBytes + range.sizeBytes - 1}
    const tailWrong = (await verifyPattern(buffer, [lastByte])) !== null
    const diagnosis = stale
      ? 'the whole read holds the previous request\'s data (stale)'
      : tailWrong && byteOffset > 0
        ? `the read stopped short: bytes from ${byteOffset} of ${range.sizeBytes} were never written`
        : 'corrupted bytes'
    const part = CACHE_PARTS[range.key.part]
    const hex = (v: number): string => `0x${v.toString(16).padStart(2, '0')}`
    return new VerificationError(
      'HPD_BENCH_VERIFY_MISMATCH',
      `request ${request} (${promptTokens} tokens): decode rank ${pair.decodeRank} ← prefill rank ${pair.prefillRank}: tensor ${range.tensorIndex} layer ${pair.reads.layer[readIndex]} block ${range.key.block} part ${part}, byte ${range.partOffsetBytes + byteOffset} of the part is ${hex(actual)}, expected ${hex(expected)}: ${diagnosis}`,
      {
        hint: 'The bytes the decode side holds are not the bytes the plan says it read: check the transport (UCX), the read plan, and the owner freeing blocks early.',
        details: {
          request,
          promptTokens,
          decodeRank: pair.decodeRank,
          prefillRank: pair.prefillRank,
          tensor: range.tensorIndex,
          layer: pair.reads.layer[readIndex],
          block: range.key.block,
          part,
          partByteOffset: range.partOffsetBytes + byteOffset,
          diagnosis: stale ? 'stale' : tailWrong && byteOffset > 0 ? 'short' : 'corrupt',
        },
      },
    )
  }
}
