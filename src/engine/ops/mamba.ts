import type {MambaRankWeights} from '../rank-weights.js'
import {type Op, opWeights, project, statePage} from './context.js'

/**
 * Mamba2 (model-forward.md §3): in_proj → [z | xBC | dt] (times Falcon-H1's per-segment
 * multipliers), causal conv + silu on xBC with the conv state, the SSM scan (chunked SSD for
 * prefill slices, the recurrence for one token) with the SSM state, the gated RMSNorm
 * (gate-first, norm-first or none), out_proj. The norm's statistics are summed over the ranks
 * that share a group (n_groups < tp) before any rank normalises: hence prepare / project.
 */
export const mambaOp: Op = {
  prepare(ctx, ref, batch, u) {
    const {k, dims} = ctx
    const m = dims.mamba!
    const N = m.stateSize
    const R = batch.rows
    ctx.ranks.forEach((rw, r) => {
      const w = opWeights<MambaRankWeights>(ctx, ref, r)
      const rd = rw.dims
      const s = ctx.scratch[r]
      const W = rd.mambaProjRows
      const CD = rd.mambaConvChannels
      const Ir = rd.mambaInner
      const GNr = rd.mambaGroups * N
      const zxbcdt = s.get('zxbcdt', R * W)
      project(ctx, r, u, w.inProj, zxbcdt, R)
      if (w.projScale) k.mulColumns(zxbcdt, W, R, W, w.projScale)
      const xbc = s.get('xbc', R * CD)
      const y = s.get('y', R * Ir)
      batch.slices.forEach((slice, i) => {
        const T = slice.tokens.length
        const row = batch.starts[i]
        const page = statePage(ctx, ref.layer, r, slice)
        const xbcRows = xbc.subarray(row * CD)
        k.conv1d(zxbcdt.subarray(row * W + Ir), W, w.convWeight, w.convBias, page.conv, xbcRows, T, CD, m.convKernel)
        k.ssmScan(
          xbcRows, CD, xbcRows.subarray(Ir), xbcRows.subarray(Ir + GNr), CD,
          zxbcdt.subarray(row * W + Ir + CD), W, w.dtBias, w.a, w.d, page.ssm, y.subarray(row * Ir),
          T, rd.mambaHeads, m.headDim, rd.mambaGroups, N, T > 1 ? m.chunkSize : 0,
        )
      })
      const groups = Ir / rd.gatedNormGroupSize
      k.gatedNormSumsq(y, zxbcdt, W, s.get('gated', R * Ir), s.get('sumsq', R * groups), R, Ir, rd.gatedNormGroupSize, m.normMode === 'norm-first')
    })
    // A norm group split over ranks (n_groups < tp): sum the partial Σg² of the ranks sharing it.
    const span = ctx.ranks[0].dims.gatedNormRanksPerGroup
    if (m.normMode !== 'none' && span > 1) {
      for (let first = 0; first < ctx.ranks.length; first += span) {
        const total = ctx.scratch[first].get('sumsq', R)
        for (let r = first + 1; r < first + span; r++) k.addInplace(total, ctx.scratch[r].get('sumsq', R), R)
        // Copies through the kernels (not TypedArray.set) so a recorded forward keeps its order.
        for (let r = first + 1; r < first + span; r++) k.copy(ctx.scratch[r].get('sumsq', R), total, R)
      }
    }
  },

  project(ctx, ref, batch, _u, rank, partial, accumulate) {
    const {k, dims} = ctx
    const m = dims.mamba!
    const D = dims.hiddenSize
    const R = batch.rows
    const w = opWeights<MambaRankWeights>(ctx, ref, rank)
    const rd = ctx.ranks[rank].dims
    const s = ctx.scratch[rank]
    const Ir = rd.mambaInner
    const gated = s.get('gated', R * Ir)
    if (w.gatedNorm) {
      const zxbcdt = s.get('zxbcdt', R * rd.mambaProjRows)
      const normFirst = m.normMode === 'norm-first'
      k.gatedNormApply(gated, s.get('sumsq', R * (Ir / rd.gatedNormGroupSize)), w.gatedNorm, R, Ir, rd.gatedNormGroupSize, rd.gatedNormCount, dims.normEps, normFirst ? zxbcdt : null, rd.mambaProjRows)
    }
    k.linear(gated, Ir, w.outProj, partial, D, R, Ir, D, accumulate, m.outScale)
  },
}
