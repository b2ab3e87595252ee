import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {thrown} from '../testing/thrown.js'
import {HpdError, ModelConfigError, UsageError} from '../errors.js'
import {planEngineLayout} from '../layout/index.js'
import {layersWith, loadModelSpec, parseModelConfig, PRESETS, stateLayers} from './index.js'

const fixtures = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'configs')
const fixture = (name: string): string => join(fixtures, name)


describe('presets', () => {
  it('every preset parses and records where its values come from', () => {
    for (const p of PRESETS) {
      const spec = loadModelSpec(p.name)
      expect(spec.source).toMatchObject({kind: 'preset', preset: p.name})
      expect(p.builtFrom.length).toBeGreaterThan(20)
    }
    expect(loadModelSpec('tiny').name).toBe('tiny-hybrid')
  })

  it('Nemotron-H-8B: 24 Mamba2, 4 attention (7, 18, 29, 40), 24 MLP; SSM state fp32 by default', () => {
    const m = loadModelSpec('nemotron-h-8b')
    expect([stateLayers(m).length, layersWith(m, 'attention'), layersWith(m, 'mlp').length]).toEqual([24, [7, 18, 29, 40], 24])
    expect(m.stateMixer).toEqual({kind: 'mamba2', numHeads: 128, headDim: 64, intermediateSize: 8192, nGroups: 8, stateSize: 128, convKernel: 4, configKeys: {numHeads: 'mamba_num_heads', nGroups: 'n_groups'}})
    expect(m.mambaSsmDtype).toBe('fp32')
  })

  it('Nemotron-Nano-9B-v2: 27 Mamba2, attention at 14/21/30/39, 25 MLP', () => {
    const m = loadModelSpec('nemotron-nano-9b-v2')
    expect([stateLayers(m).length, layersWith(m, 'attention'), layersWith(m, 'mlp').length]).toEqual([27, [14, 21, 30, 39], 25])
  })

  it('tiny presets carry the project-fixed values', () => {
    const t = loadModelSpec('tiny-hybrid')
    expect(t.config).toMatchObject({hidden_size: 256, hybrid_override_pattern: 'M*M-M*M-', vocab_size: 384, chunk_size: 64, intermediate_size: 768, torch_dtype: 'float32'})
    expect(t.attention).toEqual({numHeads: 8, numKvHeads: 4, headDim: 32})
    expect(loadModelSpec('tiny-hybrid-g1').stateMixer).toMatchObject({nGroups: 1})
    const l = loadModelSpec('tiny-llama')
    expect([l.family, l.isHybrid, l.layers.length, l.stateMixer]).toEqual(['llama', false, 4, undefined])
  })

  it('the CPU backend gives the tiny hybrids a logical block larger than the kernel block at TP 1, 2, 4', () => {
    for (const tp of [1, 2, 4]) {
      const e = planEngineLayout({model: loadModelSpec('tiny-hybrid'), tp, attentionBackend: 'cpu'})
      expect(e.blocksPerLogical).toBeGreaterThan(1)
      expect([16, 32, 64]).toContain(e.kernelBlockSize)
    }
  })
})

