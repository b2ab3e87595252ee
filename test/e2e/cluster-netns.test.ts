/**
 * hpd across hosts, with hosts made of network namespaces (netns-harness.ts): etcd on one host,
 * prefill workers, a decode worker and the router each on their own, all `hpd worker` /
 * `hpd serve --etcd … --no-local-workers` processes, KV pulled over TCP between hosts. The openai
 * client talks to the router from the test process.
 * - greedy output is token-identical to a colocated server, tiny-hybrid 1→1 and 2→1 and
 *   tiny-hybrid-g1 1→2, completions and chat, streaming and not;
 * - a SIGKILLed prefill worker's key vanishes within its TTL, its in-flight request fails within the
 *   read bound with a typed error, new requests go to the other prefill worker, and with none left
 *   the router answers 503 naming why;
 * - the prefill host's link going down mid-request fails that request within the read bound and
 *   the decode worker's blocks return to its pool;
 * - etcd stopped and restarted under load loses no request;
 * - an internal endpoint called without the token answers 401 with no metadata.
 * Skipped, with the reason, where namespaces or etcd are unavailable.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import OpenAI from 'openai'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {etcdMissing, startEtcd, type Etcd} from './etcd-harness.js'
import {createNetwork, netnsUnavailable, type HostProcess, type NetHost, type TestNetwork} from './netns-harness.js'
import {CACHE_DIR, ROOT, startServe, tmpDir, until, type ServeProcess, workerMetric} from './serve-harness.js'
import {startProxy} from './vllm-proxy.js'

const skip = netnsUnavailable() ?? etcdMissing()
const TOKEN = 'cluster-netns-test-token-0123456789abcdef'
const BIN = join(ROOT, 'bin', 'run.js')
/** Bounds the faults are held to: the KV read (HPD_SERVE_TRANSFER_TIMEOUT_MS default), the lease TTL, slack for a loaded machine. */
const READ_BOUND_MS = 2000
const TTL_MS = 3000
const SLACK_MS = 3000

const PROMPTS = ['The quick brown fox', 'Disaggregated serving moves the cache', 'x', 'Mamba state and attention blocks travel together between hosts']

let net: TestNetwork
let etcd: Etcd
let tokenFile: string
const baselines = new Map<string, ServeProcess>()

beforeAll(async () => {
  if (skip) return
  net = await createNetwork(['etcd', 'prefillA', 'prefillB', 'decode', 'router'])
  const etcdHost = net.hosts.get('etcd')!
  etcd = await startEtcd({host: etcdHost.address, clientPort: 2379, peerPort: 2380, wrap: ['ip', 'netns', 'exec', etcdHost.ns]})
  tokenFile = join(tmpDir('hpd-netns-'), 'token')
  writeFileSync(tokenFile, TOKEN, {mode: 0o600})
}, 120_000)

afterAll(async () => {
  await Promise.all([...baselines.values()].map((s) => s.stop()))
  await etcd?.destroy()
  await net?.destroy()
})

function host(name: string): NetHost {
  return net.hosts.get(name)!
}

async function worker(on: string, role: string, cluster: string, model: string, tp: number, env: Record<string, string> = {}, extra: string[] = []): Promise<HostProcess> {
  const h = host(on)
  const p = h.spawn(
    [process.execPath, BIN, 'worker', '--role', role, '--model', model, '--tp', String(tp), '--name', `${on}-${cluster}`, '--listen', `${h.address}:8101`, '--etcd', etcd.url, '--cluster', cluster, '--transport', 'tcp', '--auth-token-file', tokenFile, ...extra],
    {HPD_CACHE_DIR: CACHE_DIR, ...env},
  )
  await p.waitFor((l) => l.includes('"event":"ready"'))
  return p
}

async function router(cluster: string, model: string): Promise<{p: HostProcess; url: string}> {
  const h = host('router')
  const p = h.spawn([process.execPath, BIN, 'serve', '--json-logs', '--model', model, '--etcd', etcd.url, '--cluster', cluster, '--no-local-workers', '--auth-token-file', tokenFile, '--host', h.address, '--port', '8000'], {HPD_CACHE_DIR: CACHE_DIR})
  await p.waitFor((l) => l.includes('"event":"serving"'))
  const url = `http://${h.address}:8000`
  await until(async () => ((await fetch(`${url}/health`).catch(() => undefined))?.status === 200 ? true : undefined), 20_000, 'the router to see its workers')
  return {p, url}
}

function client(url: string): OpenAI {
  return new OpenAI({baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60_000})
}

