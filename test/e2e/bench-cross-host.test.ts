/**
 * `hpd bench transfer --etcd URL --cluster NAME --role prefill|decode` between two hosts made of
 * network namespaces (netns-harness.ts; etcd in a third, etcd-harness.ts): the two sides meet
 * through etcd, prove the cluster token to each other, and the decode side reads every planned byte
 * over TCP from the other namespace, verified (full and digest; case and serve paths); both sides
 * report the same result. A decode side with another token is refused, naming why. Small sizes:
 * the numbers are `npm run bench:cross-host`'s job. Skipped, with the reason, where namespaces or
 * etcd are unavailable.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {etcdMissing, startEtcd, type Etcd} from './etcd-harness.js'
import {createNetwork, netnsUnavailable, type TestNetwork} from './netns-harness.js'
import {ROOT, tmpDir} from './serve-harness.js'

const skip = netnsUnavailable() ?? etcdMissing()
const BIN = join(ROOT, 'bin', 'run.js')
const TOKEN = 'bench-cross-host-test-token-0123456789'

let net: TestNetwork
let etcd: Etcd
let tokenFile: string
let otherTokenFile: string

beforeAll(async () => {
  if (skip) return
  net = await createNetwork(['etcd', 'prefill', 'decode'])
  const e = net.hosts.get('etcd')!
  etcd = await startEtcd({host: e.address, clientPort: 2379, peerPort: 2380, wrap: ['ip', 'netns', 'exec', e.ns]})
  const dir = tmpDir('hpd-bench-netns-')
  tokenFile = join(dir, 'token')
  otherTokenFile = join(dir, 'other')
  writeFileSync(tokenFile, TOKEN, {mode: 0o600})
  writeFileSync(otherTokenFile, `${TOKEN}-not-the-same`, {mode: 0o600})
}, 60_000)

afterAll(async () => {
  await etcd?.destroy()
  await net?.destroy()
})

interface Envelope {
  ok: boolean
  result?: {readProtocol: string; path: string; hosts?: {prefill: string; decode: string}; cases: {promptTokens: number; bytesPerRequest: number; verifiedBytes: number; gbPerSecond: number; runsPerRequest: number; plannedRunsPerRequest: number}[]}
  error?: {code: string; message: string}
}

async function run(cluster: string, flags: string[], decodeToken = tokenFile, waitMs = 15_000): Promise<{prefill: Envelope; decode: Envelope; exits: [number, number]}> {
  const side = (role: 'prefill' | 'decode', listen: string, token: string) => {
    const h = net.hosts.get(role)!
    return execa('ip', ['netns', 'exec', h.ns, process.execPath, BIN, 'bench', 'transfer', '--model', 'tiny-hybrid', '--prompt-tokens', '40,300', '--requests', '2', '--transport', 'tcp', ...flags, '--etcd', etcd.url, '--cluster', cluster, '--role', role, '--listen', listen, '--auth-token-file', token, '--wait-ms', String(waitMs), '--json'], {reject: false, timeout: 90_000, env: {CI: '1'}})
  }
  const [p, d] = await Promise.all([side('prefill', `${net.hosts.get('prefill')!.address}:0`, tokenFile), side('decode', net.hosts.get('decode')!.address, decodeToken)])
  return {prefill: JSON.parse(p.stdout) as Envelope, decode: JSON.parse(d.stdout) as Envelope, exits: [p.exitCode ?? -1, d.exitCode ?? -1]}
}

describe.skipIf(skip)(`bench transfer across two namespaces through etcd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it.each([
    ['case', 'full', []],
    ['case', 'digest', ['--tp', '2', '--decode-tp', '1']],
    ['serve', 'full', ['--path', 'serve', '--tp', '1', '--decode-tp', '2']],
    ['serve', 'digest', ['--path', 'serve', '--lists', 'pair']],
  ])('--path %s, --verify %s: the decode side reads every planned byte from the other host, verified; both sides report it', async (path, verify, extra) => {
    const {prefill, decode, exits} = await run(`b-${path}-${verify}`, ['--verify', verify, ...extra])
    expect(decode.error).toBeUndefined()
    expect(prefill.error).toBeUndefined()
    expect(exits).toEqual([0, 0])
    const r = decode.result!
    expect(r.path).toBe(path)
    expect(r.readProtocol).toBe('served')
    expect(r.hosts).toBeDefined()
    for (const c of r.cases) {
      expect(c.verifiedBytes).toBe((path === 'serve' ? 5 : 3) * c.bytesPerRequest) // warm-up (serve path: 3, touching the pool once) + 2 requests
      expect(c.runsPerRequest).toBe(c.plannedRunsPerRequest)
      expect(c.gbPerSecond).toBeGreaterThan(0)
    }
    // The prefill host reports the run the decode host measured.
    expect(prefill.result!.cases.map((c) => c.bytesPerRequest)).toEqual(r.cases.map((c) => c.bytesPerRequest))
  })

  it('a decode side with another cluster token is refused, and says so (exit 2)', async () => {
    const {decode, prefill, exits} = await run('b-token', ['--verify', 'digest'], otherTokenFile, 4000)
    expect(decode.error!.code).toBe('HPD_BENCH_PEER_REFUSED')
    expect(exits[1]).toBe(2)
    // The prefill side waited for a member; none came within --wait-ms.
    expect(prefill.error!.code).toBe('HPD_BENCH_PEER_NOT_FOUND')
  })
})
