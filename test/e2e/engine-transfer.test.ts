import {afterAll, describe, expect, it} from 'vitest'

import {transferAgentAllocator} from '../../src/engine/agent-allocator.js'
import {HybridEngine} from '../../src/engine/engine.js'
import {Sampler} from '../../src/engine/sampler.js'
import {tinyModel} from '../../src/engine/test-models.js'
import {TransferAgent} from '../../src/transport/index.js'

/**
 * The engine's cache in transfer-agent memory, handed over by real one-sided UCX reads: a TP 2
 * prefill engine computes N−1 prompt tokens into UCX-allocated regions, a TP 2 decode engine
 * (its own agents and regions, different block ids) pulls every page of the request rank by rank,
 * adopts the state, recomputes the last prompt token and decodes: the same greedy tokens as an
 * uninterrupted run. n_groups = 1 model, so B/C are replicated across the ranks.
 */
const agents: TransferAgent[] = []
afterAll(() => {
  for (const a of agents) a.close()
})

describe('engine cache over the transfer agent', () => {
  it('prefill N−1 → UCX read of the pages → adopt → recompute last token → same tokens as one engine', async () => {
    const m = tinyModel('tiny-hybrid-g1')
    const tp = 2
    const tokens = Array.from({length: 50}, (_x, i) => (i * 29 + 3) % 256)
    const steps = 8

    const reference = new HybridEngine({spec: m.spec, weights: m.weights, tp, numBlocks: 8})
    const sampler = new Sampler(0)
    let logits = reference.prefill('u', tokens)!
    const expected: number[] = []
    for (let i = 0; i < steps; i++) {
      expected.push(sampler.sample(logits, {temperature: 0}))
      ;[logits] = reference.decodeStep([{requestId: 'u', tokenId: expected.at(-1)!}])
    }
    reference.close()

    const prefillAgents = [0, 1].map((r) => TransferAgent.create({name: `engine-prefill-r${r}`}))
    const decodeAgents = [0, 1].map((r) => TransferAgent.create({name: `engine-decode-r${r}`}))
    agents.push(...prefillAgents, ...decodeAgents)
    const prefillAlloc = transferAgentAllocator(prefillAgents)
    const decodeAlloc = transferAgentAllocator(decodeAgents)
    const prefill = new HybridEngine({spec: m.spec, weights: m.weights, tp, numBlocks: 8, allocator: prefillAlloc})
    const decode = new HybridEngine({spec: m.spec, weights: m.weights, tp, numBlocks: 8, allocator: decodeAlloc})
    expect(prefillAlloc.allocations).toHaveLength(tp * prefill.layout.numTensors)

    prefill.prefill('req', tokens.slice(0, -1), {remoteDecode: true})
    decode.allocate('someone-else', 20)
    const localIds = decode.allocate('req', tokens.length - 1)!
    const remoteIds = prefill.blockIds('req')
    const pageBytes = prefill.layout.pageBytes
    for (let rank = 0; rank < tp; rank++) {
      const reader = decodeAgents[rank]
      const peer = reader.connect(prefillAgents[rank].metadata())
      const localDescs = []
      const remoteDescs = []
      for (const a of decodeAlloc.allocations.filter((x) => x.rank === rank)) {
        const src = prefillAlloc.allocations.find((x) => x.rank === rank && x.tensorIndex === a.tensorIndex)!
        for (let g = 0; g < remoteIds.length; g++) {
          for (let j = 0; j < remoteIds[g].length; j++) {
            localDescs.push({region: a.region.id, offsetBytes: localIds[g][j] * pageBytes, sizeBytes: pageBytes})
            remoteDescs.push({region: src.region.id, offsetBytes: remoteIds[g][j] * pageBytes, sizeBytes: pageBytes})
          }
        }
      }
      const local = reader.prepareLocal(localDescs)
      const remote = reader.prepareRemote(peer, remoteDescs)
      const indices = localDescs.map((_d, i) => i)
      const result = await reader.read(local, indices, remote, indices, {timeoutMs: 10_000})
      expect(result.bytes).toBe(localDescs.length * pageBytes)
    }
    decode.adopt('req', tokens.length - 1)
    ;[logits] = decode.decodeStep([{requestId: 'req', tokenId: tokens.at(-1)!}])
    const got: number[] = []
    for (let i = 0; i < steps; i++) {
      got.push(sampler.sample(logits, {temperature: 0}))
      ;[logits] = decode.decodeStep([{requestId: 'req', tokenId: got.at(-1)!}])
    }
    expect(got).toEqual(expected)
    decode.free('req')
    prefill.free('req')
    prefill.close()
    decode.close()
    expect(prefillAlloc.allocations[0].buffer.byteLength).toBe(0) // region freed → view detached
  })
})
