import {describe, expect, it} from 'vitest'

import {loadModelSpec} from '../model/index.js'
import {localDescriptorView, pairDescriptorViews, planEngineLayout, planLayout, planRequestReads, readAt} from './index.js'

describe('descriptor views (§3.2, §6.2)', () => {
  it('local list = 2T·N_k + 4T·N_l: 536·N_l for H-8B, 344·N_l for Nano-9B-v2; FA boundary 2T·N_k', () => {
    for (const [preset, perBlock, fa] of [['nemotron-h-8b', 536, 520], ['nemotron-nano-9b-v2', 344, 328]] as const) {
      const e = planEngineLayout({model: loadModelSpec(preset), tp: 1})
      const v = localDescriptorView(e, 0, 10)
      expect([v.count, v.numFaDescs]).toEqual([perBlock * 10, fa * 10])
      // K of tensor 1, kernel block 3: region 2, offset 3·kernelPage; V follows at +half
      expect([v.tensorIndex[2 * v.numKernelBlocks + 3], v.offsetBytes[2 * v.numKernelBlocks + 3], v.lengthBytes[2 * v.numKernelBlocks + 3]]).toEqual([1, 3 * e.kernelPageBytes, e.kvHalfBytes])
      expect(v.offsetBytes[3 * v.numKernelBlocks + 3]).toBe(3 * e.kernelPageBytes + e.kvHalfBytes)
      // SSM region m = 4·0 + 3 (SSM of tensor 0), logical block 2: offset 2·page + conv bytes
      const ssm = v.numFaDescs + 3 * 10 + 2
      expect([v.offsetBytes[ssm], v.lengthBytes[ssm]]).toEqual([2 * e.pageBytes + e.ranks[0].mamba!.conv.bytes, e.ranks[0].mamba!.ssm.bytes])
    }
  })

  for (const [preset, P, D] of [['nemotron-h-8b', 1, 2], ['nemotron-h-8b', 2, 1], ['tiny-hybrid-g1', 1, 2], ['tiny-hybrid-g1', 2, 1], ['tiny-llama', 2, 1]] as const) {
    it(`${preset} ${P}→${D}: vLLM id pairs select, through the pair's views, a superset of hpd's reads`, () => {
      const plan = planLayout({model: loadModelSpec(preset), prefillTp: P, decodeTp: D, attentionBackend: 'cpu'})
      const req = planRequestReads(plan, {transferredTokens: 299, descriptorIds: true})
      for (const pair of req.pairs) {
        const mapped = plan.mapping.pairs.find((p) => p.decodeRank === pair.decodeRank && p.prefillRank === pair.prefillRank)!
        const views = pairDescriptorViews(mapped, plan.prefill, plan.decode, req.prefillNumLogicalBlocks, req.decodeNumLogicalBlocks)
        const {local, remote} = pair.descriptorIds!
        expect(local.length).toBe(remote.length)
        expect(local.length).toBe(pair.vllmDescriptorPairs)
        const selected = new Set<string>()
        for (let i = 0; i < local.length; i++) {
          const l = local[i]
          const r = remote[i]
          expect(views.local.lengthBytes[l]).toBe(views.remote.lengthBytes[r])
          expect(views.local.tensorIndex[l]).toBe(views.remote.tensorIndex[r])
          if (views.local.lengthBytes[l] > 0) selected.add(`${views.local.tensorIndex[l]} ${views.local.offsetBytes[l]} ${views.remote.offsetBytes[r]} ${views.local.lengthBytes[l]}`)
        }
        for (let i = 0; i < pair.reads.count; i++) {
          const read = readAt(pair.reads, i)
          expect(selected.has(`${read.tensorIndex} ${read.localOffsetBytes} ${read.remoteOffsetBytes} ${read.lengthBytes}`)).toBe(true)
        }
      }
    })
  }
})
