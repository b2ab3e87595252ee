/**
 * hpd workers as drop-in peers of vLLM's disaggregation contract: a proxy written from the
 * contract alone (vllm-proxy.ts, knowing nothing of hpd) drives standalone `hpd worker`
 * processes that met through a throwaway etcd. Greedy output is token-identical to a colocated
 * `hpd serve` for tiny-hybrid 1→1 and 2→1 and tiny-hybrid-g1 1→2, completions and chat, streaming
 * and not. And each documented outcome: malformed params (400 naming the field), a missing field
 * (computed locally, counted), params naming another request's blocks or another prompt (400), an
 * unreachable remote, a remote of another cache layout, a lease that expired before the decode leg,
 * a client leaving before the pull (the prefill side is told).
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {spawn, type ChildProcess} from 'node:child_process'
import {createInterface} from 'node:readline'

import OpenAI from 'openai'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {etcdMissing, startEtcd, type Etcd} from './etcd-harness.js'
import {CACHE_DIR, ROOT, servesForFile, tmpDir, until} from './serve-harness.js'
import {startProxy, type Proxy} from './vllm-proxy.js'

const skip = etcdMissing()
const TOKEN = 'vllm-contract-test-token-0123456789'
const API_KEY = 'vllm-contract-test-api-key-0123456789'
const BIN = join(ROOT, 'bin', 'run.js')
const PROMPTS = ['The quick brown fox', 'Disaggregated serving moves the cache', 'x', 'Mamba state and attention blocks travel together']

let etcd: Etcd
let dir: string
const children: ChildProcess[] = []
const proxies: Proxy[] = []
const serve = servesForFile()

beforeAll(async () => {
  if (skip) return
  etcd = await startEtcd()
  dir = tmpDir('hpd-contract-')
  writeFileSync(join(dir, 'token'), TOKEN, {mode: 0o600})
  writeFileSync(join(dir, 'key'), API_KEY, {mode: 0o600})
}, 60_000)

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  await Promise.all(proxies.map((p) => p.close()))
  await etcd?.destroy()
})

interface Worker {
  readonly child: ChildProcess
  readonly url: string
  readonly lines: string[]
}

function worker(role: string, name: string, cluster: string, model: string, tp: number, extra: string[] = [], env: Record<string, string> = {}): Promise<Worker> {
  const child = spawn(
    process.execPath,
    [BIN, 'worker', '--role', role, '--name', name, '--model', model, '--tp', String(tp), '--etcd', etcd.url, '--cluster', cluster, '--auth-token-file', join(dir, 'token'), '--api-key-file', join(dir, 'key'), ...extra],
    {env: {...process.env, HPD_CACHE_DIR: CACHE_DIR, ...env}, stdio: ['ignore', 'ignore', 'pipe']},
  )
  children.push(child)
  const lines: string[] = []
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${name} not ready:\n${lines.join('\n')}`)), 60_000)
    createInterface({input: child.stderr!}).on('line', (l) => {
      lines.push(l)
      const ready = /"event":"ready".*"controlUrl":"([^"]+)"/.exec(l)
      if (ready) {
        clearTimeout(timer)
        resolve({child, url: ready[1], lines})
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`worker ${name} exited ${code}:\n${lines.join('\n')}`))
    })
  })
}

/** Decode workers learn the prefill engine from etcd: wait until it knows `engine`. */
async function proxyFor(prefill: Worker, decode: Worker): Promise<Proxy> {
  const p = await startProxy([prefill.url], [decode.url], {authorization: `Bearer ${API_KEY}`})
  proxies.push(p)
  return p
}

function client(url: string): OpenAI {
  return new OpenAI({baseURL: `${url}/v1`, apiKey: API_KEY, maxRetries: 0, timeout: 60_000})
}

async function outputsOf(c: OpenAI, model: string): Promise<number[][]> {
  const out: number[][] = []
  for (const prompt of PROMPTS) {
    const whole = (await c.completions.create({model, prompt, max_tokens: 10, temperature: 0, ignore_eos: true, return_token_ids: true} as never)) as unknown as {choices: {token_ids: number[]}[]}
    out.push(whole.choices[0].token_ids)
    const streamed: number[] = []
    const stream = (await c.completions.create({model, prompt, max_tokens: 10, temperature: 0, ignore_eos: true, return_token_ids: true, stream: true} as never)) as unknown as AsyncIterable<{choices: {token_ids?: number[]}[]}>
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.token_ids ?? []))
    out.push(streamed)
    const chat = (await c.chat.completions.create({model, messages: [{role: 'user', content: prompt}], max_tokens: 10, temperature: 0, ignore_eos: true, return_token_ids: true} as never)) as unknown as {choices: {token_ids: number[]}[]}
    out.push(chat.choices[0].token_ids)
    const chatStreamed: number[] = []
    const chatStream = (await c.chat.completions.create({model, messages: [{role: 'user', content: prompt}], max_tokens: 10, temperature: 0, ignore_eos: true, return_token_ids: true, stream: true} as never)) as unknown as AsyncIterable<{choices: {token_ids?: number[]}[]}>
    for await (const chunk of chatStream) chatStreamed.push(...(chunk.choices[0]?.token_ids ?? []))
    out.push(chatStreamed)
  }
  return out
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
}

