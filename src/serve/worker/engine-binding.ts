/**
 * WorkerEngine over the real pieces: the CPU engine (src/engine) whose cache tensors are regions
 * of this worker's transfer agent (src/transport), moved by the KV link (src/kvlink), which runs
 * the layout engine's read plan (src/layout) as one batched READ per (decode rank, prefill rank).
 *
 * One transfer agent per worker process; every TP rank's shared tensors are separate regions of
 * it (as if each rank were on its own GPU), named in the handshake by (rank, tensor).
 */
import {HybridEngine} from '../../engine/engine.js'
import {loadModel} from '../../engine/load-model.js'
import {serveTokenizer} from '../serve-model.js'
import {SequenceSampler} from '../../engine/sampler.js'
import {StepScheduler} from '../../engine/step-scheduler.js'
import {compareDigests, decodeDigests, encodeDigests, LinkOwner, LinkReader, parseLinkInfo, readerDigests, RegionTable, type RemoteEngine} from '../../kvlink/index.js'
import {compatibilityHash, planLayout, type LayoutPlan} from '../../layout/index.js'
import {type Region, TransferAgent} from '../../transport/index.js'
import type {HandshakePayload, SamplingParams, TransferParams} from '../protocol.js'
import {ENGINE_LAYOUT_OPTIONS} from './layout-options.js'
import type {DecodeEntry, GroupBlockIds, PeerLink, PullOptions, PullResult, SampledToken, WorkerEngine} from './engine-port.js'
import type {WorkerConfig} from './worker-config.js'
import type {KvGeometry} from '../kv-capacity.js'

interface BoundPeer extends PeerLink {
  readonly remote: RemoteEngine
}

const LAYOUT_OPTIONS = ENGINE_LAYOUT_OPTIONS

