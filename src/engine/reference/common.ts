import type {ModelSpec} from '../../model/model-spec.js'
import type {Weights} from '../weights.js'

/**
 * Float64 building blocks of the scalar reference forward (reference/): plain loops over the
 * unsharded checkpoint, one token at a time, written from the published model definitions (the
 * Hugging Face modeling files and model-forward.md), with none of the engine's kernels, paging,
 * TP, chunking or dims. Slow on purpose and obviously correct; never used to serve.
 */
export type Vec = Float64Array

/** A config value the reference reads itself (so the engine's reading of the config is checked too). */
export function cfg<T>(spec: ModelSpec, key: string, fallback: T): T {
  const v = spec.config[key]
  return v === undefined || v === null ? fallback : (v as T)
}

export function matvec(wt: Float32Array, x: ArrayLike<number>): Vec {
  const n = wt.length / x.length
  const y = new Float64Array(n)
  for (let r = 0; r < n; r++) {
    let acc = 0
    for (let c = 0; c < x.length; c++) acc += wt[r * x.length + c] * x[c]
    y[r] = acc
  }
  return y
}

export const add = (a: Vec, b: Vec): Vec => a.map((v, i) => v + b[i])
export const scale = (a: Vec, s: number): Vec => a.map((v) => v * s)
export const silu = (v: number) => v / (1 + Math.exp(-v))
export const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))
export const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)))

/** RMSNorm: w · x / sqrt(mean(x²) + eps); zero-centred weights (Qwen3-Next, Gemma) scale by 1 + w. */
export function rms(x: Vec, wt: Float32Array, eps: number, zeroCentered = false): Vec {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length
  return x.map((v, i) => ((zeroCentered ? 1 + wt[i] : wt[i]) * v) / Math.sqrt(ms + eps))
}

export interface KvState {
  keys: Vec[]
  values: Vec[]
}

/** NeoX (rotate-half) RoPE on the first `rot` dims of each head of `vec` (HF apply_rotary_pos_emb with partial rotary). */
export function rope(vec: Vec, heads: number, hd: number, pos: number, theta: number, rot: number): void {
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < rot / 2; i++) {
      const angle = pos / theta ** ((2 * i) / rot)
      const x1 = vec[h * hd + i]
      const x2 = vec[h * hd + i + rot / 2]
      vec[h * hd + i] = x1 * Math.cos(angle) - x2 * Math.sin(angle)
      vec[h * hd + i + rot / 2] = x2 * Math.cos(angle) + x1 * Math.sin(angle)
    }
  }
}

/** Causal softmax attention of one query token over every cached key (GQA: query head j uses KV head j / (Hq/Hkv)). */
export function attend(q: Vec, st: KvState, numHeads: number, numKvHeads: number, hd: number, softmaxScale: number): Vec {
  const o = new Float64Array(numHeads * hd)
  for (let j = 0; j < numHeads; j++) {
    const kvh = Math.floor(j / (numHeads / numKvHeads))
    const scores = st.keys.map((key) => {
      let s = 0
      for (let e = 0; e < hd; e++) s += q[j * hd + e] * key[kvh * hd + e]
      return s * softmaxScale
    })
    const max = Math.max(...scores)
    const ex = scores.map((s) => Math.exp(s - max))
    const sum = ex.reduce((x, y) => x + y, 0)
    st.values.forEach((val, t) => {
      for (let e = 0; e < hd; e++) o[j * hd + e] += (ex[t] / sum) * val[kvh * hd + e]
    })
  }
  return o
}

export interface MambaState {
  /** The last K raw conv inputs (zeros before the sequence start). */
  conv: Vec[]
  ssm: Vec[] | undefined
}

export interface Mamba2Params {
  readonly prefix: string
  readonly numHeads: number
  readonly headDim: number
  readonly nGroups: number
  readonly stateSize: number
  readonly convKernel: number
  readonly convBias: boolean
  /** gate-first: normalise y·silu(z) per normGroups contiguous groups; norm-first: normalise y then ·silu(z); none: y·silu(z). */
  readonly norm: 'gate-first' | 'norm-first' | 'none'
  readonly normGroups: number
  readonly eps: number
  /** Multipliers of the in_proj output segments [z, x, B, C, dt] (Falcon-H1), else all 1. */
  readonly segmentScale?: readonly number[]
}

