import type {WeightArray} from '../../native/kernels-binding.js'
import type {AttentionDims, GdnDims, MambaDims, ModelDims} from '../model-dims.js'
import type {AttentionRankWeights, GdnRankWeights, MambaRankWeights, MlpRankWeights, MoeRankWeights, Projection, RankDims} from '../rank-weights.js'
import type {Weights} from '../weights.js'
import type {RankShard} from './index.js'

/**
 * Cutting checkpoint tensors into one rank's shard (vLLM's column / row parallel rules,
 * model-forward.md §6), for every op kind; the family files only name the tensors. Shards keep
 * the checkpoint dtype (bf16 stays bf16). Column-parallel pieces are row ranges: views into the
 * checkpoint's tensors, never copies (a fused projection is a list of such views, computed into
 * consecutive output columns); only row-parallel pieces (column ranges) are copied, 1/tp each.
 */
type Rows = readonly [start: number, count: number]

/** Rows [start, start+count) of a row-major [*, cols] matrix: a view. */
export function rows(w: WeightArray, cols: number, start: number, count: number): WeightArray {
  return w.subarray(start * cols, (start + count) * cols)
}

/** Several row runs of one [*, cols] matrix, in order, as views (adjacent runs merged into one). */
export function rowRuns(w: WeightArray, cols: number, runs: readonly Rows[]): WeightArray[] {
  const merged: [number, number][] = []
  for (const [start, count] of runs) {
    if (count === 0) continue
    const last = merged.at(-1)
    if (last && last[0] + last[1] === start) last[1] += count
    else merged.push([start, count])
  }
  return merged.map(([start, count]) => rows(w, cols, start, count))
}

/** Columns [start, start+count) of a row-major [numRows, cols] matrix (a copy unless all of them). */
export function columns(w: WeightArray, numRows: number, cols: number, start: number, count: number): WeightArray {
  if (start === 0 && count === cols) return w
  const out = w instanceof Uint16Array ? new Uint16Array(numRows * count) : new Float32Array(numRows * count)
  for (let r = 0; r < numRows; r++) out.set(w.subarray(r * cols + start, r * cols + start + count), r * count)
  return out
}

/** One row range of a checkpoint tensor, taken into a projection's output (in the order given). */
export interface Segment {
  readonly w: WeightArray
  readonly start: number
  readonly count: number
}

/**
 * A fused projection from row ranges (`segments`, in the output column order the op reads):
 * the ranges become views grouped by tensor and merged where adjacent (as few GEMM calls as the
 * checkpoint's layout allows), computed into consecutive raw columns, then rearranged by `order`
 * when the checkpoint interleaves them differently (Qwen3-Next's per-head [q | gate] and per-key-
 * head [q | k | v | z]).
 */
export function projection(cols: number, segments: readonly Segment[]): Projection {
  const tensors: WeightArray[] = []
  for (const seg of segments) if (seg.count > 0 && !tensors.includes(seg.w)) tensors.push(seg.w)
  const raw: {seg: Segment; dst: number}[] = []
  let dst = 0
  for (const seg of segments) {
    raw.push({seg, dst})
    dst += seg.count
  }
  const sorted = raw.filter((r) => r.seg.count > 0).sort((a, b) => tensors.indexOf(a.seg.w) - tensors.indexOf(b.seg.w) || a.seg.start - b.seg.start)
  const parts: WeightArray[] = []
  const runs: number[] = []
  let rawOffset = 0
  let open: {w: WeightArray; start: number; count: number} | undefined
  const flush = () => {
    if (open) parts.push(rows(open.w, cols, open.start, open.count))
    open = undefined
  }
  for (const r of sorted) {
    if (open && open.w === r.seg.w && open.start + open.count === r.seg.start) open.count += r.seg.count
    else {
      flush()
      open = {w: r.seg.w, start: r.seg.start, count: r.seg.count}
    }
    runs.push(rawOffset, r.dst, r.seg.count)
    rawOffset += r.seg.count
  }
  flush()
  const inOrder = runs.every((v, i) => i % 3 !== 0 || v === runs[i + 1])
  return {parts, width: dst, order: inOrder ? null : Int32Array.from(runs)}
}

