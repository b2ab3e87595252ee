import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {blocksNeeded, type EngineLayout, type GroupBlockIds, planLayout, planRequestReads} from '../layout/index.js'
import {loadModelSpec} from '../model/index.js'
import {canonicalOrder} from './verify.js'

/**
 * The owner digests a request's reads from its own plan, made without the reader's block ids; the
 * check is sound only if that plan lists the same remote bytes, and canonical order lines them up
 * one to one. Property: whatever block ids either side's pool hands out.
 */
function shuffledIds(engine: EngineLayout, tokens: number, pool: number, seed: number): GroupBlockIds {
  const ids = Array.from({length: pool}, (_, i) => i)
  let s = seed >>> 0
  for (let i = pool - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    const j = s % (i + 1)
    ;[ids[i], ids[j]] = [ids[j], ids[i]]
  }
  let at = 0
  return blocksNeeded(engine, tokens).map((n) => ids.slice(at, (at += n)))
}

const key = (list: ReturnType<typeof planRequestReads>['pairs'][number]['reads'], order: Uint32Array) =>
  Array.from(order, (i) => `${list.tensorIndex[i]}:${list.remoteOffsetBytes[i]}:${list.lengthBytes[i]}:${list.layer[i]}:${list.partIndex[i]}`)

describe('canonical read order', () => {
  const topologies = [
    ['tiny-hybrid', 1, 1],
    ['tiny-hybrid', 2, 1],
    ['tiny-hybrid', 1, 2],
    ['tiny-hybrid-g1', 2, 4],
    ['tiny-llama', 2, 1],
    ['nemotron-h-8b', 2, 1],
  ] as const
  it.each(topologies)('%s %i→%i: the owner\'s plan (its ids only) and the reader\'s (both sides\' ids) list the same reads in canonical order', (model, p, d) => {
    const plan = planLayout({model: loadModelSpec(model), prefillTp: p, decodeTp: d, attentionBackend: 'cpu'})
    fc.assert(
      fc.property(fc.integer({min: 1, max: 700}), fc.integer({min: 0, max: 2 ** 31}), fc.integer({min: 0, max: 2 ** 31}), (tokens, pSeed, dSeed) => {
        const pPool = 3 * blocksNeeded(plan.prefill, tokens).reduce((a, b) => a + b, 0) + 2
        const dPool = 3 * blocksNeeded(plan.decode, tokens).reduce((a, b) => a + b, 0) + 5
        const prefillBlockIds = shuffledIds(plan.prefill, tokens, pPool, pSeed)
        const owner = planRequestReads(plan, {transferredTokens: tokens, prefillBlockIds, prefillNumLogicalBlocks: pPool})
        const reader = planRequestReads(plan, {transferredTokens: tokens, prefillBlockIds, prefillNumLogicalBlocks: pPool, decodeBlockIds: shuffledIds(plan.decode, tokens, dPool, dSeed), decodeNumLogicalBlocks: dPool})
        expect(reader.pairs.map((x) => [x.decodeRank, x.prefillRank])).toEqual(owner.pairs.map((x) => [x.decodeRank, x.prefillRank]))
        reader.pairs.forEach((pair, i) => expect(key(pair.reads, canonicalOrder(pair.reads))).toEqual(key(owner.pairs[i].reads, canonicalOrder(owner.pairs[i].reads))))
      }),
      {numRuns: model === 'nemotron-h-8b' ? 8 : 40},
    )
  })
})
