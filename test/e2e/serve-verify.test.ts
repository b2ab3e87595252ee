/**
 * `hpd serve --verify-transfers` against a real server (real workers, real UCX): both sides digest
 * every transferred read and a mismatch fails that request, never served. The fault is injected on
 * the serving path by the test hook HPD_TEST_CORRUPT_TRANSFER_FOR (the decode worker flips one byte
 * of what it read, for requests whose id carries the marker, as damage in flight would):
 * - with verification the marked request fails with kv_verify_failed naming the digest mismatch,
 *   while the requests around it get exactly the tokens they get on an idle server, and no KV block
 *   leaks on either side;
 * - without it the same damaged request is served (HTTP 200): the check is what stops it.
 */
import {afterAll, describe, expect, it} from 'vitest'

import {startServe, until, type ServeProcess} from './serve-harness.js'

const running: ServeProcess[] = []
afterAll(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

async function serve(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  const s = await startServe(args, env)
  running.push(s)
  return s
}

async function metric(s: ServeProcess, name: string, worker: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text()
  const m = new RegExp(`^${name}\\{worker="${worker}",role="[a-z]+"\\} (\\d+)$`, 'm').exec(text)
  return m ? Number(m[1]) : Number.NaN
}

async function complete(s: ServeProcess, prompt: string, requestId?: string): Promise<{status: number; body: {choices?: {text: string}[]; error?: {code?: string; message: string}}}> {
  const r = await fetch(`${s.url}/v1/completions`, {
    method: 'POST',
    headers: {'content-type': 'application/json', ...(requestId ? {'x-request-id': requestId} : {})},
    body: JSON.stringify({model: 'tiny-hybrid', prompt, max_tokens: 12, temperature: 0, ignore_eos: true}),
  })
  return {status: r.status, body: (await r.json()) as never}
}

const PROMPTS = ['alpha beta gamma', 'the cache moves between hosts', 'delta', 'epsilon zeta eta theta iota']

describe('hpd serve --verify-transfers', () => {
  it('fails the damaged request alone (kv_verify_failed), serves the others unchanged, leaks no block', async () => {
    const s = await serve(['--prefill-tp', '2', '--decode-tp', '1', '--verify-transfers'], {HPD_TEST_CORRUPT_TRANSFER_FOR: 'damaged'})
    const reference = await Promise.all(PROMPTS.map((p) => complete(s, p)))
    expect(reference.map((r) => r.status)).toEqual([200, 200, 200, 200])

    const [bad, ...good] = await Promise.all([complete(s, 'a damaged transfer here', 'damaged-1'), ...PROMPTS.map((p) => complete(s, p))])
    expect(bad.status).toBeGreaterThanOrEqual(500)
    expect(JSON.stringify(bad.body)).toMatch(/kv_verify_failed/)
    expect(bad.body.error!.message).toMatch(/HPD_KVLINK_DIGEST_MISMATCH|digest of the bytes read differs/)
    expect(good.map((r) => r.body.choices![0].text)).toEqual(reference.map((r) => r.body.choices![0].text))

    // The failed request's blocks went back on both sides (decode frees its own; "read done" frees the prefill's).
    await until(async () => ((await metric(s, 'hpd_kv_blocks_used', 'decode-0')) === 0 && (await metric(s, 'hpd_kv_blocks_used', 'prefill-0')) === 0 ? true : undefined), 10_000, 'KV blocks back to 0 on both sides')
    expect((await complete(s, 'still serving after it')).status).toBe(200)
    // The router's /metrics says how many transfers were verified and what it cost (stats poll: about a second late).
    const verified = await until(async () => {
      const text = await (await fetch(`${s.url}/metrics`)).text()
      const n = Number(/^hpd_kv_verified_transfers_total\{worker="decode-0",role="decode"\} (\d+)$/m.exec(text)?.[1] ?? 0)
      const seconds = Number(/^hpd_kv_verify_seconds_total\{worker="decode-0",role="decode"\} (\S+)$/m.exec(text)?.[1] ?? 0)
      return n >= 8 ? {n, seconds} : undefined
    }, 10_000, 'the verified transfers in /metrics')
    expect(verified.seconds).toBeGreaterThan(0)
  })

  it('without it, the same damaged transfer is served', async () => {
    const s = await serve(['--prefill-tp', '2', '--decode-tp', '1'], {HPD_TEST_CORRUPT_TRANSFER_FOR: 'damaged'})
    expect((await complete(s, 'a damaged transfer here', 'damaged-2')).status).toBe(200)
  })
})
