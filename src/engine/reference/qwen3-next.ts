import type {ModelSpec} from '../../model/model-spec.js'
import type {Weights} from '../weights.js'
import {add, attend, cfg, type KvState, matvec, rms, rope, sigmoid, silu, softplus, swiglu, topK, type Vec} from './common.js'

/**
 * Qwen3-Next / Qwen3.5 (HF Qwen3NextForCausalLM, Qwen3_5ForConditionalGeneration's language model):
 * zero-centred RMSNorms (1 + w); per layer h += Mixer(input_layernorm(h)), then h += FFN(
 * post_attention_layernorm(h)).
 * - Gated DeltaNet (Qwen3NextGatedDeltaNet, torch_recurrent_gated_delta_rule): q, k, v, z, b, a
 *   from in_proj_qkvz / in_proj_ba (grouped per key head; Qwen3.5: in_proj_qkv / _z / _b / _a),
 *   causal conv + silu over [q | k | v] (no bias), q and k l2-normalised (eps 1e-6) and q scaled
 *   by dk^-½, value head h reads key head h / (Hv/Hk); beta = sigmoid(b), g = -exp(A_log) ·
 *   softplus(a + dt_bias); S = S·e^g; S += k ⊗ beta(v − Sᵀk); o = Sᵀq; RMSNorm over dv (plain
 *   weight) then · silu(z); out_proj.
 * - Attention (Qwen3NextAttention): q_proj → per head [q | gate]; q_norm / k_norm (zero-centred)
 *   per head; RoPE on the first partial_rotary_factor · head_dim dims; softmax at head_dim^-½;
 *   output · sigmoid(gate); o_proj.
 * - FFN: SwiGLU MLP, or the sparse MoE block (softmax over all experts, top-k, renormalised when
 *   norm_topk_prob; SwiGLU experts) + sigmoid(shared_expert_gate · x) · shared_expert(x).
 */
export function qwen3NextReference(spec: ModelSpec, w: Weights, tokens: readonly number[]): Vec[] {
  const D = spec.hiddenSize
  const eps = cfg(spec, 'rms_norm_eps', 1e-6)
  const qwen35 = spec.architecture.startsWith('Qwen3_5')
  const P = qwen35 ? 'model.language_model.' : 'model.'
  const a = spec.attention
  const g = spec.stateMixer?.kind === 'gdn' ? spec.stateMixer : undefined
  const params = (cfg(spec, 'rope_parameters', {}) ?? {}) as {rope_theta?: number; partial_rotary_factor?: number}
  const theta = params.rope_theta ?? cfg(spec, 'rope_theta', 10000)
  const partial = cfg(spec, 'partial_rotary_factor', params.partial_rotary_factor ?? 0.25)
  const rot = a ? Math.floor(a.headDim * partial) : 0
  const tied = cfg(spec, 'tie_word_embeddings', false)
  const state = spec.layers.map(() => ({kv: {keys: [], values: []} as KvState, conv: [] as Vec[], S: undefined as Vec[] | undefined}))
  return tokens.map((token, pos) => {
    let h: Vec = Float64Array.from(w.f32(`${P}embed_tokens.weight`).subarray(token * D, (token + 1) * D))
    spec.layers.forEach((layer, i) => {
      const p = `${P}layers.${i}.`
      const u = rms(h, w.f32(`${p}input_layernorm.weight`), eps, true)
      if (layer.kinds[0] === 'gdn') {
        h = add(h, deltaNet(w, `${p}linear_attn.`, u, g!, eps, qwen35, state[i]))
      } else {
        const s = `${p}self_attn.`
        const hd = a!.headDim
        const qg = matvec(w.f32(`${s}q_proj.weight`), u)
        const q = new Float64Array(a!.numHeads * hd)
        const gate = new Float64Array(a!.numHeads * hd)
        for (let j = 0; j < a!.numHeads; j++) {
          q.set(qg.subarray(j * 2 * hd, j * 2 * hd + hd), j * hd)
          gate.set(qg.subarray(j * 2 * hd + hd, (j + 1) * 2 * hd), j * hd)
        }
        const k = matvec(w.f32(`${s}k_proj.weight`), u)
        headNorm(q, a!.numHeads, hd, w.f32(`${s}q_norm.weight`), eps)
        headNorm(k, a!.numKvHeads, hd, w.f32(`${s}k_norm.weight`), eps)
        rope(q, a!.numHeads, hd, pos, theta, rot)
        rope(k, a!.numKvHeads, hd, pos, theta, rot)
        state[i].kv.keys.push(k)
        state[i].kv.values.push(matvec(w.f32(`${s}v_proj.weight`), u))
        const o = attend(q, state[i].kv, a!.numHeads, a!.numKvHeads, hd, 1 / Math.sqrt(hd)).map((v, c) => v * sigmoid(gate[c]))
        h = add(h, matvec(w.f32(`${s}o_proj.weight`), o))
      }
      const x = rms(h, w.f32(`${p}post_attention_layernorm.weight`), eps, true)
      const f = `${p}mlp.`
      const mlp = (q: string) => ({gate: `${q}gate_proj.weight`, up: `${q}up_proj.weight`, down: `${q}down_proj.weight`})
      h = add(h, layer.kinds.includes('moe') ? sparseMoe(spec, w, f, x) : swiglu(w, mlp(f), x))
    })
    return matvec(w.f32(tied ? `${P}embed_tokens.weight` : 'lm_head.weight'), rms(h, w.f32(`${P}norm.weight`), eps, true))
  })
}

