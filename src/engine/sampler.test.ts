import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {kernels} from '../native/kernels-binding.js'
import {Rng} from './random.js'
import {logprobsOf, SequenceSampler, type SequenceSamplingOptions} from './sampler.js'

const k = () => kernels()

/**
 * The sequence sampler against a scalar reference written here from vLLM's definitions
 * (vllm/v1/sample: min_tokens and logit_bias processors, apply_penalties, then temperature,
 * min-p, top-k, top-p), over random logits, histories and options.
 */
const V = 40

function logitsOf(seed: number): Float32Array {
  const rng = new Rng(seed)
  return Float32Array.from({length: V}, () => 3 * rng.normal())
}

/** vLLM's logits processing for one row, in float64 (the order vLLM V1 applies them). */
function referenceProcess(raw: Float32Array, o: SequenceSamplingOptions, prompt: readonly number[], output: readonly number[]): Float64Array {
  const l = Float64Array.from(raw)
  if (output.length < (o.minTokens ?? 0)) {
    for (const t of [...(o.ignoreEos ? [] : [o.eosTokenId!]), ...(o.stopTokenIds ?? [])]) l[t] = -Infinity
  }
  for (const [t, b] of Object.entries(o.logitBias ?? {})) l[Number(t)] += b
  const rep = o.repetitionPenalty ?? 1
  const seen = new Set([...prompt, ...output])
  for (let t = 0; t < V; t++) if (seen.has(t) && rep !== 1) l[t] = l[t] > 0 ? l[t] / rep : l[t] * rep
  const counts = new Map<number, number>()
  for (const t of output) counts.set(t, (counts.get(t) ?? 0) + 1)
  for (const [t, c] of counts) l[t] -= (o.frequencyPenalty ?? 0) * c + (o.presencePenalty ?? 0)
  return l
}

/** The distribution vLLM samples from after temperature, min-p, top-k and top-p (id → probability). */
function referenceDistribution(l: Float64Array, o: SequenceSamplingOptions): Map<number, number> {
  const order = Array.from({length: V}, (_, i) => i).sort((a, b) => l[b] - l[a] || a - b)
  const max = l[order[0]]
  let keep = order.filter((t) => l[t] !== -Infinity)
  const rel = (t: number) => Math.exp((l[t] - max) / o.temperature)
  if ((o.minP ?? 0) > 0) keep = keep.filter((t, i) => i === 0 || rel(t) >= o.minP!)
  if ((o.topK ?? 0) > 0) keep = keep.slice(0, o.topK)
  let total = keep.reduce((a, t) => a + rel(t), 0)
  if ((o.topP ?? 1) < 1) {
    let mass = 0
    const cut = keep.findIndex((t) => (mass += rel(t) / total) >= o.topP!)
    keep = keep.slice(0, cut + 1)
    total = keep.reduce((a, t) => a + rel(t), 0)
  }
  return new Map(keep.map((t) => [t, rel(t) / total]))
}

const options = fc.record({
  temperature: fc.constantFrom(0, 0.5, 1, 1.7),
  topK: fc.constantFrom(0, 1, 5, 20),
  topP: fc.constantFrom(1, 0.9, 0.5),
  minP: fc.constantFrom(0, 0.05, 0.3),
  presencePenalty: fc.constantFrom(0, 1.5, -1),
  frequencyPenalty: fc.constantFrom(0, 0.7, -2),
  repetitionPenalty: fc.constantFrom(1, 1.3, 0.6, 2),
  minTokens: fc.constantFrom(0, 2, 50),
  biasToken: fc.integer({min: 0, max: V - 1}),
  bias: fc.constantFrom(0, 5, -100, 100),
  stop: fc.array(fc.integer({min: 0, max: V - 1}), {maxLength: 3}),
  ignoreEos: fc.boolean(),
})

