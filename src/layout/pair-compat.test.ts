import {describe, expect, it} from 'vitest'

import {thrown} from '../testing/thrown.js'
import {loadModelSpec, parseModelConfig} from '../model/index.js'
import {planLayout, planRequestReads} from './index.js'
import type {DecodeSideOptions} from './types.js'

// Only pairs whose bytes cannot correspond are refused, one code per reason (README: refusal codes).
const tiny = loadModelSpec('tiny-hybrid')
const variant = (changes: Record<string, unknown>) => parseModelConfig({...(tiny.config as object), ...changes}, {name: 'variant'})
const pair = (decode: DecodeSideOptions) => planLayout({model: tiny, prefillTp: 2, decodeTp: 1, attentionBackend: 'cpu', decode})

describe('checkPairMappable', () => {
  it.each([
    ['HPD_LAYOUT_ATTENTION_LAYERS_MISMATCH', {model: variant({hybrid_override_pattern: 'MM*-M*M-'})}, /attention layers \[1, 5\] ≠ decode attention layers \[2, 5\]/u],
    ['HPD_LAYOUT_STATE_MIXER_MISMATCH', {model: loadModelSpec('tiny-hybrid-g1')}, /"nGroups":4.* ≠ .*"nGroups":1/u],
    ['HPD_LAYOUT_HEAD_DIM_MISMATCH', {model: variant({head_dim: 16})}, /head_dim 32 ≠ decode head_dim 16/u],
    ['HPD_LAYOUT_KV_HEADS_MISMATCH', {model: loadModelSpec('tiny-hybrid-kv1')}, /num_key_value_heads 4 ≠ decode 1/u],
    ['HPD_LAYOUT_KV_DTYPE_MISMATCH', {kvCacheDtype: 'fp8'}, /KV cache dtype fp32 ≠ decode fp8/u],
    ['HPD_LAYOUT_STATE_DTYPE_MISMATCH', {mambaSsmDtype: 'bf16'}, /ssm state dtype fp32 ≠ decode bf16/u],
    ['HPD_LAYOUT_STATE_DTYPE_MISMATCH', {mambaConvDtype: 'bf16'}, /conv state dtype fp32 ≠ decode bf16/u],
    ['HPD_LAYOUT_CONV_LAYOUT_MISMATCH', {convLayout: 'SD'}, /conv layout DS ≠ decode SD/u],
  ] as const)('%s (exit 2, names both sides, with a hint)', (code, decode, message) => {
    const e = thrown(() => pair(decode as DecodeSideOptions))
    expect([e.code, e.exitCode]).toEqual([code, 2])
    expect(e.message).toMatch(message)
    expect(e.hint).toBeTruthy()
    expect(e.details).toHaveProperty('vllmPitfalls')
  })

  it('maps what differs only in block sizes, kernel blocks, or config values the cache does not depend on', () => {
    // another --block-size on the decode side: different logical (and kernel) blocks, still mapped
    const blocks = pair({blockSize: 64})
    expect(blocks.decode.logicalBlockSize).not.toBe(blocks.prefill.logicalBlockSize)
    expect(planRequestReads(blocks, {transferredTokens: 199}).bytesPerDecodeRank[0]).toBeGreaterThan(0)
    // a decode config with another MLP width: same cache geometry
    const wider = pair({model: variant({intermediate_size: 1024})})
    expect(wider.decodeModel.name).toBe('variant')
    expect(wider.compatibilityHash).toBe(pair({}).compatibilityHash)
  })
})
