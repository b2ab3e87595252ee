import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {blockHashes, externalBlockHash, hashBlockTokens} from './block-hash.js'
import {HybridEngine} from './engine.js'
import {BlockPool} from './block-pool.js'
import {PrefixCache, type PrefixCacheEvent} from './prefix-cache.js'
import type {EngineLayout} from '../layout/types.js'
import {Sampler} from './sampler.js'
import {StepScheduler} from './step-scheduler.js'
import {tinyModel, type TinyModelName} from './test-models.js'

const MODELS = ['tiny-hybrid', 'tiny-hybrid-g1', 'tiny-llama'] as const

function prompt(n: number, salt = 0): number[] {
  return Array.from({length: n}, (_x, i) => (i * 37 + 11 + salt * 101) % 256)
}

function engineFor(name: TinyModelName, options: {prefixCaching?: boolean; numBlocks?: number; tp?: number; mambaCheckpointEvery?: number} = {}): HybridEngine {
  const m = tinyModel(name)
  return new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: options.numBlocks ?? 24, tp: options.tp, prefixCaching: options.prefixCaching, mambaCheckpointEvery: options.mambaCheckpointEvery})
}

/** Greedy continuation of `tokens` (prefill, then `steps` decode steps) on a request that is freed afterwards. */
function greedy(engine: HybridEngine, id: string, tokens: readonly number[], steps: number): {tokens: number[]; cached: number} {
  const s = new Sampler(0)
  let logits = engine.prefill(id, tokens)!
  const cached = engine.cachedTokens(id)
  const out: number[] = []
  for (let i = 0; i < steps; i++) {
    out.push(s.sample(logits, {temperature: 0}))
    ;[logits] = engine.decodeStep([{requestId: id, tokenId: out.at(-1)!}])
  }
  engine.free(id)
  return {tokens: out, cached}
}

/** Bytes of every state page of a request (every state group, tensor, rank), concatenated. */
function statePages(engine: HybridEngine, id: string): number[] {
  const out: number[] = []
  const page = engine.layout.pageBytes / 4
  const ids = engine.blockIds(id)
  engine.layout.groups.forEach((g, gi) => {
    if (g.kind !== 'state') return
    for (const c of engine.caches) for (const t of c.tensors) out.push(...new Uint32Array(t.buffer, t.byteOffset + ids[gi][0] * page * 4, page))
  })
  return out
}

describe('block hashes', () => {
  it('chain over full blocks: equal prefixes hash equal, any earlier token changes every later hash', () => {
    const a = prompt(50)
    const b = [...a]
    b[3] ^= 1
    const ha = blockHashes(a, 16)
    const hb = blockHashes(b, 16)
    expect(ha).toHaveLength(3) // the partial last block is not hashed
    expect(blockHashes(a.slice(0, 48), 16).map(String)).toEqual(ha.map(String))
    ha.forEach((h, i) => expect(h.equals(hb[i])).toBe(false))
    expect(hashBlockTokens(ha[0], a.slice(16, 32)).equals(ha[1])).toBe(true)
    expect(typeof externalBlockHash(ha[0])).toBe('bigint')
  })
})

