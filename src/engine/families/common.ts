import {ModelConfigError} from '../../errors.js'
import {badConfigKey} from '../../model/index.js'
import type {ModelSpec} from '../../model/model-spec.js'
import type {AttentionDims, MambaDims, ModelDims} from '../model-dims.js'
import type {ExpectedTensor} from '../weight-names.js'

/** Typed access to the compute keys of `spec.config` (values the layout does not validate). */
export class ComputeKeys {
  constructor(readonly spec: ModelSpec) {}

  private raw(key: string): unknown {
    return this.spec.config[key]
  }

  num(keys: string | readonly string[], fallback: number, check: (v: number) => boolean = Number.isFinite, expected = 'a finite number'): number {
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      const v = this.raw(key)
      if (v === undefined || v === null) continue
      if (typeof v !== 'number' || !check(v)) throw badConfigKey(this.spec.architecture, key, v, expected)
      return v
    }
    return fallback
  }

  positive(keys: string | readonly string[], fallback: number): number {
    return this.num(keys, fallback, (v) => Number.isFinite(v) && v > 0, 'a positive number')
  }

  int(keys: string | readonly string[], fallback: number, min = 1): number {
    return this.num(keys, fallback, (v) => Number.isInteger(v) && v >= min && v <= 1 << 24, `an integer >= ${min}`)
  }

  bool(keys: string | readonly string[], fallback: boolean): boolean {
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      const v = this.raw(key)
      if (v === undefined || v === null) continue
      if (typeof v !== 'boolean') throw badConfigKey(this.spec.architecture, key, v, 'true or false')
      return v
    }
    return fallback
  }

  string(key: string): string | undefined {
    const v = this.raw(key)
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'string') throw badConfigKey(this.spec.architecture, key, v, 'a string')
    return v
  }

  numbers(key: string, length: number, fallback: readonly number[]): number[] {
    const v = this.raw(key)
    if (v === undefined || v === null) return [...fallback]
    if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw badConfigKey(this.spec.architecture, key, v, `a list of ${length} numbers`)
    }
    return v as number[]
  }

  /** RoPE parameters (`rope_parameters` in newer configs, `rope_scaling` + `rope_theta` in older ones). */
  rope(defaultTheta: number): {theta: number; partialRotaryFactor: number} {
    const params = this.raw('rope_parameters') ?? this.raw('rope_scaling')
    const p = typeof params === 'object' && params !== null && !Array.isArray(params) ? (params as Record<string, unknown>) : {}
    const type = p.rope_type ?? p.type
    if (params !== undefined && params !== null && type !== undefined && type !== 'default' && type !== 'mrope') {
      throw unsupported(this.spec, `rope scaling ${JSON.stringify(type)} (only plain RoPE is implemented)`)
    }
    const theta = typeof p.rope_theta === 'number' ? p.rope_theta : this.positive('rope_theta', defaultTheta)
    const partial = typeof p.partial_rotary_factor === 'number' ? p.partial_rotary_factor : this.num('partial_rotary_factor', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]')
    if (!(theta > 0) || !Number.isFinite(theta)) throw badConfigKey(this.spec.architecture, 'rope_theta', theta, 'a positive number')
    return {theta, partialRotaryFactor: partial}
  }
}

export function unsupported(spec: ModelSpec, what: string): ModelConfigError {
  return new ModelConfigError('HPD_ENGINE_UNSUPPORTED_MODEL', `the CPU engine cannot run ${what} (${spec.architecture})`, {
    hint: 'The engine runs Nemotron-H (incl. MoE), Granite-4.0-H, Falcon-H1, Qwen3-Next / Qwen3.5 and Llama-style models; try --model tiny.',
  })
}

export function missingKey(key: string): ModelConfigError {
  return new ModelConfigError('HPD_MODEL_MISSING_KEY', `config.json has no \`${key}\``, {hint: `Add \`${key}\` to config.json.`, details: {key}})
}

/** Config switches no family implements: refused by name rather than silently ignored. */
const UNSUPPORTED_TRUE_KEYS = ['attention_bias', 'mlp_bias', 'use_bias', 'mamba_proj_bias', 'projectors_bias'] as const

export function refuseUnsupportedSwitches(spec: ModelSpec, allowed: readonly string[] = []): void {
  for (const key of UNSUPPORTED_TRUE_KEYS) {
    if (!allowed.includes(key) && spec.config[key] === true) throw unsupported(spec, `\`${key}: true\` (projection biases are not implemented)`)
  }
}