/** Greedy token ids of every prompt: completions and chat, whole and streamed. */
async function outputsOf(c: OpenAI, model: string): Promise<number[][]> {
  const out: number[][] = []
  for (const prompt of PROMPTS) {
    const whole = (await c.completions.create({model, prompt, max_tokens: 12, temperature: 0, ignore_eos: true, return_token_ids: true} as never)) as unknown as {choices: {token_ids: number[]}[]}
    out.push(whole.choices[0].token_ids)
    const streamed: number[] = []
    const stream = (await c.completions.create({model, prompt, max_tokens: 12, temperature: 0, ignore_eos: true, return_token_ids: true, stream: true} as never)) as unknown as AsyncIterable<{choices: {token_ids?: number[]}[]}>
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.token_ids ?? []))
    out.push(streamed)
    const chat = (await c.chat.completions.create({model, messages: [{role: 'user', content: prompt}], max_tokens: 12, temperature: 0, ignore_eos: true, return_token_ids: true} as never)) as unknown as {choices: {token_ids: number[]}[]}
    out.push(chat.choices[0].token_ids)
    const chatStreamed: number[] = []
    const chatStream = (await c.chat.completions.create({model, messages: [{role: 'user', content: prompt}], max_tokens: 12, temperature: 0, ignore_eos: true, return_token_ids: true, stream: true} as never)) as unknown as AsyncIterable<{choices: {token_ids?: number[]}[]}>
    for await (const chunk of chatStream) chatStreamed.push(...(chunk.choices[0]?.token_ids ?? []))
    out.push(chatStreamed)
  }
  return out
}

async function colocated(model: string): Promise<number[][]> {
  let s = baselines.get(model)
  if (!s) {
    s = await startServe(['--colocated', '--model', model])
    baselines.set(model, s)
  }
  return outputsOf(client(s.url), model)
}

async function keys(prefix: string): Promise<string[]> {
  const res = await fetch(`${etcd.url}/v3/kv/range`, {method: 'POST', body: JSON.stringify({key: Buffer.from(prefix).toString('base64'), range_end: Buffer.from(`${prefix.slice(0, -1)}${String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)}`).toString('base64'), keys_only: true})})
  const body = (await res.json()) as {kvs?: {key: string}[]}
  return (body.kvs ?? []).map((kv) => Buffer.from(kv.key, 'base64').toString())
}

