/**
 * WorkerEngine over the real pieces: the CPU engine (src/engine) whose cache tensors are regions
 * of this worker's transfer agent (src/transport), and the layout engine's read plan
 * (src/layout) executed as one batched READ per (decode rank, prefill rank).
 *
 * One transfer agent per worker process; every TP rank's shared tensors are separate regions of
 * it (as if each rank were on its own GPU), named in the handshake by (rank, tensor). Descriptor
 * lists are prepared per request from the plan's coalesced runs and released after the read:
 * the runs differ per request, and on the tiny models preparing costs microseconds.
 */
import {HybridEngine} from '../../engine/engine.js'
import {loadModel} from '../../engine/load-model.js'
import {serveTokenizer} from '../serve-model.js'
import {SequenceSampler} from '../../engine/sampler.js'
import {StepScheduler} from '../../engine/step-scheduler.js'
import {compatibilityHash, logicalBlockRanges, planLayout, planRequestReads, type LayoutPlan} from '../../layout/index.js'
import {TransferAgent, type Descriptor, type Peer} from '../../transport/index.js'
import type {HandshakePayload, SamplingParams, TransferParams} from '../protocol.js'
import {ENGINE_LAYOUT_OPTIONS} from './layout-options.js'
import type {DecodeEntry, GroupBlockIds, PeerLink, PullResult, SampledToken, WorkerEngine} from './engine-port.js'
import type {WorkerConfig} from './worker-config.js'

/** What a prefill engine publishes in its handshake (HandshakePayload.transport). */
interface TransportInfo {
  /** base64 of TransferAgent.metadata() */
  readonly agentMetadata: string
  /** [rank][tensorIndex] → region id in that agent */
  readonly regionIds: readonly (readonly number[])[]
  readonly numLogicalBlocks: number
}

interface BoundPeer extends PeerLink {
  readonly peer: Peer
  readonly info: TransportInfo
  readonly plan: LayoutPlan
}

const LAYOUT_OPTIONS = ENGINE_LAYOUT_OPTIONS

