/**
 * What the engine computes with, projected from a validated ModelSpec (src/model parses and
 * validates config.json and the layout geometry; this file and families/ read the compute keys
 * the layout does not need: multipliers, norms, RoPE, MoE routing).
 *
 * Every family is described the same way: a layer is a list of residual blocks; a block is one
 * pre-norm and the ops whose outputs are summed into the residual stream (Nemotron-H: one block
 * of one op per layer; Llama, Granite, Qwen3-Next: a mixer block then an FFN block; Falcon-H1:
 * Mamba2 and attention in parallel in one block, then the MLP). The runner only knows ops.
 */
export type EngineFamily = 'nemotron-h' | 'llama' | 'granite-4.0-h' | 'falcon-h1' | 'qwen3-next'

export type OpKind = 'mamba' | 'attention' | 'gdn' | 'mlp' | 'moe'

export interface BlockDims {
  /** Ops of the block, summed (each output times its own outScale). */
  readonly ops: readonly OpKind[]
}

export interface LayerDims {
  readonly blocks: readonly BlockDims[]
}

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
  /**
   * The gated RMSNorm after the scan: `gate-first` y·silu(z) then normalise (Mamba2, Nemotron-H,
   * Granite); `norm-first` normalise y then ·silu(z) (Falcon-H1 mamba_norm_before_gate); `none`
   * y·silu(z) only (Falcon-H1 without mamba_rms_norm).
   */
  readonly normMode: 'gate-first' | 'norm-first' | 'none'
  /** Contiguous channel groups the norm's statistics cover (n_groups, or 1 for a full-width norm). */
  readonly normGroups: number
  /** Per in_proj row multipliers [z | x | B | C | dt] (Falcon-H1 ssm_multipliers × ssm_in_multiplier), or null. */
  readonly projMultipliers: readonly [number, number, number, number, number] | null
  readonly outScale: number
}

export interface AttentionDims {
  readonly numHeads: number
  readonly numKvHeads: number
  readonly headDim: number
  /** Softmax scale (head_dim^-0.5, or Granite's attention_multiplier). */
  readonly softmaxScale: number
  /** NeoX RoPE on the first rotaryDim dims of each head, or none (NoPE). */
  readonly rope: {readonly theta: number; readonly rotaryDim: number} | null
  /** Qwen3-Next: per-head RMSNorm (zero-centred weight) on q and k before RoPE. */
  readonly qkNorm: boolean
  /** Qwen3-Next: q_proj also emits a per-head gate; output · sigmoid(gate) before o_proj. */
  readonly outputGate: boolean
  /** Falcon-H1: input multiplier (all of q, k, v) and key multiplier (k). */
  readonly inputScale: number
  readonly keyScale: number
  readonly outScale: number
}

export interface GdnDims {
  readonly numKeyHeads: number
  readonly numValueHeads: number
  readonly keyHeadDim: number
  readonly valueHeadDim: number
  readonly convKernel: number
  /** Chunk length of the WY prefill (FLA's 64). */
  readonly chunkSize: number
  readonly outScale: number
}

export interface MlpDims {
  /** relu2: down(relu(up x)²) (Nemotron-H); swiglu: down(silu(gate x)·(up x)). */
  readonly activation: 'relu2' | 'swiglu'
  readonly intermediateSize: number
  /** Falcon-H1: gate multiplier (on gate x, before silu). */
  readonly gateScale: number
  readonly outScale: number
}

export interface MoeDims {
  readonly numExperts: number
  readonly topK: number
  /** Expert intermediate width; experts are gated (swiglu) or relu2 like the family's MLP. */
  readonly expertSize: number
  readonly activation: 'relu2' | 'swiglu'
  readonly router: 'softmax-topk' | 'topk-softmax' | 'sigmoid-bias'
  readonly normTopk: boolean
  readonly nGroup: number
  readonly topkGroup: number
  readonly routedScale: number
  /** Shared expert (always on) of this width, or 0. */
  readonly sharedSize: number
  /** Qwen3-Next: the shared expert's output · sigmoid(shared_expert_gate · x). */
  readonly sharedGate: boolean
  readonly outScale: number
}

export interface ModelDims {
  readonly family: EngineFamily
  readonly hiddenSize: number
  readonly vocabSize: number
  readonly layers: readonly LayerDims[]
  readonly attention: AttentionDims | undefined
  readonly mamba: MambaDims | undefined
  readonly gdn: GdnDims | undefined
  readonly mlp: MlpDims | undefined
  readonly moe: MoeDims | undefined
  /** RMSNorm epsilon of the block norms and the final norm. */
  readonly normEps: number
  /** Qwen3-Next: RMSNorm weights are zero-centred (scale 1 + w). */
  readonly zeroCenteredNorms: boolean
  readonly embeddingScale: number
  /** Logits multiplier (Falcon-H1 lm_head_multiplier, 1 / Granite logits_scaling). */
  readonly logitsScale: number
  readonly tieWordEmbeddings: boolean
  /** The family's checkpoint naming variant (`qwen3.5`: Qwen3.5's language_model prefix and split GDN projections). */
  readonly tensorNaming: 'default' | 'qwen3.5'
}

/** The engine's view of a ModelSpec; ModelConfigError for families/layers it cannot run. */
export {dimsFromSpec} from './families/index.js'

/** Every op of every layer, in order (layer, block, op). */
export function layerOps(d: ModelDims, layer: number): OpKind[] {
  return d.layers[layer].blocks.flatMap((b) => b.ops)
}