describe.skipIf(skip)(`across hosts (network namespaces)${skip ? ` — skipped: ${skip}` : ''}`, () => {
  it.each([
    ['tiny-hybrid', 1, 1],
    ['tiny-hybrid', 2, 1],
    ['tiny-hybrid-g1', 1, 2],
  ] as const)('%s %d→%d across hosts is token-identical to colocated', async (model, prefillTp, decodeTp) => {
    const cluster = `id-${model}-${prefillTp}-${decodeTp}`
    const expected = await colocated(model)
    const workers = await Promise.all([worker('prefillA', 'prefill', cluster, model, prefillTp), worker('decode', 'decode', cluster, model, decodeTp)])
    const r = await router(cluster, model)
    try {
      expect(await outputsOf(client(r.url), model)).toEqual(expected)
      // The bytes really crossed hosts: the decode worker pulled them over TCP.
      const transferred = Number(/^hpd_kv_transfer_bytes_total (\d+)/m.exec(await (await fetch(`${r.url}/metrics`)).text())?.[1])
      expect(transferred).toBeGreaterThan(0)
      expect(r.p.lines.some((l) => l.includes('kv_transfer_failed'))).toBe(false)
    } finally {
      await Promise.all([r.p.stop(), ...workers.map((w) => w.stop())])
    }
  }, 240_000)

  it.each([
    ['tiny-hybrid', 1, 1],
    ['tiny-hybrid', 2, 1],
    ['tiny-hybrid-g1', 1, 2],
  ] as const)("vLLM's contract across hosts, %s %d→%d: a proxy that knows nothing of hpd drives workers on two hosts, token-identical to colocated", async (model, prefillTp, decodeTp) => {
    const cluster = `contract-${model}-${prefillTp}-${decodeTp}`
    const expected = await colocated(model)
    const workers = await Promise.all([worker('prefillA', 'prefill', cluster, model, prefillTp, {}, ['--open-api']), worker('decode', 'decode', cluster, model, decodeTp, {}, ['--open-api'])])
    const proxy = await startProxy([`http://${host('prefillA').address}:8101`], [`http://${host('decode').address}:8101`])
    try {
      expect(await outputsOf(client(proxy.url), model)).toEqual(expected)
      expect(proxy.legs.filter((l) => l.kind === 'decode').every((l) => (l.body.kv_transfer_params as {remote_host?: string}).remote_host === host('prefillA').address)).toBe(true)
    } finally {
      await proxy.close()
      await Promise.all(workers.map((w) => w.stop()))
    }
  }, 240_000)

  it('survives a killed prefill worker, a prefill host going dark mid-request, and etcd restarting under load', async () => {
    const cluster = 'faults'
    const model = 'tiny-hybrid'
    // The decode worker pauses between handshake and read: the window in which the faults land.
    const pause = {HPD_SERVE_PAUSE_BEFORE_READ_MS: '1500'}
    const a = await worker('prefillA', 'prefill', cluster, model, 1)
    const b = await worker('prefillB', 'prefill', cluster, model, 1)
    const d = await worker('decode', 'decode', cluster, model, 1, pause)
    const r = await router(cluster, model)
    const c = client(r.url)
    const ask = (prompt: string) =>
      c.completions.create({model, prompt, max_tokens: 4, temperature: 0}).then(
        () => ({ok: true as const, at: performance.now()}),
        (e: {status?: number; message: string}) => ({ok: false as const, at: performance.now(), status: e.status, message: e.message}),
      )
    try {
      // 1. An internal endpoint without the token: 401 and no metadata.
      const stranger = await fetch(`http://${host('prefillA').address}:8101/v1/internal/metadata`)
      expect(stranger.status).toBe(401)
      expect(await stranger.text()).not.toMatch(/agentMetadata|regionIds/)

      // 2. The prefill host goes dark while its request waits to be read.
      const dark = ask('the prefill host goes dark')
      const decodeLogLen = d.lines.length
      await d.waitFor((l) => d.lines.indexOf(l) >= decodeLogLen && l.includes('pause-before-read'), 20_000)
      const prefillOfIt = d.lines.slice(decodeLogLen).find((l) => l.includes('pause-before-read'))!.includes('prefillA') ? 'prefillA' : 'prefillB'
      host(prefillOfIt).link(false)
      const darkAt = performance.now()
      const darkOutcome = await dark
      expect(darkOutcome.ok).toBe(false)
      // The read starts after the 1.5 s pause; it (or a lease beat) fails within the read bound.
      expect(darkOutcome.at - darkAt).toBeLessThan(1500 + READ_BOUND_MS + SLACK_MS)
      if (!darkOutcome.ok) expect(darkOutcome.message).toMatch(/kv_transfer_failed|lease_lost|could not be extended|left the cluster/)
      await until(async () => ((await workerMetric(r.url, 'hpd_kv_blocks_used', `decode-${cluster}`)) === 0 ? true : undefined), 10_000, 'the decode worker’s blocks back in its pool')
      host(prefillOfIt).link(true)
      await until(async () => ((await fetch(`${r.url}/health`)).status === 200 && (await keys(`/hpd/${cluster}/workers/prefill/`)).length === 2 ? true : undefined), 20_000, 'both prefill workers registered and healthy again')

      // 3. SIGKILL of a prefill worker while its request waits to be read.
      const doomed = ask('a request whose prefill worker dies')
      const before = d.lines.length
      await d.waitFor((l) => d.lines.indexOf(l) >= before && l.includes('pause-before-read'), 20_000)
      const victim = d.lines.slice(before).find((l) => l.includes('pause-before-read'))!.includes('prefillA') ? a : b
      const survivorName = victim === a ? 'prefillB' : 'prefillA'
      const killedAt = performance.now()
      victim.proc.kill('SIGKILL')
      const doomedOutcome = await doomed
      expect(doomedOutcome.ok).toBe(false)
      expect(doomedOutcome.at - killedAt).toBeLessThan(1500 + READ_BOUND_MS + SLACK_MS)
      await until(async () => ((await keys(`/hpd/${cluster}/workers/prefill/`)).length === 1 ? true : undefined), TTL_MS + SLACK_MS, 'the dead worker’s key to vanish within its TTL')
      expect(await keys(`/hpd/${cluster}/workers/prefill/`)).toEqual([`/hpd/${cluster}/workers/prefill/${survivorName}-${cluster}`])
      // New requests go to the other prefill worker.
      for (let i = 0; i < 3; i++) expect((await ask(`after the kill ${i}`)).ok).toBe(true)

      // 4. etcd stopped and restarted under load: no request lost to it.
      let stop = false
      const outcomes: {ok: boolean}[] = []
      const load = Promise.all(
        Array.from({length: 3}, async (_, k) => {
          for (let i = 0; !stop; i++) outcomes.push(await ask(`load ${k} ${i}`))
        }),
      )
      await new Promise((res) => setTimeout(res, 1500))
      await etcd.stop()
      await new Promise((res) => setTimeout(res, 4000))
      expect(((await (await fetch(`${r.url}/health`)).json()) as {warning?: string}).warning).toMatch(/etcd unreachable/)
      await etcd.restart()
      await new Promise((res) => setTimeout(res, 3000))
      stop = true
      await load
      expect(outcomes.length).toBeGreaterThan(3)
      expect(outcomes.filter((o) => !o.ok)).toEqual([])

      // 5. With no prefill worker left, a 503 that says why.
      const survivor = victim === a ? b : a
      await survivor.stop()
      await until(async () => ((await keys(`/hpd/${cluster}/workers/prefill/`)).length === 0 ? true : undefined), TTL_MS + SLACK_MS, 'the stopped worker to deregister')
      const none = await ask('nobody to prefill')
      expect(none).toMatchObject({ok: false, status: 503})
      if (!none.ok) expect(none.message).toMatch(/no healthy prefill worker/)
    } finally {
      await Promise.all([r.p.stop(), a.stop(), b.stop(), d.stop()])
    }
  }, 240_000)
})