describe('prefix caching: greedy output identical to caching off', () => {
  // + a Gated DeltaNet family and Falcon-H1 (attention and Mamba2 side by side in every layer)
  it.each([...MODELS, 'tiny-qwen3-next', 'tiny-falcon-h1'] as const)('%s: full hits, partial hits ending mid-block, different continuations', (name) => {
    const on = engineFor(name, {prefixCaching: true})
    const off = engineFor(name)
    const B = on.layout.logicalBlockSize
    const base = prompt(3 * B + 7, 1)
    const requests = [
      base, // cold
      base, // full hit: everything but the last token's block
      [...base.slice(0, 2 * B + 5), ...prompt(20, 2)], // shares 2 blocks and 5 tokens: hit ends at the block edge
      [...base.slice(0, B - 3), ...prompt(B, 3)], // shares less than a block: no hit
      [...base, ...prompt(B + 2, 4)], // extends the first prompt
    ]
    const hits = requests.map((p, i) => {
      const got = greedy(on, `on${i}`, p, 6)
      expect(got.tokens).toEqual(greedy(off, `off${i}`, p, 6).tokens)
      return got.cached
    })
    expect(hits).toEqual([0, 3 * B, 2 * B, 0, 3 * B])
    const stats = on.prefixCacheStats()!
    expect(stats.hitTokens.attention).toBeGreaterThanOrEqual(8 * B)
    if (on.layout.groups.some((g) => g.kind === 'state')) expect(stats.checkpointBlocks).toBeGreaterThan(0)
    on.close()
    off.close()
  })

  it.each(['tiny-hybrid', 'tiny-hybrid-g1'] as const)('%s: a hit whose checkpoint was evicted while its attention blocks survived falls back to an earlier checkpoint', (name) => {
    const on = engineFor(name, {prefixCaching: true, numBlocks: 24})
    const off = engineFor(name)
    const B = on.layout.logicalBlockSize
    const p = prompt(3 * B + 10, 5)
    greedy(on, 'a', p, 2)
    const before = on.prefixCacheStats()!
    const states = on.layout.groups.filter((g) => g.kind === 'state').length
    expect(before.checkpointBlocks).toBe(3 * states)
    // Checkpoints went to the cache before the request's attention blocks (freed when it ended),
    // so a request taking every never-cached block plus the checkpoints evicts exactly those.
    const free = on.usage().totalBlocks - on.usage().usedBlocks - before.cachedAttentionBlocks - before.checkpointBlocks
    const filler = free + before.checkpointBlocks - states // the filler's own state pages are in its count
    expect(on.allocate('filler', (filler / on.layout.groups.filter((g) => g.kind === 'attention').length) * B)).not.toBeNull()
    const after = on.prefixCacheStats()!
    expect(after.checkpointBlocks).toBe(0)
    expect(after.cachedAttentionBlocks).toBe(before.cachedAttentionBlocks)
    on.free('filler')
    const got = greedy(on, 'b', p, 6)
    expect(got.cached).toBe(0) // attention blocks alone cannot resume a Mamba state
    expect(on.prefixCacheStats()!.hitTokens.attention - before.hitTokens.attention).toBe(3 * B)
    expect(got.tokens).toEqual(greedy(off, 'b', p, 6).tokens)
    on.close()
    off.close()
  })

  it.each(MODELS)('%s: eviction under memory pressure (a pool of a few requests, many prompts)', (name) => {
    const on = engineFor(name, {prefixCaching: true, numBlocks: 14})
    const off = engineFor(name, {numBlocks: 14})
    const B = on.layout.logicalBlockSize
    const system = prompt(2 * B, 6)
    for (let i = 0; i < 12; i++) {
      const p = i % 3 === 0 ? prompt(2 * B + 9, 10 + i) : [...system, ...prompt(B / 2 + i, 20 + i)]
      expect(greedy(on, `r${i}`, p, 3).tokens).toEqual(greedy(off, `r${i}`, p, 3).tokens)
      expect(on.usage().usedBlocks).toBe(0)
    }
    on.close()
    off.close()
  })

  it.each(MODELS)('%s: concurrent requests sharing a prefix through the step scheduler', async (name) => {
    const run = async (prefixCaching: boolean) => {
      const engine = engineFor(name, {prefixCaching, numBlocks: 32})
      const scheduler = new StepScheduler(engine, {maxStepTokens: 96, longPrefillTokens: 40})
      const B = engine.layout.logicalBlockSize
      const system = prompt(2 * B + 3, 7)
      const prompts = [0, 1, 2, 3].map((i) => [...system, ...prompt(5 + 7 * i, 30 + i)])
      const first = await Promise.all(prompts.map((p, i) => scheduler.prefill(`c${i}`, p, {wantLogits: true})))
      prompts.forEach((_p, i) => engine.free(`c${i}`))
      // a second wave finds the first wave's blocks
      const second = await Promise.all(prompts.map((p, i) => scheduler.prefill(`d${i}`, p, {wantLogits: true})))
      const cached = prompts.map((_p, i) => engine.cachedTokens(`d${i}`))
      const argmax = (l: Float32Array | undefined) => l!.reduce((b, v, i) => (v > l![b] ? i : b), 0)
      await scheduler.close()
      engine.close()
      return {tokens: [...first, ...second].map(argmax), cached, expected: prompts.map((p) => Math.floor((p.length - 1) / B) * B)}
    }
    const on = await run(true)
    const off = await run(false)
    expect(on.tokens).toEqual(off.tokens)
    // the second wave finds each prompt whole (all but the block holding its last token)
    expect(on.cached).toEqual(on.expected)
  })
})

