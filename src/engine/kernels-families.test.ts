import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {kernels, ROUTER_KIND, type RouterKind} from '../native/kernels-binding.js'
import {narrowToBf16, widenBf16} from './bf16.js'
import {Rng} from './random.js'

/**
 * The kernels the hybrid families added, each against a float64 scalar reference written here
 * from the model definitions (tolerances relative to the largest reference value), plus the
 * property tests the issue asks for: chunked Gated DeltaNet = its token-by-token recurrence over
 * random shapes and chunk sizes, router top-k = the reference on random logits, MoE with every
 * expert forced = the dense computation.
 */
const k = kernels()

function randn(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed)
  return Float32Array.from({length: n}, () => scale * rng.normal())
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0
  let scale = 1e-30
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]))
    scale = Math.max(scale, Math.abs(b[i]))
  }
  return diff / scale
}

const silu = (v: number) => v / (1 + Math.exp(-v))
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))
const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)))

describe('linear with bf16 weights and alpha', () => {
  it.each([1, 3, 5, 8, 9, 40])('%i rows: equals the fp32 product on the widened weights (1e-5), accumulate, columns past n untouched', (m) => {
    const [kk, n, ldx, ldy] = [70, 37, 72, 40]
    const x = randn(m * ldx, 1)
    const wBits = narrowToBf16(randn(n * kk, 2))
    const wide = widenBf16(wBits)
    const y0 = randn(m * ldy, 3)
    const y = Float32Array.from(y0)
    k.linear(x, ldx, wBits, y, ldy, m, kk, n, true, 0.5)
    const ref = new Float64Array(m * n)
    const got = new Float64Array(m * n)
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0
        for (let c = 0; c < kk; c++) acc += x[i * ldx + c] * wide[j * kk + c]
        ref[i * n + j] = y0[i * ldy + j] + 0.5 * acc
        got[i * n + j] = y[i * ldy + j]
      }
    }
    expect(relErr(got, ref)).toBeLessThan(1e-5)
    for (let i = 0; i < m; i++) expect(y[i * ldy + ldy - 1]).toBe(y0[i * ldy + ldy - 1])
    // fp32 with the same alpha gives the same numbers within rounding
    const yF = Float32Array.from(y0)
    k.linear(x, ldx, wide, yF, ldy, m, kk, n, true, 0.5)
    expect(relErr(y, yF)).toBeLessThan(1e-5)
  })

  it('bf16 embedding rows widen exactly', () => {
    const table = narrowToBf16(randn(4 * 3, 4))
    const out = new Float32Array(2 * 3)
    k.embedding(Int32Array.of(2, 9), table, 1, 5, 3, out)
    expect(Array.from(out.subarray(0, 3))).toEqual(Array.from(widenBf16(table).subarray(3, 6)))
    expect(Array.from(out.subarray(3))).toEqual([0, 0, 0])
  })
})

