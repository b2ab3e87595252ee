import {describe, expect, it} from 'vitest'

import {kernels} from '../native/kernels-binding.js'
import {Rng} from './random.js'

/**
 * Each native kernel against a scalar float64 reference written in the test, one case each, with
 * the tolerance stated (relative to the largest reference value).
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
const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)))

describe('kernels vs scalar references', () => {
  it.each([1, 7])('linear: y = x·wᵀ for %i rows (sgemv / sgemm paths) with row strides and accumulate (1e-5)', (m) => {
    const [kk, n, ldx, ldy] = [33, 50, 40, 64]
    const x = randn(m * ldx, 1)
    const w = randn(n * kk, 2)
    const y0 = randn(m * ldy, 3)
    const y = Float32Array.from(y0)
    k.linear(x, ldx, w, y, ldy, m, kk, n, true)
    const ref = new Float64Array(m * n)
    const got = new Float64Array(m * n)
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = y0[i * ldy + j]
        for (let c = 0; c < kk; c++) acc += x[i * ldx + c] * w[j * kk + c]
        ref[i * n + j] = acc
        got[i * n + j] = y[i * ldy + j]
      }
    }
    expect(relErr(got, ref)).toBeLessThan(1e-5)
    expect(y[ldy - 1]).toBe(y0[ldy - 1]) // columns past n untouched
  })

  it('rmsNorm (1e-6)', () => {
    const [rows, dim] = [5, 48]
    const x = randn(rows * dim, 4)
    const w = randn(dim, 5)
    const y = new Float32Array(rows * dim)
    k.rmsNorm(x, w, y, rows, dim, 1e-5)
    const ref = new Float64Array(rows * dim)
    for (let r = 0; r < rows; r++) {
      let ss = 0
      for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2
      for (let i = 0; i < dim; i++) ref[r * dim + i] = (w[i] * x[r * dim + i]) / Math.sqrt(ss / dim + 1e-5)
    }
    expect(relErr(y, ref)).toBeLessThan(1e-6)
  })

  it('gated RMSNorm: gate then per-group norm (1e-6), and grouping matters', () => {
    const [rows, dim, ldz] = [3, 64, 80]
    const y = randn(rows * dim, 6)
    const z = randn(rows * ldz, 7)
    const w = randn(dim, 8)
    const run = (groupSize: number) => {
      const out = new Float32Array(rows * dim)
      const sumsq = new Float32Array(rows * (dim / groupSize))
      k.gatedNormSumsq(y, z, ldz, out, sumsq, rows, dim, groupSize)
      k.gatedNormApply(out, sumsq, w, rows, dim, groupSize, groupSize, 1e-5)
      return out
    }
    const grouped = run(16)
    const ref = new Float64Array(rows * dim)
    for (let r = 0; r < rows; r++) {
      const g = Array.from({length: dim}, (_x, c) => y[r * dim + c] * silu(z[r * ldz + c]))
      for (let j = 0; j < 4; j++) {
        let ss = 0
        for (let c = j * 16; c < (j + 1) * 16; c++) ss += g[c] ** 2
        for (let c = j * 16; c < (j + 1) * 16; c++) ref[r * dim + c] = (w[c] * g[c]) / Math.sqrt(ss / 16 + 1e-5)
      }
    }
    expect(relErr(grouped, ref)).toBeLessThan(1e-6)
    expect(relErr(run(dim), ref)).toBeGreaterThan(1e-2) // the ungrouped (plain Mamba2) norm differs
  })

  it('conv1d: prefill with history equals token-by-token steps and the reference (1e-6)', () => {
    const [T, cd, K, ldx] = [11, 20, 4, 24]
    const x = randn(T * ldx, 9)
    const w = randn(cd * K, 10)
    const b = randn(cd, 11)
    const init = randn(cd * (K - 1), 12)
    const state = Float32Array.from(init)
    const out = new Float32Array(T * cd)
    k.conv1d(x, ldx, w, b, state, out, T, cd, K)
    const stepState = Float32Array.from(init)
    const stepOut = new Float32Array(T * cd)
    for (let t = 0; t < T; t++) k.conv1d(x.subarray(t * ldx), ldx, w, b, stepState, stepOut.subarray(t * cd), 1, cd, K)
    expect(Array.from(stepOut)).toEqual(Array.from(out))
    expect(Array.from(stepState)).toEqual(Array.from(state))
    const ref = new Float64Array(T * cd)
    for (let c = 0; c < cd; c++) {
      const win = [...init.subarray(c * (K - 1), (c + 1) * (K - 1))]
      for (let t = 0; t < T; t++) win.push(x[t * ldx + c])
      for (let t = 0; t < T; t++) {
        let acc = b[c]
        for (let j = 0; j < K; j++) acc += w[c * K + j] * win[t + j]
        ref[t * cd + c] = silu(acc)
      }
      for (let j = 0; j < K - 1; j++) expect(state[c * (K - 1) + j]).toBe(win[T + j])
    }
    expect(relErr(out, ref)).toBeLessThan(1e-6)
  })

  describe('Mamba2 scan', () => {
    const [T, H, P, G, N] = [150, 4, 8, 2, 16]
    const CD = H * P + 2 * G * N
    const xbc = randn(T * CD, 13)
    const dtRaw = randn(T * H, 14)
    const dtBias = Float32Array.from({length: H}, (_x, h) => -3 + h)
    const a = Float32Array.from({length: H}, (_x, h) => -(h + 1))
    const d = randn(H, 15)
    const init = randn(H * P * N, 16, 0.5)
    const scan = (chunk: number) => {
      const state = Float32Array.from(init)
      const y = new Float32Array(T * H * P)
      k.ssmScan(xbc, CD, xbc.subarray(H * P), xbc.subarray(H * P + G * N), CD, dtRaw, H, dtBias, a, d, state, y, T, H, P, G, N, chunk)
      return {state, y}
    }

    it('sequential recurrence equals the float64 reference (1e-5)', () => {
      const S = Float64Array.from(init)
      const y = new Float64Array(T * H * P)
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          const g = Math.floor(h / (H / G))
          const dt = softplus(dtRaw[t * H + h] + dtBias[h])
          for (let p = 0; p < P; p++) {
            const x = xbc[t * CD + h * P + p]
            let acc = 0
            for (let n = 0; n < N; n++) {
              const i = (h * P + p) * N + n
              S[i] = S[i] * Math.exp(dt * a[h]) + dt * x * xbc[t * CD + H * P + g * N + n]
              acc += S[i] * xbc[t * CD + H * P + G * N + g * N + n]
            }
            y[(t * H + h) * P + p] = acc + d[h] * x
          }
        }
      }
      const got = scan(0)
      expect(relErr(got.y, y)).toBeLessThan(1e-5)
      expect(relErr(got.state, S)).toBeLessThan(1e-5)
    })

    it.each([16, 64, 128])('chunked (Q=%i, T not a multiple of Q, non-zero initial state) agrees with sequential (1e-4 · max|y|)', (chunk) => {
      const seq = scan(0)
      const chunked = scan(chunk)
      expect(relErr(chunked.y, seq.y)).toBeLessThan(1e-4)
      expect(relErr(chunked.state, seq.state)).toBeLessThan(1e-4)
    })
  })

  it.each([
    [5, 9],
    [40, 9],
  ])('paged attention: %i queries after %i cached, causal GQA over scattered kernel blocks (1e-5), both K/V layouts', (T, pos0) => {
    const [Hq, Hkv, hd, bs] = [4, 2, 8, 4]
    const ctx = pos0 + T
    const keys = randn(ctx * Hkv * hd, 17)
    const values = randn(ctx * Hkv * hd, 18)
    const q = randn(T * Hq * hd, 19)
    const table = Int32Array.from([5, 0, 3, 7, 12, 9, 15, 1, 4, 2, 14, 6, 8, 10])
    for (const blocksFirst of [true, false]) {
      const numBlocks = 16
      const half = Hkv * bs * hd
      const geo = blocksFirst ? {stride: 2 * half, kOff: 0, vOff: half} : {stride: half, kOff: 0, vOff: numBlocks * half}
      const cache = new Float32Array(numBlocks * 2 * half)
      // earlier positions written one token at a time, the new T in one call
      for (let s = 0; s < pos0; s++) {
        k.kvCacheWrite(cache, table, bs, geo.stride, geo.kOff, geo.vOff, bs * hd, keys.subarray(s * Hkv * hd), Hkv * hd, values.subarray(s * Hkv * hd), Hkv * hd, s, 1, Hkv, hd)
      }
      k.kvCacheWrite(cache, table, bs, geo.stride, geo.kOff, geo.vOff, bs * hd, keys.subarray(pos0 * Hkv * hd), Hkv * hd, values.subarray(pos0 * Hkv * hd), Hkv * hd, pos0, T, Hkv, hd)
      const o = new Float32Array(T * Hq * hd)
      k.pagedAttention(cache, table, bs, geo.stride, geo.kOff, geo.vOff, bs * hd, q, Hq * hd, o, pos0, T, Hq, Hkv, hd, 1 / Math.sqrt(hd))
      const ref = new Float64Array(T * Hq * hd)
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < Hq; j++) {
          const h = Math.floor(j / (Hq / Hkv))
          const scores = Array.from({length: pos0 + t + 1}, (_x, s) => {
            let dot = 0
            for (let e = 0; e < hd; e++) dot += q[(t * Hq + j) * hd + e] * keys[(s * Hkv + h) * hd + e]
            return dot / Math.sqrt(hd)
          })
          const max = Math.max(...scores)
          const ex = scores.map((v) => Math.exp(v - max))
          const sum = ex.reduce((x, y) => x + y, 0)
          ex.forEach((p, s) => {
            for (let e = 0; e < hd; e++) ref[(t * Hq + j) * hd + e] += (p / sum) * values[(s * Hkv + h) * hd + e]
          })
        }
      }
      expect(relErr(o, ref)).toBeLessThan(1e-5)
      // K of position 6 (kernel block 1 → physical block 0, slot 2), kv head 1
      expect(cache[geo.kOff + 1 * bs * hd + 2 * hd]).toBe(keys[(6 * Hkv + 1) * hd])
    }
  })

  it('RoPE (rotate-half) and SwiGLU / relu² (1e-5)', () => {
    const [T, heads, hd, pos0] = [3, 2, 8, 5]
    const x = randn(T * heads * hd, 20)
    const got = Float32Array.from(x)
    k.ropeNeox(got, heads * hd, pos0, T, heads, hd, 10000)
    const ref = Float64Array.from(x)
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < hd / 2; i++) {
          const ang = (pos0 + t) / 10000 ** ((2 * i) / hd)
          const o = (t * heads + h) * hd
          ref[o + i] = x[o + i] * Math.cos(ang) - x[o + i + hd / 2] * Math.sin(ang)
          ref[o + i + hd / 2] = x[o + i + hd / 2] * Math.cos(ang) + x[o + i] * Math.sin(ang)
        }
      }
    }
    expect(relErr(got, ref)).toBeLessThan(1e-5)
    const gu = randn(2 * 6, 21)
    const out = new Float32Array(6)
    k.siluMul(gu, out, 1, 6)
    expect(relErr(out, Array.from({length: 6}, (_x, i) => silu(gu[i]) * gu[6 + i]))).toBeLessThan(1e-5)
    const r = Float32Array.of(-2, -0.5, 0, 0.5, 3)
    k.reluSquared(r, 5)
    expect(Array.from(r)).toEqual([0, 0, 0, 0.25, 9])
  })

  it('embedding of a vocab shard zeroes ids outside it', () => {
    const table = Float32Array.from({length: 3 * 2}, (_x, i) => i + 1) // ids 4..6
    const out = new Float32Array(3 * 2)
    k.embedding(Int32Array.of(5, 1, 4), table, 4, 7, 2, out)
    expect(Array.from(out)).toEqual([3, 4, 0, 0, 1, 2])
  })

  it('sampling: greedy, top-k 1, top-p, CDF inversion, determinism', () => {
    const logits = Float32Array.of(0, Math.log(3), -1, 2)
    expect(k.sample(logits, 0, 0, 1, 0, 0)).toBe(3)
    expect(k.sample(logits, 1, 1, 1, 0, 0.99)).toBe(3)
    expect(k.sample(logits, 1, 0, 0.01, 0, 0.99)).toBe(3)
    // top-2 of [0, ln3]: probabilities 1/4, 3/4 in sorted order [id1, id0]
    const two = Float32Array.of(0, Math.log(3))
    expect(k.sample(two, 1, 0, 1, 0, 0.74)).toBe(1)
    expect(k.sample(two, 1, 0, 1, 0, 0.76)).toBe(0)
    expect(k.sample(logits, 0.7, 3, 0.9, 0, 0.5)).toBe(k.sample(logits, 0.7, 3, 0.9, 0, 0.5))
  })

  it('recorded calls run in order off the main thread on submit; the recording refuses what cannot wait', async () => {
    const a = Float32Array.of(1, 2, 3, 4)
    const b = new Float32Array(4)
    k.record()
    k.copy(b, a, 4)
    k.addInplace(b, a, 4) // reads what the recorded copy wrote
    expect(Array.from(b)).toEqual([0, 0, 0, 0]) // nothing ran yet
    expect(() => k.sample(a, 0, 0, 1, 0, 0)).toThrow(expect.objectContaining({code: 'HPD_NATIVE_INVALID_ARGUMENT'}))
    expect(() => k.record()).toThrow(/already open/)
    const done = k.submit()
    expect(() => k.record()).toThrow(/still running/)
    await done
    expect(Array.from(b)).toEqual([2, 4, 6, 8])
    k.record()
    k.copy(b, a, 4)
    k.discard()
    await expect(async () => k.submit()).rejects.toThrow(/nothing is being recorded/)
    expect(Array.from(b)).toEqual([2, 4, 6, 8])
    // a bad view is refused when recorded, before anything runs
    k.record()
    expect(() => k.copy(b, a, 5)).toThrow(expect.objectContaining({code: 'HPD_NATIVE_INVALID_ARGUMENT'}))
    k.discard()
  })

  it('rejects undersized views with HPD_NATIVE_INVALID_ARGUMENT before touching memory', () => {
    expect(() => k.rmsNorm(new Float32Array(10), new Float32Array(8), new Float32Array(16), 2, 8, 1e-5)).toThrow(
      expect.objectContaining({code: 'HPD_NATIVE_INVALID_ARGUMENT', message: expect.stringContaining('x has 10 elements, needs 16')}),
    )
    const cache = new Float32Array(64)
    expect(() => k.pagedAttention(cache, Int32Array.of(9), 4, 16, 0, 8, 8, new Float32Array(4), 4, new Float32Array(4), 0, 1, 1, 1, 2, 1)).toThrow(
      expect.objectContaining({code: 'HPD_NATIVE_INVALID_ARGUMENT', message: expect.stringContaining('blockTable[0] = 9 is outside the cache view')}),
    )
  })
})
