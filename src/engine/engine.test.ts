import {describe, expect, it} from 'vitest'

import {HybridEngine} from './engine.js'
import {referenceForward} from './reference-forward.js'
import {Sampler} from './sampler.js'
import {copyPages, tinyModel} from './test-models.js'

const MODELS = ['tiny-hybrid', 'tiny-hybrid-g1', 'tiny-llama'] as const

function prompt(n: number, salt = 0): number[] {
  return Array.from({length: n}, (_x, i) => (i * 37 + 11 + salt * 101) % 256)
}

/** max |a − b| / max |b| */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0
  let scale = 0
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]))
    scale = Math.max(scale, Math.abs(b[i]))
  }
  return diff / scale
}

function greedy(engine: HybridEngine, id: string, tokens: number[], steps: number): {tokens: number[]; logits: Float32Array[]} {
  const s = new Sampler(0)
  let logits = engine.prefill(id, tokens)!
  const out: number[] = []
  const all = [Float32Array.from(logits)]
  for (let i = 0; i < steps; i++) {
    out.push(s.sample(logits, {temperature: 0}))
    ;[logits] = engine.decodeStep([{requestId: id, tokenId: out.at(-1)!}])
    all.push(Float32Array.from(logits))
  }
  return {tokens: out, logits: all}
}

describe('engine vs the scalar reference forward', () => {
  // fp32 kernels (chunked scan, blocked GEMM) against a float64 token-by-token forward:
  // tolerance 1e-3 of the largest logit; measured errors are ~1e-6.
  it.each(MODELS)('%s: prefill over several chunks and kernel blocks, then decode across a logical block', (name) => {
    const m = tinyModel(name)
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 16})
    const tokens = prompt(70)
    const steps = 14 // 84 positions: crosses the 80-token logical block of the hybrids
    const run = greedy(engine, 'r', tokens, steps)
    const ref = referenceForward(m.spec, m.weights, [...tokens, ...run.tokens])
    for (let i = 0; i <= steps; i++) expect(relErr(run.logits[i], ref[tokens.length - 1 + i])).toBeLessThan(1e-3)
    expect(new Set(run.tokens).size).toBeGreaterThan(3) // non-degenerate: greedy output varies
    engine.close()
  })
})

describe('tensor parallelism', () => {
  it.each(MODELS)('%s: TP 2 and TP 4 give the greedy tokens of TP 1, logits within 1e-4', (name) => {
    const m = tinyModel(name)
    const runs = [1, 2, 4].map((tp) => {
      const engine = new HybridEngine({spec: m.spec, weights: m.weights, tp, numBlocks: 8})
      const run = greedy(engine, 'r', prompt(40, 1), 12)
      engine.close()
      return run
    })
    for (const run of runs.slice(1)) {
      expect(run.tokens).toEqual(runs[0].tokens)
      run.logits.forEach((l, i) => expect(relErr(l, runs[0].logits[i])).toBeLessThan(1e-4))
    }
  })
})

describe('state handover', () => {
  it.each([
    ['tiny-hybrid', 1],
    ['tiny-hybrid-g1', 2],
    ['tiny-llama', 1],
  ] as const)('%s TP %i: prefill N−1, copy the pages to a fresh engine, recompute the last token, decode', (name, tp) => {
    const m = tinyModel(name)
    const tokens = prompt(45, 2)
    const steps = 10
    const numBlocks = 16
    const uninterrupted = new HybridEngine({spec: m.spec, weights: m.weights, tp, numBlocks})
    const expected = greedy(uninterrupted, 'u', tokens, steps)

    const prefill = new HybridEngine({spec: m.spec, weights: m.weights, tp, numBlocks})
    expect(prefill.prefill('p', tokens.slice(0, -1), {remoteDecode: true})).toBeUndefined()
    const decode = new HybridEngine({spec: m.spec, weights: m.weights, tp, numBlocks: numBlocks + 4})
    decode.allocate('other', 50) // different block ids on the decode side
    const ids = decode.allocate('d', tokens.length - 1)!
    expect(ids).not.toEqual(prefill.blockIds('p'))
    copyPages(prefill, 'p', decode, ids)
    decode.adopt('d', tokens.length - 1)

    const s = new Sampler(0)
    let [logits] = decode.decodeStep([{requestId: 'd', tokenId: tokens.at(-1)!}])
    // the prefill engine continuing locally computes bit-identical logits: the pages carry the whole state
    const [local] = prefill.decodeStep([{requestId: 'p', tokenId: tokens.at(-1)!}])
    expect(Array.from(logits)).toEqual(Array.from(local))
    const got: number[] = []
    for (let i = 0; i < steps; i++) {
      got.push(s.sample(logits, {temperature: 0}))
      ;[logits] = decode.decodeStep([{requestId: 'd', tokenId: got.at(-1)!}])
    }
    expect(got).toEqual(expected.tokens)
    for (const e of [uninterrupted, prefill, decode]) e.close()
  })
})