describe('small family kernels', () => {
  it('norm-before-gate gated norm: w·norm(y)·silu(z) per group (1e-6)', () => {
    const [rows, dim, ldz, gs] = [3, 64, 80, 16]
    const y = randn(rows * dim, 5)
    const z = randn(rows * ldz, 6)
    const w = randn(dim, 7)
    const out = new Float32Array(rows * dim)
    const sumsq = new Float32Array(rows * (dim / gs))
    k.gatedNormSumsq(y, z, ldz, out, sumsq, rows, dim, gs, true)
    k.gatedNormApply(out, sumsq, w, rows, dim, gs, gs, 1e-6, z, ldz)
    const ref = new Float64Array(rows * dim)
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < dim / gs; j++) {
        let ss = 0
        for (let c = j * gs; c < (j + 1) * gs; c++) ss += y[r * dim + c] ** 2
        for (let c = j * gs; c < (j + 1) * gs; c++) ref[r * dim + c] = ((w[c] * y[r * dim + c]) / Math.sqrt(ss / gs + 1e-6)) * silu(z[r * ldz + c])
      }
    }
    expect(relErr(out, ref)).toBeLessThan(1e-6)
  })

  it('per-head RMSNorm, partial RoPE, column multipliers, sigmoid gate, scale (1e-5)', () => {
    const [T, heads, hd, ld] = [3, 2, 16, 40]
    const x = randn(T * ld, 8)
    const w = randn(hd, 9)
    const got = Float32Array.from(x)
    k.headRmsNorm(got, ld, T, heads, hd, w, 1e-6)
    const ref = Float64Array.from(x)
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < heads; h++) {
        const o = t * ld + h * hd
        let ss = 0
        for (let i = 0; i < hd; i++) ss += x[o + i] ** 2
        for (let i = 0; i < hd; i++) ref[o + i] = (w[i] * x[o + i]) / Math.sqrt(ss / hd + 1e-6)
      }
    }
    expect(relErr(got, ref)).toBeLessThan(1e-5)

    const rot = 4
    const r = Float32Array.from(x)
    k.ropeNeox(r, ld, 7, T, heads, hd, 1e6, rot)
    const rr = Float64Array.from(x)
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < heads; h++) {
        const o = t * ld + h * hd
        for (let i = 0; i < rot / 2; i++) {
          const ang = (7 + t) / 1e6 ** ((2 * i) / rot)
          rr[o + i] = x[o + i] * Math.cos(ang) - x[o + i + rot / 2] * Math.sin(ang)
          rr[o + i + rot / 2] = x[o + i + rot / 2] * Math.cos(ang) + x[o + i] * Math.sin(ang)
        }
      }
    }
    expect(relErr(r, rr)).toBeLessThan(1e-5)
    expect(r[ld - 1]).toBe(x[ld - 1]) // past the heads: untouched

    const scale = randn(10, 10)
    const m = Float32Array.from(x)
    k.mulColumns(m, ld, T, 10, scale)
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < ld; c++) expect(m[t * ld + c]).toBeCloseTo(c < 10 ? x[t * ld + c] * scale[c] : x[t * ld + c], 6)
    }

    const gate = randn(T * ld, 11)
    const s = randn(T * 12, 12)
    const sg = Float32Array.from(s)
    k.sigmoidMul(sg, gate, ld, T, 12)
    expect(relErr(sg, Array.from(s, (v, i) => v * sigmoid(gate[Math.floor(i / 12) * ld + (i % 12)])))).toBeLessThan(1e-5)

    const a = Float32Array.of(1, -2, 3)
    k.scaleInplace(a, 2, 0.5)
    expect(Array.from(a)).toEqual([0.5, -1, 3])
  })
})

/** The gated delta rule token by token in float64, as Qwen3-Next's torch recurrence defines it. */
function gdnReference(c: GdnCase, init: Float32Array): {out: Float64Array; state: Float64Array} {
  const {T, Hk, Hv, dk, dv, ld, ldBa} = c
  const S = Float64Array.from(init) // [Hv, dv, dk]
  const out = new Float64Array(T * Hv * dv)
  const l2 = (src: Float32Array, o: number, scale: number) => {
    let ss = 0
    for (let i = 0; i < dk; i++) ss += src[o + i] ** 2
    return Array.from({length: dk}, (_x, i) => (src[o + i] * scale) / Math.sqrt(ss + 1e-6))
  }
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < Hv; h++) {
      const kh = Math.floor(h / (Hv / Hk))
      const q = l2(c.qkv, t * ld + kh * dk, 1 / Math.sqrt(dk))
      const kv = l2(c.qkv, t * ld + Hk * dk + kh * dk, 1)
      const g = c.aNeg[h] * softplus(c.ba[t * ldBa + Hv + h] + c.dtBias[h])
      const beta = sigmoid(c.ba[t * ldBa + h])
      for (let j = 0; j < dv; j++) {
        const row = (h * dv + j) * dk
        let mem = 0
        for (let i = 0; i < dk; i++) {
          S[row + i] *= Math.exp(g)
          mem += S[row + i] * kv[i]
        }
        const delta = beta * (c.qkv[t * ld + 2 * Hk * dk + h * dv + j] - mem)
        let o = 0
        for (let i = 0; i < dk; i++) {
          S[row + i] += kv[i] * delta
          o += S[row + i] * q[i]
        }
        out[(t * Hv + h) * dv + j] = o
      }
    }
  }
  return {out, state: S}
}

