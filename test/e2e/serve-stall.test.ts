/**
 * Stalled workers (SIGSTOP for 40 s, then SIGCONT) under a real `hpd serve`:
 * - requests in flight fail within their bound: the prefill call's own (--prefill-timeout-ms,
 *   30 s) when the prefill worker stalls, the per-event bound of a decode stream (30 s) when the
 *   decode worker stalls — never the whole request timeout (120 s);
 * - after SIGCONT the server serves at once: no burst of instant 503s from a worker marked
 *   unhealthy by a stale connection;
 * - the decode worker's KV blocks come back.
 * Both stalls run concurrently (two servers) to keep the suite short.
 */
import {afterAll, describe, expect, it} from 'vitest'

import {startServe, until, type ServeProcess} from './serve-harness.js'

const STALL_MS = 40_000
/** Default bounds of hpd serve: --prefill-timeout-ms and the per-event stream bound. */
const PREFILL_BOUND_MS = 30_000
const EVENT_BOUND_MS = 30_000
/** Scheduling slack on a loaded 2-core machine. */
const SLACK_MS = 4_000

const running: ServeProcess[] = []
afterAll(async () => {
  for (const s of running) for (const w of s.workers.values()) if (w.pid) safeKill(w.pid, 'SIGCONT')
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

function safeKill(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(pid, signal)
  } catch {
    // gone already
  }
}

function complete(s: ServeProcess, prompt: string, maxTokens: number, stream = false): Promise<{status: number; ms: number; body: string}> {
  const t0 = performance.now()
  return fetch(`${s.url}/v1/completions`, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({model: 'tiny-hybrid', prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream}),
  }).then(
    async (r) => ({status: r.status, body: await r.text(), ms: performance.now() - t0}),
    (e: Error) => ({status: -1, body: e.message, ms: performance.now() - t0}),
  )
}

/** Sends requests back to back for `ms` and counts the answers by status. */
async function burst(s: ServeProcess, ms: number): Promise<Map<number, number>> {
  const counts = new Map<number, number>()
  const end = performance.now() + ms
  await Promise.all(
    Array.from({length: 8}, async (_, k) => {
      for (let i = 0; performance.now() < end; i++) {
        const r = await complete(s, `after the stall ${k} ${i}`, 2)
        counts.set(r.status, (counts.get(r.status) ?? 0) + 1)
      }
    }),
  )
  return counts
}

async function decodeBlocksUsed(s: ServeProcess): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text()
  return Number(/^hpd_kv_blocks_used\{worker="decode-0",role="decode"\} (\d+)$/m.exec(text)?.[1] ?? Number.NaN)
}

describe.concurrent('stalled workers', () => {
  it('a prefill worker stopped for 40 s: in-flight requests fail within the prefill bound; after SIGCONT it serves at once', async () => {
    const s = await startServe([])
    running.push(s)
    const pid = s.workers.get('prefill-0')!.pid!
    safeKill(pid, 'SIGSTOP')
    const stoppedAt = performance.now()
    const inFlight = await Promise.all(Array.from({length: 4}, (_, i) => complete(s, `caught in the stall ${i}`, 4)))
    process.stdout.write(`\nprefill stopped 40 s: in-flight requests ended after ${inFlight.map((r) => `${(r.ms / 1000).toFixed(1)} s (${r.status})`).join(', ')}\n`)
    for (const r of inFlight) {
      expect(r.status).toBeGreaterThanOrEqual(500)
      expect(r.ms).toBeLessThan(PREFILL_BOUND_MS + SLACK_MS)
    }
    await new Promise((r) => setTimeout(r, Math.max(0, STALL_MS - (performance.now() - stoppedAt))))
    safeKill(pid, 'SIGCONT')
    await until(() => (s.workers.get('prefill-0')?.state === 'ready' ? true : undefined), 10_000, 'prefill-0 ready again')
    const counts = await burst(s, 3000)
    process.stdout.write(`after SIGCONT of prefill: ${JSON.stringify(Object.fromEntries(counts))} in 3 s\n`)
    expect(counts.get(503) ?? 0).toBe(0)
    expect(counts.get(200)).toBeGreaterThan(0)
  }, 120_000)

  it('a decode worker stopped for 40 s: streams in flight fail within the per-event bound; its blocks come back', async () => {
    const s = await startServe([])
    running.push(s)
    const streams = Array.from({length: 4}, (_, i) => complete(s, `a long stream ${i}`, 2000, true))
    await until(async () => ((await decodeBlocksUsed(s)) > 0 ? true : undefined), 10_000, 'decode blocks in use')
    const pid = s.workers.get('decode-0')!.pid!
    safeKill(pid, 'SIGSTOP')
    const stoppedAt = performance.now()
    const outcomes = await Promise.all(streams)
    process.stdout.write(`\ndecode stopped 40 s: streams ended ${((performance.now() - stoppedAt) / 1000).toFixed(1)} s after the stop\n`)
    for (const r of outcomes) {
      // The stream started (200) and then ended with an error event within the bound.
      expect(r.body).toMatch(/worker decode-0 sent nothing for 30000 ms/)
      expect(performance.now() - stoppedAt).toBeLessThan(EVENT_BOUND_MS + SLACK_MS)
    }
    await new Promise((r) => setTimeout(r, Math.max(0, STALL_MS - (performance.now() - stoppedAt))))
    safeKill(pid, 'SIGCONT')
    await until(() => (s.workers.get('decode-0')?.state === 'ready' ? true : undefined), 10_000, 'decode-0 ready again')
    const counts = await burst(s, 3000)
    expect(counts.get(503) ?? 0).toBe(0)
    // The router closed the stalled streams: the worker drops those requests and frees their blocks.
    await until(async () => ((await decodeBlocksUsed(s)) === 0 ? true : undefined), 15_000, 'decode blocks back to 0')
  }, 120_000)
})
