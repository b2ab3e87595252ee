import {ModelConfigError} from '../errors.js'
import type {WeightArray} from '../native/kernels-binding.js'
import type {ModelDims} from './model-dims.js'

/**
 * One TP rank's weights, as vLLM shards them (model-forward.md §6): column-parallel projections
 * keep a contiguous slice of output rows, row-parallel ones a slice of input columns (their
 * outputs are partial sums, all-reduced by the runner), norms and routers are replicated, the
 * vocabulary is padded to a multiple of 64 and split in rows, every expert is split like an MLP
 * (its intermediate width over the ranks). Linear weights stay in the torch [out, in] layout and
 * in their checkpoint dtype (fp32, or bf16 bit patterns); small vectors are fp32.
 */
export interface VocabShard {
  /** Global ids [vocabBegin, vocabEnd) this rank holds (end clipped to the real vocabulary). */
  readonly vocabBegin: number
  readonly vocabEnd: number
}

/**
 * A column-parallel projection: row ranges of checkpoint tensors (views, never copies) computed
 * into consecutive raw output columns (`parts`, `width` columns in all), then rearranged by
 * `order` — (rawStart, outStart, length) column runs — when the checkpoint interleaves rows in
 * another order than the op reads (null: already in order).
 */
export interface Projection {
  readonly parts: readonly WeightArray[]
  readonly width: number
  readonly order: Int32Array | null
}

export interface MambaRankWeights {
  readonly kind: 'mamba'
  /** [z_r | x_r | B_r | C_r | dt_r] × D. */
  readonly inProj: Projection
  /** Per-row multipliers of inProj's output (Falcon-H1 µP), or null. */
  readonly projScale: Float32Array | null
  /** [x_r | B_r | C_r] × K, and its bias (or null). */
  readonly convWeight: Float32Array
  readonly convBias: Float32Array | null
  readonly dtBias: Float32Array
  /** A = -exp(A_log), per local head. */
  readonly a: Float32Array
  readonly d: Float32Array
  /** Gated-norm weight [I_r], or null (normMode none). */
  readonly gatedNorm: Float32Array | null
  /** [D, I_r] (row-parallel). */
  readonly outProj: WeightArray
}

export interface AttentionRankWeights {
  readonly kind: 'attention'
  /** [q_r | k_r | v_r | gate_r?] × D. */
  readonly qkv: Projection
  /** Per-row multipliers of qkv's output (Falcon-H1 input / key multipliers), or null. */
  readonly qkvScale: Float32Array | null
  /** Per-head q / k RMSNorm weights [headDim] with the zero-centred 1 + w folded in, or null. */
  readonly qNorm: Float32Array | null
  readonly kNorm: Float32Array | null
  /** [D, Hq_r · hd] (row-parallel). */
  readonly oProj: WeightArray
}

export interface GdnRankWeights {
  readonly kind: 'gdn'
  /** [q_r | k_r | v_r | z_r | b_r | a_r] × D (rearranged from the checkpoint's per-key-head groups). */
  readonly inProj: Projection
  /** [q_r | k_r | v_r] × K. */
  readonly convWeight: Float32Array
  readonly dtBias: Float32Array
  /** -exp(A_log), per local value head. */
  readonly aNeg: Float32Array
  /** The per-head gated-norm weight [dv], tiled over the local value heads. */
  readonly gatedNorm: Float32Array
  /** [D, Hv_r · dv] (row-parallel). */
  readonly outProj: WeightArray
}

export interface MlpRankWeights {
  readonly kind: 'mlp'
  /** relu2: up_r × D; swiglu: [gate_r | up_r] × D. */
  readonly up: Projection
  /** Per-row multipliers of up's output (Falcon-H1 gate multiplier), or null. */
  readonly upScale: Float32Array | null
  /** [D, I_r] (row-parallel). */
  readonly down: WeightArray
}

export interface MoeRankWeights {
  readonly kind: 'moe'
  /** Router [E, D], fp32, replicated (vLLM computes the router in fp32). */
  readonly router: Float32Array
  /** Selection-only bias [E] (Nemotron-H e_score_correction_bias), or null. */
  readonly routerBias: Float32Array | null
  /**
   * Per expert: gate (gated experts, else null) and up [I_r, D], down [D, I_r]. Gate and up are
   * views into the checkpoint's tensors (Granite's stacked one included): never a stacked copy.
   */
  readonly gate: readonly WeightArray[] | null
  readonly up: readonly WeightArray[]
  readonly down: readonly WeightArray[]
  /** The shared expert's shard, or null. */
  readonly shared: MlpRankWeights | null
  /** Qwen3-Next shared_expert_gate [D] (replicated), or null. */
  readonly sharedGate: Float32Array | null
}

export type OpRankWeights = MambaRankWeights | AttentionRankWeights | GdnRankWeights | MlpRankWeights | MoeRankWeights

export interface BlockRankWeights {
  /** Pre-norm weight [D] (fp32; zero-centred 1 + w folded in). */
  readonly norm: Float32Array
  /** In the order of the layer's BlockDims.ops. */
  readonly ops: readonly OpRankWeights[]
}

