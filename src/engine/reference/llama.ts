import type {ModelSpec} from '../../model/model-spec.js'
import type {Weights} from '../weights.js'
import {add, attend, cfg, type KvState, matvec, rms, rope, swiglu, type Vec} from './common.js'

/** Llama (HF LlamaForCausalLM, model-forward.md §4.2): RoPE attention, SwiGLU MLP, optional tied LM head. */
export function llamaReference(spec: ModelSpec, w: Weights, tokens: readonly number[]): Vec[] {
  const D = spec.hiddenSize
  const eps = cfg(spec, 'rms_norm_eps', 1e-6)
  const theta = cfg(spec, 'rope_theta', 10000)
  const a = spec.attention!
  const tied = cfg(spec, 'tie_word_embeddings', false)
  const state = spec.layers.map((): KvState => ({keys: [], values: []}))
  return tokens.map((token, pos) => {
    let h: Vec = Float64Array.from(w.f32('model.embed_tokens.weight').subarray(token * D, (token + 1) * D))
    spec.layers.forEach((_l, i) => {
      const p = `model.layers.${i}.`
      const u = rms(h, w.f32(`${p}input_layernorm.weight`), eps)
      const q = matvec(w.f32(`${p}self_attn.q_proj.weight`), u)
      const k = matvec(w.f32(`${p}self_attn.k_proj.weight`), u)
      rope(q, a.numHeads, a.headDim, pos, theta, a.headDim)
      rope(k, a.numKvHeads, a.headDim, pos, theta, a.headDim)
      state[i].keys.push(k)
      state[i].values.push(matvec(w.f32(`${p}self_attn.v_proj.weight`), u))
      h = add(h, matvec(w.f32(`${p}self_attn.o_proj.weight`), attend(q, state[i], a.numHeads, a.numKvHeads, a.headDim, 1 / Math.sqrt(a.headDim))))
      h = add(h, swiglu(w, {gate: `${p}mlp.gate_proj.weight`, up: `${p}mlp.up_proj.weight`, down: `${p}mlp.down_proj.weight`}, rms(h, w.f32(`${p}post_attention_layernorm.weight`), eps)))
    })
    return matvec(w.f32(tied ? 'model.embed_tokens.weight' : 'lm_head.weight'), rms(h, w.f32('model.norm.weight'), eps))
  })
}
