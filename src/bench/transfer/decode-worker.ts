import {VerificationError} from '../../errors.js'
import {CACHE_PARTS, type PairReadPlan, type RequestReadPlan} from '../../layout/index.js'
import {digestRanges, type Peer, type PreparedList, type Region, TransferAgent, verifyPattern} from '../../transport/index.js'
import {type BenchPlan, faultTarget, freedMessage, planBench, previousRequest, readDoneMessage} from './cases.js'
import {byTensor, expectedRanges, locatePrefillByte, type PartRange} from './geometry.js'
import {type AgentAnnouncement, type FromWorker, type ReadReport, serializeError} from './protocol.js'
import type {BenchTransferOptions} from './types.js'

/** One rank pair's prepared lists for one case: selected by index on every request. */
interface PreparedPair {
  readonly pair: PairReadPlan
  readonly local: PreparedList
  readonly remote: PreparedList
  /** Same descriptors over this rank's private copy of the prefill geometry: the memcpy reference. */
  readonly mirror: PreparedList
  readonly indices: Uint32Array
}

/**
 * The decode side: one agent per TP rank with its own shared tensors, plus (bench only) a private
 * mirror of the prefill tensors for the memcpy reference. Executes the layout's read plan for
 * every (decode rank, prefill rank) pair, notifies, waits for "freed", and verifies.
 */
export class DecodeWorker {
  private readonly bench: BenchPlan
  private readonly agents: TransferAgent[] = []
  private readonly tensors: Region[][] = []
  private readonly mirrors: Region[][] = []
  /** [decode rank][prefill rank] */
  private readonly peers: (Peer | undefined)[][] = []
  /** [case] → prepared pairs in plan order. */
  private prepared: PreparedPair[][] = []
  private closing = false

  constructor(private readonly options: BenchTransferOptions, private readonly send: (m: FromWorker) => void) {
    this.bench = planBench(options)
  }

  init(): FromWorker {
    const {plan, decodeTensorBytes, prefillTensorBytes} = this.bench
    let registrationMs = 0
    for (let rank = 0; rank < plan.decode.tp; rank++) {
      const agent = TransferAgent.create({name: `decode-r${rank}`, transport: this.options.transport, tcpSegmentBytes: this.options.tcpSegmentBytes, readProtocol: this.options.readProtocol, defaultTimeoutMs: this.options.timeoutMs})
      this.agents.push(agent)
      const t0 = performance.now()
      this.tensors.push(Array.from({length: plan.decode.numTensors}, () => agent.allocRegion(decodeTensorBytes)))
      registrationMs += performance.now() - t0
      const mirrors = Array.from({length: plan.prefill.numTensors}, () => agent.allocRegion(prefillTensorBytes))
      // Written once so the reference copies materialized pages, as the reads do (never-written
      // shared memory can be served from one zero page, which would flatter memcpy).
      for (const m of mirrors) new Uint8Array(m.buffer).fill(0xa5)
      this.mirrors.push(mirrors)
      // A dead prefill rank ends the run at once, whatever the worker is doing.
      agent.onPeerFailure((f) => {
        if (!this.closing) this.send({type: 'error', error: serializeError(f.error)})
      })
    }
    const agents: AgentAnnouncement[] = this.agents.map((a, rank) => ({rank, metadata: Buffer.from(a.metadata()).toString('base64'), regionIds: this.tensors[rank].map((r) => r.id)}))
    return {type: 'ready', agents, registrationMs}
  }

  /** Connects each decode rank to the prefill ranks it reads from, then prepares every case's lists once. */
  connect(prefill: readonly AgentAnnouncement[]): FromWorker {
    const {plan, requests} = this.bench
    const t0 = performance.now()
    for (let d = 0; d < plan.decode.tp; d++) {
      this.peers[d] = []
      for (const pair of plan.mapping.pairs) {
        if (pair.decodeRank !== d) continue
        this.peers[d][pair.prefillRank] = this.agents[d].connect(Buffer.from(prefill[pair.prefillRank].metadata, 'base64'))
      }
    }
    const handshakeMs = performance.now() - t0
    const protocols = new Set(this.peers.flatMap((peers) => peers.filter((p) => p !== undefined).map((p) => p.readProtocol)))
    const readProtocol = protocols.size === 1 ? [...protocols][0] : 'mixed'
    const t1 = performance.now()
    this.prepared = requests.map((req, caseIndex) => this.prepareCase(req, caseIndex, prefill))
    return {type: 'connected', handshakeMs, prepareMs: performance.now() - t1, readProtocol}
  }

