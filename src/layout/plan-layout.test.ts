import {describe, expect, it} from 'vitest'

import {thrown} from '../testing/thrown.js'
import {loadModelSpec, parseModelConfig} from '../model/index.js'
import {compatibilityHash, planEngineLayout, planLayout, planRequestReads} from './index.js'


const tiny = loadModelSpec('tiny-hybrid')
const g1 = loadModelSpec('tiny-hybrid-g1')

describe('planLayout', () => {
  it('n_groups = 1 under hetero TP: replicated B/C are read whole from one prefill rank, and the vLLM bug is flagged', () => {
    const plan = planLayout({model: g1, prefillTp: 2, decodeTp: 1, attentionBackend: 'cpu'})
    const b = plan.mapping.pairs.flatMap((p) => p.pageReads.filter((r) => r.part === 'B'))
    expect(b).toHaveLength(1)
    expect(b[0]).toMatchObject({prefillRank: 0, lengthBytes: plan.decode.ranks[0].mamba!.conv.bBytes})
    expect(plan.vllmPitfalls.map((p) => p.code)).toContain('VLLM_NGROUPS1_HETERO_TP_CORRUPTION')
    const up = planLayout({model: g1, prefillTp: 1, decodeTp: 2, attentionBackend: 'cpu'})
    for (const pair of up.mapping.pairs) {
      const B = pair.pageReads.find((r) => r.part === 'B')!
      expect(B.remoteOffsetBytes).toBe(up.prefill.ranks[0].mamba!.conv.xBytes)
      expect(B.lengthBytes).toBe(up.prefill.ranks[0].mamba!.conv.bBytes)
    }
    expect(planLayout({model: g1, prefillTp: 2, decodeTp: 2}).vllmPitfalls.map((p) => p.code)).not.toContain('VLLM_NGROUPS1_HETERO_TP_CORRUPTION')
  })

  it('compatibility hash: same across TP sizes, changes with SSM dtype, conv layout, KV dtype', () => {
    const base = planLayout({model: tiny, prefillTp: 1, decodeTp: 2, attentionBackend: 'cpu'})
    expect(compatibilityHash(tiny, base.prefill)).toBe(compatibilityHash(tiny, base.decode))
    expect(base.compatibilityHash).toMatch(/^[0-9a-f]{64}$/u)
    const other = (o: object): string => planLayout({model: tiny, prefillTp: 1, decodeTp: 2, attentionBackend: 'cpu', ...o}).compatibilityHash
    expect(other({})).toBe(base.compatibilityHash)
    expect(other({mambaSsmDtype: 'bf16'})).not.toBe(base.compatibilityHash)
    expect(other({convLayout: 'SD'})).not.toBe(base.compatibilityHash)
    expect(other({kvCacheDtype: 'fp8'})).not.toBe(base.compatibilityHash)
  })

  it('different logical block sizes with equal kernel blocks are mapped through token positions', () => {
    const k2 = parseModelConfig({...(tiny.config as object), num_key_value_heads: 2, n_groups: 4})
    const plan = planLayout({model: k2, prefillTp: 4, decodeTp: 2, attentionBackend: 'cpu', blockSize: 128, vllmVersion: '0.20'})
    expect(plan.prefill.logicalBlockSize).not.toBe(plan.decode.logicalBlockSize)
    expect(plan.prefill.kernelBlockSize).toBe(plan.decode.kernelBlockSize)
    expect(plan.vllmPitfalls.map((p) => p.code)).toContain('VLLM_BLOCK_RATIO_MISMATCH')
    const req = planRequestReads(plan, {transferredTokens: 499})
    expect(req.bytesPerDecodeRank[0]).toBeGreaterThan(0)
  })

  it('kernel blocks that differ are mapped (runs of gcd tokens per head); vLLM refusing them is a pitfall, not an hpd error', () => {
    const k2 = parseModelConfig({...(tiny.config as object), num_key_value_heads: 2, n_groups: 4})
    const plan = planLayout({model: k2, prefillTp: 4, decodeTp: 1, attentionBackend: 'triton', mambaSsmDtype: 'bf16', mambaConvDtype: 'bf16'})
    expect(plan.prefill.kernelBlockSize).not.toBe(plan.decode.kernelBlockSize)
    expect(plan.mapping.attention.readUnit).toBe('head')
    expect(plan.vllmPitfalls.map((p) => p.code)).toContain('VLLM_KERNEL_BLOCK_MISMATCH')
    expect(planRequestReads(plan, {transferredTokens: 299}).bytesPerDecodeRank[0]).toBeGreaterThan(0)
  })

  it('TP sizes that do not divide one another → HPD_LAYOUT_TP_NOT_DIVISIBLE', () => {
    const llama12 = parseModelConfig({architectures: ['LlamaForCausalLM'], hidden_size: 384, vocab_size: 64, num_hidden_layers: 2, num_attention_heads: 12, num_key_value_heads: 12})
    expect(thrown(() => planLayout({model: llama12, prefillTp: 2, decodeTp: 3})).code).toBe('HPD_LAYOUT_TP_NOT_DIVISIBLE')
  })

  it('bad options are usage errors naming the value', () => {
    expect(thrown(() => planEngineLayout({model: tiny, tp: 0})).code).toBe('HPD_USAGE_BAD_TP')
    expect(thrown(() => planEngineLayout({model: tiny, tp: 1, blockSize: -4})).code).toBe('HPD_USAGE_BAD_BLOCK_SIZE')
    expect(thrown(() => planEngineLayout({model: loadModelSpec('tiny-llama'), tp: 1, blockSize: 24, attentionBackend: 'triton'})).code).toBe('HPD_LAYOUT_NO_KERNEL_BLOCK')
    expect(thrown(() => planEngineLayout({model: tiny, tp: 1, mambaSsmDtype: 'fp8'})).code).toBe('HPD_USAGE_BAD_DTYPE')
    const plan = planLayout({model: tiny, prefillTp: 1, decodeTp: 1})
    expect(thrown(() => planRequestReads(plan, {transferredTokens: 0})).code).toBe('HPD_USAGE_BAD_PROMPT_TOKENS')
    expect(thrown(() => planRequestReads(plan, {transferredTokens: 99, decodeBlockIds: [[0, 1], [1], [2]]})).code).toBe('HPD_LAYOUT_BAD_BLOCK_IDS')
  })

  it('SD conv layout: x/B/C are strided over d_conv−1 rows, one read per row, still exact', () => {
    const plan = planLayout({model: tiny, prefillTp: 1, decodeTp: 2, attentionBackend: 'cpu', convLayout: 'SD'})
    const x = plan.mapping.pairs[0].pageReads.filter((r) => r.part === 'x')
    expect(x).toHaveLength(3)
    expect(plan.vllmPitfalls[0].message).toContain('this plan uses SD')
  })
})
