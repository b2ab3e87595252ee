/**
 * Faults against a real `hpd serve` (real worker processes, real UCX):
 * - a prefill worker killed while a request sits between prefill and its cache read → that request
 *   errors within 2 s and the server keeps serving (the worker is restarted, new requests succeed);
 * - a decode worker killed before it reads → the prefill side's blocks come back by lease expiry;
 * - a second prefill worker takes new requests while one is dead (failover);
 * - bad bodies → 400 naming the field; SIGTERM stops everything, no orphan workers.
 */
import {execFile} from 'node:child_process'
import {createServer, type AddressInfo} from 'node:net'
import {join} from 'node:path'
import {promisify} from 'node:util'

import OpenAI from 'openai'
import {describe, expect, it} from 'vitest'

import {CACHE_DIR, isAlive, ROOT, startServe, until, type ServeProcess, servesForFile, workerMetric} from './serve-harness.js'

const serve = servesForFile()

function client(s: ServeProcess): OpenAI {
  return new OpenAI({baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 30_000})
}

describe('hpd serve refuses what it cannot serve, before starting workers', () => {
  const run = (args: string[]) =>
    promisify(execFile)(process.execPath, [join(ROOT, 'bin', 'run.js'), 'serve', '--json', ...args], {cwd: ROOT, env: {...process.env, HPD_CACHE_DIR: CACHE_DIR}, timeout: 30_000}).then(
      () => ({code: 0, out: ''}),
      (e: {code: number; stdout: string}) => ({code: e.code, out: e.stdout}),
    )
  it('a TP the model cannot be split over: exit 3 naming the key', async () => {
    const r = await run(['--prefill-tp', '3'])
    expect(r.code).toBe(3)
    expect(JSON.parse(r.out).error).toMatchObject({code: 'HPD_MODEL_TP_INDIVISIBLE', details: {key: 'num_attention_heads', tp: 3}})
  })
  it('a port in use: exit 4 naming the port', async () => {
    const blocker = createServer()
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()))
    const port = (blocker.address() as AddressInfo).port
    try {
      const r = await run(['--port', String(port)])
      expect(r.code).toBe(4)
      expect(JSON.parse(r.out).error).toMatchObject({code: 'HPD_SERVE_PORT', details: {port}})
    } finally {
      blocker.close()
    }
  })
})

