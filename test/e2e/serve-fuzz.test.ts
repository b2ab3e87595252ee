/**
 * Fuzz of a real `hpd serve` (real workers, real UCX): a few thousand malformed requests from
 * fixed seeds against the public API and the internal worker routes (with and without the
 * cluster token), plus malformed HTTP on raw sockets. Every answer must be JSON, every 4xx must
 * name its problem, nothing may answer 5xx or hang, the server must still serve afterwards, and
 * the KV blocks in use must return to 0. Prints a table of tried/passed/failed per category.
 */
import {request} from 'node:http'
import {connect} from 'node:net'

import {afterAll, describe, expect, it} from 'vitest'

import {PREFILL_LEG_PARAMS} from '../../src/serve/kv-contract.js'

import {internalCases, publicCases, type FuzzCase} from './fuzz-cases.js'
import {signedHeaders, startServe, until, type ServeProcess} from './serve-harness.js'

const TOKEN = 'fuzz-test-cluster-token-0123456789'
const PER_REQUEST_BOUND_MS = 15_000

let serve: ServeProcess | undefined
afterAll(async () => {
  await serve?.stop()
})

interface Outcome {
  readonly status: number
  readonly contentType: string
  readonly body: string
  readonly ms: number
}

function send(url: string, c: FuzzCase, headers: Record<string, string> = {}): Promise<Outcome> {
  const t0 = performance.now()
  return new Promise((resolve) => {
    const u = new URL(url)
    const req = request(
      {host: u.hostname, port: u.port, method: c.method, path: c.path.startsWith('http') ? new URL(c.path).pathname : c.path, headers: {...(c.body === undefined ? {} : {'content-type': c.contentType ?? 'application/json'}), ...headers}, timeout: PER_REQUEST_BOUND_MS},
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (d: Buffer) => chunks.push(d))
        res.on('end', () => resolve({status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - t0}))
        res.on('error', () => resolve({status: -2, contentType: '', body: 'response error', ms: performance.now() - t0}))
      },
    )
    req.on('timeout', () => {
      req.destroy()
      resolve({status: -1, contentType: '', body: 'hang', ms: performance.now() - t0})
    })
    req.on('error', (e) => resolve({status: -2, contentType: '', body: `socket error ${e.message}`, ms: performance.now() - t0}))
    if (c.body !== undefined) req.end(c.body)
    else req.end()
  })
}

/** What a fuzzed request may get: success, or a JSON 4xx naming its problem. Never 5xx, never a hang. */
function problemWith(o: Outcome, allowed: readonly number[]): string | undefined {
  if (o.status < 0) return o.body
  if (o.status >= 500) return `${o.status}: ${o.body.slice(0, 200)}`
  if (!allowed.includes(o.status)) return `unexpected status ${o.status}: ${o.body.slice(0, 200)}`
  if (o.status >= 400) {
    if (!o.contentType.startsWith('application/json')) return `${o.status} without a JSON body (${o.contentType})`
    try {
      const e = (JSON.parse(o.body) as {error?: {message?: string; code?: string}}).error
      if (!e?.message || !e.code) return `${o.status} body names no problem: ${o.body.slice(0, 200)}`
    } catch {
      return `${o.status} body is not JSON: ${o.body.slice(0, 100)}`
    }
  }
  return undefined
}

async function runAll(url: string, cases: readonly FuzzCase[], allowed: readonly number[], headers: (c: FuzzCase, url: string) => Record<string, string>, tally: Map<string, {tried: number; failed: string[]}>) {
  let next = 0
  const worker = async () => {
    for (let i = next++; i < cases.length; i = next++) {
      const c = cases[i]
      const target = c.path.startsWith('http') ? c.path : url
      const o = await send(target, c, headers(c, c.path.startsWith('http') ? c.path : `${url}${c.path}`))
      const t = tally.get(c.category) ?? {tried: 0, failed: []}
      t.tried++
      const p = problemWith(o, allowed)
      if (p) t.failed.push(`#${i} ${c.method} ${c.path.slice(0, 60)} body ${String(c.body).slice(0, 80)} → ${p}`)
      tally.set(c.category, t)
    }
  }
  await Promise.all(Array.from({length: 8}, worker))
}