describe('families', () => {
  it('Granite-4.0-H: layer_types, MoE in every layer, n_groups 1', () => {
    const m = loadModelSpec(fixture('granite-4.0-h-shaped.json'))
    expect(m.family).toBe('granite-4.0-h')
    expect(m.layers[3].kinds).toEqual(['attention', 'moe'])
    expect(m.stateMixer).toMatchObject({kind: 'mamba2', nGroups: 1, intermediateSize: 512})
    expect(m.mambaSsmDtype).toBe('auto')
    // TP errors name the family's own key
    let key: unknown
    try {
      planEngineLayout({model: parseModelConfig({...m.config, num_attention_heads: 32}), tp: 32})
    } catch (error) {
      key = (error as HpdError).details?.key
    }
    expect(key).toBe('mamba_n_heads')
  })

  it('Granite-4.0-H without num_local_experts has MoE layers (HF default 8); 0 experts means the shared MLP only', () => {
    const {num_local_experts: _n, ...rest} = loadModelSpec(fixture('granite-4.0-h-shaped.json')).config
    expect(parseModelConfig(rest).layers[0].kinds).toEqual(['mamba2', 'moe'])
    expect(parseModelConfig({...rest, num_local_experts: 0}).layers[3].kinds).toEqual(['attention', 'mlp'])
  })

  it('Qwen3-Next: MoE where (layer + 1) % decoder_sparse_step == 0 and not in mlp_only_layers; without experts (Qwen3.5 dense) an MLP', () => {
    const base = loadModelSpec(fixture('qwen3-next-shaped.json')).config
    const m = parseModelConfig({...base, decoder_sparse_step: 2, mlp_only_layers: [3]})
    expect(m.layers.map((l) => l.kinds[1])).toEqual(['mlp', 'moe', 'mlp', 'mlp', 'mlp', 'moe', 'mlp', 'moe'])
    const {num_experts: _e, ...dense} = base
    expect(parseModelConfig(dense).layers.every((l) => l.kinds[1] === 'mlp')).toBe(true)
  })

  it('Bamba: attention at attn_layer_indices', () => {
    const m = loadModelSpec(fixture('bamba-shaped.json'))
    expect([m.family, layersWith(m, 'attention')]).toEqual(['bamba', [2, 5]])
  })

  it('Zamba2: hybrid layers keep both a Mamba2 state and a KV cache', () => {
    const m = loadModelSpec(fixture('zamba2-shaped.json'))
    expect(m.layers[2].kinds).toEqual(['mamba2', 'attention', 'mlp'])
    expect(m.attention).toEqual({numHeads: 8, numKvHeads: 8, headDim: 32})
    const e = planEngineLayout({model: m, tp: 1})
    expect(e.layers[2].caches.map((c) => c.kind)).toEqual(['attention', 'state'])
  })

  it('Falcon-H1: attention and Mamba2 in parallel in every layer; one tensor per layer', () => {
    const m = loadModelSpec(fixture('falcon-h1-shaped.json'))
    expect(m.layers.every((l) => l.kinds.includes('attention') && l.kinds.includes('mamba2'))).toBe(true)
    const e = planEngineLayout({model: m, tp: 2})
    expect([e.numTensors, e.groups.length]).toEqual([4, 2])
    expect(e.ranks[1].mamba!.conv.bcReplicated).toBe(true)
    expect(e.layers[1].caches).toEqual([{kind: 'attention', group: 0, tensorIndex: 1}, {kind: 'state', group: 1, tensorIndex: 1}])
  })

  it('Jamba: Mamba1 conv holds x only, SSM sharded on channels', () => {
    const m = loadModelSpec(fixture('jamba-shaped.json'))
    expect(layersWith(m, 'attention')).toEqual([4])
    expect(layersWith(m, 'moe')).toEqual([1, 3, 5, 7])
    const e = planEngineLayout({model: m, tp: 2})
    const mamba = e.ranks[0].mamba!
    expect([mamba.conv.xChannels, mamba.conv.bBytes, mamba.conv.cBytes]).toEqual([128, 0, 0])
    expect(mamba.ssm.shape).toEqual([128, 16])
    expect(e.ranks[0].parts.map((p) => p.part)).toEqual(['K', 'V', 'x', 'ssm'])
  })

  it('Qwen3-Next: full attention every 4th layer, GDN conv [Q | K | V], state (Hv, dv, dk)', () => {
    const m = loadModelSpec(fixture('qwen3-next-shaped.json'))
    expect(layersWith(m, 'attention')).toEqual([3, 7])
    const e = planEngineLayout({model: m, tp: 2})
    const mamba = e.ranks[0].mamba!
    expect([mamba.conv.xChannels, mamba.conv.bChannels, mamba.conv.cChannels]).toEqual([64, 64, 128])
    expect(mamba.ssm.shape).toEqual([4, 32, 32])
  })

  it('plain transformers get the non-hybrid layout: one tensor per layer, K plane then V plane, block 16', () => {
    for (const [file, family] of [['qwen2-shaped.json', 'qwen2'], ['mistral-shaped.json', 'mistral']] as const) {
      const m = loadModelSpec(fixture(file))
      const e = planEngineLayout({model: m, tp: 1})
      expect([m.family, m.isHybrid, e.kvLayout, e.numTensors, e.groups.length, e.logicalBlockSize, e.blocksPerLogical, e.paddingBytes]).toEqual([family, false, 'kv-first', 4, 1, 16, 1, 0])
      expect(e.pageBytes).toBe(16 * 2 * m.attention!.numKvHeads * m.attention!.headDim * 2)
    }
  })

  it('a model directory is read through its config.json', () => {
    expect(loadModelSpec(join(fixtures, 'nemotron-h-dir')).stateMixer).toMatchObject({nGroups: 2, convKernel: 4})
  })
})