describe('SequenceSampler vs the vLLM reference', () => {
  it('draws only tokens the reference distribution allows, and greedy picks the reference argmax', () => {
    fc.assert(
      fc.property(options, fc.integer({min: 1, max: 1e6}), fc.array(fc.integer({min: 0, max: V - 1}), {minLength: 1, maxLength: 6}), (opt, seed, prompt) => {
        const o: SequenceSamplingOptions = {
          ...opt,
          seed,
          logitBias: opt.bias === 0 ? undefined : {[opt.biasToken]: opt.bias},
          stopTokenIds: opt.stop,
          eosTokenId: 3,
        }
        const sampler = new SequenceSampler(o, prompt)
        const output: number[] = []
        for (let step = 0; step < 6; step++) {
          const raw = logitsOf(seed + step)
          const before = Float32Array.from(raw)
          const processed = referenceProcess(raw, o, prompt, output)
          const t = sampler.next(raw).tokenId
          expect(raw).toEqual(before) // processors work on a copy
          if (o.temperature === 0) {
            const best = processed.reduce((b, v, i) => (v > processed[b] ? i : b), 0)
            expect(t).toBe(best)
          } else {
            expect(referenceDistribution(processed, o).has(t)).toBe(true)
          }
          output.push(t)
        }
      }),
      {numRuns: 300},
    )
  })

  it('samples each allowed token at its reference frequency (penalties, bias, min-p, top-k, top-p)', () => {
    const prompt = [1, 2, 2, 7]
    const output = [7, 9, 9, 9]
    const o: SequenceSamplingOptions = {seed: 5, temperature: 0.9, topK: 12, topP: 0.95, minP: 0.02, presencePenalty: 0.5, frequencyPenalty: 0.3, repetitionPenalty: 1.2, logitBias: {11: 2}}
    const raw = logitsOf(42)
    const dist = referenceDistribution(referenceProcess(raw, o, prompt, output), o)
    const counts = new Map<number, number>()
    const draws = 20_000
    for (let i = 0; i < draws; i++) {
      const s = new SequenceSampler({...o, seed: i + 1}, prompt)
      // Replay the output history through the sampler's record path with a token-forcing bias.
      for (const t of output) s.next(forcing(t))
      const t = s.next(raw).tokenId
      counts.set(t, (counts.get(t) ?? 0) + 1)
    }
    for (const [t, p] of dist) expect(Math.abs((counts.get(t) ?? 0) / draws - p)).toBeLessThan(0.02)
    for (const t of counts.keys()) expect(dist.has(t)).toBe(true)
  })

  it('min_tokens keeps EOS and stop token ids out until that many tokens were generated; ignore_eos leaves EOS alone', () => {
    const eos = 5
    const favourEos = Float32Array.from({length: V}, (_, i) => (i === eos ? 50 : i === 6 ? 49 : 0))
    const s = new SequenceSampler({seed: 1, temperature: 0, minTokens: 3, eosTokenId: eos, stopTokenIds: [6]}, [])
    const got = [0, 1, 2, 3].map(() => s.next(favourEos).tokenId)
    expect(got.slice(0, 3).every((t) => t !== eos && t !== 6)).toBe(true)
    expect(got[3]).toBe(eos)
    const ignoring = new SequenceSampler({seed: 1, temperature: 0, minTokens: 3, eosTokenId: eos, ignoreEos: true, stopTokenIds: [6]}, [])
    expect(ignoring.next(favourEos).tokenId).toBe(eos)
  })

  it('logit_bias +100 forces a token; −100 removes the favourite', () => {
    const raw = logitsOf(3)
    const top = raw.indexOf(Math.max(...raw))
    const weakest = raw.indexOf(Math.min(...raw))
    expect(new SequenceSampler({seed: 2, temperature: 1, logitBias: {[weakest]: 100}}, []).next(raw).tokenId).toBe(weakest)
    expect(new SequenceSampler({seed: 2, temperature: 0, logitBias: {[top]: -100}}, []).next(raw).tokenId).not.toBe(top)
  })

  it('logprobs are the log-softmax of the raw logits (before penalties and temperature), top-k most likely first', () => {
    const raw = logitsOf(9)
    const s = new SequenceSampler({seed: 4, temperature: 0.3, presencePenalty: 2, logprobs: 5}, [])
    const t = s.next(raw)
    const max = Math.max(...raw)
    const lse = max + Math.log(raw.reduce((a, v) => a + Math.exp(v - max), 0))
    expect(t.logprob).toBeCloseTo(raw[t.tokenId] - lse, 5)
    const ranked = Array.from(raw, (v, i) => ({i, v})).sort((a, b) => b.v - a.v || a.i - b.i)
    expect(t.top!.map((e) => e.tokenId)).toEqual(ranked.slice(0, 5).map((r) => r.i))
    for (const e of t.top!) expect(e.logprob).toBeCloseTo(raw[e.tokenId] - lse, 5)
    expect(logprobsOf(raw, 0, 0).top).toEqual([])
  })

  it('the sampled token and its own top_logprobs entry carry the same value', () => {
    for (let seed = 0; seed < 50; seed++) {
      const t = new SequenceSampler({seed, temperature: 1, logprobs: V}, []).next(logitsOf(seed))
      expect(t.top!.find((e) => e.tokenId === t.tokenId)!.logprob).toBe(t.logprob)
    }
  })

  it('the whole seed picks the stream: seeds equal modulo 2^32 differ, and continuations of the largest seed differ', () => {
    const draw = (seed: number, continuation = 0) => {
      const s = new SequenceSampler({seed, continuation, temperature: 1.5}, [])
      return Array.from({length: 24}, (_, i) => s.next(logitsOf(i)).tokenId)
    }
    expect(draw(1)).not.toEqual(draw(2 ** 32 + 1))
    expect(draw(-1)).not.toEqual(draw(2 ** 32 - 1))
    const max = Number.MAX_SAFE_INTEGER
    const [a, b, c] = [0, 1, 2].map((j) => draw(max, j))
    expect(a).not.toEqual(b)
    expect(b).not.toEqual(c)
    // Continuation j of seed s is seed s + j (vLLM's parallel sampling), exactly, also past 2^53.
    expect(draw(40, 2)).toEqual(draw(42))
    expect(draw(max - 1, 1)).toEqual(draw(max))
  })

  it('a tiny positive top_p keeps only the most likely token (it does not underflow to "no cut")', () => {
    const raw = logitsOf(17)
    const top = raw.indexOf(Math.max(...raw))
    for (const topP of [1e-45, 1e-46, 1e-300, Number.MIN_VALUE]) {
      for (let seed = 0; seed < 40; seed++) expect(new SequenceSampler({seed, temperature: 2, topP}, []).next(raw).tokenId, `top_p ${topP}`).toBe(top)
    }
    // The kernel itself: the cut is taken as a double.
    expect(k().sample(Float32Array.of(0, 0.1, 0.2), 1, 0, 1e-300, 0, 0.999)).toBe(2)
  })

  it('is reproducible: the same seed and logits give the same tokens', () => {
    const o = {seed: 77, temperature: 1, topP: 0.9, frequencyPenalty: 0.5}
    const run = () => {
      const s = new SequenceSampler(o, [1, 2, 3])
      return Array.from({length: 20}, (_, i) => s.next(logitsOf(i)).tokenId)
    }
    expect(run()).toEqual(run())
  })
})

