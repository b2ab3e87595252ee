import type {GdnRankWeights} from '../rank-weights.js'
import {type Op, opWeights, project, statePage} from './context.js'

/**
 * Gated DeltaNet (Qwen3-Next / Qwen3.5 linear attention): in_proj → [q | k | v | z | b | a],
 * causal conv + silu on [q | k | v] with the conv state, the gated delta rule with the state
 * [Hv, dv, dk] (chunked WY kernel for prefill slices, the recurrence for one token), the
 * per-head RMSNorm then · silu(z), out_proj (row-parallel). Every value head is local to its
 * rank, so nothing is summed across ranks before the projection.
 */
export const gdnOp: Op = {
  project(ctx, ref, batch, u, rank, partial, accumulate) {
    const {k, dims} = ctx
    const g = dims.gdn!
    const D = dims.hiddenSize
    const R = batch.rows
    const w = opWeights<GdnRankWeights>(ctx, ref, rank)
    const rd = ctx.ranks[rank].dims
    const s = ctx.scratch[rank]
    const W = rd.gdnProjRows
    const CD = rd.gdnConvChannels
    const Hk = rd.gdnKeyHeads
    const Hv = rd.gdnValueHeads
    const dk = g.keyHeadDim
    const dv = g.valueHeadDim
    const V = Hv * dv
    const proj = s.get('gdnProj', R * W)
    project(ctx, rank, u, w.inProj, proj, R)
    const qkv = s.get('gdnQkv', R * CD)
    const y = s.get('gdnY', R * V)
    batch.slices.forEach((slice, i) => {
      const T = slice.tokens.length
      const row = batch.starts[i]
      const page = statePage(ctx, ref.layer, rank, slice)
      const rows = qkv.subarray(row * CD)
      k.conv1d(proj.subarray(row * W), W, w.convWeight, null, page.conv, rows, T, CD, g.convKernel)
      const ba = proj.subarray(row * W + CD + V)
      k.gdnScan({
        q: rows, k: rows.subarray(Hk * dk), v: rows.subarray(2 * Hk * dk), ldQkv: CD,
        b: ba, a: ba.subarray(Hv), ldBa: W, aNeg: w.aNeg, dtBias: w.dtBias, state: page.ssm, out: y.subarray(row * V),
        tokens: T, keyHeads: Hk, valueHeads: Hv, keyDim: dk, valueDim: dv, chunk: T > 1 ? g.chunkSize : 0,
      })
    })
    const z = proj.subarray(CD)
    const normed = s.get('gdnNormed', R * V)
    const sumsq = s.get('gdnSumsq', R * Hv)
    k.gatedNormSumsq(y, z, W, normed, sumsq, R, V, dv, true)
    k.gatedNormApply(normed, sumsq, w.gatedNorm, R, V, dv, dv, dims.normEps, z, W)
    k.linear(normed, V, w.outProj, partial, D, R, V, D, accumulate, g.outScale)
  },
}