/** One token of a Mamba2 mixer (model-forward.md §3.2, §3.3, §3.5): in_proj, causal conv, SSM step, gated norm, out_proj. */
export function mamba2Step(w: Weights, p: Mamba2Params, u: Vec, st: MambaState): Vec {
  const {numHeads: H, headDim: P, nGroups: G, stateSize: N, convKernel: K} = p
  const I = H * P
  const CD = I + 2 * G * N
  const zxbcdt = matvec(w.f32(`${p.prefix}in_proj.weight`), u)
  if (p.segmentScale) {
    const bounds = [0, I, 2 * I, 2 * I + G * N, 2 * I + 2 * G * N, 2 * I + 2 * G * N + H]
    for (let s = 0; s < 5; s++) for (let i = bounds[s]; i < bounds[s + 1]; i++) zxbcdt[i] *= p.segmentScale[s]
  }
  const z = zxbcdt.subarray(0, I)
  const xbcRaw = zxbcdt.slice(I, I + CD)
  const dtRaw = zxbcdt.subarray(I + CD, I + CD + H)
  st.conv.push(xbcRaw)
  if (st.conv.length > K) st.conv.shift()
  const cw = w.f32(`${p.prefix}conv1d.weight`)
  const cb = p.convBias ? w.f32(`${p.prefix}conv1d.bias`) : undefined
  const xbc = new Float64Array(CD)
  for (let c = 0; c < CD; c++) {
    let acc = cb ? cb[c] : 0
    for (let k = 0; k < K; k++) {
      const row = st.conv[st.conv.length - 1 - (K - 1 - k)]
      if (row) acc += cw[c * K + k] * row[c]
    }
    xbc[c] = silu(acc)
  }
  st.ssm ??= Array.from({length: H}, () => new Float64Array(P * N))
  const y = new Float64Array(I)
  const aLog = w.f32(`${p.prefix}A_log`)
  const dtBias = w.f32(`${p.prefix}dt_bias`)
  const dSkip = w.f32(`${p.prefix}D`)
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / (H / G))
    const dt = softplus(dtRaw[h] + dtBias[h])
    const decay = Math.exp(dt * -Math.exp(aLog[h]))
    const S = st.ssm[h]
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
  let out: Vec
  if (p.norm === 'none') {
    out = y.map((v, c) => v * silu(z[c]))
  } else {
    const pre = p.norm === 'gate-first' ? y.map((v, c) => v * silu(z[c])) : Float64Array.from(y)
    const nw = w.f32(`${p.prefix}norm.weight`)
    const gs = I / p.normGroups
    out = new Float64Array(I)
    for (let j = 0; j < p.normGroups; j++) {
      let ss = 0
      for (let c = j * gs; c < (j + 1) * gs; c++) ss += pre[c] * pre[c]
      const inv = 1 / Math.sqrt(ss / gs + p.eps)
      for (let c = j * gs; c < (j + 1) * gs; c++) out[c] = nw[c] * pre[c] * inv * (p.norm === 'norm-first' ? silu(z[c]) : 1)
    }
  }
  return matvec(w.f32(`${p.prefix}out_proj.weight`), out)
}

/** SwiGLU MLP: down(silu(gate·u) · (up·u)). `gateUp` names one fused [gate; up] tensor (Granite). */
export function swiglu(w: Weights, names: {gate: string; up: string; down: string} | {gateUp: string; down: string}, u: Vec, gateScale = 1): Vec {
  let g: Vec
  let up: Vec
  if ('gateUp' in names) {
    const gu = matvec(w.f32(names.gateUp), u)
    g = gu.slice(0, gu.length / 2)
    up = gu.slice(gu.length / 2)
  } else {
    g = matvec(w.f32(names.gate), u)
    up = matvec(w.f32(names.up), u)
  }
  return matvec(w.f32(names.down), g.map((v, j) => silu(v * gateScale) * up[j]))
}

/** relu² MLP: down(relu(up·u)²). */
export function relu2(w: Weights, names: {up: string; down: string}, u: Vec): Vec {
  return matvec(w.f32(names.down), matvec(w.f32(names.up), u).map((v) => Math.max(0, v) ** 2))
}

/** Indices of the k largest scores (ties to the lower index), only where `allowed`. */
export function topK(scores: ArrayLike<number>, k: number, allowed: (i: number) => boolean = () => true): number[] {
  return Array.from({length: scores.length}, (_x, i) => i)
    .filter(allowed)
    .sort((a, b) => scores[b] - scores[a] || a - b)
    .slice(0, k)
}
