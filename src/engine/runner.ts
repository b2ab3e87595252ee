import type {EngineLayout} from '../layout/types.js'
import {kernels, runRecorded} from '../native/kernels-binding.js'
import {mambaPageGeometry, pagedKvGeometry, type RankCache} from './cache.js'
import type {ModelDims, OpKind} from './model-dims.js'
import {attentionOp} from './ops/attention.js'
import {type Batch, type Op, type Placement, type RunnerContext, Scratch, type SliceWork} from './ops/context.js'
import {mlpOp, moeOp} from './ops/ffn.js'
import {gdnOp} from './ops/gdn.js'
import {mambaOp} from './ops/mamba.js'
import type {RankWeights} from './rank-weights.js'

export type {SliceWork} from './ops/context.js'

const OPS: Readonly<Record<OpKind, Op>> = {mamba: mambaOp, attention: attentionOp, gdn: gdnOp, mlp: mlpOp, moe: moeOp}

/**
 * One forward pass over a batch of sequence slices, all TP ranks in this process. Rows of every
 * slice are stacked ([R, D], R = total tokens) so the GEMMs see the whole batch; the stateful
 * kernels (conv, scans, KV write, paged attention) run per slice on that slice's cache pages.
 * Every family is the same loop: per layer, per residual block, the block's pre-norm, then its
 * ops (ops/): each op's `prepare` (cross-rank work), then per rank the ops' partial outputs are
 * summed into one partial, and the partials are summed in rank order into the residual stream
 * (the in-process all-reduce), as are the vocab-parallel embedding lookups; the LM-head shards
 * are gathered.
 */
export class ModelRunner {
  private readonly ctx: RunnerContext

  constructor(
    readonly dims: ModelDims,
    readonly ranks: readonly RankWeights[],
    readonly layout: EngineLayout,
    readonly caches: readonly RankCache[],
    readonly numBlocks: number,
  ) {
    const place = (kind: 'attention' | 'state') =>
      dims.layers.map((_l, i): Placement | undefined => {
        const c = layout.layers[i]?.caches.find((p) => p.kind === kind)
        return c && {group: c.group, tensorIndex: c.tensorIndex}
      })
    const hasState = layout.groups.some((g) => g.kind === 'state')
    this.ctx = {
      k: kernels(),
      dims,
      ranks,
      layout,
      caches,
      shared: new Scratch(),
      scratch: ranks.map(() => new Scratch()),
      attentionPlacement: place('attention'),
      statePlacement: place('state'),
      kvGeometry: dims.attention ? ranks.map((_r, rank) => pagedKvGeometry(layout, rank, numBlocks)) : undefined,
      stateGeometry: hasState ? ranks.map((_r, rank) => mambaPageGeometry(layout, rank)) : undefined,
    }
  }

  /**
   * Runs the slices; returns the last-token logits [vocab] of each slice with wantLogits, in order.
   * Everything it computes goes through kernel calls (no JS reads or writes of computed values:
   * copies and fills are kernels too), so the same code runs recorded off the main thread
   * (`forwardAsync`).
   */
  forward(slices: readonly SliceWork[]): Float32Array[] {
    const {k, shared} = this.ctx
    const D = this.dims.hiddenSize
    const starts: number[] = []
    let R = 0
    for (const s of slices) {
      starts.push(R)
      R += s.tokens.length
    }
    const batch: Batch = {slices, starts, rows: R}
    const ids = new Int32Array(R)
    slices.forEach((s, i) => ids.set(s.tokens, starts[i]))
    const h = shared.get('h', R * D)
    const u = shared.get('u', R * D)
    this.embed(ids, h, R)
    this.dims.layers.forEach((layer, l) => {
      layer.blocks.forEach((block, b) => {
        k.rmsNorm(h, this.ranks[0].layers[l][b].norm, u, R, D, this.dims.normEps)
        block.ops.forEach((kind, op) => OPS[kind].prepare?.(this.ctx, {layer: l, block: b, op}, batch, u))
        this.allReduceInto(h, R, (rank, partial) =>
          block.ops.forEach((kind, op) => OPS[kind].project(this.ctx, {layer: l, block: b, op}, batch, u, rank, partial, op > 0)),
        )
      })
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
    const {k, scratch} = this.ctx
    const D = this.dims.hiddenSize
    this.ranks.forEach((rw, r) => {
      const {vocabBegin, vocabEnd} = rw.dims.vocab
      const out = r === 0 ? h : scratch[r].get('partial', R * D)
      k.embedding(ids, rw.embedding, vocabBegin, vocabEnd, D, out)
      if (r > 0) k.addInplace(h, out, R * D)
    })
    if (this.dims.embeddingScale !== 1) k.scaleInplace(h, R * D, this.dims.embeddingScale)
  }

  /** h += Σ_r partial_r, rank order: the in-process all-reduce after a row-parallel projection. */
  private allReduceInto(h: Float32Array, R: number, compute: (rank: number, partial: Float32Array) => void): void {
    const {k, scratch} = this.ctx
    const n = R * this.dims.hiddenSize
    this.ranks.forEach((_rw, r) => compute(r, scratch[r].get('partial', n)))
    this.ranks.forEach((_rw, r) => k.addInplace(h, scratch[r].get('partial', n), n))
  }

  private logits(slices: readonly SliceWork[], starts: readonly number[], h: Float32Array): Float32Array[] {
    const {k, shared} = this.ctx
    const D = this.dims.hiddenSize
    const V = this.dims.vocabSize
    const picked = slices.map((s, i) => (s.wantLogits ? starts[i] + s.tokens.length - 1 : -1)).filter((row) => row >= 0)
    if (picked.length === 0) return []
    const S = picked.length
    const last = shared.get('last', S * D)
    // Copies through the kernels (not TypedArray.set) so a recorded forward keeps its order.
    picked.forEach((row, j) => k.copy(last.subarray(j * D), h.subarray(row * D), D))
    const normed = shared.get('lastNormed', S * D)
    k.rmsNorm(last, this.ranks[0].finalNorm, normed, S, D, this.dims.normEps)
    const out = new Float32Array(S * V)
    // Vocab-parallel LM head: each rank's [S, V_r] slice is gathered into columns [begin, end).
    for (const rw of this.ranks) {
      const {vocabBegin, vocabEnd} = rw.dims.vocab
      const n = vocabEnd - vocabBegin
      if (n === 0) continue
      k.linear(normed, D, rw.lmHead, out.subarray(vocabBegin), V, S, D, n, false, this.dims.logitsScale)
    }
    return picked.map((_row, j) => out.subarray(j * V, (j + 1) * V))
  }
}
