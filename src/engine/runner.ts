import type {EngineLayout} from '../layout/types.js'
import {kernels, runRecorded, type KernelsBinding} from '../native/kernels-binding.js'
import {mambaPageGeometry, pagedKvGeometry, type MambaPageGeometry, type PagedKvGeometry, type RankCache} from './cache.js'
import type {ModelDims} from './model-dims.js'
import type {AttentionRankWeights, LlamaRankWeights, MambaRankWeights, RankWeights} from './tp-shard.js'

/**
 * One forward pass over a batch of sequence slices, all TP ranks in this process. Rows of every
 * slice are stacked ([R, D], R = total tokens) so the GEMMs see the whole batch; the stateful
 * kernels (conv, SSM scan, KV write, paged attention) run per slice on that slice's cache pages.
 * Rank-parallel work runs rank by rank on the rank's own weights, scratch and cache; each mixer's
 * partial outputs are then summed in rank order (the in-process all-reduce), as are the
 * vocab-parallel embedding lookups, and the LM-head shards are gathered.
 */
export interface SliceWork {
  /** Token ids of the slice, at positions pos0 .. pos0 + tokens.length − 1. */
  readonly tokens: Int32Array
  readonly pos0: number
  /** Kernel block table of the slice, per attention KV-cache group index. */
  readonly attentionTables: ReadonlyMap<number, Int32Array>
  /** Logical page of the slice, per state (Mamba) KV-cache group index. */
  readonly statePages: ReadonlyMap<number, number>
  /** Return the logits of the slice's last token. */
  readonly wantLogits: boolean
}

interface Placement {
  readonly group: number
  readonly tensorIndex: number
}

class Scratch {
  private readonly buffers = new Map<string, Float32Array>()

  get(name: string, size: number): Float32Array {
    let b = this.buffers.get(name)
    if (!b || b.length < size) {
      b = new Float32Array(Math.max(size, Math.ceil((b?.length ?? 0) * 1.5)))
      this.buffers.set(name, b)
    }
    return b.subarray(0, size)
  }
}

export class ModelRunner {
  private readonly k: KernelsBinding = kernels()
  private readonly shared = new Scratch()
  private readonly scratch: Scratch[]
  private readonly placements: readonly (Placement | undefined)[]
  private readonly kvGeometry: readonly PagedKvGeometry[] | undefined
  private readonly mambaGeometry: readonly MambaPageGeometry[] | undefined

  constructor(
    readonly dims: ModelDims,
    readonly ranks: readonly RankWeights[],
    readonly layout: EngineLayout,
    readonly caches: readonly RankCache[],
    readonly numBlocks: number,
  ) {
    this.scratch = ranks.map(() => new Scratch())
    this.placements = dims.layers.map((_k, i) => {
      const c = layout.layers[i]?.caches[0]
      return c && {group: c.group, tensorIndex: c.tensorIndex}
    })
    this.kvGeometry = dims.attention ? ranks.map((_r, rank) => pagedKvGeometry(layout, rank, numBlocks)) : undefined
    this.mambaGeometry = dims.mamba ? ranks.map((_r, rank) => mambaPageGeometry(layout, rank)) : undefined
  }

  /**
   * Runs the slices; returns the last-token logits [vocab] of each slice with wantLogits, in order.
   * Everything it computes goes through kernel calls (no JS reads of computed values), so the same
   * code runs recorded off the main thread (`forwardAsync`).
   */
  forward(slices: readonly SliceWork[]): Float32Array[] {
    const D = this.dims.hiddenSize
    const starts: number[] = []
    let R = 0
    for (const s of slices) {
      starts.push(R)
      R += s.tokens.length
    }
    const ids = new Int32Array(R)
    slices.forEach((s, i) => ids.set(s.tokens, starts[i]))
    const h = this.shared.get('h', R * D)
    const u = this.shared.get('u', R * D)
    this.embed(ids, h, R)
    this.dims.layers.forEach((kind, layer) => {
      if (kind === 'llama') {
        this.llamaLayer(layer, slices, starts, h, u, R)
        return
      }
      const w0 = this.ranks[0].layers[layer] as MambaRankWeights
      this.k.rmsNorm(h, w0.norm, u, R, D, this.dims.normEps)
      if (kind === 'mamba') this.mamba(layer, slices, starts, u, h, R)
      else if (kind === 'attention') this.attention(layer, slices, starts, u, h, R, (r) => this.ranks[r].layers[layer] as AttentionRankWeights)
      else this.mlp(layer, u, h, R)
    })
    return this.logits(slices, starts, h)
  }

  /**
   * `forward` with its kernels run off the JS main thread (one recorded program): the event loop
   * stays free meanwhile. The caller must not start another forward, or touch the slices' cache
   * pages, until it resolves.
   */
  forwardAsync(slices: readonly SliceWork[]): Promise<Float32Array[]> {
    return runRecorded(() => this.forward(slices))
  }

