/**
 * Cluster mode on one host (loopback), with a real throwaway etcd: what needs no namespaces.
 * - `hpd worker` fails fast, naming the endpoint, when etcd is unreachable; refuses a non-loopback
 *   listen without the token; refuses --no-local-workers without etcd;
 * - a worker registers under /hpd/<cluster>/workers/<role>/<name> with a record that carries no
 *   secret, and its key is gone at once after a clean stop;
 * - the router ignores (and logs) records whose model or cache layout differ from its own, and keys
 *   that are not records at all; it routes over the matching ones.
 */
import {execFile} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {Etcd3} from 'etcd3'
import OpenAI from 'openai'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {PROTOCOL_VERSION} from '../../src/serve/protocol.js'
import {etcdMissing, freePort, startEtcd, type Etcd} from './etcd-harness.js'
import {CACHE_DIR, ROOT, startServe, tmpDir, until, type ServeProcess} from './serve-harness.js'
import {spawn, type ChildProcess} from 'node:child_process'
import {createInterface} from 'node:readline'

const skip = etcdMissing()
const TOKEN = 'cluster-loopback-test-token-0123456789'
const BIN = join(ROOT, 'bin', 'run.js')

let etcd: Etcd
let tokenFile: string
const children: ChildProcess[] = []
const serves: ServeProcess[] = []

beforeAll(async () => {
  if (skip) return
  etcd = await startEtcd()
  tokenFile = join(tmpDir('hpd-cluster-'), 'token')
  writeFileSync(tokenFile, TOKEN, {mode: 0o600})
}, 60_000)

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  await Promise.all(serves.map((s) => s.stop()))
  await etcd?.destroy()
})

function run(args: string[], env: Record<string, string> = {}) {
  return promisify(execFile)(process.execPath, [BIN, ...args, '--json'], {cwd: ROOT, env: {...process.env, HPD_CACHE_DIR: CACHE_DIR, ...env}, timeout: 60_000}).then(
    (r) => ({code: 0, out: r.stdout}),
    (e: {code: number; stdout: string}) => ({code: e.code, out: e.stdout}),
  )
}