interface GdnCase {
  T: number
  Hk: number
  Hv: number
  dk: number
  dv: number
  ld: number
  ldBa: number
  qkv: Float32Array
  ba: Float32Array
  aNeg: Float32Array
  dtBias: Float32Array
}

function gdnCase(T: number, Hk: number, ratio: number, dk: number, dv: number, seed: number): GdnCase {
  const Hv = Hk * ratio
  const ld = 2 * Hk * dk + Hv * dv + 3
  const ldBa = 2 * Hv + 1
  const rng = new Rng(seed)
  return {
    T, Hk, Hv, dk, dv, ld, ldBa,
    qkv: randn(T * ld, seed + 1),
    ba: randn(T * ldBa, seed + 2, 1.5),
    aNeg: Float32Array.from({length: Hv}, () => -Math.exp(Math.log(1 + 15 * rng.next()))),
    dtBias: Float32Array.from({length: Hv}, () => -4 + 3 * rng.next()),
  }
}

function gdnRun(c: GdnCase, init: Float32Array, chunk: number): {out: Float32Array; state: Float32Array} {
  const state = Float32Array.from(init)
  const out = new Float32Array(c.T * c.Hv * c.dv)
  k.gdnScan({
    q: c.qkv, k: c.qkv.subarray(c.Hk * c.dk), v: c.qkv.subarray(2 * c.Hk * c.dk), ldQkv: c.ld,
    b: c.ba, a: c.ba.subarray(c.Hv), ldBa: c.ldBa, aNeg: c.aNeg, dtBias: c.dtBias, state, out,
    tokens: c.T, keyHeads: c.Hk, valueHeads: c.Hv, keyDim: c.dk, valueDim: c.dv, chunk,
  })
  return {out, state}
}

describe('Gated DeltaNet', () => {
  it('the recurrence equals the float64 reference, and a T-token scan equals T one-token steps (1e-5)', () => {
    const c = gdnCase(37, 2, 2, 16, 8, 30)
    const init = randn(c.Hv * c.dv * c.dk, 31, 0.3)
    const ref = gdnReference(c, init)
    const seq = gdnRun(c, init, 0)
    expect(relErr(seq.out, ref.out)).toBeLessThan(1e-5)
    expect(relErr(seq.state, ref.state)).toBeLessThan(1e-5)
    const state = Float32Array.from(init)
    const steps = new Float32Array(seq.out.length)
    for (let t = 0; t < c.T; t++) {
      k.gdnScan({
        q: c.qkv.subarray(t * c.ld), k: c.qkv.subarray(t * c.ld + c.Hk * c.dk), v: c.qkv.subarray(t * c.ld + 2 * c.Hk * c.dk), ldQkv: c.ld,
        b: c.ba.subarray(t * c.ldBa), a: c.ba.subarray(t * c.ldBa + c.Hv), ldBa: c.ldBa, aNeg: c.aNeg, dtBias: c.dtBias, state,
        out: steps.subarray(t * c.Hv * c.dv), tokens: 1, keyHeads: c.Hk, valueHeads: c.Hv, keyDim: c.dk, valueDim: c.dv, chunk: 0,
      })
    }
    expect(relErr(steps, seq.out)).toBeLessThan(1e-6)
  })

  it('chunked prefill equals the token-by-token recurrence over random shapes and chunk sizes (property, 1e-4)', () => {
    fc.assert(
      fc.property(
        fc.record({
          T: fc.integer({min: 1, max: 90}),
          Hk: fc.integer({min: 1, max: 3}),
          ratio: fc.constantFrom(1, 2, 3),
          dk: fc.constantFrom(4, 8, 16, 32),
          dv: fc.constantFrom(4, 8, 24),
          chunk: fc.constantFrom(1, 2, 7, 16, 32, 64),
          seed: fc.integer({min: 1, max: 1_000_000}),
          stateScale: fc.constantFrom(0, 0.5),
        }),
        ({T, Hk, ratio, dk, dv, chunk, seed, stateScale}) => {
          const c = gdnCase(T, Hk, ratio, dk, dv, seed)
          const init = randn(c.Hv * dv * dk, seed + 7, stateScale)
          const seq = gdnRun(c, init, 0)
          const chunked = gdnRun(c, init, chunk)
          expect(relErr(chunked.out, seq.out)).toBeLessThan(1e-4)
          expect(relErr(chunked.state, seq.state)).toBeLessThan(1e-4)
        },
      ),
      {numRuns: 60, seed: 15},
    )
  })

  it('rejects a value-head count that is not a multiple of the key heads', () => {
    const c = gdnCase(2, 2, 1, 4, 4, 3)
    expect(() => k.gdnScan({...argsOf(c), valueHeads: 3})).toThrow(expect.objectContaining({code: 'HPD_NATIVE_INVALID_ARGUMENT'}))
  })
})

