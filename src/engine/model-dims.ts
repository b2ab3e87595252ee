import {ModelConfigError} from '../errors.js'
import {badConfigKey} from '../model/index.js'
import type {ModelSpec} from '../model/model-spec.js'

/**
 * What the engine computes with, projected from a validated ModelSpec (src/model parses and
 * validates config.json; this file only reads the few compute keys the layout does not need,
 * from `spec.config`). Two families: Nemotron-H (one mixer per layer) and Llama (attention + MLP
 * per layer).
 */
export type MixerKind = 'mamba' | 'attention' | 'mlp' | 'llama'

export interface MambaDims {
  readonly numHeads: number
  readonly headDim: number
  readonly nGroups: number
  readonly stateSize: number
  readonly convKernel: number
  readonly chunkSize: number
  readonly useConvBias: boolean
  /** I = numHeads · headDim. */
  readonly inner: number
}

export interface AttentionDims {
  readonly numHeads: number
  readonly numKvHeads: number
  readonly headDim: number
}

export interface ModelDims {
  readonly family: 'nemotron-h' | 'llama'
  readonly hiddenSize: number
  readonly vocabSize: number
  /** One mixer per layer (Llama layers are 'llama': attention then SwiGLU MLP). */
  readonly layers: readonly MixerKind[]
  readonly attention: AttentionDims | undefined
  readonly mamba: MambaDims | undefined
  /** MLP width (relu² for Nemotron-H, SwiGLU for Llama). */
  readonly intermediateSize: number
  /** RMSNorm epsilon (layer_norm_epsilon / rms_norm_eps). */
  readonly normEps: number
  /** RoPE base (Llama only). */
  readonly ropeTheta: number
  readonly tieWordEmbeddings: boolean
}

function num(spec: ModelSpec, keys: readonly string[], fallback: number): number {
  for (const key of keys) {
    const v = spec.config[key]
    if (v === undefined || v === null) continue
    if (typeof v !== 'number' || !Number.isFinite(v)) throw badConfigKey(spec.architecture, key, v, 'a number')
    return v
  }
  return fallback
}

function bool(spec: ModelSpec, keys: readonly string[], fallback: boolean): boolean {
  for (const key of keys) {
    const v = spec.config[key]
    if (typeof v === 'boolean') return v
  }
  return fallback
}

/**
 * Config switches the engine does not implement: refused by name rather than silently ignored.
 * (Nemotron-H's `mamba_proj_bias` is stored but unused by every reference mixer, so it is not here.)
 */
const UNSUPPORTED_TRUE_KEYS = ['attention_bias', 'mlp_bias', 'use_bias'] as const

/** The engine's view of a ModelSpec; ModelConfigError for families/layers it cannot run. */
export function dimsFromSpec(spec: ModelSpec): ModelDims {
  for (const key of UNSUPPORTED_TRUE_KEYS) {
    if (spec.config[key] === true) throw unsupported(spec, `\`${key}: true\` (projection biases are not implemented)`)
  }
  const scaling = spec.config.rope_scaling ?? spec.config.rope_parameters
  if (spec.family === 'llama' && scaling !== undefined && scaling !== null) {
    const type = (scaling as {rope_type?: unknown; type?: unknown}).rope_type ?? (scaling as {type?: unknown}).type
    if (type !== 'default') throw unsupported(spec, `rope scaling ${JSON.stringify(type)} (only plain RoPE is implemented)`)
  }
  const attention = spec.attention && {numHeads: spec.attention.numHeads, numKvHeads: spec.attention.numKvHeads, headDim: spec.attention.headDim}
  if (spec.family === 'llama') {
    if (!attention) throw unsupported(spec, 'a Llama config without attention heads')
    return {
      family: 'llama',
      hiddenSize: spec.hiddenSize,
      vocabSize: spec.vocabSize,
      layers: spec.layers.map(() => 'llama'),
      attention,
      mamba: undefined,
      intermediateSize: num(spec, ['intermediate_size'], 0) || missing('intermediate_size'),
      normEps: num(spec, ['rms_norm_eps'], 1e-6),
      ropeTheta: num(spec, ['rope_theta'], 10000),
      tieWordEmbeddings: bool(spec, ['tie_word_embeddings'], false),
    }
  }
  if (spec.family !== 'nemotron-h') throw unsupported(spec, `the ${spec.family} family`)
  const layers = spec.layers.map((l): MixerKind => {
    const kind = l.kinds[0]
    if (kind === 'mamba2') return 'mamba'
    if (kind === 'attention' || kind === 'mlp') return kind
    throw unsupported(spec, `layer ${l.index} of kind ${kind} (MoE layers are not implemented)`)
  })
  const m = spec.stateMixer
  if (m && m.kind !== 'mamba2') throw unsupported(spec, `a ${m.kind} state mixer`)
  return {
    family: 'nemotron-h',
    hiddenSize: spec.hiddenSize,
    vocabSize: spec.vocabSize,
    layers,
    attention,
    mamba: m && {
      numHeads: m.numHeads,
      headDim: m.headDim,
      nGroups: m.nGroups,
      stateSize: m.stateSize,
      convKernel: m.convKernel,
      chunkSize: num(spec, ['chunk_size', 'mamba_chunk_size'], 128),
      useConvBias: bool(spec, ['use_conv_bias', 'mamba_conv_bias'], true),
      inner: m.numHeads * m.headDim,
    },
    intermediateSize: layers.includes('mlp') ? num(spec, ['intermediate_size'], 0) || missing('intermediate_size') : 0,
    normEps: num(spec, ['layer_norm_epsilon'], 1e-5),
    ropeTheta: 0,
    tieWordEmbeddings: false,
  }
}

function unsupported(spec: ModelSpec, what: string): ModelConfigError {
  return new ModelConfigError('HPD_ENGINE_UNSUPPORTED_MODEL', `the CPU engine cannot run ${what} (${spec.architecture})`, {
    hint: 'The engine runs Nemotron-H (Mamba2 + attention + MLP) and Llama-style models; try --model tiny.',
  })
}

function missing(key: string): never {
  throw new ModelConfigError('HPD_MODEL_MISSING_KEY', `config.json has no \`${key}\``, {hint: `Add \`${key}\` to config.json.`, details: {key}})
}