/** Rows runs of a small fp32 matrix, copied contiguous (conv weights: the kernel reads [channels, K]). */
function f32Rows(w: Float32Array, cols: number, runs: readonly Rows[]): Float32Array {
  const out = new Float32Array(runs.reduce((n, [, count]) => n + count * cols, 0))
  let o = 0
  for (const [start, count] of runs) {
    out.set(w.subarray(start * cols, (start + count) * cols), o)
    o += count * cols
  }
  return out
}

/** A pre-norm weight; zero-centred norms (Qwen3-Next) scale by 1 + w, folded here. */
/**
 * A rank's shard around its layers: its vocabulary rows of the embedding and of the output head
 * (the embedding again when tied), and the final norm. Every family ends its shard() this way.
 */
export function rankShard(d: ModelDims, w: Weights, rd: RankDims, names: {readonly embedding: string; readonly finalNorm: string; readonly zeroCenteredNorm?: boolean}, layers: RankShard['layers']): RankShard {
  const {vocabBegin, vocabEnd} = rd.vocab
  const vocabRows = (name: string) => rows(w.get(name), d.hiddenSize, vocabBegin, vocabEnd - vocabBegin)
  return {
    embedding: vocabRows(names.embedding),
    layers,
    finalNorm: normWeight(w, names.finalNorm, names.zeroCenteredNorm ?? false),
    lmHead: vocabRows(d.tieWordEmbeddings ? names.embedding : 'lm_head.weight'),
  }
}

export function normWeight(w: Weights, name: string, zeroCentered: boolean): Float32Array {
  const v = w.f32(name)
  return zeroCentered ? v.map((x) => 1 + x) : v
}

export interface AttentionNames {
  readonly q: string
  readonly k: string
  readonly v: string
  readonly o: string
  readonly qNorm?: string
  readonly kNorm?: string
}

/** `<prefix>{q,k,v,o}_proj.weight`: the projection names every family uses. */
export function projectionNames(prefix: string): AttentionNames {
  return {q: `${prefix}q_proj.weight`, k: `${prefix}k_proj.weight`, v: `${prefix}v_proj.weight`, o: `${prefix}o_proj.weight`}
}

export function shardAttention(d: ModelDims, w: Weights, names: AttentionNames, rd: RankDims): AttentionRankWeights {
  const a = d.attention as AttentionDims
  const D = d.hiddenSize
  const hd = a.headDim
  const first = rd.rank * rd.qHeads
  const q = w.get(names.q)
  const heads = Array.from({length: rd.qHeads}, (_x, i) => first + i)
  // With an output gate, q_proj rows are per head [q (hd) | gate (hd)] (Qwen3-Next's view(.., hd·2) then chunk).
  const qSegments: Segment[] = a.outputGate ? heads.map((h) => ({w: q, start: h * 2 * hd, count: hd})) : [{w: q, start: first * hd, count: rd.qHeads * hd}]
  const gateSegments: Segment[] = a.outputGate ? heads.map((h) => ({w: q, start: h * 2 * hd + hd, count: hd})) : []
  const kvRows = rd.kvHeads * hd
  const qkv = projection(D, [
    ...qSegments,
    {w: w.get(names.k), start: rd.firstKvHead * hd, count: kvRows},
    {w: w.get(names.v), start: rd.firstKvHead * hd, count: kvRows},
    ...gateSegments,
  ])
  let qkvScale: Float32Array | null = null
  if (a.inputScale !== 1 || a.keyScale !== 1) {
    const qCols = rd.qHeads * hd
    qkvScale = new Float32Array(qkv.width).fill(a.inputScale)
    qkvScale.fill(a.inputScale * a.keyScale, qCols, qCols + kvRows)
  }
  const zc = d.zeroCenteredNorms
  return {
    kind: 'attention',
    qkv,
    qkvScale,
    qNorm: names.qNorm ? normWeight(w, names.qNorm, zc) : null,
    kNorm: names.kNorm ? normWeight(w, names.kNorm, zc) : null,
    oProj: columns(w.get(names.o), D, a.numHeads * hd, first * hd, rd.qHeads * hd),
  }
}

