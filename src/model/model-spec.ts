import type {Dtype, DtypeChoice} from './dtype.js'

/**
 * A validated, normalized model: what the layout engine and the engine need from a Hugging Face
 * config.json, whatever the family spelled it as. Built by `parseModelConfig` (config object) or
 * `loadModelSpec` (preset name, config.json path, model directory). Immutable.
 */
export interface ModelSpec {
  /** Preset name, or the config's `_name_or_path`, or the file path it came from. */
  readonly name: string
  readonly family: ModelFamily
  /** `architectures[0]` of the config, e.g. `NemotronHForCausalLM`. */
  readonly architecture: string
  /** Weights / activation dtype (`torch_dtype`); the `auto` cache dtypes follow it. */
  readonly dtype: Dtype
  readonly hiddenSize: number
  readonly vocabSize: number
  /** One entry per decoder layer, in model order. */
  readonly layers: readonly LayerSpec[]
  /** Full-attention parameters; undefined when no layer has attention. */
  readonly attention: AttentionParams | undefined
  /** The recurrent state mixer (Mamba2, Mamba1 or gated delta net); undefined for plain transformers. */
  readonly stateMixer: StateMixerParams | undefined
  /** `mamba_cache_dtype` (conv state): `auto` = model dtype. */
  readonly mambaConvDtype: DtypeChoice
  /**
   * `mamba_ssm_cache_dtype` (temporal state) with the family default applied: Nemotron-H defaults
   * to fp32 (vLLM #39032); other families `auto` (= conv dtype) unless their config sets it.
   */
  readonly mambaSsmDtype: DtypeChoice
  /** True when the model has both attention and a state mixer (vLLM's `is_hybrid`). */
  readonly isHybrid: boolean
  /** Where it came from; presets list the public config values they were built from. */
  readonly source: ModelSource
  /** The config.json object as read (presets: the object they define). For the engine's other keys. */
  readonly config: Readonly<Record<string, unknown>>
}

export type ModelFamily =
  | 'nemotron-h'
  | 'granite-4.0-h'
  | 'bamba'
  | 'zamba2'
  | 'falcon-h1'
  | 'jamba'
  | 'qwen3-next'
  | 'llama'
  | 'qwen2'
  | 'mistral'

/** What a layer computes. A parallel hybrid (Falcon-H1) lists both `attention` and `mamba2`. */
export type LayerKind = 'attention' | 'mamba2' | 'mamba1' | 'gdn' | 'mlp' | 'moe'

export interface LayerSpec {
  readonly index: number
  readonly kinds: readonly LayerKind[]
}

export interface AttentionParams {
  readonly numHeads: number
  readonly numKvHeads: number
  readonly headDim: number
}

export type StateMixerParams = Mamba2Params | Mamba1Params | GdnParams

/** Mamba2 (SSD). conv channels = intermediateSize + 2·nGroups·stateSize, ordered [x | B | C]. */
export interface Mamba2Params {
  readonly kind: 'mamba2'
  readonly numHeads: number
  readonly headDim: number
  /** = numHeads · headDim (checked against the family's own intermediate key). */
  readonly intermediateSize: number
  readonly nGroups: number
  readonly stateSize: number
  readonly convKernel: number
  /** The config keys these came from (families spell them differently), for error messages. */
  readonly configKeys: {readonly numHeads: string; readonly nGroups: string}
}

/** Mamba1 (Jamba): conv holds x only; temporal state (intermediate, stateSize), no heads. */
export interface Mamba1Params {
  readonly kind: 'mamba1'
  readonly intermediateSize: number
  readonly stateSize: number
  readonly convKernel: number
}

/** Gated delta net (Qwen3-Next): conv channels [Q | K | V] = 2·Hk·dk + Hv·dv; temporal (Hv, dv, dk). */
export interface GdnParams {
  readonly kind: 'gdn'
  readonly numKeyHeads: number
  readonly numValueHeads: number
  readonly keyHeadDim: number
  readonly valueHeadDim: number
  readonly convKernel: number
}

export type ModelSource =
  | {readonly kind: 'preset'; readonly preset: string; readonly builtFrom: string}
  | {readonly kind: 'file'; readonly path: string}
  | {readonly kind: 'object'}

/** Layers whose kinds include `kind`, in model order. */
export function layersWith(model: ModelSpec, kind: LayerKind): readonly number[] {
  return model.layers.filter((l) => l.kinds.includes(kind)).map((l) => l.index)
}

/** Layers that keep recurrent state (mamba2, mamba1 or gdn), in model order. */
export function stateLayers(model: ModelSpec): readonly number[] {
  return model.layers.filter((l) => l.kinds.some((k) => k === 'mamba2' || k === 'mamba1' || k === 'gdn')).map((l) => l.index)
}