describe('hpd serve under faults', () => {
  it('fails a request within 2 s when its prefill worker dies mid-transfer, then keeps serving', async () => {
    // Decode workers pause 1.5 s between handshake and read: the window in which the kill lands.
    const s = await serve(['--lease-ms', '10000'], {HPD_SERVE_PAUSE_BEFORE_READ_MS: '1500'})
    const c = client(s)
    const pending = c.completions.create({model: 'tiny-hybrid', prompt: 'doomed request', max_tokens: 4, temperature: 0})
    const settled = pending.then(
      () => ({ok: true as const, at: performance.now()}),
      (error: {status?: number; message: string}) => ({ok: false as const, at: performance.now(), error}),
    )
    // Prefill done, handshake done, decode blocks allocated: the decode worker logs its pause.
    await until(() => (s.lines.some((l) => l.includes('pause-before-read')) ? true : undefined), 10_000, 'the decode worker to reach its read')
    const pid = s.workers.get('prefill-0')!.pid!
    const killedAt = performance.now()
    process.kill(pid, 'SIGKILL')
    const outcome = await settled
    expect(outcome.ok).toBe(false)
    expect(outcome.at - killedAt).toBeLessThan(2000)
    if (!outcome.ok) expect(outcome.error.message).toMatch(/prefill worker prefill-0 died while request .* was pulling its cache/)
    // The supervisor restarts it with a new engine epoch; the decode side handshakes again.
    await s.waitWorker('prefill-0', 'ready', 30_000)
    expect(s.workers.get('prefill-0')!.pid).not.toBe(pid)
    const after = await c.completions.create({model: 'tiny-hybrid', prompt: 'still serving', max_tokens: 4, temperature: 0})
    expect(after.choices[0].finish_reason).toBe('length')
    expect(after.usage?.completion_tokens).toBe(4)
    // Same engine id, new epoch: the decode worker dropped its cached metadata and handshook again.
    const handshakes = s.lines.filter((l) => {
      const ev = parseLine(l)
      return ev?.event === 'handshake' && ev.prefillEngine === 'prefill-0'
    })
    expect(handshakes).toHaveLength(2)
  })

  it('frees the prefill blocks when the decode worker dies before reading: the router releases the lease (expiry is the backstop)', async () => {
    const s = await serve(['--lease-ms', '1500'], {HPD_SERVE_PAUSE_BEFORE_READ_MS: '20000'})
    const c = client(s)
    const pending = c.completions.create({model: 'tiny-hybrid', prompt: 'orphaned blocks', max_tokens: 4}).catch((e: Error) => e)
    // Blocks stay held on the prefill side while the decode worker sits in its pause: its heartbeats
    // extend the lease well past --lease-ms.
    await until(() => (s.lines.some((l) => l.includes('pause-before-read')) ? true : undefined), 10_000, 'the decode worker to reach its read')
    await new Promise((r) => setTimeout(r, 3000))
    await until(async () => ((await workerMetric(s.url, 'hpd_leases_held', 'prefill-0')) === 1 ? true : undefined), 5000, 'the prefill lease to show')
    expect(await workerMetric(s.url, 'hpd_leases_expired_total', 'prefill-0')).toBe(0)
    process.kill(s.workers.get('decode-0')!.pid!, 'SIGKILL')
    expect(await pending).toBeInstanceOf(Error)
    // The request failed before its blocks were read: the router gives the lease back at once.
    await until(() => (s.lines.some((l) => parseLine(l)?.event === 'lease-released') ? true : undefined), 5000, 'the lease to be released')
    await until(async () => ((await workerMetric(s.url, 'hpd_kv_blocks_used', 'prefill-0')) === 0 ? true : undefined), 10_000, 'prefill blocks freed')
    expect(await workerMetric(s.url, 'hpd_leases_held', 'prefill-0')).toBe(0)
    expect(await workerMetric(s.url, 'hpd_leases_expired_total', 'prefill-0')).toBe(0)
  })

  it('fails new requests over to a healthy prefill worker, refuses bad bodies, and stops without orphans', async () => {
    const s = await serve(['--prefill-workers', '2'])
    const c = client(s)
    process.kill(s.workers.get('prefill-0')!.pid!, 'SIGKILL')
    const outs = await Promise.all([1, 2, 3, 4].map((i) => c.completions.create({model: 'tiny-hybrid', prompt: `failover ${i}`, max_tokens: 3, temperature: 0})))
    for (const o of outs) expect(o.usage?.completion_tokens).toBe(3)
    // A one-token prompt has nothing to transfer (N−1 = 0): the decode worker prefills it itself.
    const one = await c.completions.create({model: 'tiny-hybrid', prompt: [65], max_tokens: 2, temperature: 0})
    expect(one.usage).toMatchObject({prompt_tokens: 1, completion_tokens: 2})

    const bad = await fetch(`${s.url}/v1/chat/completions`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({model: 'tiny-hybrid', messages: 'hi'})})
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as {error: {param: string; type: string}}).error).toMatchObject({param: 'messages', type: 'invalid_request_error'})
    await expect(c.completions.create({model: 'tiny-hybrid', prompt: 'x', max_tokens: 0})).rejects.toMatchObject({status: 400, param: 'max_tokens'})

    // A client that goes away mid-stream: its request leaves the decode batch and its blocks are freed.
    const abort = new AbortController()
    const res = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({model: 'tiny-hybrid', prompt: 'a long answer please', max_tokens: 2000, stream: true, ignore_eos: true}),
      signal: abort.signal,
    })
    const reader = res.body!.getReader()
    await reader.read()
    await until(async () => ((await workerMetric(s.url, 'hpd_kv_blocks_used', 'decode-0')) > 0 ? true : undefined), 10_000, 'decode blocks in use')
    abort.abort()
    await until(async () => ((await workerMetric(s.url, 'hpd_kv_blocks_used', 'decode-0')) === 0 ? true : undefined), 10_000, 'decode blocks freed after the client left')

    await s.waitWorker('prefill-0', 'ready', 30_000)
    const pids = [...s.workers.values()].map((w) => w.pid!).filter(Boolean)
    expect(pids.length).toBe(3)
    const {exitCode, stopMs} = await s.stop()
    expect(exitCode).toBe(0)
    // "Within a few seconds": SIGTERM, then SIGKILL after 3 s at the latest.
    expect(stopMs).toBeLessThan(8000)
    for (const pid of pids) expect(isAlive(pid)).toBe(false)
  })
})

/** One --json-logs line as an object (undefined for anything else). */
function parseLine(line: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(line) as unknown
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}