function argsOf(c: GdnCase) {
  return {
    q: c.qkv, k: c.qkv, v: c.qkv, ldQkv: c.ld, b: c.ba, a: c.ba, ldBa: c.ldBa, aNeg: c.aNeg, dtBias: c.dtBias,
    state: new Float32Array(c.Hv * c.dv * c.dk), out: new Float32Array(c.T * c.Hv * c.dv),
    tokens: c.T, keyHeads: c.Hk, valueHeads: c.Hv, keyDim: c.dk, valueDim: c.dv, chunk: 0,
  }
}

/** Each published router in float64: ids by descending choice score (ties to the lower id) and weights. */
function routeReference(kind: RouterKind, logits: ArrayLike<number>, E: number, K: number, opts: {normTopk: boolean; bias?: ArrayLike<number>; nGroup?: number; topkGroup?: number; scale?: number}) {
  const order = (score: ArrayLike<number>, allowed: (e: number) => boolean) =>
    Array.from({length: E}, (_x, e) => e).filter(allowed).sort((a, b) => score[b] - score[a] || a - b).slice(0, K)
  if (kind === ROUTER_KIND.softmaxTopk) {
    const mx = Math.max(...Array.from(logits))
    const ex = Array.from(logits, (v) => Math.exp(v - mx))
    const sum = ex.reduce((a, b) => a + b, 0)
    const p = ex.map((v) => v / sum)
    const ids = order(p, () => true)
    const picked = ids.reduce((a, e) => a + p[e], 0)
    return {ids, weights: ids.map((e) => (opts.normTopk ? p[e] / picked : p[e]))}
  }
  if (kind === ROUTER_KIND.topkSoftmax) {
    const ids = order(logits, () => true)
    const ex = ids.map((e) => Math.exp(logits[e] - logits[ids[0]]))
    const sum = ex.reduce((a, b) => a + b, 0)
    return {ids, weights: ex.map((v) => v / sum)}
  }
  const s = Array.from(logits, sigmoid)
  const choice = s.map((v, e) => v + (opts.bias ? opts.bias[e] : 0))
  const nGroup = opts.nGroup ?? 1
  let allowed = (_e: number) => true
  if (nGroup > 1) {
    const per = E / nGroup
    const groupScore = Array.from({length: nGroup}, (_x, g) => choice.slice(g * per, (g + 1) * per).sort((a, b) => b - a).slice(0, 2).reduce((a, b) => a + b, 0))
    const kept = new Set(Array.from({length: nGroup}, (_x, g) => g).sort((a, b) => groupScore[b] - groupScore[a] || a - b).slice(0, opts.topkGroup ?? 1))
    allowed = (e) => kept.has(Math.floor(e / per))
  }
  const ids = order(choice, allowed)
  const picked = ids.reduce((a, e) => a + s[e], 0)
  return {ids, weights: ids.map((e) => (opts.normTopk ? s[e] / (picked + 1e-20) : s[e]) * (opts.scale ?? 1))}
}