function headNorm(x: Vec, heads: number, hd: number, wt: Float32Array, eps: number): void {
  for (let j = 0; j < heads; j++) x.set(rms(x.slice(j * hd, (j + 1) * hd), wt, eps, true), j * hd)
}

function deltaNet(w: Weights, p: string, u: Vec, g: {numKeyHeads: number; numValueHeads: number; keyHeadDim: number; valueHeadDim: number; convKernel: number}, eps: number, qwen35: boolean, st: {conv: Vec[]; S: Vec[] | undefined}): Vec {
  const {numKeyHeads: Hk, numValueHeads: Hv, keyHeadDim: dk, valueHeadDim: dv, convKernel: K} = g
  const ratio = Hv / Hk
  const keyDim = Hk * dk
  const valueDim = Hv * dv
  let q: Vec, k: Vec, v: Vec, z: Vec, b: Vec, a: Vec
  if (qwen35) {
    const qkv = matvec(w.f32(`${p}in_proj_qkv.weight`), u)
    ;[q, k, v] = [qkv.slice(0, keyDim), qkv.slice(keyDim, 2 * keyDim), qkv.slice(2 * keyDim)]
    z = matvec(w.f32(`${p}in_proj_z.weight`), u)
    b = matvec(w.f32(`${p}in_proj_b.weight`), u)
    a = matvec(w.f32(`${p}in_proj_a.weight`), u)
  } else {
    // fix_query_key_value_ordering: per key head g, [q_g | k_g | v_g (ratio heads) | z_g] and [b_g | a_g].
    const qkvz = matvec(w.f32(`${p}in_proj_qkvz.weight`), u)
    const ba = matvec(w.f32(`${p}in_proj_ba.weight`), u)
    const block = 2 * dk + 2 * ratio * dv
    q = new Float64Array(keyDim)
    k = new Float64Array(keyDim)
    v = new Float64Array(valueDim)
    z = new Float64Array(valueDim)
    b = new Float64Array(Hv)
    a = new Float64Array(Hv)
    for (let gi = 0; gi < Hk; gi++) {
      const o = gi * block
      q.set(qkvz.subarray(o, o + dk), gi * dk)
      k.set(qkvz.subarray(o + dk, o + 2 * dk), gi * dk)
      v.set(qkvz.subarray(o + 2 * dk, o + 2 * dk + ratio * dv), gi * ratio * dv)
      z.set(qkvz.subarray(o + 2 * dk + ratio * dv, o + block), gi * ratio * dv)
      b.set(ba.subarray(gi * 2 * ratio, gi * 2 * ratio + ratio), gi * ratio)
      a.set(ba.subarray(gi * 2 * ratio + ratio, (gi + 1) * 2 * ratio), gi * ratio)
    }
  }
  // causal depthwise conv (no bias) over [q | k | v] with the last K raw inputs, then silu
  const raw = new Float64Array(2 * keyDim + valueDim)
  raw.set(q, 0)
  raw.set(k, keyDim)
  raw.set(v, 2 * keyDim)
  st.conv.push(raw)
  if (st.conv.length > K) st.conv.shift()
  const cw = w.f32(`${p}conv1d.weight`)
  const mixed = raw.map((_x, c) => {
    let acc = 0
    for (let j = 0; j < K; j++) {
      const row = st.conv[st.conv.length - 1 - (K - 1 - j)]
      if (row) acc += cw[c * K + j] * row[c]
    }
    return silu(acc)
  })
  const aLog = w.f32(`${p}A_log`)
  const dtBias = w.f32(`${p}dt_bias`)
  // state per value head: S[i][j] over key dim i, value dim j (HF's [dk, dv])
  st.S ??= Array.from({length: Hv}, () => new Float64Array(dk * dv))
  const core = new Float64Array(valueDim)
  const l2 = (x: Vec, scaleBy: number) => {
    const n = Math.sqrt(x.reduce((s, y) => s + y * y, 0) + 1e-6)
    return x.map((y) => (y / n) * scaleBy)
  }
  for (let h = 0; h < Hv; h++) {
    const kh = Math.floor(h / ratio)
    const qh = l2(mixed.slice(kh * dk, (kh + 1) * dk), 1 / Math.sqrt(dk))
    const kk = l2(mixed.slice(keyDim + kh * dk, keyDim + (kh + 1) * dk), 1)
    const vh = mixed.subarray(2 * keyDim + h * dv, 2 * keyDim + (h + 1) * dv)
    const beta = 1 / (1 + Math.exp(-b[h]))
    const decay = Math.exp(-Math.exp(aLog[h]) * softplus(a[h] + dtBias[h]))
    const S = st.S[h]
    for (let i = 0; i < dk * dv; i++) S[i] *= decay
    for (let j = 0; j < dv; j++) {
      let mem = 0
      for (let i = 0; i < dk; i++) mem += S[i * dv + j] * kk[i]
      const delta = (vh[j] - mem) * beta
      for (let i = 0; i < dk; i++) S[i * dv + j] += kk[i] * delta
    }
    for (let j = 0; j < dv; j++) {
      let o = 0
      for (let i = 0; i < dk; i++) o += S[i * dv + j] * qh[i]
      core[h * dv + j] = o
    }
  }
  // Qwen3NextRMSNormGated per value head: w · x / rms(x), then · silu(z)
  const nw = w.f32(`${p}norm.weight`)
  const out = new Float64Array(valueDim)
  for (let h = 0; h < Hv; h++) {
    let ss = 0
    for (let j = 0; j < dv; j++) ss += core[h * dv + j] ** 2
    const inv = 1 / Math.sqrt(ss / dv + eps)
    for (let j = 0; j < dv; j++) out[h * dv + j] = nw[j] * core[h * dv + j] * inv * silu(z[h * dv + j])
  }
  return matvec(w.f32(`${p}out_proj.weight`), out)
}

