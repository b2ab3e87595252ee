import {describe, expect, it} from 'vitest'

import {findPreset, parseModelConfig} from '../model/index.js'
import {dimsFromSpec, layerOps} from './model-dims.js'

const dims = (name: string, extra: Record<string, unknown> = {}) => dimsFromSpec(parseModelConfig({...findPreset(name)!.config, ...extra}))

describe('dimsFromSpec', () => {
  it('projects the tiny presets (chunk size, conv bias, eps, rope theta)', () => {
    const hybrid = dims('tiny-hybrid')
    expect(hybrid.layers.map((_l, i) => layerOps(hybrid, i))).toEqual([['mamba'], ['attention'], ['mamba'], ['mlp'], ['mamba'], ['attention'], ['mamba'], ['mlp']])
    expect(hybrid.mamba).toMatchObject({numHeads: 16, headDim: 32, nGroups: 4, stateSize: 32, convKernel: 4, chunkSize: 64, useConvBias: true, inner: 512, normMode: 'gate-first', normGroups: 4})
    expect(hybrid.normEps).toBe(1e-5)
    const llama = dims('tiny-llama')
    expect(llama).toMatchObject({family: 'llama', attention: {rope: {theta: 10000, rotaryDim: 32}}, mlp: {activation: 'swiglu', intermediateSize: 768}, tieWordEmbeddings: false})
    expect(llama.layers[0].blocks.map((b) => b.ops)).toEqual([['attention'], ['mlp']])
  })

  it('reads each family\'s compute keys: Granite multipliers and NoPE, Falcon-H1 µP and norm modes, Qwen3-Next gates and partial RoPE, Nemotron-H MoE routing', () => {
    const granite = dims('tiny-granite-h')
    expect(granite.layers[0].blocks.map((b) => b.ops)).toEqual([['mamba'], ['moe']])
    expect(granite).toMatchObject({embeddingScale: 12, logitsScale: 1 / 8, attention: {rope: null, softmaxScale: 0.03125, outScale: 0.25}, mamba: {normGroups: 1, outScale: 0.25}, moe: {router: 'topk-softmax', sharedSize: 256, outScale: 0.25}})
    expect(dims('tiny-granite-h', {position_embedding_type: 'rope', rope_theta: 5e4}).attention!.rope).toEqual({theta: 5e4, rotaryDim: 32})
    expect(dims('tiny-granite-h', {num_local_experts: 0}).layers[0].blocks[1].ops).toEqual(['mlp'])

    const falcon = dims('tiny-falcon-h1')
    expect(falcon.layers[0].blocks.map((b) => b.ops)).toEqual([['mamba', 'attention'], ['mlp']])
    expect(falcon.mamba!.normMode).toBe('gate-first')
    expect(dims('tiny-falcon-h1', {mamba_rms_norm: false}).mamba!.normMode).toBe('none')
    expect(dims('tiny-falcon-h1', {mamba_norm_before_gate: true}).mamba!.normMode).toBe('norm-first')
    expect(falcon.mamba!.projMultipliers![0]).toBeCloseTo(0.35355 * 1.25, 4)

    const qwen = dims('tiny-qwen3-next')
    expect(qwen).toMatchObject({zeroCenteredNorms: true, tensorNaming: 'default', attention: {qkNorm: true, outputGate: true, rope: {rotaryDim: 16}}, gdn: {numKeyHeads: 4, numValueHeads: 8, chunkSize: 64}, moe: {router: 'softmax-topk', sharedGate: true}})
    expect(qwen.layers.map((l) => l.blocks.map((b) => b.ops[0]).join('+'))).toEqual(['gdn+moe', 'gdn+moe', 'gdn+moe', 'attention+moe', 'gdn+moe', 'gdn+mlp', 'gdn+moe', 'attention+moe'])

    const moe = dims('tiny-nemotron-h-moe')
    expect(moe.moe).toMatchObject({router: 'sigmoid-bias', activation: 'relu2', nGroup: 1, topkGroup: 1, routedScale: 2.5, normTopk: true})
  })

  it('refuses what the engine does not implement, naming it', () => {
    const refused = (name: string, extra: Record<string, unknown>, what: string) =>
      expect(() => dims(name, extra)).toThrow(expect.objectContaining({code: 'HPD_ENGINE_UNSUPPORTED_MODEL', message: expect.stringContaining(what)}))
    refused('tiny-llama', {attention_bias: true}, 'attention_bias')
    refused('tiny-llama', {rope_scaling: {rope_type: 'llama3', factor: 8}}, '"llama3"')
    refused('tiny-nemotron-h-moe', {moe_latent_size: 64}, 'moe_latent_size')
    refused('tiny-granite-h', {mamba_proj_bias: true}, 'mamba_proj_bias')
    refused('tiny-falcon-h1', {projectors_bias: true}, 'projectors_bias')
    refused('tiny-qwen3-next', {hidden_act: 'gelu'}, 'hidden_act')
    expect(() => dims('tiny-nemotron-h-moe', {n_routed_experts: 100_000, num_experts_per_tok: 4})).toThrow(
      expect.objectContaining({code: 'HPD_MODEL_SIZE_LIMIT', message: expect.stringContaining('4 MoE layers × 100000 experts')}),
    )
  })
})
