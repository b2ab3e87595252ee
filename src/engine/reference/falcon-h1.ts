import type {ModelSpec} from '../../model/model-spec.js'
import type {Weights} from '../weights.js'
import {add, attend, cfg, type KvState, type MambaState, mamba2Step, matvec, rms, rope, scale, swiglu, type Vec} from './common.js'

/**
 * Falcon-H1 (HF FalconH1ForCausalLM): h = embed · embedding_multiplier; per layer, with
 * u = input_layernorm(h): h += ssm_out_multiplier · Mamba2(u · ssm_in_multiplier, in_proj output
 * × the ssm_multipliers of its [z | x | B | C | dt] segments) + attention_out_multiplier ·
 * Attention(u · attention_in_multiplier, keys × key_multiplier, RoPE); then h +=
 * mlp_multipliers[1] · down(silu(gate(x) · mlp_multipliers[0]) · up(x)) with x =
 * pre_ff_layernorm(h); logits = lm_head(final_layernorm(h)) · lm_head_multiplier. The Mamba gated
 * norm only with mamba_rms_norm, grouped by mamba_n_groups, before the gate when
 * mamba_norm_before_gate.
 */
export function falconH1Reference(spec: ModelSpec, w: Weights, tokens: readonly number[]): Vec[] {
  const D = spec.hiddenSize
  const eps = cfg(spec, 'rms_norm_eps', 1e-5)
  const a = spec.attention!
  const m = spec.stateMixer?.kind === 'mamba2' ? spec.stateMixer : undefined
  const params = (cfg(spec, 'rope_parameters', {}) ?? {}) as {rope_theta?: number}
  const theta = params.rope_theta ?? cfg(spec, 'rope_theta', 10000)
  const ssmIn = cfg(spec, 'ssm_in_multiplier', 1)
  const segment = cfg<number[]>(spec, 'ssm_multipliers', [1, 1, 1, 1, 1])
  const [gateMul, downMul] = cfg<number[]>(spec, 'mlp_multipliers', [1, 1])
  const norm = !cfg(spec, 'mamba_rms_norm', false) ? 'none' : cfg(spec, 'mamba_norm_before_gate', true) ? 'norm-first' : 'gate-first'
  const tied = cfg(spec, 'tie_word_embeddings', false)
  const state = spec.layers.map((): KvState & MambaState => ({keys: [], values: [], conv: [], ssm: undefined}))
  return tokens.map((token, pos) => {
    let h = scale(Float64Array.from(w.f32('model.embed_tokens.weight').subarray(token * D, (token + 1) * D)), cfg(spec, 'embedding_multiplier', 1))
    spec.layers.forEach((_l, i) => {
      const p = `model.layers.${i}.`
      const u = rms(h, w.f32(`${p}input_layernorm.weight`), eps)
      const ssm = mamba2Step(w, {
        prefix: `${p}mamba.`, numHeads: m!.numHeads, headDim: m!.headDim, nGroups: m!.nGroups, stateSize: m!.stateSize, convKernel: m!.convKernel,
        convBias: cfg(spec, 'mamba_conv_bias', true), norm, normGroups: m!.nGroups, eps, segmentScale: segment,
      }, scale(u, ssmIn), state[i])
      const ua = scale(u, cfg(spec, 'attention_in_multiplier', 1))
      const q = matvec(w.f32(`${p}self_attn.q_proj.weight`), ua)
      const k = scale(matvec(w.f32(`${p}self_attn.k_proj.weight`), ua), cfg(spec, 'key_multiplier', 1))
      rope(q, a.numHeads, a.headDim, pos, theta, a.headDim)
      rope(k, a.numKvHeads, a.headDim, pos, theta, a.headDim)
      state[i].keys.push(k)
      state[i].values.push(matvec(w.f32(`${p}self_attn.v_proj.weight`), ua))
      const attn = matvec(w.f32(`${p}self_attn.o_proj.weight`), attend(q, state[i], a.numHeads, a.numKvHeads, a.headDim, 1 / Math.sqrt(a.headDim)))
      h = add(h, add(scale(ssm, cfg(spec, 'ssm_out_multiplier', 1)), scale(attn, cfg(spec, 'attention_out_multiplier', 1))))
      const x = rms(h, w.f32(`${p}pre_ff_layernorm.weight`), eps)
      h = add(h, scale(swiglu(w, {gate: `${p}feed_forward.gate_proj.weight`, up: `${p}feed_forward.up_proj.weight`, down: `${p}feed_forward.down_proj.weight`}, x, gateMul), downMul))
    })
    const logits = matvec(w.f32(tied ? 'model.embed_tokens.weight' : 'lm_head.weight'), rms(h, w.f32('model.final_layernorm.weight'), eps))
    return scale(logits, cfg(spec, 'lm_head_multiplier', 1))
  })
}
