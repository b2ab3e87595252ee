import {existsSync, readdirSync} from 'node:fs'
import {join} from 'node:path'

import {ModelConfigError} from '../errors.js'
import {FILE_LIMITS, readModelJson} from '../model/index.js'
import type {WeightArray} from '../native/kernels-binding.js'
import {widenBf16} from './bf16.js'
import type {ModelDims} from './model-dims.js'
import {readSafetensorsHeader, readTensor, type SafetensorsHeader} from './safetensors.js'
import {expectedTensors} from './weight-names.js'

/**
 * A full (unsharded) checkpoint, by tensor name; shapes were checked against the config. Tensors
 * are held in their checkpoint dtype: fp32 (`Float32Array`), or bf16 bit patterns (`Uint16Array`)
 * which the kernels widen on the fly (fp16 is widened on load).
 */
export interface Weights {
  readonly tensors: ReadonlyMap<string, WeightArray>
  /** The tensor as held (fp32 or bf16). */
  get(name: string): WeightArray
  /** The tensor as fp32 (the same array when held as fp32; a widened copy, memoised, for bf16). */
  f32(name: string): Float32Array
  has(name: string): boolean
  /** Bytes held by the tensors. */
  readonly bytes: number
}

export function weightsFromMap(tensors: ReadonlyMap<string, WeightArray>): Weights {
  const widened = new Map<string, Float32Array>()
  const get = (name: string): WeightArray => {
    const t = tensors.get(name)
    if (!t) throw new ModelConfigError('HPD_WEIGHTS_MISSING_TENSOR', `the checkpoint has no tensor ${name}`, {details: {tensor: name}})
    return t
  }
  return {
    tensors,
    get,
    f32(name) {
      const t = get(name)
      if (t instanceof Float32Array) return t
      let w = widened.get(name)
      if (!w) {
        w = widenBf16(t)
        widened.set(name, w)
      }
      return w
    },
    has: (name) => tensors.has(name),
    bytes: [...tensors.values()].reduce((n, t) => n + t.byteLength, 0),
  }
}

export interface LoadWeightsOptions {
  /**
   * `auto` (default): bf16 tensors stay bf16 in memory (half the bytes; the kernels compute in
   * fp32 on widened values, so results equal the fp32 path up to summation order); `fp32`: widen
   * everything on load.
   */
  readonly weightDtype?: 'auto' | 'fp32'
}

/**
 * Loads `<dir>/model.safetensors`, or the shards listed in `model.safetensors.index.json`, or
 * every `*.safetensors` in the directory, and checks each tensor the model needs is present
 * with the shape the config implies. Errors name the tensor and file. Tensors the model does not
 * use (vision towers, MTP heads) are not read.
 */
export function loadWeights(dir: string, dims: ModelDims, options: LoadWeightsOptions = {}): Weights {
  const headers = openShards(dir)
  const byName = new Map<string, SafetensorsHeader>()
  for (const h of headers) for (const name of h.entries.keys()) byName.set(name, h)
  const tensors = new Map<string, WeightArray>()
  const keepBf16 = (options.weightDtype ?? 'auto') === 'auto'
  for (const want of expectedTensors(dims)) {
    const header = byName.get(want.name)
    if (!header) {
      throw new ModelConfigError('HPD_WEIGHTS_MISSING_TENSOR', `tensor ${want.name} is missing from the checkpoint in ${dir}`, {
        hint: 'The checkpoint does not match config.json (wrong family or layer pattern?).',
        details: {tensor: want.name, dir},
      })
    }
    const got = header.entries.get(want.name)!.shape
    if (got.length !== want.shape.length || got.some((v, i) => v !== want.shape[i])) {
      throw new ModelConfigError(
        'HPD_WEIGHTS_SHAPE_MISMATCH',
        `tensor ${want.name} in ${header.path} has shape [${got.join(', ')}], config.json implies [${want.shape.join(', ')}]`,
        {hint: 'config.json and the weights disagree; check hidden_size, heads and the layer pattern.', details: {tensor: want.name, got, expected: want.shape}},
      )
    }
    tensors.set(want.name, readTensor(header, want.name, {keepBf16}))
  }
  return weightsFromMap(tensors)
}

function openShards(dir: string): SafetensorsHeader[] {
  const index = join(dir, 'model.safetensors.index.json')
  if (existsSync(index)) {
    const corrupt = (what: string) =>
      new ModelConfigError('HPD_WEIGHTS_CORRUPT', `${index} is not a valid safetensors index (${what})`, {
        hint: 'Download model.safetensors.index.json again with the shards it belongs to (or remove it to load every *.safetensors file in the directory).',
        details: {path: index},
      })
    const parsed = readModelJson(index, {what: 'model.safetensors.index.json', maxBytes: FILE_LIMITS.indexBytes}, (where) => corrupt(`not JSON${where}`))
    const map = (parsed as {weight_map?: unknown} | null)?.weight_map
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw corrupt('no `weight_map` object')
    const values = Object.values(map)
    // Shard names must be plain file names in this directory (no `../`, no absolute paths).
    if (values.some((f) => typeof f !== 'string' || f === '' || f.includes('/') || f.includes('\\') || f === '.' || f === '..')) {
      throw corrupt('`weight_map` names a shard that is not a file name in the model directory')
    }
    const files = [...new Set(values as string[])].sort()
    return files.map((f) => {
      const path = join(dir, f)
      if (!existsSync(path)) {
        throw new ModelConfigError('HPD_WEIGHTS_MISSING_FILE', `${index} names shard ${f}, which does not exist`, {
          hint: `The download looks incomplete: fetch ${f} again (e.g. \`huggingface-cli download <repo> ${f} --local-dir <dir>\`), so every shard the index names is in the model directory.`,
          details: {path, shard: f},
        })
      }
      return readSafetensorsHeader(path)
    })
  }
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort() : []
  if (files.length === 0) {
    throw new ModelConfigError('HPD_WEIGHTS_MISSING_FILE', `no *.safetensors files in ${dir}`, {
      hint: 'Point --model at a Hugging Face model directory (config.json + safetensors), or use --model tiny.',
      details: {dir},
    })
  }
  return files.map((f) => readSafetensorsHeader(join(dir, f)))
}
