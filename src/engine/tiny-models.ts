import {existsSync, mkdirSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {join} from 'node:path'

import {findPreset, parseModelConfig} from '../model/index.js'
import {dimsFromSpec, type ModelDims} from './model-dims.js'
import {Rng, streamSeed} from './random.js'
import {type SafetensorsDtype, writeSafetensors, type TensorToWrite} from './safetensors.js'
import {BYTE_TOKENIZER_FILE} from './tokenizer.js'
import {expectedTensors} from './weight-names.js'

/** The seed the built-in tiny models are generated from (changing it changes every tiny model). */
export const TINY_SEED = 20260525

/** Bumped whenever generateTensor changes, so a cached directory from an older generator is not reused. */
export const GENERATOR_VERSION = 1

/** Where generated models live: $HPD_CACHE_DIR/models, else ~/.cache/hpd/models. */
export function modelCacheDir(): string {
  return join(process.env.HPD_CACHE_DIR ?? join(homedir(), '.cache', 'hpd'), 'models')
}

/**
 * Values of one tensor, from its name alone (seeded per name). The scales keep every layer's
 * output O(1) under the pre-norms and make the logits spread (greedy decoding then varies with
 * the context instead of repeating one token):
 * - linear [out, in]: N(0, 1/in); lm_head N(0, 4/in) (rows >= 256 zero); embeddings N(0, 1)
 * - norms: 1 + N(0, 0.1²); A_log = log U(1, 16); dt_bias = softplus⁻¹(logU(1e-3, 1e-1)); D = 1
 * - conv1d weight N(0, 1/K), bias N(0, 0.1²)
 */
export function generateTensor(name: string, shape: readonly number[], seed: number): Float32Array {
  const rng = new Rng(streamSeed(seed, name))
  const n = shape.reduce((a, b) => a * b, 1)
  const out = new Float32Array(n)
  const fill = (f: () => number) => {
    for (let i = 0; i < n; i++) out[i] = f()
  }
  if (name.endsWith('A_log')) fill(() => Math.log(1 + 15 * rng.next()))
  else if (name.endsWith('dt_bias')) {
    fill(() => {
      const dt = Math.exp(Math.log(1e-3) + rng.next() * (Math.log(1e-1) - Math.log(1e-3)))
      return dt + Math.log(-Math.expm1(-dt))
    })
  } else if (name.endsWith('.D')) fill(() => 1)
  else if (name.endsWith('conv1d.weight')) fill(() => rng.normal() / Math.sqrt(shape[2]))
  else if (name.endsWith('conv1d.bias')) fill(() => 0.1 * rng.normal())
  else if (shape.length === 1) fill(() => 1 + 0.1 * rng.normal())
  else if (name.includes('embed')) fill(() => rng.normal())
  else if (name === 'lm_head.weight') {
    // Byte tokenizer models: rows of the special/unused ids (>= 256) are zero, so their logit is
    // 0 and generated text is made of bytes (eos only when every byte scores below zero).
    fill(() => (2 * rng.normal()) / Math.sqrt(shape[1]))
    if (shape[0] > 256) out.fill(0, 256 * shape[1])
  }
  else fill(() => rng.normal() / Math.sqrt(shape[1]))
  return out
}

/**
 * Writes a complete model directory (config.json, model.safetensors (fp32 unless `dtype`) or shards, byte
 * tokenizer marker) for `config` with weights generated from `seed`. Written into a temporary
 * sibling and renamed, so a concurrent reader never sees half a model.
 */
export function writeGeneratedModel(
  dir: string,
  config: Readonly<Record<string, unknown>>,
  seed: number,
  options: {shards?: number; dtype?: SafetensorsDtype} = {},
): ModelDims {
  const dims = dimsFromSpec(parseModelConfig(config, {name: dir}))
  const tensors: TensorToWrite[] = expectedTensors(dims).map((t) => ({name: t.name, shape: t.shape, data: generateTensor(t.name, t.shape, seed), dtype: options.dtype}))
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`
  mkdirSync(tmp, {recursive: true})
  writeFileSync(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`)
  writeFileSync(join(tmp, BYTE_TOKENIZER_FILE), `${JSON.stringify({type: 'byte', bos: 256, eos: 257, pad: 258, seed})}\n`)
  const shards = Math.max(1, options.shards ?? 1)
  if (shards === 1) {
    writeSafetensors(join(tmp, 'model.safetensors'), tensors)
  } else {
    const weightMap: Record<string, string> = {}
    let totalBytes = 0
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`
      const part = tensors.filter((_t, i) => i % shards === s)
      for (const t of part) {
        weightMap[t.name] = file
        totalBytes += t.data.byteLength
      }
      writeSafetensors(join(tmp, file), part)
    }
    writeFileSync(join(tmp, 'model.safetensors.index.json'), `${JSON.stringify({metadata: {total_size: totalBytes}, weight_map: weightMap}, null, 2)}\n`)
  }
  try {
    renameSync(tmp, dir)
  } catch (error) {
    rmSync(tmp, {recursive: true, force: true})
    if (!existsSync(join(dir, 'config.json'))) throw error
  }
  return dims
}

/**
 * The directory of a built-in tiny preset, generating it on first use. Returns undefined when
 * `name` is not a tiny preset (then it is a path or a preset without weights).
 */
export function ensureTinyModel(name: string): string | undefined {
  const preset = findPreset(name)
  if (!preset || !preset.name.startsWith('tiny')) return undefined
  const dir = join(modelCacheDir(), `${preset.name}-seed${TINY_SEED}-g${GENERATOR_VERSION}`)
  if (!existsSync(join(dir, 'config.json'))) {
    mkdirSync(modelCacheDir(), {recursive: true})
    writeGeneratedModel(dir, preset.config, TINY_SEED)
  }
  return dir
}
