/**
 * Slowloris against a real `hpd serve` router: 2,000 connections that send headers and a partial
 * body and then nothing, and 200 that never finish their headers. Every one must get a JSON
 * answer — 503 at once past the per-client connection cap, 408 once the body (or header) bound
 * runs out — and be closed within that bound; the server serves normally afterwards.
 */
import {connect, type Socket} from 'node:net'

import {afterAll, describe, expect, it} from 'vitest'

import {startServe, type ServeProcess} from './serve-harness.js'

/** hpd serve's defaults (src/serve/http-hygiene.ts ROUTER_HYGIENE). */
const BODY_BOUND_MS = 10_000
const HEADER_BOUND_MS = 10_000
const SLACK_MS = 5_000

let serve: ServeProcess | undefined
afterAll(async () => {
  await serve?.stop()
})

interface Held {
  readonly socket: Socket
  readonly openedAt: number
  answer: string
  closedAt: number | undefined
}

function hold(url: string, bytes: string): Promise<Held> {
  const u = new URL(url)
  return new Promise((resolve) => {
    const socket = connect(Number(u.port), u.hostname)
    const held: Held = {socket, openedAt: performance.now(), answer: '', closedAt: undefined}
    socket.on('data', (d: Buffer) => (held.answer += d.toString('utf8')))
    socket.on('close', () => (held.closedAt = performance.now()))
    socket.on('error', () => undefined)
    socket.once('connect', () => {
      socket.write(bytes)
      resolve(held)
    })
  })
}

describe('slowloris', () => {
  it('answers and closes every stalled connection within its bound, then serves', async () => {
    serve = await startServe([])
    const partialBody = 'POST /v1/completions HTTP/1.1\r\nHost: hpd\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model":'
    const partialHeaders = 'POST /v1/completions HTTP/1.1\r\nHost: hpd\r\nX-Slow: '
    const held: Held[] = []
    held.push(...(await Promise.all(Array.from({length: 200}, () => hold(serve!.url, partialHeaders)))))
    for (let i = 0; i < 2000; i += 100) held.push(...(await Promise.all(Array.from({length: 100}, () => hold(serve!.url, partialBody)))))

    const deadline = performance.now() + Math.max(BODY_BOUND_MS, HEADER_BOUND_MS) + SLACK_MS
    while (held.some((h) => h.closedAt === undefined) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 200))
    const open = held.filter((h) => h.closedAt === undefined)
    for (const h of open) h.socket.destroy()
    expect(open.length).toBe(0)

    const byStatus = new Map<string, number>()
    for (const h of held) {
      const [head, body] = h.answer.split('\r\n\r\n')
      const status = /^HTTP\/1\.1 (\d{3})/.exec(head ?? '')?.[1] ?? 'none'
      const code = status === 'none' ? 'none' : ((JSON.parse(body || '{}') as {error?: {code?: string}}).error?.code ?? 'no-json-error')
      byStatus.set(`${status} ${code}`, (byStatus.get(`${status} ${code}`) ?? 0) + 1)
      expect(head).toMatch(/content-type: application\/json/i)
    }
    const lastClose = Math.max(...held.map((h) => h.closedAt! - h.openedAt))
    process.stdout.write(`\nslowloris, 2200 stalled connections: ${JSON.stringify(Object.fromEntries(byStatus))}; the last closed ${(lastClose / 1000).toFixed(1)} s after it opened\n`)
    // Past the cap at once; the rest when their bound ran out.
    expect([...byStatus.keys()].sort()).toEqual(['408 body_timeout', '408 request_timeout', '503 too_many_connections'])
    expect(byStatus.get('503 too_many_connections')).toBeGreaterThan(1000)

    const ok = await fetch(`${serve.url}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({model: 'tiny-hybrid', prompt: 'after the siege', max_tokens: 3})})
    expect(ok.status).toBe(200)
  }, 60_000)
})
