import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {publishedConfig, writePublishedCheckpoint} from '../testing/published-checkpoint.js'
import {widenBf16} from './bf16.js'
import {generate} from './generate.js'
import {loadModel} from './load-model.js'
import {readSafetensorsHeader, readTensor, type TensorToWrite, writeSafetensors} from './safetensors.js'

/**
 * Loading each family from a directory laid out as its published checkpoint (config.json keys,
 * tensor names and shapes, bf16 safetensors in shards with model.safetensors.index.json, unused
 * vision / MTP tensors beside them, tokenizer.json + chat template): it loads with bf16 kept,
 * and a missing or misshapen tensor is a ModelConfigError naming the tensor.
 */
const root = mkdtempSync(join(tmpdir(), 'hpd-family-loader-'))
afterAll(() => rmSync(root, {recursive: true, force: true}))

/** Rewrites the shard holding `name` with the tensor dropped, or replaced by `[rows − 1, ...]` when `shrink`. */
function editTensor(dir: string, name: string, shrink: boolean): void {
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as {weight_map: Record<string, string>}
  const path = join(dir, index.weight_map[name])
  const header = readSafetensorsHeader(path)
  const tensors: TensorToWrite[] = []
  for (const entry of header.entries.values()) {
    const raw = readTensor(header, entry.name, {keepBf16: true})
    const data = raw instanceof Uint16Array ? widenBf16(raw) : raw
    if (entry.name !== name) tensors.push({name: entry.name, shape: entry.shape, data, dtype: entry.dtype})
    else if (shrink) {
      const rowElems = entry.shape.slice(1).reduce((a, b) => a * b, 1)
      tensors.push({name, shape: [entry.shape[0] - 1, ...entry.shape.slice(1)], data: data.slice(rowElems), dtype: entry.dtype})
    }
  }
  writeSafetensors(path, tensors)
}

const CASES = [
  ['Granite-4.0-H', 'tiny-granite-h', 'as-is', 'model.layers.0.block_sparse_moe.input_linear.weight', 'model.layers.2.self_attn.k_proj.weight'],
  ['Falcon-H1', 'tiny-falcon-h1', 'as-is', 'model.layers.1.mamba.in_proj.weight', 'model.layers.0.feed_forward.gate_proj.weight'],
  ['Qwen3-Next', 'tiny-qwen3-next', 'as-is', 'model.layers.0.linear_attn.in_proj_qkvz.weight', 'model.layers.3.self_attn.q_norm.weight'],
  ['Qwen3.5', 'tiny-qwen3-next', 'qwen3.5', 'model.language_model.layers.0.linear_attn.in_proj_z.weight', 'model.language_model.layers.7.self_attn.q_proj.weight'],
  ['Nemotron-H MoE', 'tiny-nemotron-h-moe', 'as-is', 'backbone.layers.1.mixer.experts.3.up_proj.weight', 'backbone.layers.4.mixer.gate.e_score_correction_bias'],
] as const

describe.each(CASES)('%s in its published layout', (_family, preset, variant, missing, misshapen) => {
  const dir = join(root, `${preset}-${variant}`)

  it('loads: bf16 kept as bf16, unused vision / MTP tensors not read, tokenizer.json + chat template', () => {
    writePublishedCheckpoint(dir, publishedConfig(preset, variant))
    const m = loadModel(dir)
    expect([...m.weights.tensors.values()].every((t) => t instanceof Uint16Array)).toBe(true)
    expect([...m.weights.tensors.keys()].some((n) => n.startsWith('model.visual.') || n.startsWith('mtp.'))).toBe(false)
    expect(m.tokenizer.kind).toBe('huggingface')
    expect(m.tokenizer.encode('Hi', {addSpecialTokens: false})).toEqual([72, 105])
    expect(m.tokenizer.applyChatTemplate!([{role: 'user', content: 'Hi'}])).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n')
  })

  it('hpd generate runs it (chat template, TP 2, greedy) with the tokens the engine gives for the same prompt', () => {
    const r = generate({model: dir, prompt: 'Hi', maxTokens: 4, tp: 2, temperature: 0, topP: 1, topK: 0, seed: 0, ignoreEos: true, chat: true})
    expect(r.tokenIds).toHaveLength(4)
    expect(r.promptTokenIds.slice(0, 3)).toEqual([259, 117, 115]) // <|im_start|> u s (ChatML through tokenizer.json)
  })

  it('a missing tensor is HPD_WEIGHTS_MISSING_TENSOR naming it', () => {
    const copy = `${dir}-missing`
    writePublishedCheckpoint(copy, publishedConfig(preset, variant))
    editTensor(copy, missing, false)
    expect(() => loadModel(copy)).toThrow(expect.objectContaining({code: 'HPD_WEIGHTS_MISSING_TENSOR', exitCode: 3, message: expect.stringContaining(`tensor ${missing} is missing`)}))
  })

  it('a misshapen tensor is HPD_WEIGHTS_SHAPE_MISMATCH naming it and both shapes', () => {
    const copy = `${dir}-misshapen`
    writePublishedCheckpoint(copy, publishedConfig(preset, variant))
    editTensor(copy, misshapen, true)
    expect(() => loadModel(copy)).toThrow(expect.objectContaining({code: 'HPD_WEIGHTS_SHAPE_MISMATCH', exitCode: 3, message: expect.stringMatching(new RegExp(`tensor ${misshapen.replaceAll('.', '\\.')} in .* has shape \\[.*\\], config\\.json implies \\[`))}))
  })
})
