import {existsSync, mkdirSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {join} from 'node:path'

import {ENGINE_PRESETS, findPreset, parseModelConfig} from '../model/index.js'
import {dimsFromSpec, type ModelDims} from './model-dims.js'
import {Rng, streamSeed} from './random.js'
import {type SafetensorsDtype, writeSafetensors, type TensorToWrite} from './safetensors.js'
import {BYTE_TOKENIZER_FILE} from './tokenizer.js'
import {expectedTensors, type TensorInit} from './weight-names.js'

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
 * - linear [out, in] (and stacked experts [E, out, in]): N(0, 1/in); lm_head N(0, 4/in) (rows >= 256
 *   zero); embeddings N(0, 1) (a tied embedding: rows >= 256 zero, as the untied LM head)
 * - norms: 1 + N(0, 0.1²) (zero-centred norms N(0, 0.1²): the same effective scale); A_log =
 *   log U(1, 16); dt_bias = softplus⁻¹(logU(1e-3, 1e-1)); D = 1; router selection bias N(0, 0.05²)
 * - conv1d weight N(0, 1/K), bias N(0, 0.1²)
 */
export function generateTensor(name: string, shape: readonly number[], seed: number, init?: TensorInit): Float32Array {
  const rng = new Rng(streamSeed(seed, name))
  const n = shape.reduce((a, b) => a * b, 1)
  const out = new Float32Array(n)
  const fill = (f: () => number) => {
    for (let i = 0; i < n; i++) out[i] = f()
  }
  if (init === 'norm-zero') fill(() => 0.1 * rng.normal())
  else if (init === 'router-bias') fill(() => 0.05 * rng.normal())
  else if (init === 'embedding-bytes') {
    fill(() => rng.normal())
    if (shape[0] > 256) out.fill(0, 256 * shape[1])
  } else if (name.endsWith('A_log')) fill(() => Math.log(1 + 15 * rng.next()))
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
  else fill(() => rng.normal() / Math.sqrt(shape[shape.length - 1]))
  return out
}

export interface GeneratedModelOptions {
  /** Split the tensors over this many shards with a model.safetensors.index.json (default 1: model.safetensors). */
  readonly shards?: number
  /** Stored dtype of every tensor (default F32). */
  readonly dtype?: SafetensorsDtype
  /** Tensors the model does not use, stored beside its own (a vision tower, MTP heads). */
  readonly extraTensors?: readonly TensorToWrite[]
  /** Files written instead of the byte-tokenizer marker (tokenizer.json, tokenizer_config.json). */
  readonly files?: Readonly<Record<string, string>>
}

/**
 * Writes a complete model directory (config.json, model.safetensors (fp32 unless `dtype`) or shards, byte
 * tokenizer marker or the given tokenizer files) for `config` with weights generated from `seed`.
 * Written into a temporary sibling and renamed, so a concurrent reader never sees half a model.
 */
export function writeGeneratedModel(dir: string, config: Readonly<Record<string, unknown>>, seed: number, options: GeneratedModelOptions = {}): ModelDims {
  const dims = dimsFromSpec(parseModelConfig(config, {name: dir}))
  const tensors: TensorToWrite[] = [
    ...expectedTensors(dims).map((t) => ({name: t.name, shape: t.shape, data: generateTensor(t.name, t.shape, seed, t.init), dtype: options.dtype})),
    ...(options.extraTensors ?? []).map((t) => ({...t, dtype: t.dtype ?? options.dtype})),
  ]
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`
  mkdirSync(tmp, {recursive: true})
  writeFileSync(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`)
  if (options.files) for (const [name, text] of Object.entries(options.files)) writeFileSync(join(tmp, name), text)
  else writeFileSync(join(tmp, BYTE_TOKENIZER_FILE), `${JSON.stringify({type: 'byte', bos: 256, eos: 257, pad: 258, seed})}\n`)
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
  if (!preset || !ENGINE_PRESETS.includes(preset.name)) return undefined
  // The config's hash is in the name: a preset whose values change is generated afresh, never read stale.
  const configHash = streamSeed(TINY_SEED, JSON.stringify(preset.config)).toString(16).padStart(8, '0')
  const dir = join(modelCacheDir(), `${preset.name}-seed${TINY_SEED}-g${GENERATOR_VERSION}-${configHash}`)
  if (!existsSync(join(dir, 'config.json'))) {
    mkdirSync(modelCacheDir(), {recursive: true})
    writeGeneratedModel(dir, preset.config, TINY_SEED)
  }
  return dir
}
