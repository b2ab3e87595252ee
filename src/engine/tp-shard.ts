import type {ModelDims} from './model-dims.js'
import type {Weights} from './weights.js'

/**
 * One TP rank's weights, sharded as vLLM shards them (model-forward.md §6): column-parallel
 * projections keep a contiguous slice of output rows, row-parallel ones a slice of input columns
 * (their outputs are partial sums, all-reduced by the runner), norms are replicated, the
 * vocabulary is padded to a multiple of 64 and split in rows. Each rank owns copies of its slices
 * (as if on its own device). Linear weights stay in the torch [out, in] layout.
 */
export interface VocabShard {
  /** Global ids [vocabBegin, vocabEnd) this rank holds (end clipped to the real vocabulary). */
  readonly vocabBegin: number
  readonly vocabEnd: number
}

export interface MambaRankWeights {
  readonly kind: 'mamba'
  readonly norm: Float32Array
  /** [z_r | x_r | B_r | C_r | dt_r] × D. */
  readonly inProj: Float32Array
  /** [x_r | B_r | C_r] × K, and its bias (or null). */
  readonly convWeight: Float32Array
  readonly convBias: Float32Array | null
  readonly dtBias: Float32Array
  /** A = -exp(A_log), per local head. */
  readonly a: Float32Array
  readonly d: Float32Array
  readonly gatedNorm: Float32Array
  /** [D, I_r] (row-parallel). */
  readonly outProj: Float32Array
}

export interface AttentionRankWeights {
  readonly kind: 'attention'
  readonly norm: Float32Array
  /** [q_r | k_r | v_r] × D, fused. */
  readonly qkv: Float32Array
  /** [D, Hq_r · hd] (row-parallel). */
  readonly oProj: Float32Array
}

export interface MlpRankWeights {
  readonly kind: 'mlp'
  readonly norm: Float32Array
  readonly up: Float32Array
  readonly down: Float32Array
}

export interface LlamaRankWeights {
  readonly kind: 'llama'
  readonly inputNorm: Float32Array
  readonly qkv: Float32Array
  readonly oProj: Float32Array
  readonly postNorm: Float32Array
  /** [gate_r | up_r] × D. */
  readonly gateUp: Float32Array
  readonly down: Float32Array
}

export type LayerRankWeights = MambaRankWeights | AttentionRankWeights | MlpRankWeights | LlamaRankWeights

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
  /** Channels one gated-norm statistic covers, and whether it spans ranks (n_groups < tp). */
  readonly gatedNormGroupSize: number
  readonly gatedNormCount: number
  readonly gatedNormAcrossRanks: boolean
  readonly qHeads: number
  readonly kvHeads: number
  /** First global KV head of the rank. */
  readonly firstKvHead: number
  readonly mlpInter: number
  readonly vocab: VocabShard
}

export interface RankWeights {
  readonly dims: RankDims
  readonly embedding: Float32Array
  readonly layers: readonly LayerRankWeights[]
  readonly finalNorm: Float32Array
  readonly lmHead: Float32Array
}

export function rankDims(d: ModelDims, tp: number, rank: number): RankDims {
  const m = d.mamba
  const a = d.attention
  const paddedVocab = Math.ceil(d.vocabSize / 64) * 64
  const perRank = paddedVocab / tp
  const vocabBegin = Math.min(d.vocabSize, rank * perRank)
  const vocabEnd = Math.min(d.vocabSize, (rank + 1) * perRank)
  const groupsReplicated = m ? m.nGroups % tp !== 0 : false
  const mambaGroups = m ? (groupsReplicated ? m.nGroups : m.nGroups / tp) : 0
  const mambaInner = m ? m.inner / tp : 0
  const mambaHeads = m ? m.numHeads / tp : 0
  const kvReplicated = a ? tp > a.numKvHeads : false
  const kvHeads = a ? (kvReplicated ? 1 : a.numKvHeads / tp) : 0
  return {
    tp,
    rank,
    mambaHeads,
    mambaInner,
    mambaGroups,
    mambaConvChannels: m ? mambaInner + 2 * mambaGroups * m.stateSize : 0,
    mambaProjRows: m ? 2 * mambaInner + 2 * mambaGroups * m.stateSize + mambaHeads : 0,
    gatedNormGroupSize: m ? (groupsReplicated ? mambaInner : m.inner / m.nGroups) : 0,
    gatedNormCount: m ? m.inner / m.nGroups : 0,
    gatedNormAcrossRanks: groupsReplicated && tp > 1,
    qHeads: a ? a.numHeads / tp : 0,
    kvHeads,
    firstKvHead: a ? (kvReplicated ? Math.floor((rank * a.numKvHeads) / tp) : rank * kvHeads) : 0,
    mlpInter: d.intermediateSize / tp,
    vocab: {vocabBegin, vocabEnd},
  }
}

/** Rows [start, start+count) of a row-major [*, cols] matrix. */
function rows(w: Float32Array, cols: number, start: number, count: number): Float32Array {
  // The whole tensor (TP 1) is shared, not copied: shards are read-only.
  if (start === 0 && count * cols === w.length) return w
  return w.slice(start * cols, (start + count) * cols)
}