/** Mamba2 mixer tensors under `prefix` (in_proj, conv1d, dt_bias, A_log, D, norm, out_proj): Nemotron-H, Granite, Falcon-H1. */
export function shardMamba(d: ModelDims, w: Weights, prefix: string, rd: RankDims): MambaRankWeights {
  const m = d.mamba as MambaDims
  const D = d.hiddenSize
  const rank = rd.rank
  const I = m.inner
  const GN = m.nGroups * m.stateSize
  const Ir = rd.mambaInner
  const Hr = rd.mambaHeads
  const GNr = rd.mambaGroups * m.stateSize
  // Replicated groups (n_groups < tp): every rank reads B/C from offset 0 of its segment.
  const bcStart = m.nGroups % rd.tp === 0 ? rank * GNr : 0
  const inProj = w.get(`${prefix}in_proj.weight`)
  const conv = w.f32(`${prefix}conv1d.weight`)
  const K = m.convKernel
  const convBias = m.useConvBias ? w.f32(`${prefix}conv1d.bias`) : null
  const heads = (name: string) => w.f32(`${prefix}${name}`).slice(rank * Hr, (rank + 1) * Hr)
  let projScale: Float32Array | null = null
  if (m.projMultipliers) {
    const [z, x, b, c, dt] = m.projMultipliers
    projScale = new Float32Array(rd.mambaProjRows)
    projScale.fill(z, 0, Ir).fill(x, Ir, 2 * Ir).fill(b, 2 * Ir, 2 * Ir + GNr).fill(c, 2 * Ir + GNr, 2 * Ir + 2 * GNr).fill(dt, 2 * Ir + 2 * GNr)
  }
  const convRuns: Rows[] = [[rank * Ir, Ir], [I + bcStart, GNr], [I + GN + bcStart, GNr]]
  return {
    kind: 'mamba',
    inProj: projection(D, [
      {w: inProj, start: rank * Ir, count: Ir},
      {w: inProj, start: I + rank * Ir, count: Ir},
      {w: inProj, start: 2 * I + bcStart, count: GNr},
      {w: inProj, start: 2 * I + GN + bcStart, count: GNr},
      {w: inProj, start: 2 * I + 2 * GN + rank * Hr, count: Hr},
    ]),
    projScale,
    convWeight: f32Rows(conv, K, convRuns),
    convBias: convBias && f32Rows(convBias, 1, convRuns),
    dtBias: heads('dt_bias'),
    a: heads('A_log').map((v) => -Math.exp(v)),
    d: heads('D'),
    gatedNorm: m.normMode === 'none' ? null : w.f32(`${prefix}norm.weight`).slice(rank * Ir, (rank + 1) * Ir),
    outProj: columns(w.get(`${prefix}out_proj.weight`), D, I, rank * Ir, Ir),
  }
}

/**
 * Gated DeltaNet tensors under `prefix`. Qwen3-Next fuses in_proj_qkvz / in_proj_ba per key head
 * ([q_g | k_g | v_g | z_g] and [b_g | a_g] for each key head g, v_g and z_g holding the g's
 * Hv/Hk value heads); Qwen3.5 has separate in_proj_qkv ([q | k | v]), in_proj_z, in_proj_b,
 * in_proj_a. Both become the rank's [q_r | k_r | v_r | z_r | b_r | a_r].
 */
