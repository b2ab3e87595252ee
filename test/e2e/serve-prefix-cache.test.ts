/**
 * Prefix caching under serving (issue 14): greedy output with prefix caching on is token-identical
 * to --no-prefix-caching, colocated and disaggregated (1→1, 1→2, 2→1 TP), for tiny-hybrid
 * (n_groups 4), tiny-hybrid-g1 (n_groups 1) and tiny-llama, over a request set with full hits,
 * partial hits ending mid-block, eviction under memory pressure (a small --kv-blocks pool),
 * concurrent requests sharing a prefix, and a decode worker reusing its own previous turn. Real
 * processes, real UCX transfers; the workers' /metrics and the prefill legs' cached_tokens show
 * the hits happened.
 */
import {afterAll, describe, expect, it} from 'vitest'

import {startServe, type ServeProcess} from './serve-harness.js'

const running: ServeProcess[] = []
afterAll(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

/** Byte-tokenizer ids (the tiny models' vocabulary is 256 bytes + specials). */
function ids(n: number, salt: number): number[] {
  return Array.from({length: n}, (_x, i) => 32 + ((i * 37 + salt * 101 + 11) % 90))
}

const MAX_TOKENS = 12
/** Long enough for several logical blocks of every tiny model (tiny-hybrid: 80 tokens, tiny-llama: 16). */
const SYSTEM = ids(200, 1)

interface Outcome {
  readonly tokens: readonly (readonly number[])[]
}

async function complete(url: string, model: string, prompt: readonly number[]): Promise<number[]> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({model, prompt, max_tokens: MAX_TOKENS, temperature: 0, return_token_ids: true}),
  })
  const body = (await res.json()) as {choices?: {token_ids: number[]}[]; error?: unknown}
  if (!res.ok || !body.choices) throw new Error(`completion failed (${res.status}): ${JSON.stringify(body).slice(0, 300)}`)
  return body.choices[0].token_ids
}

/**
 * The request set, in order: cold, full hit, partial hits ending mid-block, a burst of concurrent
 * requests sharing the system prefix, unrelated prompts that push the small pool to evict, then
 * a second turn of the first conversation (its prompt + its answer + a new message).
 */
async function run(s: ServeProcess, model: string): Promise<Outcome> {
  const out: number[][] = []
  const first = [...SYSTEM, ...ids(30, 2)]
  const answer = await complete(s.url, model, first)
  out.push(answer)
  out.push(await complete(s.url, model, first)) // full hit
  out.push(await complete(s.url, model, [...SYSTEM.slice(0, 123), ...ids(41, 3)])) // shares 123 tokens: mid-block
  out.push(await complete(s.url, model, [...first.slice(0, 201), ...ids(7, 4)])) // shares 201 tokens
  out.push(...(await Promise.all([5, 6, 7].map((salt) => complete(s.url, model, [...SYSTEM, ...ids(20 + salt, salt)]))))) // concurrent, shared prefix
  for (let i = 0; i < 4; i++) out.push(await complete(s.url, model, ids(230, 10 + i))) // pressure: the pool holds about two of these
  out.push(await complete(s.url, model, [...first, ...answer, ...ids(15, 20)])) // turn 2 of the first conversation
  out.push(await complete(s.url, model, [...SYSTEM, ...ids(25, 5)])) // a repeat after the pressure
  return {tokens: out}
}

async function metric(controlUrl: string, name: string, kind?: string): Promise<number> {
  const text = await (await fetch(`${controlUrl}/metrics`)).text()
  const label = kind ? `\\{kind="${kind}"\\}` : ''
  return Number(new RegExp(`^${name.replace(/:/g, ':')}${label} ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
}

async function outcomeOf(model: string, args: readonly string[]): Promise<{outcome: Outcome; s: ServeProcess}> {
  const s = await startServe(['--model', model, '--kv-blocks', model === 'tiny-llama' ? '48' : '28', ...args])
  running.push(s)
  return {outcome: await run(s, model), s}
}

async function stop(s: ServeProcess): Promise<void> {
  await s.stop()
  running.splice(running.indexOf(s), 1)
}

const TOPOLOGIES: readonly [string, readonly string[]][] = [
  ['colocated', ['--colocated']],
  ['1→1', ['--prefill-tp', '1', '--decode-tp', '1']],
  // --verify-transfers: both sides digest what a decode-side hit leaves to read (cached_tokens agreed on).
  ['1→2', ['--prefill-tp', '1', '--decode-tp', '2', '--verify-transfers']],
  ['2→1', ['--prefill-tp', '2', '--decode-tp', '1']],
]

describe.each(['tiny-hybrid', 'tiny-hybrid-g1', 'tiny-llama'] as const)('%s: prefix caching on == off (greedy)', (model) => {
  let baseline: Outcome
  it('baseline: --no-prefix-caching, colocated', async () => {
    const {outcome, s} = await outcomeOf(model, ['--colocated', '--no-prefix-caching'])
    baseline = outcome
    await stop(s)
    for (const t of baseline.tokens) expect(t).toHaveLength(MAX_TOKENS)
  })

  it.each(TOPOLOGIES)('%s with prefix caching is token-identical, and hits', async (name, args) => {
    const {outcome, s} = await outcomeOf(model, args)
    try {
      expect(outcome.tokens).toEqual(baseline.tokens)
      // The workers that compute prompts (colocated, or prefill) hit their cache.
      const computing = [...s.controlUrls].filter(([w]) => w.startsWith(name === 'colocated' ? 'colocated' : 'prefill')).map(([, u]) => u)
      const hits = await Promise.all(computing.map((u) => metric(u, 'vllm:prefix_cache_hits_total', 'attention')))
      expect(hits.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
      // The small pool evicted cached blocks on the way (memory pressure).
      const evicted = await Promise.all(computing.map((u) => metric(u, 'hpd_prefix_cache_evictions_total')))
      expect(evicted.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
      if (model !== 'tiny-llama') {
        const resumed = await Promise.all(computing.map((u) => metric(u, 'vllm:prefix_cache_hits_total', 'mamba')))
        expect(resumed.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
      }
      if (name !== 'colocated') {
        // The decode worker held turn 1 (prompt + its own output) when turn 2 came: it pulled less.
        const decodeUrl = [...s.controlUrls].find(([w]) => w.startsWith('decode'))![1]
        expect(await metric(decodeUrl, 'vllm:prefix_cache_hits_total', 'attention')).toBeGreaterThan(0)
        // ...and never took a state of its own: it always pulls the prefill side's final state.
        if (model !== 'tiny-llama') expect(await metric(decodeUrl, 'vllm:prefix_cache_hits_total', 'mamba')).toBe(0)
      }
    } finally {
      await stop(s)
    }
  })
})