describe('MoE router', () => {
  it('top-k ids equal the reference and weights agree (1e-5) for every router kind on random logits (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          kind: fc.constantFrom(ROUTER_KIND.softmaxTopk, ROUTER_KIND.topkSoftmax, ROUTER_KIND.sigmoidBias),
          groups: fc.constantFrom(1, 2, 4),
          perGroup: fc.integer({min: 2, max: 8}),
          K: fc.integer({min: 1, max: 4}),
          T: fc.integer({min: 1, max: 6}),
          normTopk: fc.boolean(),
          seed: fc.integer({min: 1, max: 1_000_000}),
        }),
        ({kind, groups, perGroup, K: wanted, T, normTopk, seed}) => {
          const E = groups * perGroup
          const K = Math.min(wanted, E)
          const topkGroup = Math.max(1, Math.ceil(K / perGroup))
          const opts = kind === ROUTER_KIND.sigmoidBias ? {normTopk, bias: randn(E, seed + 1, 0.1), nGroup: groups, topkGroup, scale: 2.5} : {normTopk}
          const logits = randn(T * E, seed, 2)
          const ids = new Int32Array(T * K)
          const weights = new Float32Array(T * K)
          k.moeRoute({logits, tokens: T, experts: E, topK: K, kind, ...opts, ids, weights})
          for (let t = 0; t < T; t++) {
            const ref = routeReference(kind, logits.subarray(t * E, (t + 1) * E), E, K, opts)
            expect(Array.from(ids.subarray(t * K, (t + 1) * K))).toEqual(ref.ids)
            expect(relErr(weights.subarray(t * K, (t + 1) * K), ref.weights)).toBeLessThan(1e-5)
          }
        },
      ),
      {numRuns: 200, seed: 16},
    )
  })

  it('ties go to the lower expert id', () => {
    const ids = new Int32Array(2)
    k.moeRoute({logits: Float32Array.of(1, 3, 3, 1), tokens: 1, experts: 4, topK: 2, kind: ROUTER_KIND.topkSoftmax, normTopk: false, ids, weights: new Float32Array(2)})
    expect(Array.from(ids)).toEqual([1, 2])
  })
})