export function shardGdn(d: ModelDims, w: Weights, prefix: string, rd: RankDims, naming: 'qwen3-next' | 'qwen3.5'): GdnRankWeights {
  const g = d.gdn as GdnDims
  const D = d.hiddenSize
  const dk = g.keyHeadDim
  const dv = g.valueHeadDim
  const Hk = g.numKeyHeads
  const Hv = g.numValueHeads
  const ratio = Hv / Hk
  const Hkr = rd.gdnKeyHeads
  const Hvr = rd.gdnValueHeads
  const k0 = rd.rank * Hkr
  const v0 = rd.rank * Hvr
  let segments: Segment[]
  if (naming === 'qwen3-next') {
    const qkvz = w.get(`${prefix}in_proj_qkvz.weight`)
    const ba = w.get(`${prefix}in_proj_ba.weight`)
    const block = 2 * dk + 2 * ratio * dv
    const per = (t: WeightArray, offset: number, length: number, width: number): Segment[] =>
      Array.from({length: Hkr}, (_x, i) => ({w: t, start: (k0 + i) * width + offset, count: length}))
    segments = [
      ...per(qkvz, 0, dk, block),
      ...per(qkvz, dk, dk, block),
      ...per(qkvz, 2 * dk, ratio * dv, block),
      ...per(qkvz, 2 * dk + ratio * dv, ratio * dv, block),
      ...per(ba, 0, ratio, 2 * ratio),
      ...per(ba, ratio, ratio, 2 * ratio),
    ]
  } else {
    const qkv = w.get(`${prefix}in_proj_qkv.weight`)
    segments = [
      {w: qkv, start: k0 * dk, count: Hkr * dk},
      {w: qkv, start: Hk * dk + k0 * dk, count: Hkr * dk},
      {w: qkv, start: 2 * Hk * dk + v0 * dv, count: Hvr * dv},
      {w: w.get(`${prefix}in_proj_z.weight`), start: v0 * dv, count: Hvr * dv},
      {w: w.get(`${prefix}in_proj_b.weight`), start: v0, count: Hvr},
      {w: w.get(`${prefix}in_proj_a.weight`), start: v0, count: Hvr},
    ]
  }
  const K = g.convKernel
  const conv = w.f32(`${prefix}conv1d.weight`)
  const norm = w.f32(`${prefix}norm.weight`)
  const tiled = new Float32Array(Hvr * dv)
  for (let h = 0; h < Hvr; h++) tiled.set(norm, h * dv)
  return {
    kind: 'gdn',
    inProj: projection(D, segments),
    convWeight: f32Rows(conv, K, [[k0 * dk, Hkr * dk], [Hk * dk + k0 * dk, Hkr * dk], [2 * Hk * dk + v0 * dv, Hvr * dv]]),
    dtBias: w.f32(`${prefix}dt_bias`).slice(v0, v0 + Hvr),
    aNeg: w.f32(`${prefix}A_log`).slice(v0, v0 + Hvr).map((v) => -Math.exp(v)),
    gatedNorm: tiled,
    outProj: columns(w.get(`${prefix}out_proj.weight`), D, Hv * dv, v0 * dv, Hvr * dv),
  }
}

/** Where an MLP's weights are: relu2 `up`; swiglu separate `gate` + `up`, or one fused `gateUp` ([gate; up] rows). */
export type MlpNames = {readonly up: string; readonly down: string} | {readonly gate: string; readonly up: string; readonly down: string} | {readonly gateUp: string; readonly down: string}

/** The gate (swiglu) and up row ranges of an MLP of width `inter` on this rank, and its down columns. */
/** `<prefix>{gate,up,down}_proj.weight`: a SwiGLU MLP as the HF families name it. */
export function swigluNames(prefix: string): MlpNames {
  return {gate: `${prefix}gate_proj.weight`, up: `${prefix}up_proj.weight`, down: `${prefix}down_proj.weight`}
}

