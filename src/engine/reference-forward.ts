import type {ModelDims} from './model-dims.js'
import type {Weights} from './weights.js'

/**
 * The scalar reference forward the tests hold the engine to: plain loops over the unsharded
 * checkpoint, one token at a time, in float64, written straight from model-forward.md (§2–§5),
 * no paging, no TP, no chunking. Slow on purpose and obviously correct; never used to serve.
 * Returns the logits of every position ([T][vocab]).
 */
export function referenceForward(d: ModelDims, w: Weights, tokens: readonly number[]): Float64Array[] {
  const D = d.hiddenSize
  const llama = d.family === 'llama'
  const state = d.layers.map(() => ({conv: [] as Float64Array[], ssm: undefined as Float64Array[] | undefined, keys: [] as Float64Array[], values: [] as Float64Array[]}))
  const out: Float64Array[] = []
  tokens.forEach((token, pos) => {
    let h = Float64Array.from(w.get(llama ? 'model.embed_tokens.weight' : 'backbone.embeddings.weight').subarray(token * D, (token + 1) * D))
    d.layers.forEach((kind, i) => {
      const st = state[i]
      if (llama) {
        const p = `model.layers.${i}.`
        h = add(h, attention(d, w, `${p}self_attn.`, rms(h, w.get(`${p}input_layernorm.weight`), d.normEps), pos, st, true))
        const u = rms(h, w.get(`${p}post_attention_layernorm.weight`), d.normEps)
        const g = matvec(w.get(`${p}mlp.gate_proj.weight`), u)
        const up = matvec(w.get(`${p}mlp.up_proj.weight`), u)
        h = add(h, matvec(w.get(`${p}mlp.down_proj.weight`), g.map((v, j) => silu(v) * up[j])))
        return
      }
      const p = `backbone.layers.${i}.mixer.`
      const u = rms(h, w.get(`backbone.layers.${i}.norm.weight`), d.normEps)
      if (kind === 'attention') h = add(h, attention(d, w, p, u, pos, st, false))
      else if (kind === 'mlp') h = add(h, matvec(w.get(`${p}down_proj.weight`), matvec(w.get(`${p}up_proj.weight`), u).map((v) => Math.max(0, v) ** 2)))
      else h = add(h, mamba(d, w, p, u, st))
    })
    const hn = rms(h, w.get(llama ? 'model.norm.weight' : 'backbone.norm_f.weight'), d.normEps)
    out.push(matvec(w.get(llama && d.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'), hn))
  })
  return out
}

function matvec(wt: Float32Array, x: Float64Array): Float64Array {
  const n = wt.length / x.length
  const y = new Float64Array(n)
  for (let r = 0; r < n; r++) {
    let acc = 0
    for (let c = 0; c < x.length; c++) acc += wt[r * x.length + c] * x[c]
    y[r] = acc
  }
  return y
}

const add = (a: Float64Array, b: Float64Array) => a.map((v, i) => v + b[i])
const silu = (v: number) => v / (1 + Math.exp(-v))
const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)))

function rms(x: Float64Array, wt: Float32Array, eps: number): Float64Array {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length
  return x.map((v, i) => (wt[i] * v) / Math.sqrt(ms + eps))
}

