/**
 * Prefix-aware routing (issue 14): the router subscribes to every worker's KV events (vLLM's
 * KVEventBatch over ZeroMQ) and sends a request where its prompt's prefix is cached. Three
 * conversations interleaved over two prefill workers: with --routing prefix each conversation
 * stays where its prefix is (one cold prefill per conversation); round robin scatters them (each
 * conversation prefilled cold on both). Real processes, real events; the workers' own hit counters
 * and the router's routing counters tell.
 */
import {createServer} from 'node:net'

import {execa} from 'execa'
import {afterAll, describe, expect, it} from 'vitest'

import {CACHE_DIR, ROOT, startServe, type ServeProcess, until} from './serve-harness.js'

const running: ServeProcess[] = []
afterAll(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

function ids(n: number, salt: number): number[] {
  return Array.from({length: n}, (_x, i) => 32 + ((i * 37 + salt * 101 + 11) % 90))
}

async function complete(url: string, prompt: readonly number[]): Promise<{tokens: number[]}> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({model: 'tiny-hybrid', prompt, max_tokens: 4, temperature: 0, return_token_ids: true}),
  })
  const body = (await res.json()) as {choices?: {token_ids: number[]}[]}
  if (!res.ok || !body.choices) throw new Error(`completion failed (${res.status}): ${JSON.stringify(body).slice(0, 300)}`)
  return {tokens: body.choices[0].token_ids}
}

async function metric(url: string, name: string, kind?: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const label = kind ? `\\{kind="${kind}"\\}` : ''
  return Number(new RegExp(`^${name}${label} ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
}

/** Interleaves 3 conversations (a 3-block prefix each) × 3 turns; returns the prefill workers' summed attention hits. */
async function conversations(routing: string): Promise<{hits: number; routed: number; tokens: number[][]}> {
  const s = await startServe(['--model', 'tiny-hybrid', '--prefill-workers', '2', '--decode-workers', '1', '--routing', routing])
  running.push(s)
  try {
    // The router subscribes once it has seen each worker's stats (their KV-event endpoint).
    // (health polls every second carry it), so give that a moment before the first request.
    await until(() => (s.controlUrls.size === 3 ? true : undefined), 10_000, 'workers ready')
    await new Promise((r) => setTimeout(r, 1500))
    const prefixes = [1, 2, 3].map((c) => ids(250, c))
    const tokens: number[][] = []
    for (let turn = 0; turn < 3; turn++) {
      for (const [c, prefix] of prefixes.entries()) {
        tokens.push((await complete(s.url, [...prefix, ...ids(10 + turn, 10 * c + turn)])).tokens)
        // the next request of this conversation finds the events of this one
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    const prefills = [...s.controlUrls].filter(([w]) => w.startsWith('prefill')).map(([, u]) => u)
    const hits = (await Promise.all(prefills.map((u) => metric(u, 'vllm:prefix_cache_hits_total', 'mamba')))).reduce((a, b) => a + b, 0)
    return {hits, routed: await metric(s.url, 'hpd_prefix_routed_requests_total'), tokens}
  } finally {
    await s.stop()
    running.splice(running.indexOf(s), 1)
  }
}

describe('prefix-aware routing over KV events', () => {
  it('keeps each conversation on the prefill worker that holds its prefix; round robin does not', async () => {
    const prefix = await conversations('prefix')
    const roundRobin = await conversations('round-robin')
    const B = 80 // tiny-hybrid's logical block
    // prefix: every turn after the first of each conversation resumes after 3 blocks (6 requests)
    expect(prefix.hits).toBe(6 * 3 * B)
    expect(prefix.routed).toBeGreaterThanOrEqual(6)
    // round robin: conversation c's turns alternate workers, so some turns start cold
    expect(roundRobin.hits).toBeLessThan(prefix.hits)
    expect(roundRobin.routed).toBe(0)
    // where a request goes never changes what it answers
    expect(prefix.tokens).toEqual(roundRobin.tokens)
  })
})

describe('prefix caching flags', () => {
  const hpd = async (args: string[]) => {
    const r = await execa(process.execPath, ['bin/run.js', ...args, '--json'], {cwd: ROOT, reject: false, timeout: 60_000, env: {HPD_CACHE_DIR: CACHE_DIR, NODE_ENV: 'production'}})
    return {code: r.exitCode, error: (JSON.parse(r.stdout) as {error?: {code: string; message: string}}).error}
  }
  it('refuses bad values by name (exit 2), and a KV-event port that is taken (exit 4)', async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as {port: number}).port
    try {
      const [endpoint, weight, every, bound] = await Promise.all([
        hpd(['worker', '--role', 'prefill', '--insecure', '--kv-events-endpoint', 'udp://x']),
        hpd(['serve', '--prefix-routing-weight', '1.5']),
        hpd(['serve', '--mamba-checkpoint-every', '0']),
        hpd(['worker', '--role', 'prefill', '--insecure', '--kv-events-endpoint', `tcp://127.0.0.1:${port}`]),
      ])
      expect(endpoint).toMatchObject({code: 2, error: {code: 'HPD_SERVE_BAD_FLAG'}})
      expect(endpoint.error?.message).toContain('--kv-events-endpoint')
      expect(weight).toMatchObject({code: 2, error: {code: 'HPD_SERVE_BAD_FLAG'}})
      expect(weight.error?.message).toContain('--prefix-routing-weight')
      expect(every).toMatchObject({code: 2, error: {code: 'HPD_SERVE_BAD_FLAG'}})
      expect(every.error?.message).toContain('--mamba-checkpoint-every')
      expect(bound).toMatchObject({code: 4, error: {code: 'HPD_SERVE_KV_EVENTS_BIND'}})
    } finally {
      taken.close()
    }
  })
})