describe('MoE experts (grouped GEMMs)', () => {
  const [T, D, I, E] = [13, 24, 12, 6]
  const x = randn(T * D, 40)

  function expertRef(gated: boolean, up: Float32Array, down: Float32Array, e: number, row: number): Float64Array {
    const U = gated ? 2 * I : I
    const h = Array.from({length: U}, (_x, j) => {
      let acc = 0
      for (let c = 0; c < D; c++) acc += x[row * D + c] * up[(e * U + j) * D + c]
      return acc
    })
    const act = Array.from({length: I}, (_x, j) => (gated ? silu(h[j]) * h[I + j] : Math.max(0, h[j]) ** 2))
    return Float64Array.from({length: D}, (_x, c) => act.reduce((a, v, j) => a + v * down[(e * D + c) * I + j], 0))
  }

  it.each([
    ['gated (SwiGLU)', true, false],
    ['relu²', false, false],
    ['gated, bf16 weights', true, true],
  ] as const)('%s: every expert forced with fixed weights equals the dense sum over experts (1e-5)', (_name, gated, bf16) => {
    const U = gated ? 2 * I : I
    let up: Float32Array | Uint16Array = randn(E * U * D, 41, 1 / Math.sqrt(D))
    let down: Float32Array | Uint16Array = randn(E * D * I, 42, 1 / Math.sqrt(I))
    if (bf16) {
      up = narrowToBf16(up)
      down = narrowToBf16(down)
    }
    const upF = up instanceof Uint16Array ? widenBf16(up) : up
    const downF = down instanceof Uint16Array ? widenBf16(down) : down
    // every token routed to all E experts, in a token-dependent order, with arbitrary weights
    const ids = Int32Array.from({length: T * E}, (_x, i) => (Math.floor(i / E) * 5 + i) % E)
    const weights = randn(T * E, 43)
    const y0 = randn(T * D, 44)
    const y = Float32Array.from(y0)
    // Per expert: gate = rows [0, I) of its [U, D] block, up = the rows after (views, as Granite's stacked tensor is cut).
    const view = (w: Float32Array | Uint16Array, e: number, offset: number, size: number) => w.subarray(e * U * D + offset, e * U * D + offset + size)
    const gateList = gated ? Array.from({length: E}, (_x, e) => view(up, e, 0, I * D)) : undefined
    const upList = Array.from({length: E}, (_x, e) => view(up, e, gated ? I * D : 0, I * D))
    const downList = Array.from({length: E}, (_x, e) => down.subarray(e * D * I, (e + 1) * D * I))
    k.moeExperts({x, ldx: D, ids, weights, tokens: T, topK: E, hidden: D, inter: I, experts: E, gated, gate: gateList, up: upList, down: downList, y, ldy: D})
    const ref = Float64Array.from(y0)
    for (let t = 0; t < T; t++) {
      for (let s = 0; s < E; s++) {
        const o = expertRef(gated, upF, downF, ids[t * E + s], t)
        for (let c = 0; c < D; c++) ref[t * D + c] += weights[t * E + s] * o[c]
      }
    }
    expect(relErr(y, ref)).toBeLessThan(1e-5)
  })

  it('top-2 routing: only the routed experts contribute, over several 256-token passes (1e-5)', () => {
    const T2 = 600
    const D2 = 16
    const x2 = randn(T2 * D2, 50)
    const up = randn(E * I * D2, 51)
    const down = randn(E * D2 * I, 52)
    const ids = Int32Array.from({length: T2 * 2}, (_x, i) => (i * 7 + (i >> 1)) % E)
    for (let t = 0; t < T2; t++) if (ids[2 * t] === ids[2 * t + 1]) ids[2 * t + 1] = (ids[2 * t + 1] + 1) % E
    const weights = randn(T2 * 2, 53)
    const y = new Float32Array(T2 * D2)
    const upList = Array.from({length: E}, (_x, e) => up.subarray(e * I * D2, (e + 1) * I * D2))
    const downList = Array.from({length: E}, (_x, e) => down.subarray(e * D2 * I, (e + 1) * D2 * I))
    k.moeExperts({x: x2, ldx: D2, ids, weights, tokens: T2, topK: 2, hidden: D2, inter: I, experts: E, gated: false, up: upList, down: downList, y, ldy: D2})
    const ref = new Float64Array(T2 * D2)
    for (let t = 0; t < T2; t++) {
      for (let s = 0; s < 2; s++) {
        const e = ids[2 * t + s]
        const h = Array.from({length: I}, (_x, j) => {
          let acc = 0
          for (let c = 0; c < D2; c++) acc += x2[t * D2 + c] * up[(e * I + j) * D2 + c]
          return Math.max(0, acc) ** 2
        })
        for (let c = 0; c < D2; c++) ref[t * D2 + c] += weights[2 * t + s] * h.reduce((a, v, j) => a + v * down[(e * D2 + c) * I + j], 0)
      }
    }
    expect(relErr(y, ref)).toBeLessThan(1e-5)
  })

  it('rejects an id outside the experts and an undersized expert weight', () => {
    const experts = (n: number) => Array.from({length: E}, () => new Float32Array(n))
    const args = {x, ldx: D, ids: Int32Array.of(0, E), weights: new Float32Array(2), tokens: 1, topK: 2, hidden: D, inter: I, experts: E, gated: false, up: experts(I * D), down: experts(D * I), y: new Float32Array(D), ldy: D}
    expect(() => k.moeExperts(args)).toThrow(expect.objectContaining({code: 'HPD_NATIVE_INVALID_ARGUMENT', message: expect.stringContaining('ids[1] = 6 is not an expert')}))
    expect(() => k.moeExperts({...args, ids: Int32Array.of(0, 1), down: experts(D * I - 1)})).toThrow(
      expect.objectContaining({code: 'HPD_NATIVE_INVALID_ARGUMENT', message: expect.stringContaining(`down[0] has ${D * I - 1} elements, needs ${D * I}`)}),
    )
  })
})