export async function createWorkerEngine(config: WorkerConfig): Promise<WorkerEngine> {
  const model = loadModel(config.model)
  // The agent listens where the control server does (loopback unless told otherwise).
  const agent = TransferAgent.create({name: config.name, transport: config.transport, bindAddress: config.host})
  let engine: HybridEngine
  const pending: {rank: number; tensorIndex: number; region: Region}[] = []
  try {
    engine = new HybridEngine({
      spec: model.spec,
      weights: model.weights,
      tp: config.tp,
      numBlocks: config.kvBlocks,
      attentionBackend: LAYOUT_OPTIONS.attentionBackend,
      // vLLM V1's default: on unless --no-prefix-caching. A decode worker pulls every request's
      // final state, so it saves no Mamba checkpoints (its attention blocks are what it reuses).
      prefixCaching: config.prefixCaching !== false,
      mambaCheckpoints: config.role !== 'decode',
      mambaCheckpointEvery: config.mambaCheckpointEvery,
      allocator: {
        allocate: ({rank, tensorIndex, sizeBytes}) => {
          const region = agent.allocRegion(sizeBytes)
          pending.push({rank, tensorIndex, region})
          return {buffer: region.buffer, release: () => agent.freeRegion(region)}
        },
      },
    })
  } catch (error) {
    agent.close()
    throw error
  }
  // The table is sized once the engine says how many shared tensors a rank has.
  const table = RegionTable.oneAgent(agent, config.tp, engine.layout.numTensors)
  for (const p of pending.splice(0)) table.set(p.rank, p.tensorIndex, p.region)
  const readDone = new Set<(requestId: string) => void>()
  const owner = new LinkOwner({
    regions: table,
    layout: engine.layout,
    numLogicalBlocks: engine.numBlocks,
    onReadDone: (id) => {
      for (const l of readDone) l(id)
    },
  })
  const reader = new LinkReader({regions: table, numLogicalBlocks: engine.numBlocks})
  // Plans with this engine on one side, by the other side's TP size (pure; cached).
  const plans = new Map<string, LayoutPlan>()
  const planOf = (prefillTp: number, decodeTp: number): LayoutPlan => {
    const key = `${prefillTp}/${decodeTp}`
    let plan = plans.get(key)
    if (!plan) {
      plan = planLayout({model: model.spec, prefillTp, decodeTp, ...LAYOUT_OPTIONS})
      plans.set(key, plan)
    }
    return plan
  }
  // Fault-injection hook (tests only, src/serve/README.md): the decode side flips one byte of what
  // it read for requests whose id contains this marker, as damage in flight would.
  const corruptFor = process.env.HPD_TEST_CORRUPT_TRANSFER_FOR
  const hash = compatibilityHash(model.spec, engine.layout)
  // Every engine computation goes through the scheduler: chunked prefill mixed with decode
  // steps under a token budget, each step off the event loop (src/engine/step-scheduler.ts).
  const scheduler = new StepScheduler(engine, config.steps)
  const eosTokenId = model.tokenizer.eosId ?? -1
  const samplers = new Map<string, SequenceSampler>()
  // Fault-injection hook (tests only, documented in src/serve/README.md): the native sampler is
  // handed an invalid top_k for requests whose id contains this marker, so it fails natively.
  const poison = process.env.HPD_TEST_FAIL_SAMPLING_FOR
  const openSequence = (requestId: string, prompt: readonly number[], s: SamplingParams, continuation = 0) => {
    samplers.set(
      requestId,
      new SequenceSampler(
        {
          seed: s.seed ?? Math.floor(Math.random() * 2 ** 53),
          continuation,
          temperature: s.temperature,
          topK: poison && requestId.includes(poison) ? Number.NaN : s.topK,
          topP: s.topP,
          minP: s.minP,
          presencePenalty: s.presencePenalty,
          frequencyPenalty: s.frequencyPenalty,
          repetitionPenalty: s.repetitionPenalty,
          logitBias: s.logitBias,
          minTokens: s.minTokens,
          stopTokenIds: s.stopTokenIds,
          eosTokenId,
          ignoreEos: s.ignoreEos,
          logprobs: s.logprobs,
        },
        prompt,
      ),
    )
  }
  // One request's sampling failing (its sampler, its logits) fails that request only.
  const sample = (requestId: string, logits: Float32Array): SampledToken | Error => {
    const sampler = samplers.get(requestId)
    if (!sampler) return new Error(`request ${requestId} has no open sampler`)
    try {
      return sampler.next(logits)
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error))
    }
  }
  // Stable across restarts of this worker; the handshake's epoch tells a restarted engine apart.
  const engineId = config.name
  const geometry = kvGeometryOf(engine, config)

  const port: WorkerEngine = {
    engineId,
    tpSize: config.tp,
    compatibilityHash: hash,
    eosTokenId,
    limits: {maxModelLen: config.maxModelLen, vocabSize: model.spec.vocabSize},
    tokenizer: serveTokenizer(model.tokenizer),
    kvUsage: () => engine.usage(),
    kvGeometry: () => geometry,
    cachedTokens: (requestId) => engine.cachedTokens(requestId),
    prefixCacheStats: () => engine.prefixCacheStats(),
    onCacheEvent(listener) {
      engine.onCacheEvent(listener)
    },

    async prefillForTransfer(requestId: string, tokenIds: readonly number[]) {
      await scheduler.prefill(requestId, tokenIds, {wantLogits: false})
      const blockIds = engine.blockIds(requestId)
      const [grant] = owner.hold(requestId, {blockIds, transferredTokens: tokenIds.length})
      return {blockIds, grant, cachedTokens: engine.cachedTokens(requestId)}
    },
    endTransfer: (requestId) => {
      owner.end(requestId)
    },
    transportInfo: () => owner.handshake(),
    onReadDone(listener) {
      readDone.add(listener)
    },
    async transferDigests(requestId: string, decodeTp: number, cachedTokens = 0) {
      return encodeDigests(await owner.digests(requestId, planOf(config.tp, decodeTp), cachedTokens))
    },

    allocate: (requestId, tokenIds) => engine.allocateForPull(requestId, tokenIds),
    async connect(h: HandshakePayload): Promise<PeerLink> {
      const plan = planOf(h.tpSize, config.tp)
      const remote = reader.connect(parseLinkInfo(h.transport, {tp: h.tpSize, numTensors: plan.prefill.numTensors}), plan)
      const link: BoundPeer = {engineId: h.engineId, engineEpoch: h.engineEpoch, remote, close: () => remote.close()}
      return link
    },
    async pull(link: PeerLink, local: GroupBlockIds, t: TransferParams, timeoutMs: number, o: PullOptions = {}): Promise<PullResult> {
      const {remote} = link as BoundPeer
      // The prefill side computed exactly the transferred tokens (transferredTokens(N), src/layout).
      const {reads, result} = await remote.pull({transferredTokens: t.numComputedTokens, cachedTokens: o.cachedTokens, localBlockIds: local, remoteBlockIds: t.blockIds}, {grants: t.grant ? [t.grant] : [], timeoutMs})
      if (corruptFor && t.requestId.includes(corruptFor) && reads.reads > 0) {
        const pair = reads.pairs.find((p) => p.reads.count > 0)!
        new Uint8Array(table.region(pair.decodeRank, pair.reads.tensorIndex[0]).buffer)[pair.reads.localOffsetBytes[0]] ^= 0x5a
      }
      if (!o.verify) return {bytes: result.bytes, reads: result.reads}
      const started = performance.now()
      const [ours, theirs] = await Promise.all([readerDigests(table, reads), o.verify(config.tp).then(decodeDigests)])
      compareDigests(t.requestId, reads, ours, theirs)
      return {bytes: result.bytes, reads: result.reads, verifyMs: performance.now() - started}
    },
    async readDone(link: PeerLink, requestId: string): Promise<void> {
      await (link as BoundPeer).remote.readDone(requestId, undefined, {timeoutMs: 2000})
    },
    adopt: (requestId, numTokens) => engine.adopt(requestId, numTokens),

    async prefillLocal(requestId: string, tokenIds: readonly number[], forks: readonly string[]): Promise<readonly (SampledToken | Error)[]> {
      const logits = (await scheduler.prefill(requestId, tokenIds, {wantLogits: true}))!
      if (forks.length > 0) engine.fork(requestId, forks)
      // Every continuation samples its first token from the same last-prompt-token logits.
      return [requestId, ...forks].map((id) => sample(id, logits))
    },
    openSequence,
    fork: (requestId, childIds) => engine.fork(requestId, childIds),
    async decodeStep(entries: readonly DecodeEntry[]): Promise<readonly (SampledToken | Error)[]> {
      const logits = await scheduler.decode(entries.map((e) => ({requestId: e.requestId, tokenId: e.tokenId})))
      return entries.map((e, i) => {
        const l = logits[i]
        return l instanceof Error ? l : sample(e.requestId, l)
      })
    },
    free(requestId: string): void {
      samplers.delete(requestId)
      scheduler.cancel(requestId)
      engine.free(requestId)
    },
    async close(): Promise<void> {
      // A step may be computing into the cache off the main thread: let it end before the memory goes.
      await scheduler.close()
      owner.close()
      engine.close()
      agent.close()
    },
  }
  return port
}

/**
 * The engine's pool as admission counts it: a sequence holds its attention blocks, one page per
 * state group, and (checkpoints off the every-k grid) the latest checkpoint per state group. A
 * prefix hit pins one checkpoint per state group while the request's own blocks are taken, so that
 * many blocks are kept out of what requests may be admitted against.
 */
function kvGeometryOf(engine: HybridEngine, config: WorkerConfig): KvGeometry {
  const groups = engine.layout.groups
  const stateGroups = groups.filter((g) => g.kind === 'state').length
  const checkpoints = config.prefixCaching !== false && config.role !== 'decode' && stateGroups > 0
  const heldCheckpoint = checkpoints && (config.mambaCheckpointEvery ?? 1) > 1 ? stateGroups : 0
  return {
    capacityBlocks: Math.max(1, engine.numBlocks - (checkpoints ? stateGroups : 0)),
    blockTokens: engine.layout.logicalBlockSize,
    attentionGroups: groups.length - stateGroups,
    fixedBlocksPerSequence: stateGroups + heldCheckpoint,
  }
}