/** Columns [start, start+count) of a row-major [numRows, cols] matrix. */
function columns(w: Float32Array, numRows: number, cols: number, start: number, count: number): Float32Array {
  if (start === 0 && count === cols) return w
  const out = new Float32Array(numRows * count)
  for (let r = 0; r < numRows; r++) out.set(w.subarray(r * cols + start, r * cols + start + count), r * count)
  return out
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const nonEmpty = parts.filter((p) => p.length > 0)
  if (nonEmpty.length === 1) return nonEmpty[0]
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export function shardWeights(d: ModelDims, w: Weights, tp: number, rank: number): RankWeights {
  const rd = rankDims(d, tp, rank)
  const D = d.hiddenSize
  const {vocabBegin, vocabEnd} = rd.vocab
  const isLlama = d.family === 'llama'
  const embedName = isLlama ? 'model.embed_tokens.weight' : 'backbone.embeddings.weight'
  const headName = isLlama && d.tieWordEmbeddings ? embedName : 'lm_head.weight'
  const attn = (prefix: string) => {
    const a = d.attention!
    const hd = a.headDim
    return {
      qkv: concat([
        rows(w.get(`${prefix}q_proj.weight`), D, rank * rd.qHeads * hd, rd.qHeads * hd),
        rows(w.get(`${prefix}k_proj.weight`), D, rd.firstKvHead * hd, rd.kvHeads * hd),
        rows(w.get(`${prefix}v_proj.weight`), D, rd.firstKvHead * hd, rd.kvHeads * hd),
      ]),
      oProj: columns(w.get(`${prefix}o_proj.weight`), D, a.numHeads * hd, rank * rd.qHeads * hd, rd.qHeads * hd),
    }
  }
  const layers = d.layers.map((kind, i): LayerRankWeights => {
    if (kind === 'llama') {
      const p = `model.layers.${i}.`
      const inter = rd.mlpInter
      return {
        kind,
        inputNorm: w.get(`${p}input_layernorm.weight`),
        ...attn(`${p}self_attn.`),
        postNorm: w.get(`${p}post_attention_layernorm.weight`),
        gateUp: concat([rows(w.get(`${p}mlp.gate_proj.weight`), D, rank * inter, inter), rows(w.get(`${p}mlp.up_proj.weight`), D, rank * inter, inter)]),
        down: columns(w.get(`${p}mlp.down_proj.weight`), D, d.intermediateSize, rank * inter, inter),
      }
    }
    const p = `backbone.layers.${i}.mixer.`
    const norm = w.get(`backbone.layers.${i}.norm.weight`)
    if (kind === 'attention') return {kind, norm, ...attn(p)}
    if (kind === 'mlp') {
      return {
        kind,
        norm,
        up: rows(w.get(`${p}up_proj.weight`), D, rank * rd.mlpInter, rd.mlpInter),
        down: columns(w.get(`${p}down_proj.weight`), D, d.intermediateSize, rank * rd.mlpInter, rd.mlpInter),
      }
    }
    const m = d.mamba!
    const I = m.inner
    const GN = m.nGroups * m.stateSize
    const Ir = rd.mambaInner
    const Hr = rd.mambaHeads
    const GNr = rd.mambaGroups * m.stateSize
    // Replicated groups (n_groups < tp): every rank reads B/C from offset 0 of its segment.
    const bcStart = m.nGroups % tp === 0 ? rank * GNr : 0
    const inProj = w.get(`${p}in_proj.weight`)
    const conv = w.get(`${p}conv1d.weight`)
    const K = m.convKernel
    const convBias = m.useConvBias ? w.get(`${p}conv1d.bias`) : null
    const heads = (name: string) => w.get(`${p}${name}`).slice(rank * Hr, (rank + 1) * Hr)
    return {
      kind,
      norm,
      inProj: concat([
        rows(inProj, D, rank * Ir, Ir),
        rows(inProj, D, I + rank * Ir, Ir),
        rows(inProj, D, 2 * I + bcStart, GNr),
        rows(inProj, D, 2 * I + GN + bcStart, GNr),
        rows(inProj, D, 2 * I + 2 * GN + rank * Hr, Hr),
      ]),
      convWeight: concat([rows(conv, K, rank * Ir, Ir), rows(conv, K, I + bcStart, GNr), rows(conv, K, I + GN + bcStart, GNr)]),
      convBias: convBias && concat([rows(convBias, 1, rank * Ir, Ir), rows(convBias, 1, I + bcStart, GNr), rows(convBias, 1, I + GN + bcStart, GNr)]),
      dtBias: heads('dt_bias'),
      a: heads('A_log').map((v) => -Math.exp(v)),
      d: heads('D'),
      gatedNorm: w.get(`${p}norm.weight`).slice(rank * Ir, (rank + 1) * Ir),
      outProj: columns(w.get(`${p}out_proj.weight`), D, I, rank * Ir, Ir),
    }
  })
  return {
    dims: rd,
    embedding: rows(w.get(embedName), D, vocabBegin, vocabEnd - vocabBegin),
    layers,
    finalNorm: w.get(isLlama ? 'model.norm.weight' : 'backbone.norm_f.weight'),
    lmHead: rows(w.get(headName), D, vocabBegin, vocabEnd - vocabBegin),
  }
}
