// The CPU engine's cache geometry is decided once (src/layout/cpu-engine.ts, CPU_ENGINE_LAYOUT):
// the engine lays its cache out with it, `auto` dtypes under the `cpu` attention backend resolve to
// it (so inspect-layout and bench transfer show what the engine allocates), and serving's layout
// options are the same values. bf16 configs are the case that used to drift (bf16 vs fp32 caches).
import {describe, expect, it} from 'vitest'

import {compatibilityHash, planEngineLayout, planLayout, resolveDtypes} from '../layout/index.js'
import {findPreset, loadModelSpec, parseModelConfig} from '../model/index.js'
import {engineLayout} from './engine.js'

/** Every engine family as a bf16 checkpoint with the config's own state dtypes (mamba_ssm_cache_dtype fp32 where it has one). */
const BF16 = ['tiny-hybrid', 'tiny-hybrid-kv1', 'tiny-granite-h', 'tiny-falcon-h1', 'tiny-qwen3-next', 'tiny-nemotron-h-moe', 'tiny-llama'].map((name) => {
  const config = {...findPreset(name)!.config, torch_dtype: 'bfloat16'}
  return [name, parseModelConfig(config, {name: `${name} (bf16)`})] as const
})

describe('one decision for the CPU engine\'s cache layout', () => {
  it.each(BF16)('%s (bf16): auto dtypes under the cpu backend are the engine\'s fp32, at TP 1 and 2', (_name, spec) => {
    expect(resolveDtypes(spec, {attentionBackend: 'cpu'})).toEqual({kv: 'fp32', conv: 'fp32', ssm: 'fp32'})
    for (const tp of [1, 2]) {
      const engine = engineLayout(spec, {tp})
      const shown = planEngineLayout({model: spec, tp, attentionBackend: 'cpu'})
      expect(shown).toEqual(engine)
      expect(compatibilityHash(spec, shown)).toBe(compatibilityHash(spec, engine))
    }
    const pair = planLayout({model: spec, prefillTp: 1, decodeTp: 2, attentionBackend: 'cpu'})
    expect([pair.prefill, pair.decode]).toEqual([engineLayout(spec, {tp: 1}), engineLayout(spec, {tp: 2})])
  })

  it('vLLM\'s backends keep the checkpoint\'s dtypes; explicit dtypes win under cpu too', () => {
    const moe = BF16.find(([n]) => n === 'tiny-nemotron-h-moe')![1]
    expect(resolveDtypes(moe, {attentionBackend: 'flash-attn'})).toEqual({kv: 'bf16', conv: 'bf16', ssm: 'fp32'})
    expect(resolveDtypes(moe, {})).toEqual({kv: 'bf16', conv: 'bf16', ssm: 'fp32'})
    expect(resolveDtypes(moe, {attentionBackend: 'cpu', kvCacheDtype: 'bf16', mambaConvDtype: 'fp16'})).toEqual({kv: 'bf16', conv: 'fp16', ssm: 'fp32'})
    expect(resolveDtypes(loadModelSpec('nemotron-h-8b'), {attentionBackend: 'cpu', mambaSsmDtype: 'bf16'})).toEqual({kv: 'fp32', conv: 'fp32', ssm: 'bf16'})
  })

  it('the reviewer\'s numbers: a bf16 Nemotron-H MoE config is logical 160 / kernel 32 / page 81920 B under cpu (288 / 32 / 73728 with vLLM\'s bf16 dtypes)', () => {
    const moe = BF16.find(([n]) => n === 'tiny-nemotron-h-moe')![1]
    const cpu = planEngineLayout({model: moe, tp: 1, attentionBackend: 'cpu'})
    expect([cpu.logicalBlockSize, cpu.kernelBlockSize, cpu.pageBytes]).toEqual([160, 32, 81920])
    const vllmDtypes = planEngineLayout({model: moe, tp: 1, attentionBackend: 'cpu', kvCacheDtype: 'bf16', mambaConvDtype: 'bf16'})
    expect([vllmDtypes.logicalBlockSize, vllmDtypes.kernelBlockSize, vllmDtypes.pageBytes]).toEqual([288, 32, 73728])
  })
})
