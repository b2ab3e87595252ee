import {ROUTER_KIND} from '../../native/kernels-binding.js'
import type {MlpRankWeights, MoeRankWeights} from '../rank-weights.js'
import {type Op, opWeights, project, type RunnerContext} from './context.js'

/** relu²: down(relu(up·u)²); SwiGLU: down(silu(gate·u)·(up·u)) with Falcon-H1's gate multiplier. Into `out` (alpha = scale). */
function mlpInto(ctx: RunnerContext, rank: number, w: MlpRankWeights, activation: 'relu2' | 'swiglu', inter: number, u: Float32Array, R: number, out: Float32Array, accumulate: boolean, scale: number): void {
  const {k} = ctx
  const D = ctx.dims.hiddenSize
  const s = ctx.scratch[rank]
  if (activation === 'relu2') {
    const up = s.get('up', R * inter)
    project(ctx, rank, u, w.up, up, R)
    k.reluSquared(up, R * inter)
    k.linear(up, inter, w.down, out, D, R, inter, D, accumulate, scale)
    return
  }
  const gu = s.get('gu', R * 2 * inter)
  project(ctx, rank, u, w.up, gu, R)
  if (w.upScale) k.mulColumns(gu, 2 * inter, R, 2 * inter, w.upScale)
  const act = s.get('up', R * inter)
  k.siluMul(gu, act, R, inter)
  k.linear(act, inter, w.down, out, D, R, inter, D, accumulate, scale)
}

export const mlpOp: Op = {
  project(ctx, ref, batch, u, rank, partial, accumulate) {
    const m = ctx.dims.mlp!
    mlpInto(ctx, rank, opWeights<MlpRankWeights>(ctx, ref, rank), m.activation, ctx.ranks[rank].dims.mlpInter, u, batch.rows, partial, accumulate, m.outScale)
  },
}

const ROUTER = {'softmax-topk': ROUTER_KIND.softmaxTopk, 'topk-softmax': ROUTER_KIND.topkSoftmax, 'sigmoid-bias': ROUTER_KIND.sigmoidBias} as const

/**
 * Mixture of experts: the router (replicated, fp32) picks each token's top-k once for all ranks;
 * every rank then runs its slice of each expert's width as grouped GEMMs over the tokens routed
 * to that expert (moeExperts), plus its slice of the shared expert (times sigmoid of Qwen3-Next's
 * shared_expert_gate). The output scale (Granite's residual multiplier) rides on the routing
 * weights and the shared expert's down projection.
 */
export const moeOp: Op = {
  prepare(ctx, ref, batch, u) {
    const {k, dims} = ctx
    const moe = dims.moe!
    const D = dims.hiddenSize
    const R = batch.rows
    const E = moe.numExperts
    const w = opWeights<MoeRankWeights>(ctx, ref, 0)
    const logits = ctx.shared.get('routerLogits', R * E)
    k.linear(u, D, w.router, logits, E, R, D, E, false)
    const ids = ctx.shared.int('moeIds', R * moe.topK)
    const weights = ctx.shared.get('moeWeights', R * moe.topK)
    k.moeRoute({logits, tokens: R, experts: E, topK: moe.topK, kind: ROUTER[moe.router], normTopk: moe.normTopk, bias: w.routerBias, nGroup: moe.nGroup, topkGroup: moe.topkGroup, scale: moe.routedScale, ids, weights})
    if (moe.outScale !== 1) k.scaleInplace(weights, R * moe.topK, moe.outScale)
    if (w.sharedGate) k.linear(u, D, w.sharedGate, ctx.shared.get('sharedGate', R), 1, R, D, 1, false)
  },

  project(ctx, ref, batch, u, rank, partial, accumulate) {
    const {k, dims} = ctx
    const moe = dims.moe!
    const D = dims.hiddenSize
    const R = batch.rows
    const w = opWeights<MoeRankWeights>(ctx, ref, rank)
    const rd = ctx.ranks[rank].dims
    k.moeExperts({
      x: u, ldx: D, ids: ctx.shared.int('moeIds', R * moe.topK), weights: ctx.shared.get('moeWeights', R * moe.topK),
      tokens: R, topK: moe.topK, hidden: D, inter: rd.moeInter, experts: moe.numExperts, gated: moe.activation === 'swiglu',
      gate: w.gate ?? undefined, up: w.up, down: w.down, y: partial, ldy: D, accumulate,
    })
    if (!w.shared) return
    if (!w.sharedGate) {
      mlpInto(ctx, rank, w.shared, moe.activation, rd.sharedInter, u, R, partial, true, moe.outScale)
      return
    }
    const shared = ctx.scratch[rank].get('sharedOut', R * D)
    mlpInto(ctx, rank, w.shared, moe.activation, rd.sharedInter, u, R, shared, false, moe.outScale)
    k.scaleRows(shared, D, R, D, ctx.shared.get('sharedGate', R), true)
    k.addInplace(partial, shared, R * D)
  },
}