/** Sizes of one rank's shard (same on every rank). */
export interface RankDims {
  readonly tp: number
  readonly rank: number
  readonly mambaHeads: number
  readonly mambaInner: number
  /** Local B/C groups (n_groups/tp, or the one replicated group when n_groups < tp). */
  readonly mambaGroups: number
  readonly mambaConvChannels: number
  /** in_proj rows of the rank: 2·I_r + 2·G_r·N + H_r. */
  readonly mambaProjRows: number
  /** Channels of one local gated-norm statistic, and how many channels the full statistic covers. */
  readonly gatedNormGroupSize: number
  readonly gatedNormCount: number
  /** Consecutive ranks whose local statistics make one (1: local; > 1: summed across ranks). */
  readonly gatedNormRanksPerGroup: number
  readonly qHeads: number
  readonly kvHeads: number
  /** First global KV head of the rank. */
  readonly firstKvHead: number
  readonly gdnKeyHeads: number
  readonly gdnValueHeads: number
  /** Conv channels [q_r | k_r | v_r] and in_proj rows [q_r | k_r | v_r | z_r | b_r | a_r] of the rank. */
  readonly gdnConvChannels: number
  readonly gdnProjRows: number
  readonly mlpInter: number
  readonly moeInter: number
  readonly sharedInter: number
  readonly vocab: VocabShard
}

export interface RankWeights {
  readonly dims: RankDims
  readonly embedding: WeightArray
  /** [layer][block]. */
  readonly layers: readonly (readonly BlockRankWeights[])[]
  readonly finalNorm: Float32Array
  readonly lmHead: WeightArray
}

function indivisible(what: string, value: number, tp: number): ModelConfigError {
  return new ModelConfigError('HPD_MODEL_TP_INDIVISIBLE', `${what} = ${value} cannot be split over TP ${tp}: TP must divide it`, {
    hint: "Pick a TP size that divides the model's intermediate sizes.",
    details: {value, tp},
  })
}

/** Checks the sizes the layout does not (MLP / expert widths, gated-norm groups) divide over tp. */
export function checkEngineTp(d: ModelDims, tp: number): void {
  if (d.mlp && d.mlp.intermediateSize % tp !== 0) throw indivisible('intermediate_size', d.mlp.intermediateSize, tp)
  if (d.moe && d.moe.expertSize % tp !== 0) throw indivisible('the expert intermediate size', d.moe.expertSize, tp)
  if (d.moe && d.moe.sharedSize % tp !== 0) throw indivisible('the shared expert intermediate size', d.moe.sharedSize, tp)
  if (d.mamba && d.mamba.normGroups % tp !== 0 && tp % d.mamba.normGroups !== 0) throw indivisible('the gated-norm group count', d.mamba.normGroups, tp)
}

export function rankDims(d: ModelDims, tp: number, rank: number): RankDims {
  const m = d.mamba
  const a = d.attention
  const g = d.gdn
  const paddedVocab = Math.ceil(d.vocabSize / 64) * 64
  const perRank = paddedVocab / tp
  const vocabBegin = Math.min(d.vocabSize, rank * perRank)
  const vocabEnd = Math.min(d.vocabSize, (rank + 1) * perRank)
  const groupsReplicated = m ? m.nGroups % tp !== 0 : false
  const mambaGroups = m ? (groupsReplicated ? m.nGroups : m.nGroups / tp) : 0
  const mambaInner = m ? m.inner / tp : 0
  const mambaHeads = m ? m.numHeads / tp : 0
  // The gated norm's groups: whole groups per rank (local), or one group over tp/G ranks.
  const normLocal = m ? m.normGroups % tp === 0 : true
  const kvReplicated = a ? tp > a.numKvHeads : false
  const kvHeads = a ? (kvReplicated ? 1 : a.numKvHeads / tp) : 0
  const gdnKeyHeads = g ? g.numKeyHeads / tp : 0
  const gdnValueHeads = g ? g.numValueHeads / tp : 0
  const gdnConvChannels = g ? 2 * gdnKeyHeads * g.keyHeadDim + gdnValueHeads * g.valueHeadDim : 0
  return {
    tp,
    rank,
    mambaHeads,
    mambaInner,
    mambaGroups,
    mambaConvChannels: m ? mambaInner + 2 * mambaGroups * m.stateSize : 0,
    mambaProjRows: m ? 2 * mambaInner + 2 * mambaGroups * m.stateSize + mambaHeads : 0,
    gatedNormGroupSize: m ? (normLocal ? m.inner / m.normGroups : mambaInner) : 0,
    gatedNormCount: m ? m.inner / m.normGroups : 0,
    gatedNormRanksPerGroup: m && !normLocal ? tp / m.normGroups : 1,
    qHeads: a ? a.numHeads / tp : 0,
    kvHeads,
    firstKvHead: a ? (kvReplicated ? Math.floor((rank * a.numKvHeads) / tp) : rank * kvHeads) : 0,
    gdnKeyHeads,
    gdnValueHeads,
    gdnConvChannels,
    gdnProjRows: g ? gdnConvChannels + gdnValueHeads * g.valueHeadDim + 2 * gdnValueHeads : 0,
    mlpInter: d.mlp ? d.mlp.intermediateSize / tp : 0,
    moeInter: d.moe ? d.moe.expertSize / tp : 0,
    sharedInter: d.moe ? d.moe.sharedSize / tp : 0,
    vocab: {vocabBegin, vocabEnd},
  }
}