  private embed(ids: Int32Array, h: Float32Array, R: number): void {
    const D = this.dims.hiddenSize
    this.ranks.forEach((rw, r) => {
      const {vocabBegin, vocabEnd} = rw.dims.vocab
      const out = r === 0 ? h : this.scratch[r].get('partial', R * D)
      this.k.embedding(ids, rw.embedding, vocabBegin, vocabEnd, D, out)
      if (r > 0) this.k.addInplace(h, out, R * D)
    })
  }

  /** h += Σ_r partial_r, rank order: the in-process all-reduce after a row-parallel projection. */
  private allReduceInto(h: Float32Array, R: number, compute: (rank: number, partial: Float32Array) => void): void {
    const n = R * this.dims.hiddenSize
    this.ranks.forEach((_rw, r) => {
      const partial = this.scratch[r].get('partial', n)
      compute(r, partial)
    })
    this.ranks.forEach((_rw, r) => this.k.addInplace(h, this.scratch[r].get('partial', n), n))
  }

  private mamba(layer: number, slices: readonly SliceWork[], starts: readonly number[], u: Float32Array, h: Float32Array, R: number): void {
    const D = this.dims.hiddenSize
    const m = this.dims.mamba!
    const place = this.placements[layer]!
    const N = m.stateSize
    // Stage 1 per rank: in_proj, conv, scan, gate·y and the gated-norm statistics.
    for (let r = 0; r < this.ranks.length; r++) {
      const w = this.ranks[r].layers[layer] as MambaRankWeights
      const rd = this.ranks[r].dims
      const s = this.scratch[r]
      const W = rd.mambaProjRows
      const CD = rd.mambaConvChannels
      const Ir = rd.mambaInner
      const GNr = rd.mambaGroups * N
      const zxbcdt = s.get('zxbcdt', R * W)
      this.k.linear(u, D, w.inProj, zxbcdt, W, R, D, W, false)
      const xbc = s.get('xbc', R * CD)
      const y = s.get('y', R * Ir)
      const tensor = this.caches[r].tensors[place.tensorIndex]
      const g = this.mambaGeometry![r]
      slices.forEach((slice, i) => {
        const T = slice.tokens.length
        const row = starts[i]
        const page = slice.statePages.get(place.group)!
        const base = page * g.pageStride
        const convState = tensor.subarray(base + g.convOffset, base + g.convOffset + g.convElems)
        const ssmState = tensor.subarray(base + g.ssmOffset, base + g.ssmOffset + g.ssmElems)
        const xbcRows = xbc.subarray(row * CD)
        this.k.conv1d(zxbcdt.subarray(row * W + Ir), W, w.convWeight, w.convBias, convState, xbcRows, T, CD, m.convKernel)
        this.k.ssmScan(
          xbcRows, CD, xbcRows.subarray(Ir), xbcRows.subarray(Ir + GNr), CD,
          zxbcdt.subarray(row * W + Ir + CD), W, w.dtBias, w.a, w.d, ssmState, y.subarray(row * Ir),
          T, rd.mambaHeads, m.headDim, rd.mambaGroups, N, T > 1 ? m.chunkSize : 0,
        )
      })
      const groups = Ir / rd.gatedNormGroupSize
      this.k.gatedNormSumsq(y, zxbcdt, W, s.get('gated', R * Ir), s.get('sumsq', R * groups), R, Ir, rd.gatedNormGroupSize)
    }
    // One group split over ranks (n_groups < tp): all-reduce the Σg² before normalising.
    const rd0 = this.ranks[0].dims
    if (rd0.gatedNormAcrossRanks) {
      const total = this.scratch[0].get('sumsq', R)
      for (let r = 1; r < this.ranks.length; r++) this.k.addInplace(total, this.scratch[r].get('sumsq', R), R)
      // Copies through the kernels (not TypedArray.set) so a recorded forward keeps its order.
      for (let r = 1; r < this.ranks.length; r++) this.k.copy(this.scratch[r].get('sumsq', R), total, R)
    }
    this.allReduceInto(h, R, (r, partial) => {
      const w = this.ranks[r].layers[layer] as MambaRankWeights
      const rd = this.ranks[r].dims
      const Ir = rd.mambaInner
      const s = this.scratch[r]
      const gated = s.get('gated', R * Ir)
      const count = rd.gatedNormAcrossRanks ? m.inner : rd.gatedNormCount
      this.k.gatedNormApply(gated, s.get('sumsq', R * (Ir / rd.gatedNormGroupSize)), w.gatedNorm, R, Ir, rd.gatedNormGroupSize, count, this.dims.normEps)
      this.k.linear(gated, Ir, w.outProj, partial, D, R, Ir, D, false)
    })
  }