describe('decode side: a worker reusing its own previous turn pulls only what it lacks', () => {
  it.each(MODELS)('%s: turn 2 shares turn 1 prompt + output; attention blocks held are skipped, the final state always pulled', (name) => {
    const prefill = engineFor(name, {prefixCaching: true})
    const decode = engineFor(name, {prefixCaching: true})
    const plain = engineFor(name)
    const B = decode.layout.logicalBlockSize
    /** One P/D request: prefill N−1 remotely, pull what the decode side lacks, recompute the last token, decode. */
    const pd = (id: string, tokens: number[], steps: number) => {
      const n = tokens.length - 1
      prefill.prefill(id, tokens.slice(0, n), {remoteDecode: true})
      const got = decode.allocateForPull(id, tokens.slice(0, n))!
      const skip = got.cachedTokens / B
      copyPagesFrom(prefill, id, decode, got.blockIds, skip)
      decode.adopt(id, n)
      prefill.free(id)
      const s = new Sampler(0)
      let [logits] = decode.decodeStep([{requestId: id, tokenId: tokens[n]}])
      const out: number[] = []
      for (let i = 0; i < steps; i++) {
        out.push(s.sample(logits, {temperature: 0}))
        ;[logits] = decode.decodeStep([{requestId: id, tokenId: out.at(-1)!}])
      }
      decode.free(id)
      return {out, cached: got.cachedTokens}
    }
    const turn1 = prompt(2 * B + 11, 8)
    const a = pd('t1', turn1, 2 * B)
    expect(a.cached).toBe(0)
    expect(a.out).toEqual(greedy(plain, 'x1', turn1, 2 * B).tokens)
    const turn2 = [...turn1, ...a.out, ...prompt(9, 9)]
    const b = pd('t2', turn2, 8)
    // the decode side held turn 1's prompt and its own output, block by full block
    expect(b.cached).toBe(Math.floor((turn1.length + a.out.length) / B) * B)
    expect(b.out).toEqual(greedy(plain, 'x2', turn2, 8).tokens)
    for (const e of [prefill, decode, plain]) e.close()
  })
})

describe('property: the state resumed from any hit equals the state computed from scratch, bit for bit', () => {
  it('random request sequences, pool sizes and checkpoint intervals (tiny-hybrid, TP 1 and 2)', () => {
    const m = tinyModel('tiny-hybrid')
    const B = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 4}).layout.logicalBlockSize
    const stems = [prompt(4 * B, 40), prompt(4 * B, 41)]
    const request = fc.record({stem: fc.integer({min: 0, max: 1}), shared: fc.integer({min: 0, max: 4 * B}), tail: fc.integer({min: 1, max: B + 5}), salt: fc.integer({min: 0, max: 50}), remote: fc.boolean()})
    fc.assert(
      fc.property(fc.array(request, {minLength: 2, maxLength: 6}), fc.integer({min: 12, max: 40}), fc.integer({min: 1, max: 3}), fc.constantFrom(1, 2), (reqs, numBlocks, every, tp) => {
        const cached = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks, tp, prefixCaching: true, mambaCheckpointEvery: every})
        let hits = 0
        try {
          reqs.forEach((r, i) => {
            const tokens = [...stems[r.stem].slice(0, r.shared), ...prompt(r.tail, r.salt)]
            if (cached.usage().totalBlocks < cached.blocksNeeded(tokens.length).reduce((a, b) => a + b, 0) + 2) return
            const fresh = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 16, tp, prefixCaching: true, mambaCheckpointEvery: every})
            const want = fresh.prefill('f', tokens, {remoteDecode: r.remote})
            const got = cached.prefill(`r${i}`, tokens, {remoteDecode: r.remote})
            if (cached.cachedTokens(`r${i}`) > 0) hits++
            expect(statePages(cached, `r${i}`)).toEqual(statePages(fresh, 'f'))
            if (!r.remote) expect(Array.from(new Uint32Array(got!.buffer, got!.byteOffset, got!.length))).toEqual(Array.from(new Uint32Array(want!.buffer, want!.byteOffset, want!.length)))
            // one decode step reads every cached K/V of the request: equal logits, bit for bit
            const [a] = cached.decodeStep([{requestId: `r${i}`, tokenId: 65}])
            const [b] = fresh.decodeStep([{requestId: 'f', tokenId: 65}])
            expect(Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length))).toEqual(Array.from(new Uint32Array(b.buffer, b.byteOffset, b.length)))
            cached.free(`r${i}`)
            fresh.close()
          })
          return hits >= 0
        } finally {
          cached.close()
        }
      }),
      {numRuns: 12, seed: 14},
    )
  })
})

