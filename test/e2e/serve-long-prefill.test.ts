/**
 * Issue 12's head-of-line point, as a test: while an 8000-token prompt is prefilled (chunked, each
 * engine step off the worker's event loop), every worker answers its health endpoint promptly, no
 * worker turns `unhealthy`, a short request gets its first token long before the long prompt
 * ends, and the long request itself completes. Disaggregated (the prefill worker computes it) and
 * colocated. Timing bounds are generous upper bounds (CI has 2 shared cores).
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {signedHeaders, startServe, tmpDir, type ServeProcess} from './serve-harness.js'

const TOKEN = 'long-prefill-test-cluster-token-0123456789'
const LONG = 8000

let server: ServeProcess | undefined
afterAll(async () => {
  await server?.stop()
})

async function health(controlUrl: string): Promise<number> {
  const t0 = performance.now()
  const url = `${controlUrl}/v1/internal/health`
  const res = await fetch(url, {headers: signedHeaders(TOKEN, 'GET', url), signal: AbortSignal.timeout(5000)})
  expect(res.status).toBe(200)
  await res.json()
  return performance.now() - t0
}

/** Time to the first streamed token of a short request. */
async function shortTtftMs(url: string): Promise<number> {
  const t0 = performance.now()
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({model: 'tiny-hybrid', prompt: 'a short one', max_tokens: 4, stream: true, return_token_ids: true}),
  })
  const reader = res.body!.getReader()
  let first: number | undefined
  const decoder = new TextDecoder()
  for (;;) {
    const {done, value} = await reader.read()
    if (done) break
    if (first === undefined && decoder.decode(value).includes('"token_ids"')) first = performance.now() - t0
  }
  return first!
}

describe.each([
  ['disaggregated', [] as string[]],
  ['colocated', ['--colocated']],
])('%s: an 8000-token prefill does not stall control traffic', (_mode, args) => {
  it('health answered promptly throughout, no unhealthy transition, short requests served meanwhile', async () => {
    const dir = tmpDir('hpd-long-prefill-')
    const tokenFile = join(dir, 'token')
    writeFileSync(tokenFile, TOKEN, {mode: 0o600})
    server = await startServe(['--model', 'tiny-hybrid', '--auth-token-file', tokenFile, ...args])
    const s = server
    const controlUrls = [...s.controlUrls.values()]
    expect(controlUrls.length).toBeGreaterThan(0)
    const linesBefore = s.lines.length

    const prompt = Array.from({length: LONG}, (_, i) => (i * 7919) % 256)
    let longDone = false
    const t0 = performance.now()
    const long = fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({model: 'tiny-hybrid', prompt, max_tokens: 2, ignore_eos: true}),
    }).then(async (r) => {
      longDone = true
      return {status: r.status, body: (await r.json()) as {usage: {prompt_tokens: number; completion_tokens: number}}}
    })

    const latencies: number[] = []
    const ttfts: number[] = []
    // Poll every worker's health while the long prompt is in flight; send short requests meanwhile.
    while (!longDone) {
      latencies.push(...(await Promise.all(controlUrls.map(health))))
      if (!longDone && ttfts.length < 5) ttfts.push(await shortTtftMs(s.url))
      await new Promise((r) => setTimeout(r, 50))
    }
    const longMs = performance.now() - t0
    const done = await long
    expect(done.status).toBe(200)
    expect(done.body.usage).toMatchObject({prompt_tokens: LONG, completion_tokens: 2, total_tokens: LONG + 2})

    // The long prefill took a while (many chunked steps), and control traffic never waited for it.
    expect(latencies.length).toBeGreaterThan(5)
    expect(Math.max(...latencies)).toBeLessThan(1000)
    // Short requests got their first token well within the long prompt's time.
    expect(ttfts.length).toBeGreaterThan(0)
    expect(Math.max(...ttfts)).toBeLessThan(Math.max(1000, longMs / 2))
    const unhealthy = s.lines.slice(linesBefore).filter((l) => /"state":"unhealthy"/.test(l))
    expect(unhealthy).toEqual([])
    await s.stop()
    server = undefined
  }, 120_000)
})