/** Logits whose greedy and sampled choice is `t` whatever the options (a history replay). */
function forcing(t: number): Float32Array {
  const l = new Float32Array(V).fill(-1e4)
  l[t] = 1e4
  return l
}

describe('native sampling kernels', () => {
  const k = kernels()
  it('min-p drops tokens below min_p × the top probability (after temperature)', () => {
    // probabilities ∝ 8 : 4 : 1 at T = 1; min_p 0.25 keeps the first two (1/8 < 0.25).
    const l = Float32Array.of(Math.log(8), Math.log(4), Math.log(1))
    const seen = new Set<number>()
    for (let u = 0; u < 1; u += 0.01) seen.add(k.sample(l, 1, 0, 1, 0.25, u))
    expect([...seen].sort()).toEqual([0, 1])
    seen.clear()
    for (let u = 0; u < 1; u += 0.01) seen.add(k.sample(l, 1, 0, 1, 0.1, u))
    expect([...seen].sort()).toEqual([0, 1, 2])
  })

  it('never draws a -inf token while another is left', () => {
    const l = Float32Array.of(-Infinity, 0, -Infinity, 0.5)
    for (let u = 0; u < 1; u += 0.05) expect([1, 3]).toContain(k.sample(l, 1, 0, 1, 0, u))
  })

  it('logSoftmaxTop: log Σ exp and the k largest, ties by lower id', () => {
    const l = Float32Array.of(1, 3, 3, -2)
    const ids = new Int32Array(3)
    const values = new Float32Array(3)
    const lse = k.logSoftmaxTop(l, 3, ids, values)
    expect(lse).toBeCloseTo(Math.log(Math.E + 2 * Math.exp(3) + Math.exp(-2)), 6)
    expect(Array.from(ids)).toEqual([1, 2, 0])
    expect(values[0]).toBeCloseTo(3 - lse, 6)
  })
})
