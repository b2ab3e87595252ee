import type {ModelSpec} from '../../model/model-spec.js'
import type {Weights} from '../weights.js'
import {add, attend, cfg, type KvState, type MambaState, mamba2Step, matvec, relu2, rms, sigmoid, topK, type Vec} from './common.js'

/**
 * Nemotron-H (HF NemotronHForCausalLM, model-forward.md §2–§5): h += Mixer(RMSNorm(h)) per layer,
 * the mixer from hybrid_override_pattern; attention without RoPE; the MoE block as HF's
 * NemotronHTopkRouter + NemotronHMoE: sigmoid scores, choice by score + e_score_correction_bias,
 * groups scored by their two best and only topk_group kept (others -inf), weights the unbiased
 * scores, /(Σ + 1e-20) when norm_topk_prob, × routed_scaling_factor; relu² experts + shared expert.
 */
export function nemotronHReference(spec: ModelSpec, w: Weights, tokens: readonly number[]): Vec[] {
  const D = spec.hiddenSize
  const eps = cfg(spec, 'layer_norm_epsilon', 1e-5)
  const a = spec.attention
  const m = spec.stateMixer?.kind === 'mamba2' ? spec.stateMixer : undefined
  const state = spec.layers.map((): KvState & MambaState => ({keys: [], values: [], conv: [], ssm: undefined}))
  return tokens.map((token) => {
    let h: Vec = Float64Array.from(w.f32('backbone.embeddings.weight').subarray(token * D, (token + 1) * D))
    spec.layers.forEach((layer, i) => {
      const p = `backbone.layers.${i}.mixer.`
      const u = rms(h, w.f32(`backbone.layers.${i}.norm.weight`), eps)
      const kind = layer.kinds[0]
      if (kind === 'attention') {
        const st = state[i]
        st.keys.push(matvec(w.f32(`${p}k_proj.weight`), u))
        st.values.push(matvec(w.f32(`${p}v_proj.weight`), u))
        const o = attend(matvec(w.f32(`${p}q_proj.weight`), u), st, a!.numHeads, a!.numKvHeads, a!.headDim, 1 / Math.sqrt(a!.headDim))
        h = add(h, matvec(w.f32(`${p}o_proj.weight`), o))
      } else if (kind === 'mlp') {
        h = add(h, relu2(w, {up: `${p}up_proj.weight`, down: `${p}down_proj.weight`}, u))
      } else if (kind === 'moe') {
        h = add(h, moe(spec, w, p, u))
      } else {
        h = add(h, mamba2Step(w, {
          prefix: p, numHeads: m!.numHeads, headDim: m!.headDim, nGroups: m!.nGroups, stateSize: m!.stateSize, convKernel: m!.convKernel,
          convBias: cfg(spec, 'use_conv_bias', cfg(spec, 'mamba_conv_bias', true)), norm: 'gate-first', normGroups: m!.nGroups, eps,
        }, u, state[i]))
      }
    })
    return matvec(w.f32('lm_head.weight'), rms(h, w.f32('backbone.norm_f.weight'), eps))
  })
}

function moe(spec: ModelSpec, w: Weights, p: string, u: Vec): Vec {
  const E = cfg(spec, 'n_routed_experts', 0)
  const k = cfg(spec, 'num_experts_per_tok', 0)
  const nGroup = cfg(spec, 'n_group', 1)
  const topkGroup = cfg(spec, 'topk_group', 1)
  const scores = matvec(w.f32(`${p}gate.weight`), u).map(sigmoid)
  const bias = w.f32(`${p}gate.e_score_correction_bias`)
  const choice = scores.map((s, e) => s + bias[e])
  let allowed = (_e: number) => true
  if (nGroup > 1) {
    const per = E / nGroup
    const groupScores = Array.from({length: nGroup}, (_x, g) => topK(choice.subarray(g * per, (g + 1) * per), 2).reduce((acc, e) => acc + choice[g * per + e], 0))
    const kept = new Set(topK(groupScores, topkGroup))
    allowed = (e) => kept.has(Math.floor(e / per))
  }
  const ids = topK(choice, k, allowed)
  let weights = ids.map((e) => scores[e])
  if (cfg(spec, 'norm_topk_prob', true)) {
    const sum = weights.reduce((x, y) => x + y, 0)
    weights = weights.map((v) => v / (sum + 1e-20))
  }
  const routed = cfg(spec, 'routed_scaling_factor', 1)
  let out: Vec = new Float64Array(u.length)
  ids.forEach((e, j) => {
    const y = relu2(w, {up: `${p}experts.${e}.up_proj.weight`, down: `${p}experts.${e}.down_proj.weight`}, u)
    out = add(out, y.map((v) => v * weights[j] * routed))
  })
  if (cfg(spec, 'n_shared_experts', 1) > 0) out = add(out, relu2(w, {up: `${p}shared_experts.up_proj.weight`, down: `${p}shared_experts.down_proj.weight`}, u))
  return out
}