/** Attention geometry common to every family; the options say what the family adds. */
export function attentionDims(
  spec: ModelSpec,
  options: Partial<Omit<AttentionDims, 'numHeads' | 'numKvHeads' | 'headDim'>> = {},
): AttentionDims | undefined {
  const a = spec.attention
  if (!a) return undefined
  return {
    numHeads: a.numHeads,
    numKvHeads: a.numKvHeads,
    headDim: a.headDim,
    softmaxScale: options.softmaxScale ?? 1 / Math.sqrt(a.headDim),
    rope: options.rope ?? null,
    qkNorm: options.qkNorm ?? false,
    outputGate: options.outputGate ?? false,
    inputScale: options.inputScale ?? 1,
    keyScale: options.keyScale ?? 1,
    outScale: options.outScale ?? 1,
  }
}

/** Rotary dims of a head from a partial rotary factor (even, at least 2). */
export function rotaryDim(headDim: number, factor: number): number {
  return Math.max(2, Math.floor((headDim * factor) / 2) * 2)
}


/** The parts of ModelDims every family fills the same way (absent sub-models undefined, no multipliers). */
export function baseDims(spec: ModelSpec): Pick<ModelDims, 'hiddenSize' | 'vocabSize' | 'attention' | 'mamba' | 'gdn' | 'mlp' | 'moe' | 'zeroCenteredNorms' | 'embeddingScale' | 'logitsScale' | 'tensorNaming'> {
  return {
    hiddenSize: spec.hiddenSize,
    vocabSize: spec.vocabSize,
    attention: undefined,
    mamba: undefined,
    gdn: undefined,
    mlp: undefined,
    moe: undefined,
    zeroCenteredNorms: false,
    embeddingScale: 1,
    logitsScale: 1,
    tensorNaming: 'default',
  }
}

/** Mamba2 dims from the validated state mixer plus the family's compute keys. */
export function mambaDims(spec: ModelSpec, keys: ComputeKeys, options: {chunkKeys: readonly string[]; convBiasKeys: readonly string[]; normMode: MambaDims['normMode']; normGroups: number; projMultipliers?: MambaDims['projMultipliers']; outScale?: number}): MambaDims | undefined {
  const m = spec.stateMixer
  if (!m) return undefined
  if (m.kind !== 'mamba2') throw unsupported(spec, `a ${m.kind} state mixer`)
  return {
    numHeads: m.numHeads,
    headDim: m.headDim,
    nGroups: m.nGroups,
    stateSize: m.stateSize,
    convKernel: m.convKernel,
    chunkSize: keys.int(options.chunkKeys, 128),
    useConvBias: keys.bool(options.convBiasKeys, true),
    inner: m.numHeads * m.headDim,
    normMode: options.normMode,
    normGroups: options.normGroups,
    projMultipliers: options.projMultipliers ?? null,
    outScale: options.outScale ?? 1,
  }
}

/** The activation key must name silu (the gated MLPs / experts / Mamba activation these families use). */
export function requireActivation(spec: ModelSpec, keys: ComputeKeys, key: string, expected: string): void {
  const act = keys.string(key)
  if (act !== undefined && act !== expected && !(expected === 'silu' && act === 'swish')) throw unsupported(spec, `\`${key}\` ${JSON.stringify(act)} (only ${expected} is implemented)`)
}

/** The four attention projections every family names `<prefix>{q,k,v,o}_proj.weight` (hidden size D). */
export function attentionTensors(prefix: string, a: AttentionDims, D: number): ExpectedTensor[] {
  return [
    {name: `${prefix}q_proj.weight`, shape: [a.numHeads * a.headDim, D]},
    {name: `${prefix}k_proj.weight`, shape: [a.numKvHeads * a.headDim, D]},
    {name: `${prefix}v_proj.weight`, shape: [a.numKvHeads * a.headDim, D]},
    {name: `${prefix}o_proj.weight`, shape: [D, a.numHeads * a.headDim]},
  ]
}

/** A SwiGLU MLP's expected tensors under `<prefix>{gate,up,down}_proj.weight` (intermediate I, hidden D). */
export function swigluTensors(prefix: string, I: number, D: number): ExpectedTensor[] {
  return [
    {name: `${prefix}gate_proj.weight`, shape: [I, D]},
    {name: `${prefix}up_proj.weight`, shape: [I, D]},
    {name: `${prefix}down_proj.weight`, shape: [D, I]},
  ]
}

/** The output head: `lm_head.weight` unless the embeddings are tied. */
export function lmHeadTensors(d: Pick<ModelDims, 'tieWordEmbeddings' | 'vocabSize' | 'hiddenSize'>): ExpectedTensor[] {
  return d.tieWordEmbeddings ? [] : [{name: 'lm_head.weight', shape: [d.vocabSize, d.hiddenSize]}]
}
