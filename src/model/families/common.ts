import {configDtype, type Dtype, type DtypeChoice} from '../dtype.js'
import type {ConfigReader} from '../config-reader.js'
import {CONFIG_LIMITS} from '../limits.js'
import type {AttentionParams, LayerSpec, Mamba2Params, ModelFamily, ModelSource, ModelSpec, StateMixerParams} from '../model-spec.js'

/** What a family parser returns; `buildSpec` adds the parts every family shares. */
export interface FamilyParse {
  readonly family: ModelFamily
  readonly layers: readonly LayerSpec[]
  readonly attention: AttentionParams | undefined
  readonly stateMixer: StateMixerParams | undefined
  /** Family default for the SSM (temporal) state dtype when the config does not set one. */
  readonly defaultSsmDtype: DtypeChoice
}

export type FamilyParser = (cfg: ConfigReader) => FamilyParse

export function buildSpec(cfg: ConfigReader, architecture: string, parsed: FamilyParse, name: string, source: ModelSource): ModelSpec {
  const dtype = modelDtype(cfg)
  const hasAttention = parsed.layers.some((l) => l.kinds.includes('attention'))
  return {
    name,
    family: parsed.family,
    architecture,
    dtype,
    hiddenSize: cfg.positiveInt('hidden_size', undefined, CONFIG_LIMITS.hiddenSize),
    vocabSize: cfg.positiveInt('vocab_size', undefined, CONFIG_LIMITS.vocabSize),
    layers: parsed.layers,
    attention: parsed.attention,
    stateMixer: parsed.stateMixer,
    mambaConvDtype: optionalDtype(cfg, 'mamba_cache_dtype') ?? 'auto',
    mambaSsmDtype: optionalDtype(cfg, 'mamba_ssm_cache_dtype') ?? parsed.defaultSsmDtype,
    isHybrid: hasAttention && parsed.stateMixer !== undefined,
    source,
    config: cfg.raw,
  }
}

/** `torch_dtype` (or the newer `dtype`); bf16 when absent, as vLLM serves such checkpoints. */
function modelDtype(cfg: ConfigReader): Dtype {
  const key = cfg.pick('torch_dtype', 'dtype')
  return key === undefined ? 'bf16' : configDtype(key, cfg.raw[key])
}

function optionalDtype(cfg: ConfigReader, key: string): DtypeChoice | undefined {
  if (!cfg.has(key) || cfg.raw[key] === 'auto') return undefined
  return configDtype(key, cfg.raw[key])
}

/** Attention heads; `headDimKeys` are tried in order, then hidden_size / heads. */
export function readAttention(cfg: ConfigReader, headDimKeys: readonly string[] = ['head_dim'], defaultHeadDim?: number): AttentionParams {
  const numHeads = cfg.positiveInt('num_attention_heads', undefined, CONFIG_LIMITS.heads)
  const numKvHeads = cfg.positiveInt('num_key_value_heads', numHeads, CONFIG_LIMITS.heads)
  let headDim: number
  if (cfg.pick(...headDimKeys) !== undefined) headDim = cfg.positiveInt(headDimKeys, undefined, CONFIG_LIMITS.headDim)
  else if (defaultHeadDim !== undefined) headDim = defaultHeadDim
  else {
    const hidden = cfg.positiveInt('hidden_size', undefined, CONFIG_LIMITS.hiddenSize)
    if (hidden % numHeads !== 0) throw cfg.missing(headDimKeys)
    headDim = hidden / numHeads
  }
  if (numHeads % numKvHeads !== 0) {
    throw cfg.contradiction(`num_attention_heads = ${numHeads} is not a multiple of num_key_value_heads = ${numKvHeads}`, {
      key: 'num_key_value_heads',
      value: numKvHeads,
    })
  }
  return {numHeads, numKvHeads, headDim}
}

export interface Mamba2Keys {
  readonly numHeads: readonly string[]
  readonly headDim: readonly string[]
  readonly nGroups: readonly string[]
  readonly stateSize: readonly string[]
  readonly convKernel: readonly string[]
  /** Keys giving the intermediate size directly (checked against heads·headDim). */
  readonly intermediate?: readonly string[]
  /** Key of the expand factor: intermediate = expand · hidden_size. */
  readonly expand?: string
}

/** Mamba2 parameters; the intermediate size must equal heads · headDim whatever key states it. */
export function readMamba2(cfg: ConfigReader, keys: Mamba2Keys, defaults: Partial<Record<keyof Mamba2Keys, number>> = {}): Mamba2Params {
  const numHeads = cfg.positiveInt(keys.numHeads, defaults.numHeads, CONFIG_LIMITS.heads)
  const headDim = cfg.positiveInt(keys.headDim, defaults.headDim, CONFIG_LIMITS.headDim)
  const nGroups = cfg.positiveInt(keys.nGroups, defaults.nGroups, CONFIG_LIMITS.heads)
  const stateSize = cfg.positiveInt(keys.stateSize, defaults.stateSize, CONFIG_LIMITS.headDim)
  const convKernel = cfg.positiveInt(keys.convKernel, defaults.convKernel, CONFIG_LIMITS.convKernel)
  const intermediateSize = numHeads * headDim
  const direct = keys.intermediate ? cfg.pick(...keys.intermediate) : undefined
  if (direct !== undefined) {
    const stated = cfg.positiveInt(direct, undefined, CONFIG_LIMITS.heads * CONFIG_LIMITS.headDim)
    if (stated !== intermediateSize) {
      throw cfg.contradiction(`\`${direct}\` = ${stated} but heads × head_dim = ${numHeads} × ${headDim} = ${intermediateSize}`, {key: direct, value: stated})
    }
  } else if (keys.expand !== undefined && cfg.has(keys.expand)) {
    const expand = cfg.raw[keys.expand]
    const hidden = cfg.positiveInt('hidden_size', undefined, CONFIG_LIMITS.hiddenSize)
    if (typeof expand !== 'number' || !(expand > 0) || expand > CONFIG_LIMITS.expand) throw cfg.bad(keys.expand, expand, `a positive number ≤ ${CONFIG_LIMITS.expand}`)
    if (expand * hidden !== intermediateSize) {
      throw cfg.contradiction(`\`${keys.expand}\` × hidden_size = ${expand} × ${hidden} = ${expand * hidden} but heads × head_dim = ${intermediateSize}`, {
        key: keys.expand,
        value: expand,
      })
    }
  }
  if (numHeads % nGroups !== 0) {
    throw cfg.contradiction(`${keys.numHeads[0]} = ${numHeads} is not a multiple of ${keys.nGroups[0]} = ${nGroups}`, {key: keys.nGroups[0], value: nGroups})
  }
  if (convKernel < 2) throw cfg.bad(keys.convKernel[0], convKernel, 'a conv kernel of at least 2')
  const configKeys = {numHeads: cfg.pick(...keys.numHeads) ?? keys.numHeads[0], nGroups: cfg.pick(...keys.nGroups) ?? keys.nGroups[0]}
  return {kind: 'mamba2', numHeads, headDim, intermediateSize, nGroups, stateSize, convKernel, configKeys}
}

/** Layers from an explicit per-layer list, checked against num_hidden_layers when both exist. */
export function checkLayerCount(cfg: ConfigReader, count: number, listKey: string): void {
  if (cfg.has('num_hidden_layers')) {
    const stated = cfg.positiveInt('num_hidden_layers', undefined, CONFIG_LIMITS.layers)
    if (stated !== count) throw cfg.contradiction(`num_hidden_layers = ${stated} but \`${listKey}\` has ${count} entries`, {key: 'num_hidden_layers', value: stated})
  }
}