function startWorker(args: string[]): Promise<{child: ChildProcess; lines: string[]}> {
  const child = spawn(process.execPath, [BIN, 'worker', ...args], {env: {...process.env, HPD_CACHE_DIR: CACHE_DIR, HPD_AUTH_TOKEN: TOKEN}, stdio: ['ignore', 'pipe', 'pipe']})
  children.push(child)
  const lines: string[] = []
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready:\n${lines.join('\n')}`)), 60_000)
    createInterface({input: child.stderr!}).on('line', (l) => {
      lines.push(l)
      if (l.includes('"event":"ready"')) {
        clearTimeout(timer)
        resolve({child, lines})
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`worker exited ${code}:\n${lines.join('\n')}`))
    })
  })
}

describe.skipIf(skip)(`cluster mode on one host${skip ? ` — skipped: ${skip}` : ''}`, () => {
  it('refuses what cannot work, before loading anything: etcd unreachable (exit 4, naming it), a non-loopback listen without the token, no workers at all', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`
    const unreachable = await run(['worker', '--role', 'prefill', '--etcd', dead, '--cluster', 'x'], {HPD_AUTH_TOKEN: TOKEN})
    expect(unreachable.code).toBe(4)
    expect(JSON.parse(unreachable.out).error).toMatchObject({code: 'HPD_ETCD_UNREACHABLE', details: {endpoints: [dead]}})

    const open = await run(['worker', '--role', 'prefill', '--listen', '0.0.0.0:0'])
    expect(open.code).toBe(2)
    expect(JSON.parse(open.out).error).toMatchObject({code: 'HPD_AUTH_REQUIRED'})
    expect(JSON.parse(open.out).error.hint).toContain('--auth-token-file')

    const alone = await run(['serve', '--no-local-workers'])
    expect(alone.code).toBe(2)
    expect(JSON.parse(alone.out).error).toMatchObject({code: 'HPD_SERVE_BAD_FLAG'})

    const badCluster = await run(['serve', '--etcd', etcd.url, '--cluster', 'a/b', '--no-local-workers'], {HPD_AUTH_TOKEN: TOKEN})
    expect(JSON.parse(badCluster.out).error).toMatchObject({code: 'HPD_ETCD_BAD_FLAG'})
  }, 120_000)

  it('registers workers without secrets, routes over matching ones only, and deregisters on a clean stop', async () => {
    const cluster = 'loopback'
    const client = new Etcd3({hosts: etcd.url})
    try {
      const p = await startWorker(['--role', 'prefill', '--name', 'p0', '--etcd', etcd.url, '--cluster', cluster])
      const d = await startWorker(['--role', 'decode', '--name', 'd0', '--etcd', etcd.url, '--cluster', cluster])
      const records = await client.getAll().prefix(`/hpd/${cluster}/workers/`).strings()
      expect(Object.keys(records).sort()).toEqual([`/hpd/${cluster}/workers/decode/d0`, `/hpd/${cluster}/workers/prefill/p0`])
      const record = JSON.parse(records[`/hpd/${cluster}/workers/prefill/p0`]) as Record<string, unknown>
      expect(record).toMatchObject({engineId: 'p0', role: 'prefill', model: 'tiny-hybrid', tp: 1, protocolVersion: PROTOCOL_VERSION})
      expect(JSON.stringify(record)).not.toContain(TOKEN)

      // Strangers in the same prefix: a record of another model, one of another cache layout, and junk.
      const stranger = {...record, engineId: 'other', controlUrl: 'http://127.0.0.1:9', engineEpoch: 'x'}
      await client.put(`/hpd/${cluster}/workers/prefill/other-model`).value(JSON.stringify({...stranger, engineId: 'other-model', model: 'another-model'}))
      await client.put(`/hpd/${cluster}/workers/prefill/other-layout`).value(JSON.stringify({...stranger, engineId: 'other-layout', compatibilityHash: 'f'.repeat(64)}))
      await client.put(`/hpd/${cluster}/workers/prefill/junk`).value('{"not": "a worker"}')

      const s = await startServe(['--etcd', etcd.url, '--cluster', cluster, '--no-local-workers'], {HPD_AUTH_TOKEN: TOKEN})
      serves.push(s)
      await until(async () => ((await fetch(`${s.url}/health`)).status === 200 ? true : undefined), 20_000, 'the router to admit p0 and d0')
      const c = new OpenAI({baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 30_000})
      for (let i = 0; i < 4; i++) expect((await c.completions.create({model: 'tiny-hybrid', prompt: `routed ${i}`, max_tokens: 3, temperature: 0, ignore_eos: true} as never)).usage?.completion_tokens).toBe(3)
      const ignored = s.lines.filter((l) => l.includes('worker-ignored'))
      expect(ignored.some((l) => l.includes('other-model') && l.includes('model another-model'))).toBe(true)
      expect(ignored.some((l) => l.includes('other-layout') && l.includes('compatibility hash'))).toBe(true)
      expect(s.lines.some((l) => l.includes('etcd-record-ignored'))).toBe(true)
      expect([...s.workers.keys()].sort()).toEqual(['d0', 'p0'])

      // A clean stop deregisters at once (no TTL wait).
      p.child.kill('SIGTERM')
      await new Promise((r) => p.child.once('exit', r))
      expect(Object.keys(await client.getAll().prefix(`/hpd/${cluster}/workers/prefill/p0`).strings())).toEqual([])
      await until(() => (s.workers.get('p0')?.state === 'dead' ? true : undefined), 5000, 'the router to drop p0')
      d.child.kill('SIGTERM')
    } finally {
      client.close()
    }
  }, 120_000)
})
