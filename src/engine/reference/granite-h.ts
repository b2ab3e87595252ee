import type {ModelSpec} from '../../model/model-spec.js'
import type {Weights} from '../weights.js'
import {add, attend, cfg, type KvState, type MambaState, mamba2Step, matvec, rms, rope, scale, swiglu, topK, type Vec} from './common.js'

/**
 * Granite-4.0-H (HF GraniteMoeHybridForCausalLM): h = embed · embedding_multiplier; per layer
 * h += residual_multiplier · Mixer(input_layernorm(h)) (Mamba2 with a full-width gated norm, or
 * attention with softmax scale attention_multiplier, RoPE only when position_embedding_type is
 * "rope"), then h += residual_multiplier · (MoE(x) + shared_mlp(x)) with x =
 * post_attention_layernorm(h) (the MoE: top-k of the router logits, softmax over them, SwiGLU
 * experts from the stacked input_linear [E, 2I, D] / output_linear [E, D, I]; only the shared MLP
 * when num_local_experts is 0); logits = lm_head(norm(h)) / logits_scaling.
 */
export function graniteHReference(spec: ModelSpec, w: Weights, tokens: readonly number[]): Vec[] {
  const D = spec.hiddenSize
  const eps = cfg(spec, 'rms_norm_eps', 1e-6)
  const residual = cfg(spec, 'residual_multiplier', 1)
  const a = spec.attention
  const m = spec.stateMixer?.kind === 'mamba2' ? spec.stateMixer : undefined
  const useRope = cfg<string>(spec, 'position_embedding_type', '') === 'rope'
  const theta = cfg(spec, 'rope_theta', 10000)
  const experts = cfg(spec, 'num_local_experts', 8)
  const tied = cfg(spec, 'tie_word_embeddings', false)
  const state = spec.layers.map((): KvState & MambaState => ({keys: [], values: [], conv: [], ssm: undefined}))
  return tokens.map((token, pos) => {
    let h = scale(Float64Array.from(w.f32('model.embed_tokens.weight').subarray(token * D, (token + 1) * D)), cfg(spec, 'embedding_multiplier', 1))
    spec.layers.forEach((layer, i) => {
      const p = `model.layers.${i}.`
      const u = rms(h, w.f32(`${p}input_layernorm.weight`), eps)
      let mixed: Vec
      if (layer.kinds[0] === 'mamba2') {
        mixed = mamba2Step(w, {
          prefix: `${p}mamba.`, numHeads: m!.numHeads, headDim: m!.headDim, nGroups: m!.nGroups, stateSize: m!.stateSize, convKernel: m!.convKernel,
          convBias: cfg(spec, 'mamba_conv_bias', true), norm: 'gate-first', normGroups: 1, eps,
        }, u, state[i])
      } else {
        const q = matvec(w.f32(`${p}self_attn.q_proj.weight`), u)
        const k = matvec(w.f32(`${p}self_attn.k_proj.weight`), u)
        if (useRope) {
          rope(q, a!.numHeads, a!.headDim, pos, theta, a!.headDim)
          rope(k, a!.numKvHeads, a!.headDim, pos, theta, a!.headDim)
        }
        state[i].keys.push(k)
        state[i].values.push(matvec(w.f32(`${p}self_attn.v_proj.weight`), u))
        mixed = matvec(w.f32(`${p}self_attn.o_proj.weight`), attend(q, state[i], a!.numHeads, a!.numKvHeads, a!.headDim, cfg(spec, 'attention_multiplier', 1)))
      }
      h = add(h, scale(mixed, residual))
      const x = rms(h, w.f32(`${p}post_attention_layernorm.weight`), eps)
      let ffn = swiglu(w, {gateUp: `${p}shared_mlp.input_linear.weight`, down: `${p}shared_mlp.output_linear.weight`}, x)
      if (experts > 0) ffn = add(ffn, moe(spec, w, `${p}block_sparse_moe.`, x, experts))
      h = add(h, scale(ffn, residual))
    })
    const logits = matvec(w.f32(tied ? 'model.embed_tokens.weight' : 'lm_head.weight'), rms(h, w.f32('model.norm.weight'), eps))
    return scale(logits, 1 / cfg(spec, 'logits_scaling', 1))
  })
}

function moe(spec: ModelSpec, w: Weights, p: string, x: Vec, E: number): Vec {
  const k = cfg(spec, 'num_experts_per_tok', 2)
  const logits = matvec(w.f32(`${p}router.layer.weight`), x)
  const ids = topK(logits, k)
  const ex = ids.map((e) => Math.exp(logits[e] - logits[ids[0]]))
  const sum = ex.reduce((s, v) => s + v, 0)
  const D = x.length
  const up = w.f32(`${p}input_linear.weight`)
  const down = w.f32(`${p}output_linear.weight`)
  const I = up.length / (E * 2 * D)
  let out: Vec = new Float64Array(D)
  ids.forEach((e, j) => {
    const gu = matvec(up.subarray(e * 2 * I * D, (e + 1) * 2 * I * D), x)
    const act = Float64Array.from({length: I}, (_v, c) => (gu[c] / (1 + Math.exp(-gu[c]))) * gu[I + c])
    out = add(out, scale(matvec(down.subarray(e * D * I, (e + 1) * D * I), act), ex[j] / sum))
  })
  return out
}