function sparseMoe(spec: ModelSpec, w: Weights, f: string, x: Vec): Vec {
  const k = cfg(spec, 'num_experts_per_tok', 0)
  const logits = matvec(w.f32(`${f}gate.weight`), x)
  const max = Math.max(...logits)
  const ex = logits.map((v) => Math.exp(v - max))
  const sum = ex.reduce((s, v) => s + v, 0)
  const probs = ex.map((v) => v / sum)
  const ids = topK(probs, k)
  let weights = ids.map((e) => probs[e])
  if (cfg(spec, 'norm_topk_prob', true)) {
    const picked = weights.reduce((s, v) => s + v, 0)
    weights = weights.map((v) => v / picked)
  }
  const mlp = (q: string) => ({gate: `${q}gate_proj.weight`, up: `${q}up_proj.weight`, down: `${q}down_proj.weight`})
  let out: Vec = new Float64Array(x.length)
  ids.forEach((e, j) => {
    out = add(out, swiglu(w, mlp(`${f}experts.${e}.`), x).map((v) => v * weights[j]))
  })
  if (cfg(spec, 'shared_expert_intermediate_size', 0) > 0) {
    const gate = sigmoid(matvec(w.f32(`${f}shared_expert_gate.weight`), x)[0])
    out = add(out, swiglu(w, mlp(`${f}shared_expert.`), x).map((v) => v * gate))
  }
  return out
}