  private attention(
    layer: number,
    slices: readonly SliceWork[],
    starts: readonly number[],
    u: Float32Array,
    h: Float32Array,
    R: number,
    weights: (rank: number) => {qkv: Float32Array; oProj: Float32Array},
  ): void {
    const D = this.dims.hiddenSize
    const a = this.dims.attention!
    const hd = a.headDim
    const place = this.placements[layer]!
    const rope = this.dims.family === 'llama'
    this.allReduceInto(h, R, (r, partial) => {
      const w = weights(r)
      const rd = this.ranks[r].dims
      const s = this.scratch[r]
      const qCols = rd.qHeads * hd
      const W = qCols + 2 * rd.kvHeads * hd
      const qkv = s.get('qkv', R * W)
      this.k.linear(u, D, w.qkv, qkv, W, R, D, W, false)
      const out = s.get('attn', R * qCols)
      const tensor = this.caches[r].tensors[place.tensorIndex]
      const g = this.kvGeometry![r]
      slices.forEach((slice, i) => {
        const T = slice.tokens.length
        const rows = qkv.subarray(starts[i] * W)
        if (rope) {
          this.k.ropeNeox(rows, W, slice.pos0, T, rd.qHeads, hd, this.dims.ropeTheta)
          this.k.ropeNeox(rows.subarray(qCols), W, slice.pos0, T, rd.kvHeads, hd, this.dims.ropeTheta)
        }
        const table = slice.attentionTables.get(place.group)!
        this.k.kvCacheWrite(tensor, table, g.kernelBlockSize, g.blockStride, g.kOffset, g.vOffset, g.headStride,
          rows.subarray(qCols), W, rows.subarray(qCols + rd.kvHeads * hd), W, slice.pos0, T, rd.kvHeads, hd)
        this.k.pagedAttention(tensor, table, g.kernelBlockSize, g.blockStride, g.kOffset, g.vOffset, g.headStride,
          rows, W, out.subarray(starts[i] * qCols), slice.pos0, T, rd.qHeads, rd.kvHeads, hd, 1 / Math.sqrt(hd))
      })
      this.k.linear(out, qCols, w.oProj, partial, D, R, qCols, D, false)
    })
  }

  private mlp(layer: number, u: Float32Array, h: Float32Array, R: number): void {
    const D = this.dims.hiddenSize
    this.allReduceInto(h, R, (r, partial) => {
      const w = this.ranks[r].layers[layer] as {up: Float32Array; down: Float32Array}
      const I = this.ranks[r].dims.mlpInter
      const up = this.scratch[r].get('up', R * I)
      this.k.linear(u, D, w.up, up, I, R, D, I, false)
      this.k.reluSquared(up, R * I)
      this.k.linear(up, I, w.down, partial, D, R, I, D, false)
    })
  }

  private llamaLayer(layer: number, slices: readonly SliceWork[], starts: readonly number[], h: Float32Array, u: Float32Array, R: number): void {
    const D = this.dims.hiddenSize
    const w0 = this.ranks[0].layers[layer] as LlamaRankWeights
    this.k.rmsNorm(h, w0.inputNorm, u, R, D, this.dims.normEps)
    this.attention(layer, slices, starts, u, h, R, (r) => this.ranks[r].layers[layer] as LlamaRankWeights)
    this.k.rmsNorm(h, w0.postNorm, u, R, D, this.dims.normEps)
    this.allReduceInto(h, R, (r, partial) => {
      const w = this.ranks[r].layers[layer] as LlamaRankWeights
      const I = this.ranks[r].dims.mlpInter
      const gu = this.scratch[r].get('gu', R * 2 * I)
      this.k.linear(u, D, w.gateUp, gu, 2 * I, R, D, 2 * I, false)
      const act = this.scratch[r].get('up', R * I)
      this.k.siluMul(gu, act, R, I)
      this.k.linear(act, I, w.down, partial, D, R, I, D, false)
    })
  }

  private logits(slices: readonly SliceWork[], starts: readonly number[], h: Float32Array): Float32Array[] {
    const D = this.dims.hiddenSize
    const V = this.dims.vocabSize
    const picked = slices.map((s, i) => (s.wantLogits ? starts[i] + s.tokens.length - 1 : -1)).filter((row) => row >= 0)
    if (picked.length === 0) return []
    const S = picked.length
    const last = this.shared.get('last', S * D)
    picked.forEach((row, j) => this.k.copy(last.subarray(j * D), h.subarray(row * D), D))
    const normed = this.shared.get('lastNormed', S * D)
    this.k.rmsNorm(last, this.ranks[0].finalNorm, normed, S, D, this.dims.normEps)
    const out = new Float32Array(S * V)
    // Vocab-parallel LM head: each rank's [S, V_r] slice is gathered into columns [begin, end).
    for (const rw of this.ranks) {
      const {vocabBegin, vocabEnd} = rw.dims.vocab
      const n = vocabEnd - vocabBegin
      if (n === 0) continue
      this.k.linear(normed, D, rw.lmHead, out.subarray(vocabBegin), V, S, D, n, false)
    }
    return picked.map((_row, j) => out.subarray(j * V, (j + 1) * V))
  }
}