export async function createWorkerEngine(config: WorkerConfig): Promise<WorkerEngine> {
  const model = loadModel(config.model)
  // The agent listens where the control server does (loopback unless told otherwise).
  const agent = TransferAgent.create({name: config.name, transport: config.transport, bindAddress: config.host})
  const regionIds: number[][] = []
  let engine: HybridEngine
  try {
    engine = new HybridEngine({
      spec: model.spec,
      weights: model.weights,
      tp: config.tp,
      numBlocks: config.kvBlocks,
      attentionBackend: LAYOUT_OPTIONS.attentionBackend,
      allocator: {
        allocate: ({rank, tensorIndex, sizeBytes}) => {
          const region = agent.allocRegion(sizeBytes)
          ;(regionIds[rank] ??= [])[tensorIndex] = region.id
          return {buffer: region.buffer, release: () => agent.freeRegion(region)}
        },
      },
    })
  } catch (error) {
    agent.close()
    throw error
  }
  const hash = compatibilityHash(model.spec, engine.layout)
  // Every engine computation goes through the scheduler: chunked prefill mixed with decode
  // steps under a token budget, each step off the event loop (src/engine/step-scheduler.ts).
  const scheduler = new StepScheduler(engine, config.steps)
  const eosTokenId = model.tokenizer.eosId ?? -1
  const samplers = new Map<string, SequenceSampler>()
  // Fault-injection hook (tests only, documented in src/serve/README.md): the native sampler is
  // handed an invalid top_k for requests whose id contains this marker, so it fails natively.
  const poison = process.env.HPD_TEST_FAIL_SAMPLING_FOR
  const openSequence = (requestId: string, prompt: readonly number[], s: SamplingParams) => {
    samplers.set(
      requestId,
      new SequenceSampler(
        {
          seed: s.seed ?? Math.floor(Math.random() * 2 ** 31),
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

  const port: WorkerEngine = {
    engineId,
    tpSize: config.tp,
    compatibilityHash: hash,
    eosTokenId,
    limits: {maxModelLen: config.maxModelLen, vocabSize: model.spec.vocabSize},
    tokenizer: serveTokenizer(model.tokenizer),
    kvUsage: () => engine.usage(),

    async prefillForTransfer(requestId: string, tokenIds: readonly number[]) {
      await scheduler.prefill(requestId, tokenIds, {wantLogits: false})
      const blockIds = engine.blockIds(requestId)
      // Every page of the request's blocks, in every (rank, tensor) region: all a reader of this
      // request may have served, whatever its TP (the layout engine says where a block's bytes are).
      const blocks = [...new Set(blockIds.flat())]
      const ranges = regionIds.flatMap((tensors) =>
        tensors.flatMap((region) => blocks.flatMap((b) => logicalBlockRanges(engine.layout, b, engine.numBlocks).map((r) => ({region, ...r})))),
      )
      return {blockIds, grant: agent.grant(ranges).id}
    },
    revokeGrant: (grant) => {
      agent.revokeGrant(grant)
    },
    transportInfo: (): TransportInfo => ({
      agentMetadata: Buffer.from(agent.metadata()).toString('base64'),
      regionIds,
      numLogicalBlocks: engine.numBlocks,
    }),
    onNotification(listener) {
      agent.onNotification((n) => listener(new TextDecoder().decode(n.payload)))
    },

    allocate: (requestId, numTokens) => engine.allocate(requestId, numTokens),
    async connect(h: HandshakePayload): Promise<PeerLink> {
      const info = h.transport as TransportInfo
      const plan = planLayout({model: model.spec, prefillTp: h.tpSize, decodeTp: config.tp, ...LAYOUT_OPTIONS})
      const peer = agent.connect(new Uint8Array(Buffer.from(info.agentMetadata, 'base64')))
      const link: BoundPeer = {
        engineId: h.engineId,
        engineEpoch: h.engineEpoch,
        peer,
        info,
        plan,
        close: () => {
          try {
            agent.disconnect(peer)
          } catch {
            // already gone with its peer
          }
        },
      }
      return link
    },
    async pull(link: PeerLink, local: GroupBlockIds, remote: TransferParams, timeoutMs: number): Promise<PullResult> {
      const {peer, info, plan} = link as BoundPeer
      const reads = planRequestReads(plan, {
        // The plan speaks of N prompt tokens and transfers N−1 for hybrids, N otherwise; the
        // prefill side computed exactly numComputedTokens.
        promptTokens: plan.prefill.hybrid ? remote.numComputedTokens + 1 : remote.numComputedTokens,
        prefillBlockIds: remote.blockIds,
        decodeBlockIds: local,
        prefillNumLogicalBlocks: info.numLogicalBlocks,
        decodeNumLogicalBlocks: engine.numBlocks,
      })
      const results = await Promise.all(
        reads.pairs.map(async (pair) => {
          const runs = pair.runs
          const localDescs: Descriptor[] = []
          const remoteDescs: Descriptor[] = []
          for (let i = 0; i < runs.count; i++) {
            const t = runs.tensorIndex[i]
            localDescs.push({region: regionIds[pair.decodeRank][t], offsetBytes: runs.localOffsetBytes[i], sizeBytes: runs.lengthBytes[i]})
            remoteDescs.push({region: info.regionIds[pair.prefillRank][t], offsetBytes: runs.remoteOffsetBytes[i], sizeBytes: runs.lengthBytes[i]})
          }
          const localList = agent.prepareLocal(localDescs)
          const remoteList = agent.prepareRemote(peer, remoteDescs)
          try {
            const idx = Array.from({length: runs.count}, (_, i) => i)
            return await agent.read(localList, idx, remoteList, idx, {timeoutMs, grant: remote.grant})
          } finally {
            agent.releaseList(localList)
            agent.releaseList(remoteList)
          }
        }),
      )
      return {bytes: results.reduce((a, r) => a + r.bytes, 0), reads: results.length}
    },
    async notify(link: PeerLink, message: string): Promise<void> {
      await agent.notify((link as BoundPeer).peer, message, {timeoutMs: 2000})
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
      engine.close()
      agent.close()
    },
  }
  return port
}
