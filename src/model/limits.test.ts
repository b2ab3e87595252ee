import {describe, expect, it} from 'vitest'

import {HpdError} from '../errors.js'
import {thrown} from '../testing/thrown.js'
import {CONFIG_LIMITS, contextLength, findPreset, kvElementsPerToken, parseModelConfig, parseDtype, stateElementsPerLayer} from './index.js'

const tinyHybrid = findPreset('tiny-hybrid')!.config
const tinyLlama = findPreset('tiny-llama')!.config
const nemotron8b = findPreset('nemotron-h-8b')!.config

describe('prototype keys are never architectures, model types or dtypes', () => {
  for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf', '__defineGetter__']) {
    it(`"${name}"`, () => {
      expect(thrown(() => parseModelConfig({...tinyLlama, architectures: [name]})).code).toBe('HPD_MODEL_UNKNOWN_ARCHITECTURE')
      const {architectures: _drop, ...untyped} = tinyLlama as Record<string, unknown>
      expect(thrown(() => parseModelConfig({...untyped, model_type: name})).code).toBe('HPD_MODEL_MISSING_KEY')
      expect(thrown(() => parseModelConfig({...tinyLlama, torch_dtype: name})).code).toBe('HPD_MODEL_BAD_DTYPE')
      expect(parseDtype(name)).toBeUndefined()
    })
  }

  it('a config carrying __proto__ / constructor keys of its own parses as if they were absent', () => {
    const raw = JSON.parse(`{"__proto__": {"hidden_size": 1}, "constructor": 5, ${JSON.stringify(tinyLlama).slice(1)}`) as Record<string, unknown>
    expect(parseModelConfig(raw).hiddenSize).toBe((tinyLlama as {hidden_size: number}).hidden_size)
  })
})

describe('every geometry key has a maximum', () => {
  const cases: [Record<string, unknown>, string, string][] = [
    [{...tinyLlama, head_dim: 2 ** 53}, 'head_dim', 'HPD_MODEL_BAD_KEY'],
    [{...tinyLlama, num_attention_heads: 1e24}, 'num_attention_heads', 'HPD_MODEL_BAD_KEY'],
    [{...tinyLlama, hidden_size: CONFIG_LIMITS.hiddenSize + 1}, 'hidden_size', 'HPD_MODEL_BAD_KEY'],
    [{...tinyLlama, num_hidden_layers: CONFIG_LIMITS.layers + 1}, 'num_hidden_layers', 'HPD_MODEL_BAD_KEY'],
    [{...tinyLlama, vocab_size: 2 ** 60}, 'vocab_size', 'HPD_MODEL_BAD_KEY'],
    [{...tinyHybrid, ssm_state_size: 2 ** 53 + 2}, 'ssm_state_size', 'HPD_MODEL_BAD_KEY'],
    [{...tinyHybrid, mamba_head_dim: CONFIG_LIMITS.headDim + 1}, 'mamba_head_dim', 'HPD_MODEL_BAD_KEY'],
    [{...tinyHybrid, conv_kernel: 1e6}, 'conv_kernel', 'HPD_MODEL_BAD_KEY'],
    [{...tinyHybrid, hybrid_override_pattern: 'M*'.repeat(CONFIG_LIMITS.layers), num_hidden_layers: undefined}, 'hybrid_override_pattern', 'HPD_MODEL_BAD_KEY'],
  ]
  for (const [config, key, code] of cases) {
    it(`${key} out of range → ${code} naming the key`, () => {
      const e = thrown(() => parseModelConfig(config))
      expect([e.code, e.exitCode, e.details?.key]).toEqual([code, 3, key])
    })
  }

  it('keys each in range whose products are not (one token of K/V, one layer of state) → HPD_MODEL_SIZE_LIMIT', () => {
    const kv = thrown(() => parseModelConfig({...tinyLlama, num_attention_heads: 4096, num_key_value_heads: 4096, head_dim: 4096}))
    expect([kv.code, kv.exitCode]).toEqual(['HPD_MODEL_SIZE_LIMIT', 3])
    const state = thrown(() => parseModelConfig({...tinyHybrid, mamba_num_heads: 4096, mamba_head_dim: 4096, ssm_state_size: 4096, n_groups: 1}))
    expect(state.code).toBe('HPD_MODEL_SIZE_LIMIT')
  })

  it('published models sit far below every limit', () => {
    const spec = parseModelConfig(nemotron8b)
    expect(kvElementsPerToken(spec)).toBeLessThan(CONFIG_LIMITS.kvElementsPerToken / 1000)
    expect(stateElementsPerLayer(spec)).toBeLessThan(CONFIG_LIMITS.stateElementsPerLayer / 1000)
  })

  it('values nested 100,000 levels deep are described, never walked', () => {
    let deep: unknown = 1
    for (let i = 0; i < 100_000; i++) deep = [deep]
    const e = thrown(() => parseModelConfig({...tinyLlama, head_dim: deep}))
    expect(e.message).toContain('an array (1 item)')
    expect(() => JSON.stringify(e.toJSON())).not.toThrow()
  })

  it('max_position_embeddings: an integer ≥ 2, capped at the served-context limit', () => {
    expect(contextLength(parseModelConfig({...tinyLlama, max_position_embeddings: 2 ** 40}))).toBe(CONFIG_LIMITS.contextTokens)
    expect(contextLength(parseModelConfig(tinyLlama))).toBe(8192)
    const e = thrown(() => contextLength(parseModelConfig({...tinyLlama, max_position_embeddings: 'long'})))
    expect([e.code, e.details?.key]).toEqual(['HPD_MODEL_BAD_KEY', 'max_position_embeddings'])
  })

  it('a Zamba2 width that does not split over its heads needs attention_head_dim (no fractional head dim)', () => {
    const zamba = {
      architectures: ['Zamba2ForCausalLM'],
      hidden_size: 100,
      num_attention_heads: 3,
      vocab_size: 64,
      layers_block_type: ['mamba', 'hybrid'],
      n_mamba_heads: 4,
      mamba_headdim: 50,
      mamba_ngroups: 1,
      mamba_d_state: 16,
      mamba_d_conv: 4,
    }
    expect(thrown(() => parseModelConfig(zamba)).code).toBe('HPD_MODEL_MISSING_KEY')
    expect(parseModelConfig({...zamba, attention_head_dim: 64}).attention?.headDim).toBe(64)
  })

  it('whatever fails is an HpdError with exit 3', () => {
    for (const value of [null, true, -1, 0, 0.5, -0, 1e308, Number.MAX_VALUE, '', [], {}]) {
      try {
        parseModelConfig({...tinyHybrid, mamba_num_heads: value})
      } catch (error) {
        expect(error).toBeInstanceOf(HpdError)
        expect((error as HpdError).exitCode).toBe(3)
      }
    }
  })
})