function mlpPieces(D: number, inter: number, w: Weights, names: MlpNames, rd: RankDims): {gate: Segment | null; up: Segment; down: WeightArray} {
  const Ir = inter / rd.tp
  const r0 = rd.rank * Ir
  const down = columns(w.get(names.down), D, inter, r0, Ir)
  if ('gateUp' in names) {
    const t = w.get(names.gateUp)
    return {gate: {w: t, start: r0, count: Ir}, up: {w: t, start: inter + r0, count: Ir}, down}
  }
  if ('gate' in names) return {gate: {w: w.get(names.gate), start: r0, count: Ir}, up: {w: w.get(names.up), start: r0, count: Ir}, down}
  return {gate: null, up: {w: w.get(names.up), start: r0, count: Ir}, down}
}

/** An MLP of intermediate width `inter` (split over tp: column-parallel up/gate, row-parallel down). */
export function shardMlp(D: number, inter: number, activation: 'relu2' | 'swiglu', w: Weights, names: MlpNames, rd: RankDims, gateScale = 1): MlpRankWeights {
  const Ir = inter / rd.tp
  const p = mlpPieces(D, inter, w, names, rd)
  const up = projection(D, p.gate ? [p.gate, p.up] : [p.up])
  const upScale = activation === 'swiglu' && gateScale !== 1 ? new Float32Array(2 * Ir).fill(gateScale, 0, Ir).fill(1, Ir) : null
  return {kind: 'mlp', up, upScale, down: p.down}
}

export interface MoeNames {
  readonly router: string
  readonly routerBias?: string
  /** Per-expert tensors (Nemotron-H, Qwen3-Next) or the stacked [E, 2I, D] / [E, D, I] pair (Granite). */
  readonly experts: ((j: number) => MlpNames) | {readonly stackedGateUp: string; readonly stackedDown: string}
  readonly shared?: MlpNames
  readonly sharedGate?: string
}

export function shardMoe(d: ModelDims, w: Weights, names: MoeNames, rd: RankDims): MoeRankWeights {
  const moe = d.moe!
  const D = d.hiddenSize
  const I = moe.expertSize
  const E = moe.numExperts
  const gated = moe.activation === 'swiglu'
  const gate: WeightArray[] = []
  const up: WeightArray[] = []
  const down: WeightArray[] = []
  for (let j = 0; j < E; j++) {
    let p: ReturnType<typeof mlpPieces>
    if (typeof names.experts === 'function') {
      p = mlpPieces(D, I, w, names.experts(j), rd)
    } else {
      // Granite's stacked [E, 2I, D] / [E, D, I]: each expert is a view of its rows.
      const U = gated ? 2 * I : I
      const stackedUp = w.get(names.experts.stackedGateUp).subarray(j * U * D, (j + 1) * U * D)
      const stackedDown = w.get(names.experts.stackedDown).subarray(j * D * I, (j + 1) * D * I)
      const Ir = I / rd.tp
      const r0 = rd.rank * Ir
      p = {
        gate: gated ? {w: stackedUp, start: r0, count: Ir} : null,
        up: {w: stackedUp, start: gated ? I + r0 : r0, count: Ir},
        down: columns(stackedDown, D, I, r0, Ir),
      }
    }
    if (p.gate) gate.push(rows(p.gate.w, D, p.gate.start, p.gate.count))
    up.push(rows(p.up.w, D, p.up.start, p.up.count))
    down.push(p.down)
  }
  return {
    kind: 'moe',
    router: w.f32(names.router),
    routerBias: names.routerBias ? w.f32(names.routerBias) : null,
    gate: gated ? gate : null,
    up,
    down,
    shared: names.shared && moe.sharedSize > 0 ? shardMlp(D, moe.sharedSize, moe.activation, w, names.shared, rd) : null,
    sharedGate: names.sharedGate ? w.f32(names.sharedGate) : null,
  }
}