describe('KV events', () => {
  it('stores every full attention block and each checkpoint with its group kind, removes what is evicted', () => {
    const engine = engineFor('tiny-hybrid', {prefixCaching: true, numBlocks: 10})
    const events: PrefixCacheEvent[] = []
    engine.onCacheEvent((e) => events.push(e))
    const B = engine.layout.logicalBlockSize
    const p = prompt(2 * B + 5, 11)
    greedy(engine, 'a', p, 1)
    const stored = events.filter((e) => e.type === 'stored')
    const attention = stored.filter((e) => e.kind === 'full_attention')
    expect(attention.flatMap((e) => (e.type === 'stored' ? e.tokenIds : []))).toEqual(p.slice(0, 2 * B))
    expect(stored.filter((e) => e.kind === 'mamba')).toHaveLength(2 * 2) // 2 boundaries × 2 state groups
    for (let i = 0; i < 4; i++) greedy(engine, `b${i}`, prompt(2 * B + 5, 12 + i), 1)
    expect(events.some((e) => e.type === 'removed')).toBe(true)
    engine.close()
  })
})

/** Copies what a pull moves: attention blocks from logical block `skip` on, and every state page. */
function copyPagesFrom(from: HybridEngine, fromId: string, to: HybridEngine, toIds: readonly (readonly number[])[], skip: number): void {
  const page = from.layout.pageBytes / 4
  const src = from.blockIds(fromId)
  const ranges = (engine: HybridEngine, block: number): [number, number][] =>
    engine.layout.kvLayout === 'blocks-first'
      ? [[block * page, page]]
      : [
          [(block * page) / 2, page / 2],
          [(engine.numBlocks * page) / 2 + (block * page) / 2, page / 2],
        ]
  from.caches.forEach((rankCache, rank) => {
    rankCache.tensors.forEach((tensor, t) => {
      src.forEach((blocks, g) => {
        const state = from.layout.groups[g].kind === 'state'
        blocks.forEach((b, j) => {
          if (!state && j < skip) return
          const dst = ranges(to, toIds[g][j])
          ranges(from, b).forEach(([offset, length], k) => to.caches[rank].tensors[t].set(tensor.subarray(offset, offset + length), dst[k][0]))
        })
      })
    })
  })
}

describe('PrefixCache eviction', () => {
  it('evicting one state group’s checkpoint block drops the other groups’ blocks of that checkpoint (unusable alone)', () => {
    const layout = {groups: [{kind: 'attention', index: 0}, {kind: 'state', index: 1}, {kind: 'state', index: 2}], numTensors: 2, pageBytes: 64, tp: 1} as unknown as EngineLayout
    const pool = new BlockPool(4)
    const removed: PrefixCacheEvent[] = []
    const cache = new PrefixCache(layout, pool, (e) => removed.push(e))
    const [h] = blockHashes(prompt(16), 16)
    const ids = pool.take(3)!
    expect(cache.insert(0, h, ids[0], false)).toBe(true)
    expect(cache.insert(1, h, ids[1], true)).toBe(true)
    expect(cache.insert(2, h, ids[2], true)).toBe(true)
    expect(cache.stats().checkpointBlocks).toBe(2)
    // Release the checkpoint blocks first: they are the least recently freed, evicted first.
    pool.release([ids[1], ids[2], ids[0]], cache.isCached)
    expect(pool.take(2)).toHaveLength(2) // the never-cached block, then one checkpoint block evicted
    expect(cache.stats().checkpointBlocks).toBe(0)
    expect(cache.lookup([h], true)).toEqual({attentionBlocks: 1, usableBlocks: 0})
    // The sibling went back to the plain free list; the attention block is still cached.
    expect(pool.evictableBlocks).toBe(1)
    expect(pool.freeBlocks).toBe(2)
    expect(removed.filter((e) => e.type === 'removed')).toHaveLength(2)
  })
})
