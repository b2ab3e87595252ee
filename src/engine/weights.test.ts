import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {findPreset, parseModelConfig} from '../model/index.js'
import {dimsFromSpec} from './model-dims.js'
import {readSafetensorsHeader, readTensorF32, writeSafetensors} from './safetensors.js'
import {generateTensor, writeGeneratedModel} from './tiny-models.js'
import {expectedTensors} from './weight-names.js'
import {loadWeights} from './weights.js'

const root = mkdtempSync(join(tmpdir(), 'hpd-weights-'))
afterAll(() => rmSync(root, {recursive: true, force: true}))

const config = findPreset('tiny-hybrid')!.config
const dims = dimsFromSpec(parseModelConfig(config))

describe('safetensors', () => {
  it('writes a model directory (single file and 3 shards + index) that loads back bit-exactly', () => {
    for (const shards of [1, 3]) {
      const dir = join(root, `model-${shards}`)
      writeGeneratedModel(dir, config, 7, {shards})
      const w = loadWeights(dir, dims)
      const expected = expectedTensors(dims)
      expect(w.tensors.size).toBe(expected.length)
      for (const t of expected) {
        const want = generateTensor(t.name, t.shape, 7)
        expect(Buffer.from(w.get(t.name).buffer).equals(Buffer.from(want.buffer)), t.name).toBe(true)
      }
    }
  })

  it('reads bf16 (exact widening) and fp16', () => {
    const path = join(root, 'half.safetensors')
    const values = Float32Array.of(1, -2.5, 0.15625, 65504, 3.0e-5, 0)
    writeSafetensors(path, [
      {name: 'a', shape: [6], data: values, dtype: 'BF16'},
      {name: 'b', shape: [2, 3], data: values, dtype: 'F16'},
    ])
    const h = readSafetensorsHeader(path)
    const bf = readTensorF32(h, 'a')
    expect(Array.from(bf.subarray(0, 3))).toEqual([1, -2.5, 0.15625])
    const f16 = readTensorF32(h, 'b')
    expect(Array.from(f16.subarray(0, 4))).toEqual([1, -2.5, 0.15625, 65504])
    expect(Math.abs(f16[4] - 3.0e-5) / 3.0e-5).toBeLessThan(1e-3) // subnormal in fp16
  })

  it('names the file and tensor when an input is corrupt', () => {
    const dir = join(root, 'model-1')
    const file = join(dir, 'model.safetensors')
    const good = readFileSync(file)
    const bad = join(root, 'bad')
    writeGeneratedModel(bad, config, 7)
    writeFileSync(join(bad, 'model.safetensors'), good.subarray(0, good.length - 100))
    expect(() => loadWeights(bad, dims)).toThrow(expect.objectContaining({code: 'HPD_WEIGHTS_CORRUPT', message: expect.stringMatching(/model\.safetensors: tensors end at byte \d+ but the file has \d+ bytes/)}))

    // a config with a wider MLP than the weights: shape mismatch names the tensor
    const wider = dimsFromSpec(parseModelConfig({...config, intermediate_size: 1024}))
    expect(() => loadWeights(dir, wider)).toThrow(
      expect.objectContaining({code: 'HPD_WEIGHTS_SHAPE_MISMATCH', message: expect.stringContaining('tensor backbone.layers.3.mixer.up_proj.weight')}),
    )
    // a config with one more layer: the missing tensor is named
    const longer = dimsFromSpec(parseModelConfig({...config, hybrid_override_pattern: 'M*M-M*M-M', num_hidden_layers: 9}))
    expect(() => loadWeights(dir, longer)).toThrow(expect.objectContaining({code: 'HPD_WEIGHTS_MISSING_TENSOR', message: expect.stringContaining('backbone.layers.8.norm.weight')}))
    expect(() => loadWeights(join(root, 'nothing-here'), dims)).toThrow(expect.objectContaining({code: 'HPD_WEIGHTS_MISSING_FILE', hint: expect.any(String)}))
    // a sharded checkpoint whose index names a shard that is not there (an interrupted download)
    const sharded = join(root, 'sharded-missing')
    writeGeneratedModel(sharded, config, 7, {shards: 2})
    const index = JSON.parse(readFileSync(join(sharded, 'model.safetensors.index.json'), 'utf8')) as {weight_map: Record<string, string>}
    const lost = [...new Set(Object.values(index.weight_map))].sort().at(-1)!
    rmSync(join(sharded, lost))
    expect(() => loadWeights(sharded, dims)).toThrow(
      expect.objectContaining({code: 'HPD_WEIGHTS_MISSING_FILE', exitCode: 3, message: expect.stringContaining(`names shard ${lost}, which does not exist`), hint: expect.stringContaining(`fetch ${lost} again`)}),
    )
    writeFileSync(join(sharded, 'model.safetensors.index.json'), '{"metadata": {}}')
    expect(() => loadWeights(sharded, dims)).toThrow(expect.objectContaining({code: 'HPD_WEIGHTS_CORRUPT', hint: expect.stringContaining('index.json again')}))
    writeFileSync(join(bad, 'model.safetensors'), Buffer.from([1, 2, 3]))
    expect(() => loadWeights(bad, dims)).toThrow(expect.objectContaining({code: 'HPD_WEIGHTS_CORRUPT', message: expect.stringContaining('shorter than the 8-byte header length')}))
  })
})

describe('a Hugging Face directory given by path', () => {
  it('bf16 shards load (widened to fp32) and generate like the fp32 model', async () => {
    const {generate} = await import('./generate.js')
    const llama = findPreset('tiny-llama')!.config
    const fp32 = join(root, 'llama-fp32')
    const bf16 = join(root, 'llama-bf16')
    writeGeneratedModel(fp32, {...llama, _name_or_path: 'test/llama-fp32'}, 5)
    writeGeneratedModel(bf16, {...llama, torch_dtype: 'bfloat16', _name_or_path: 'test/llama-bf16'}, 5, {shards: 2, dtype: 'BF16'})
    const run = (model: string) => generate({model, prompt: 'bf16', maxTokens: 6, tp: 2, temperature: 0, topP: 1, topK: 0, seed: 0, ignoreEos: true})
    const a = run(fp32)
    const b = run(bf16)
    expect(b.model).toBe('test/llama-bf16')
    expect(b.tokenIds).toHaveLength(6)
    // bf16 rounding of the weights moves the logits a little; the first greedy token survives it
    expect(b.tokenIds[0]).toBe(a.tokenIds[0])
  })
})