describe('bad configs', () => {
  it('unknown architecture → ModelConfigError naming `architectures` (not quoting the file)', () => {
    const e = thrown(() => loadModelSpec(fixture('bad-unknown-arch.json')))
    expect(e).toBeInstanceOf(ModelConfigError)
    expect([e.code, e.exitCode]).toEqual(['HPD_MODEL_UNKNOWN_ARCHITECTURE', 3])
    expect(e.message).toContain('`architectures`')
    expect(JSON.stringify(e.toJSON())).not.toContain('GPT2LMHeadModel')
    expect(e.hint).toContain('NemotronHForCausalLM')
  })

  it('missing key → names the key', () => {
    const e = thrown(() => loadModelSpec(fixture('bad-missing-mamba-heads.json')))
    expect([e.code, e.details?.key]).toEqual(['HPD_MODEL_MISSING_KEY', 'mamba_num_heads'])
  })

  it('contradictory keys → names both values', () => {
    const e = thrown(() => loadModelSpec(fixture('bad-contradictory-expand.json')))
    expect(e.code).toBe('HPD_MODEL_CONTRADICTORY_KEYS')
    expect(e.message).toContain('mamba_expand')
    expect(e.message).toContain('64')
  })

  it('bad pattern character, wrong layer count, bad value type', () => {
    const base = PRESETS.find((p) => p.name === 'tiny-hybrid')!.config
    expect(thrown(() => parseModelConfig({...base, hybrid_override_pattern: 'M*X-'})).message).toContain('layer 2 is another character')
    expect(thrown(() => parseModelConfig({...base, num_hidden_layers: 9})).code).toBe('HPD_MODEL_CONTRADICTORY_KEYS')
    expect(thrown(() => parseModelConfig({...base, head_dim: '32'})).details).toMatchObject({key: 'head_dim'})
    expect(thrown(() => parseModelConfig({...base, torch_dtype: 'int4'})).code).toBe('HPD_MODEL_BAD_DTYPE')
    expect(thrown(() => parseModelConfig([])).code).toBe('HPD_MODEL_NOT_AN_OBJECT')
  })

  it('heads that TP cannot split → ModelConfigError naming the key', () => {
    const tiny = loadModelSpec('tiny-hybrid')
    const e = thrown(() => planEngineLayout({model: tiny, tp: 3}))
    expect([e.code, e.exitCode, e.details?.key]).toEqual(['HPD_MODEL_TP_INDIVISIBLE', 3, 'num_attention_heads'])
    expect(thrown(() => planEngineLayout({model: tiny, tp: 8})).details?.key).toBe('n_groups')
  })

  it('unreadable inputs: bad JSON is a config error, a missing path a usage error', () => {
    expect(thrown(() => loadModelSpec(fixture('bad-json.json'))).code).toBe('HPD_MODEL_BAD_JSON')
    const e = thrown(() => loadModelSpec('no-such-preset'))
    expect(e).toBeInstanceOf(UsageError)
    expect(e.hint).toContain('nemotron-h-8b')
  })
})