async function blocksUsed(s: ServeProcess): Promise<Map<string, number>> {
  const text = await (await fetch(`${s.url}/metrics`)).text()
  const used = new Map<string, number>()
  for (const m of text.matchAll(/^hpd_kv_blocks_used\{worker="([^"]+)",role="[a-z]+"\} (\d+)$/gm)) used.set(m[1], Number(m[2]))
  return used
}

/** Raw sockets: malformed HTTP that Node's parser refuses before any handler runs. */
function rawExchange(url: string, bytes: string): Promise<string> {
  const u = new URL(url)
  return new Promise((resolve) => {
    const socket = connect(Number(u.port), u.hostname)
    const chunks: Buffer[] = []
    socket.setTimeout(PER_REQUEST_BOUND_MS, () => {
      socket.destroy()
      resolve('hang')
    })
    socket.on('data', (d) => chunks.push(d))
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')))
    socket.on('error', () => undefined)
    socket.end(bytes)
  })
}

describe('hpd serve under fuzzed requests', () => {
  it('answers every malformed request with a JSON 4xx, never 5xx or a hang, keeps serving, and leaks no KV block', async () => {
    serve = await startServe(['--lease-ms', '3000'], {HPD_AUTH_TOKEN: TOKEN})
    const s = serve
    await until(() => (s.controlUrls.size >= 2 ? true : undefined), 10_000, 'worker control URLs')
    const prefillUrl = s.controlUrls.get('prefill-0')!
    const decodeUrl = s.controlUrls.get('decode-0')!
    const tally = new Map<string, {tried: number; failed: string[]}>()

    await runAll(s.url, publicCases(20261206, 1800), [200, 400, 404, 405, 413], () => ({}), tally)
    const routes = {
      prefill: [`${prefillUrl}/v1/completions`, ...['lease/extend', 'lease/release', 'digests'].map((r) => `${prefillUrl}/v1/internal/${r}`)],
      decode: [`${decodeUrl}/v1/completions`, `${decodeUrl}/v1/internal/peers`],
    }
    await runAll(s.url, internalCases(7, 900, routes), [200, 400, 403, 404, 409, 410, 413], (c, u) => signedHeaders(TOKEN, c.method, u), tally)
    const strangers = internalCases(8, 200, {prefill: [...routes.prefill, `${prefillUrl}/v1/internal/metadata`], decode: routes.decode}).map((c) => ({...c, category: 'worker routes without the token'}))
    await runAll(s.url, strangers, [401], () => ({}), tally)

    // Digests of a real lease (its grant presented) for decode TPs and cached-token counts no plan
    // can take: a 400 naming the field, not the worker's failure.
    const digestCases = [{decodeTp: 3}, {decodeTp: 1024}, {decodeTp: 1, cachedTokens: 5}, {decodeTp: 2, cachedTokens: 7}, {decodeTp: 1}]
    for (const extra of digestCases) {
      const leg = await fetch(`${prefillUrl}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json', ...signedHeaders(TOKEN, 'POST', `${prefillUrl}/v1/completions`)}, body: JSON.stringify({model: 'tiny-hybrid', prompt: Array.from({length: 300}, (_, i) => 65 + (i % 26)), max_tokens: 1, kv_transfer_params: PREFILL_LEG_PARAMS})})
      const params = ((await leg.json()) as {kv_transfer_params: {remote_request_id: string; hpd_grant: string}}).kv_transfer_params
      const url = `${prefillUrl}/v1/internal/digests`
      const res = await fetch(url, {method: 'POST', headers: {'content-type': 'application/json', ...signedHeaders(TOKEN, 'POST', url)}, body: JSON.stringify({requestId: params.remote_request_id, grant: params.hpd_grant, ...extra})})
      const body = (await res.json()) as {error?: {param?: string}}
      const t = tally.get('worker digests of a real lease') ?? {tried: 0, failed: []}
      t.tried++
      const wanted = extra.decodeTp === 1 && extra.cachedTokens === undefined ? res.status === 200 : res.status === 400 && (body.error?.param === 'decodeTp' || body.error?.param === 'cachedTokens')
      if (!wanted) t.failed.push(`digests ${JSON.stringify(extra)} → ${res.status} ${JSON.stringify(body).slice(0, 160)}`)
      tally.set('worker digests of a real lease', t)
      await fetch(`${prefillUrl}/v1/internal/lease/release`, {method: 'POST', headers: {'content-type': 'application/json', ...signedHeaders(TOKEN, 'POST', `${prefillUrl}/v1/internal/lease/release`)}, body: JSON.stringify({requestId: params.remote_request_id, grant: params.hpd_grant})})
    }

    const raw = ['GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 'BREW /v1/completions HTTP/1.1\r\n\r\n', 'POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n', `GET /v1/models HTTP/1.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`, 'POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n']
    for (const target of [s.url, prefillUrl]) {
      for (const bytes of raw) {
        const answer = await rawExchange(target, bytes)
        const t = tally.get('malformed HTTP') ?? {tried: 0, failed: []}
        t.tried++
        const [head, body] = answer.split('\r\n\r\n')
        if (!/^HTTP\/1\.1 4\d\d /.test(head ?? '') || !/content-type: application\/json/i.test(head) || !(JSON.parse(body || '{}') as {error?: unknown}).error) t.failed.push(`${JSON.stringify(bytes.slice(0, 40))} → ${answer.slice(0, 120)}`)
        tally.set('malformed HTTP', t)
      }
    }

    // Still serving, and every KV block comes back (leases of valid fuzzed prefills expire in 3 s).
    const ok = await fetch(`${s.url}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({model: 'tiny-hybrid', prompt: 'still here', max_tokens: 3, temperature: 0})})
    expect(ok.status, await ok.clone().text()).toBe(200)
    await until(async () => ([...(await blocksUsed(s)).values()].every((n) => n === 0) ? true : undefined), 15_000, 'KV blocks in use back to 0')

    const rows = [...tally.entries()].map(([category, t]) => `| ${category} | ${t.tried} | ${t.tried - t.failed.length} | ${t.failed.length} |`)
    process.stdout.write(`\nserve fuzz (seeds 20261206, 7, 8)\n| category | tried | passed | failed |\n| --- | --- | --- | --- |\n${rows.join('\n')}\n`)
    const failures = [...tally.values()].flatMap((t) => t.failed)
    expect(failures.slice(0, 20)).toEqual([])
  }, 240_000)
})