describe('batching and blocks', () => {
  it('decodes several sequences in one step with the logits each gets alone', () => {
    const m = tinyModel('tiny-hybrid')
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 12})
    const alone = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 12})
    const prompts = [prompt(9, 3), prompt(30, 4), prompt(17, 5)]
    prompts.forEach((p, i) => {
      engine.prefill(`r${i}`, p)
      alone.prefill(`r${i}`, p)
    })
    expect(() => engine.decodeStep([{requestId: 'r0', tokenId: 1}, {requestId: 'r0', tokenId: 2}])).toThrow(expect.objectContaining({code: 'HPD_ENGINE_DUPLICATE_IN_BATCH'}))
    const batched = engine.decodeStep(prompts.map((_p, i) => ({requestId: `r${i}`, tokenId: 65 + i})))
    prompts.forEach((_p, i) => {
      const [one] = alone.decodeStep([{requestId: `r${i}`, tokenId: 65 + i}])
      expect(relErr(batched[i], one)).toBeLessThan(1e-5)
    })
    engine.close()
    alone.close()
  })

  it('frees blocks for reuse and refuses requests the pool cannot hold', () => {
    const m = tinyModel('tiny-hybrid')
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 6})
    const perRequest = engine.blocksNeeded(10).reduce((a, b) => a + b, 0)
    expect(engine.allocate('a', 10)).not.toBeNull()
    expect(engine.usage().usedBlocks).toBe(perRequest)
    expect(engine.allocate('b', 10 * engine.layout.logicalBlockSize)).toBeNull()
    expect(engine.usage().usedBlocks).toBe(perRequest)
    engine.free('a')
    expect(engine.usage().usedBlocks).toBe(0)
    const again = engine.allocate('c', 10)
    expect(again).not.toBeNull()
    engine.close()
  })

  it('a prompt prefilled in slices (cache carried between them) matches one pass', () => {
    for (const name of ['tiny-hybrid', 'tiny-llama'] as const) {
      const m = tinyModel(name)
      const whole = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 8})
      const sliced = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 8, maxPrefillTokens: 23})
      const tokens = prompt(90, 7)
      expect(relErr(sliced.prefill('a', tokens)!, whole.prefill('a', tokens)!)).toBeLessThan(1e-4)
      expect(sliced.numCachedTokens('a')).toBe(90)
      whole.close()
      sliced.close()
    }
  })

  it('prefill(T) then decode(1) matches prefill(T+1) at the last position', () => {
    const m = tinyModel('tiny-hybrid')
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 8})
    const tokens = prompt(66, 6)
    engine.prefill('a', tokens.slice(0, -1))
    const [stepped] = engine.decodeStep([{requestId: 'a', tokenId: tokens.at(-1)!}])
    const whole = engine.prefill('b', tokens)!
    expect(relErr(stepped, whole)).toBeLessThan(1e-4)
    engine.close()
  })
})

describe('Llama with tied embeddings', () => {
  it('uses the embedding as LM head (no lm_head tensor), vocab-parallel at TP 2, matching the reference', async () => {
    const {mkdtempSync, rmSync} = await import('node:fs')
    const {tmpdir} = await import('node:os')
    const {join} = await import('node:path')
    const {findPreset} = await import('../model/index.js')
    const {writeGeneratedModel} = await import('./tiny-models.js')
    const {loadModel} = await import('./load-model.js')
    const dir = join(mkdtempSync(join(tmpdir(), 'hpd-tied-')), 'model')
    try {
      writeGeneratedModel(dir, {...findPreset('tiny-llama')!.config, tie_word_embeddings: true}, 3)
      const m = loadModel(dir)
      expect(m.weights.tensors.has('lm_head.weight')).toBe(false)
      const tokens = prompt(20, 8)
      const ref = referenceForward(m.spec, m.weights, tokens)
      for (const tp of [1, 2]) {
        const engine = new HybridEngine({spec: m.spec, weights: m.weights, tp, numBlocks: 4})
        expect(relErr(engine.prefill('r', tokens)!, ref.at(-1)!)).toBeLessThan(1e-3)
        engine.close()
      }
    } finally {
      rmSync(join(dir, '..'), {recursive: true, force: true})
    }
  })
})