  private prepareCase(req: RequestReadPlan, caseIndex: number, prefill: readonly AgentAnnouncement[]): PreparedPair[] {
    const target = faultTarget(req)
    return req.pairs.map((pair, pairIndex) => {
      const agent = this.agents[pair.decodeRank]
      const peer = this.peers[pair.decodeRank][pair.prefillRank]!
      const r = pair.reads
      const local = []
      const remote = []
      const mirror = []
      for (let i = 0; i < r.count; i++) {
        let sizeBytes = r.lengthBytes[i]
        // --inject-fault short: this descriptor stops before the end of its read.
        if (this.options.fault === 'short' && caseIndex === 0 && pairIndex === target.pairIndex && i === target.readIndex) sizeBytes -= Math.min(64, Math.ceil(sizeBytes / 2))
        const t = r.tensorIndex[i]
        local.push({region: this.tensors[pair.decodeRank][t].id, offsetBytes: r.localOffsetBytes[i], sizeBytes})
        remote.push({region: prefill[pair.prefillRank].regionIds[t], offsetBytes: r.remoteOffsetBytes[i], sizeBytes})
        mirror.push({region: this.mirrors[pair.decodeRank][t].id, offsetBytes: r.remoteOffsetBytes[i], sizeBytes})
      }
      return {
        pair,
        local: agent.prepareLocal(local),
        remote: agent.prepareRemote(peer, remote),
        mirror: agent.prepareLocal(mirror),
        indices: Uint32Array.from({length: r.count}, (_, i) => i),
      }
    })
  }

  /** `grants`: [pair] the prefill rank's grant for this request's reads, as serving passes it. */
  async read(caseIndex: number, request: number, digests: readonly string[] | undefined, grants: readonly (string | null)[] = []): Promise<FromWorker> {
    const pairs = this.prepared[caseIndex]
    const timeoutMs = this.options.timeoutMs
    const t0 = performance.now()
    const results = await Promise.all(
      pairs.map((p, i) => this.agents[p.pair.decodeRank].read(p.local, p.indices, p.remote, p.indices, {timeoutMs, ...(grants[i] ? {grant: grants[i]} : {})})),
    )
    const latencyMs = performance.now() - t0

    let verifiedBytes = 0
    if (this.options.verify === 'full') verifiedBytes = await this.verifyFull(caseIndex, request)
    else if (this.options.verify === 'digest') verifiedBytes = await this.verifyDigests(caseIndex, request, digests ?? [])

    // "Request read, free its blocks": every (decode rank, prefill rank) pair notifies once, then
    // waits for the prefill rank's "freed" (bounded; rejects at once if that rank dies).
    await Promise.all(
      pairs.map(async (p) => {
        const agent = this.agents[p.pair.decodeRank]
        const peer = this.peers[p.pair.decodeRank][p.pair.prefillRank]!
        const freed = agent.nextNotification({from: peer, timeoutMs, match: (n) => new TextDecoder().decode(n.payload) === freedMessage(caseIndex, request)})
        await agent.notify(peer, readDoneMessage(caseIndex, request), {timeoutMs})
        await freed
      }),
    )

    // The reference: the same descriptor pairs as memcpy, same threads, same run.
    const copies = await Promise.all(pairs.map((p) => this.agents[p.pair.decodeRank].copy(p.local, p.indices, p.mirror, p.indices)))

    const report: ReadReport = {
      latencyMs,
      transferMs: Math.max(...results.map((r) => r.elapsedMs)),
      copyMs: Math.max(...copies.map((r) => r.elapsedMs)),
      bytes: results.reduce((s, r) => s + r.bytes, 0),
      runs: results.reduce((s, r) => s + r.runs, 0),
      verifiedBytes,
    }
    return {type: 'read-done', report}
  }