async function post(url: string, body: unknown): Promise<{status: number; json: {error?: {param?: string; code?: string; message?: string}; kv_transfer_params?: Record<string, unknown> | null; choices?: {token_ids?: number[]}[]}}> {
  const res = await fetch(`${url}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json', authorization: `Bearer ${API_KEY}`}, body: JSON.stringify(body)})
  return {status: res.status, json: (await res.json()) as never}
}

const PREFILL_LEG = {do_remote_decode: true, do_remote_prefill: false, remote_engine_id: null, remote_block_ids: null, remote_host: null, remote_port: null}

describe.skipIf(skip)(`vLLM's disaggregation contract${skip ? ` — skipped: ${skip}` : ''}`, () => {
  it.each([
    ['tiny-hybrid', 1, 1],
    ['tiny-hybrid', 2, 1],
    ['tiny-hybrid-g1', 1, 2],
  ] as const)('a contract proxy over hpd workers, %s %d→%d, is token-identical to colocated', async (model, prefillTp, decodeTp) => {
    const cluster = `contract-${model}-${prefillTp}-${decodeTp}`
    const baseline = await serve(['--colocated', '--model', model])
    const expected = await outputsOf(client(baseline.url), model)
    const [p, d] = await Promise.all([worker('prefill', `p-${cluster}`, cluster, model, prefillTp), worker('decode', `d-${cluster}`, cluster, model, decodeTp)])
    const proxy = await proxyFor(p, d)
    try {
      expect(await outputsOf(client(proxy.url), model)).toEqual(expected)
      // Both legs carried the same X-Request-Id; the decode legs carried the prefill answers' params.
      const legs = proxy.legs.filter((l) => l.kind === 'decode')
      expect(legs.every((l) => (l.body.kv_transfer_params as Record<string, unknown>).do_remote_prefill === true)).toBe(true)
      expect(new Set(proxy.legs.map((l) => l.requestId)).size).toBe(proxy.legs.length / 2)
      expect(await metric(d.url, 'hpd_kv_transfer_bytes_total')).toBeGreaterThan(0)
      expect(await metric(d.url, 'hpd_kv_params_incomplete_total')).toBe(0)
      // Each pull is counted and logged under the proxy's X-Request-Id.
      const pulls = await metric(d.url, 'hpd_kv_transfers_total')
      expect(pulls).toBeGreaterThan(0)
      expect(await metric(d.url, 'hpd_kv_transfer_descriptors_total')).toBeGreaterThanOrEqual(pulls)
      const logged = d.lines.filter((l) => l.includes('"event":"kv-transfer"'))
      expect(logged).toHaveLength(pulls)
      expect(logged.every((line) => legs.some((l) => line.includes(l.requestId)))).toBe(true)
    } finally {
      p.child.kill('SIGTERM')
      d.child.kill('SIGTERM')
    }
  }, 180_000)

  it('gives each documented outcome: malformed params, a missing field, an unreachable or incompatible remote, an expired lease, an abort before the pull', async () => {
    const cluster = 'contract-outcomes'
    const model = 'tiny-hybrid'
    const p = await worker('prefill', 'p-out', cluster, model, 1)
    const short = await worker('prefill', 'p-short-lease', cluster, model, 1, ['--lease-ms', '400', '--request-timeout-ms', '5000'])
    const other = await worker('prefill', 'p-other-layout', cluster, 'tiny-hybrid-g1', 1)
    const d = await worker('decode', 'd-out', cluster, model, 1, [], {HPD_SERVE_PAUSE_BEFORE_READ_MS: '1000'})
    try {
      const prompt = [72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100]
      const prefillLeg = async (url = p.url) => {
        const r = await post(url, {model, prompt, max_tokens: 1, kv_transfer_params: PREFILL_LEG})
        expect(r.status).toBe(200)
        return r.json.kv_transfer_params!
      }
      // Malformed: 400 naming the field, on either leg.
      for (const [params, param] of [
        [{do_remote_decode: 'yes'}, 'kv_transfer_params.do_remote_decode'],
        [{do_remote_prefill: true, remote_port: 70_000}, 'kv_transfer_params.remote_port'],
        [{do_remote_prefill: true, nixl_handshake: 'x'}, 'kv_transfer_params.nixl_handshake'],
        [{do_remote_decode: true, do_remote_prefill: true}, 'kv_transfer_params.do_remote_prefill'],
      ] as const) {
        const r = await post(d.url, {model, prompt, max_tokens: 2, kv_transfer_params: params})
        expect(r.status).toBe(400)
        expect(r.json.error?.param).toBe(param)
      }

      // A missing field: computed locally, logged and counted.
      const {remote_block_ids: _, ...incomplete} = await prefillLeg()
      const local = await post(d.url, {model, prompt, max_tokens: 3, temperature: 0, return_token_ids: true, kv_transfer_params: incomplete})
      expect(local.status).toBe(200)
      expect(local.json.choices?.[0].token_ids).toHaveLength(3)
      expect(await metric(d.url, 'hpd_kv_params_incomplete_total')).toBe(1)
      expect(d.lines.some((l) => l.includes('kv-params-incomplete') && l.includes('remote_block_ids'))).toBe(true)

      // A remote of another cache layout (registered, other model): a typed refusal, no pull.
      await until(async () => ((await post(d.url, {model, prompt, max_tokens: 2, kv_transfer_params: {...(await prefillLeg(p.url)), remote_engine_id: 'p-other-layout'}})).json.error?.code === 'compatibility_mismatch' ? true : undefined), 10_000, 'the decode worker to know p-other-layout')

      // Params that are not the lease's own (shared memory on one host: the read is one-sided, so the
      // prefill side must refuse first): another request's block ids, or another prompt of the same length.
      const otherPrompt = [74, ...prompt.slice(1)]
      const victim = await prefillLeg()
      const mine = await post(p.url, {model, prompt: otherPrompt, max_tokens: 1, kv_transfer_params: PREFILL_LEG})
      const stolen = await post(d.url, {model, prompt: otherPrompt, max_tokens: 2, kv_transfer_params: {...mine.json.kv_transfer_params!, remote_block_ids: victim.remote_block_ids}})
      expect(stolen.status).toBe(400)
      expect(stolen.json.error?.param).toBe('kv_transfer_params.remote_block_ids')
      const wrongPrompt = await post(d.url, {model, prompt: otherPrompt, max_tokens: 2, kv_transfer_params: victim})
      expect(wrongPrompt.status).toBe(400)
      expect(wrongPrompt.json.error?.code).toBe('prompt_mismatch')
      expect(wrongPrompt.json.error?.param).toBe('prompt')

      // The lease expired before the decode leg: a typed error, never a read of reclaimed blocks.
      const stale = await prefillLeg(short.url)
      await new Promise((r) => setTimeout(r, 1500))
      const late = await post(d.url, {model, prompt, max_tokens: 2, kv_transfer_params: stale})
      expect(late.status).toBeGreaterThanOrEqual(400)
      expect(late.json.error?.code).toMatch(/lease_lost/)

      // A client leaving before the pull: the prefill side is told to free the blocks (not at lease expiry).
      const held = await prefillLeg()
      const abort = new AbortController()
      const leaving = fetch(`${d.url}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json', authorization: `Bearer ${API_KEY}`}, body: JSON.stringify({model, prompt, max_tokens: 2, kv_transfer_params: held}), signal: abort.signal}).catch(() => undefined)
      await until(() => (d.lines.some((l) => l.includes('pause-before-read')) ? true : undefined), 10_000, 'the decode leg to reach its pause')
      abort.abort()
      await leaving
      // The lease runs 30 s: only the decode side's release frees it this soon.
      const releasedIt = (l: string) => l.includes('"event":"lease-released"') && l.includes(`"requestId":"${String(held.remote_request_id)}"`)
      await until(() => (p.lines.some(releasedIt) ? true : undefined), 3000, 'the prefill lease released by the decode side')
      expect(await metric(p.url, 'hpd_leases_expired_total')).toBe(0)

      // An unreachable remote: its process is gone; a typed error within the bounds, never a hang.
      const params = await prefillLeg()
      p.child.kill('SIGKILL')
      const t0 = performance.now()
      const gone = await post(d.url, {model, prompt, max_tokens: 2, kv_transfer_params: params})
      expect(gone.status).toBeGreaterThanOrEqual(500)
      expect(gone.json.error?.code).toMatch(/worker_unreachable|lease_lost|kv_transfer_failed|unknown_prefill_engine/)
      expect(performance.now() - t0).toBeLessThan(15_000)
    } finally {
      for (const w of [p, short, other, d]) w.child.kill('SIGTERM')
    }
  }, 180_000)
})
