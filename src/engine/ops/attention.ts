import type {AttentionRankWeights} from '../rank-weights.js'
import {type Op, opWeights, project} from './context.js'

/**
 * Attention over the paged KV cache: fused q|k|v(|gate) projection (times Falcon-H1's input and
 * key multipliers), Qwen3-Next's per-head q/k RMSNorm, NeoX RoPE on the rotary dims (none for
 * NoPE families), K/V written into the slice's kernel blocks, causal GQA attention with the
 * family's softmax scale, Qwen3-Next's sigmoid output gate, o_proj (row-parallel).
 */
export const attentionOp: Op = {
  project(ctx, ref, batch, u, rank, partial, accumulate) {
    const {k, dims} = ctx
    const a = dims.attention!
    const D = dims.hiddenSize
    const hd = a.headDim
    const R = batch.rows
    const w = opWeights<AttentionRankWeights>(ctx, ref, rank)
    const rd = ctx.ranks[rank].dims
    const s = ctx.scratch[rank]
    const qCols = rd.qHeads * hd
    const kvCols = rd.kvHeads * hd
    const W = qCols + 2 * kvCols + (a.outputGate ? qCols : 0)
    const qkv = s.get('qkv', R * W)
    project(ctx, rank, u, w.qkv, qkv, R)
    if (w.qkvScale) k.mulColumns(qkv, W, R, W, w.qkvScale)
    const out = s.get('attn', R * qCols)
    const place = ctx.attentionPlacement[ref.layer]!
    const tensor = ctx.caches[rank].tensors[place.tensorIndex]
    const g = ctx.kvGeometry![rank]
    batch.slices.forEach((slice, i) => {
      const T = slice.tokens.length
      const rows = qkv.subarray(batch.starts[i] * W)
      if (w.qNorm && w.kNorm) {
        k.headRmsNorm(rows, W, T, rd.qHeads, hd, w.qNorm, dims.normEps)
        k.headRmsNorm(rows.subarray(qCols), W, T, rd.kvHeads, hd, w.kNorm, dims.normEps)
      }
      if (a.rope) {
        k.ropeNeox(rows, W, slice.pos0, T, rd.qHeads, hd, a.rope.theta, a.rope.rotaryDim)
        k.ropeNeox(rows.subarray(qCols), W, slice.pos0, T, rd.kvHeads, hd, a.rope.theta, a.rope.rotaryDim)
      }
      const table = slice.attentionTables.get(place.group)!
      k.kvCacheWrite(tensor, table, g.kernelBlockSize, g.blockStride, g.kOffset, g.vOffset, g.headStride,
        rows.subarray(qCols), W, rows.subarray(qCols + kvCols), W, slice.pos0, T, rd.kvHeads, hd)
      k.pagedAttention(tensor, table, g.kernelBlockSize, g.blockStride, g.kOffset, g.vOffset, g.headStride,
        rows, W, out.subarray(batch.starts[i] * qCols), slice.pos0, T, rd.qHeads, rd.kvHeads, hd, a.softmaxScale)
    })
    if (a.outputGate) k.sigmoidMul(out, qkv.subarray(qCols + 2 * kvCols), W, R, qCols)
    k.linear(out, qCols, w.oProj, partial, D, R, qCols, D, accumulate, a.outScale)
  },
}