function attention(d: ModelDims, w: Weights, p: string, u: Float64Array, pos: number, st: {keys: Float64Array[]; values: Float64Array[]}, rope: boolean): Float64Array {
  const a = d.attention!
  const hd = a.headDim
  const q = matvec(w.get(`${p}q_proj.weight`), u)
  const k = matvec(w.get(`${p}k_proj.weight`), u)
  const v = matvec(w.get(`${p}v_proj.weight`), u)
  if (rope) {
    for (const [vec, heads] of [[q, a.numHeads], [k, a.numKvHeads]] as const) {
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < hd / 2; i++) {
          const angle = pos / d.ropeTheta ** ((2 * i) / hd)
          const x1 = vec[h * hd + i]
          const x2 = vec[h * hd + i + hd / 2]
          vec[h * hd + i] = x1 * Math.cos(angle) - x2 * Math.sin(angle)
          vec[h * hd + i + hd / 2] = x2 * Math.cos(angle) + x1 * Math.sin(angle)
        }
      }
    }
  }
  st.keys.push(k)
  st.values.push(v)
  const o = new Float64Array(a.numHeads * hd)
  for (let j = 0; j < a.numHeads; j++) {
    const kvh = Math.floor(j / (a.numHeads / a.numKvHeads))
    const scores = st.keys.map((key) => {
      let s = 0
      for (let e = 0; e < hd; e++) s += q[j * hd + e] * key[kvh * hd + e]
      return s / Math.sqrt(hd)
    })
    const max = Math.max(...scores)
    const ex = scores.map((s) => Math.exp(s - max))
    const sum = ex.reduce((x, y) => x + y, 0)
    st.values.forEach((val, t) => {
      for (let e = 0; e < hd; e++) o[j * hd + e] += (ex[t] / sum) * val[kvh * hd + e]
    })
  }
  return matvec(w.get(`${p}o_proj.weight`), o)
}

function mamba(d: ModelDims, w: Weights, p: string, u: Float64Array, st: {conv: Float64Array[]; ssm: Float64Array[] | undefined}): Float64Array {
  const m = d.mamba!
  const {inner: I, numHeads: H, headDim: P, nGroups: G, stateSize: N, convKernel: K} = m
  const CD = I + 2 * G * N
  const zxbcdt = matvec(w.get(`${p}in_proj.weight`), u)
  const z = zxbcdt.subarray(0, I)
  const xbcRaw = zxbcdt.slice(I, I + CD)
  const dtRaw = zxbcdt.subarray(I + CD, I + CD + H)
  // causal conv over the last K raw inputs (zeros before the sequence start)
  st.conv.push(xbcRaw)
  if (st.conv.length > K) st.conv.shift()
  const cw = w.get(`${p}conv1d.weight`)
  const cb = m.useConvBias ? w.get(`${p}conv1d.bias`) : undefined
  const xbc = new Float64Array(CD)
  for (let c = 0; c < CD; c++) {
    let acc = cb ? cb[c] : 0
    for (let k = 0; k < K; k++) {
      const back = K - 1 - k
      const row = st.conv[st.conv.length - 1 - back]
      if (row) acc += cw[c * K + k] * row[c]
    }
    xbc[c] = silu(acc)
  }
  st.ssm ??= Array.from({length: H}, () => new Float64Array(P * N))
  const y = new Float64Array(I)
  const aLog = w.get(`${p}A_log`)
  const dtBias = w.get(`${p}dt_bias`)
  const dSkip = w.get(`${p}D`)
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / (H / G))
    const dt = softplus(dtRaw[h] + dtBias[h])
    const decay = Math.exp(dt * -Math.exp(aLog[h]))
    const S = st.ssm![h]
    for (let pp = 0; pp < P; pp++) {
      const x = xbc[h * P + pp]
      let acc = 0
      for (let n = 0; n < N; n++) {
        S[pp * N + n] = S[pp * N + n] * decay + dt * x * xbc[I + g * N + n]
        acc += S[pp * N + n] * xbc[I + G * N + g * N + n]
      }
      y[h * P + pp] = acc + dSkip[h] * x
    }
  }
  // gated RMSNorm: gate first, then normalise each of the G contiguous groups
  const gated = y.map((v, c) => v * silu(z[c]))
  const gs = I / G
  const nw = w.get(`${p}norm.weight`)
  for (let j = 0; j < G; j++) {
    let ss = 0
    for (let c = j * gs; c < (j + 1) * gs; c++) ss += gated[c] * gated[c]
    const inv = 1 / Math.sqrt(ss / gs + d.normEps)
    for (let c = j * gs; c < (j + 1) * gs; c++) gated[c] = nw[c] * gated[c] * inv
  }
  return matvec(w.get(`${p}out_proj.weight`), gated)
}
