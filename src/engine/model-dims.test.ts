import {describe, expect, it} from 'vitest'

import {findPreset, parseModelConfig} from '../model/index.js'
import {dimsFromSpec} from './model-dims.js'

describe('dimsFromSpec', () => {
  it('projects the tiny presets (chunk size, conv bias, eps, rope theta)', () => {
    const hybrid = dimsFromSpec(parseModelConfig(findPreset('tiny-hybrid')!.config))
    expect(hybrid.layers).toEqual(['mamba', 'attention', 'mamba', 'mlp', 'mamba', 'attention', 'mamba', 'mlp'])
    expect(hybrid.mamba).toMatchObject({numHeads: 16, headDim: 32, nGroups: 4, stateSize: 32, convKernel: 4, chunkSize: 64, useConvBias: true, inner: 512})
    expect(hybrid.normEps).toBe(1e-5)
    const llama = dimsFromSpec(parseModelConfig(findPreset('tiny-llama')!.config))
    expect(llama).toMatchObject({family: 'llama', ropeTheta: 10000, intermediateSize: 768, tieWordEmbeddings: false})
  })

  it('refuses what the engine does not implement, naming it', () => {
    const llama = findPreset('tiny-llama')!.config
    expect(() => dimsFromSpec(parseModelConfig({...llama, attention_bias: true}))).toThrow(
      expect.objectContaining({code: 'HPD_ENGINE_UNSUPPORTED_MODEL', message: expect.stringContaining('attention_bias')}),
    )
    expect(() => dimsFromSpec(parseModelConfig({...llama, rope_scaling: {rope_type: 'llama3', factor: 8}}))).toThrow(
      expect.objectContaining({code: 'HPD_ENGINE_UNSUPPORTED_MODEL', message: expect.stringContaining('"llama3"')}),
    )
  })
})