  private async verifyFull(caseIndex: number, request: number): Promise<number> {
    const {plan, requests} = this.bench
    const req = requests[caseIndex]
    let bytes = 0
    for (const pair of req.pairs) {
      const expected = expectedRanges(plan, req, pair, request)
      const groups = byTensor(expected.map((r, index) => ({...r, index})), plan.decode.numTensors)
      for (let t = 0; t < groups.length; t++) {
        const ranges = groups[t]
        if (ranges.length === 0) continue
        const buffer = this.tensors[pair.decodeRank][t].buffer
        const bad = await verifyPattern(buffer, ranges)
        if (bad) throw await this.mismatch(caseIndex, request, pair, ranges[bad.part].index, ranges[bad.part], bad.byteOffset, bad.expected, bad.actual)
        for (const r of ranges) bytes += r.sizeBytes
      }
    }
    return bytes
  }

  private async verifyDigests(caseIndex: number, request: number, digests: readonly string[]): Promise<number> {
    const {plan, requests} = this.bench
    const req = requests[caseIndex]
    let bytes = 0
    for (let pi = 0; pi < req.pairs.length; pi++) {
      const pair = req.pairs[pi]
      const theirs = new BigUint64Array(Uint8Array.from(Buffer.from(digests[pi] ?? '', 'base64')).buffer)
      const ranges = Array.from({length: pair.reads.count}, (_, i) => ({tensorIndex: pair.reads.tensorIndex[i], index: i, offsetBytes: pair.reads.localOffsetBytes[i], sizeBytes: pair.reads.lengthBytes[i]}))
      for (const [t, group] of byTensor(ranges, plan.decode.numTensors).entries()) {
        if (group.length === 0) continue
        const ours = await digestRanges(this.tensors[pair.decodeRank][t].buffer, group)
        for (let j = 0; j < group.length; j++) {
          const i = group[j].index
          if (ours[j] !== theirs[i]) {
            const loc = locatePrefillByte(plan, req, pair.prefillRank, pair.reads.partIndex[i], pair.reads.remoteOffsetBytes[i])
            throw new VerificationError(
              'HPD_BENCH_DIGEST_MISMATCH',
              `request ${request} (${req.promptTokens} tokens): decode rank ${pair.decodeRank} ← prefill rank ${pair.prefillRank}: tensor ${t} layer ${pair.reads.layer[i]} block ${loc.block} part ${CACHE_PARTS[loc.partIndex]}: digest of the ${pair.reads.lengthBytes[i]} bytes read differs from the prefill side's`,
              {
                hint: 'Re-run with --verify full to see the first wrong byte.',
                details: {request, promptTokens: req.promptTokens, decodeRank: pair.decodeRank, prefillRank: pair.prefillRank, tensor: t, layer: pair.reads.layer[i], block: loc.block, part: CACHE_PARTS[loc.partIndex], read: i},
              },
            )
          }
        }
        for (const r of group) bytes += r.sizeBytes
      }
    }
    return bytes
  }

  /** Names the first wrong byte and says what it looks like (stale data, a short read, corruption). */
  private async mismatch(caseIndex: number, request: number, pair: PairReadPlan, readIndex: number, range: PartRange, byteOffset: number, expected: number, actual: number): Promise<VerificationError> {
    const req = this.bench.requests[caseIndex]
    const buffer = this.tensors[pair.decodeRank][range.tensorIndex].buffer
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
      `request ${request} (${req.promptTokens} tokens): decode rank ${pair.decodeRank} ← prefill rank ${pair.prefillRank}: tensor ${range.tensorIndex} layer ${pair.reads.layer[readIndex]} block ${range.key.block} part ${part}, byte ${range.partOffsetBytes + byteOffset} of the part is ${hex(actual)}, expected ${hex(expected)}: ${diagnosis}`,
      {
        hint: 'The bytes the decode side holds are not the bytes the plan says it read: check the transport (UCX), the read plan, and the owner freeing blocks early.',
        details: {
          request,
          promptTokens: req.promptTokens,
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

  close(): void {
    this.closing = true
    for (const a of this.agents) a.close()
  }
}
