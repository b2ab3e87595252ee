import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {Supervisor} from './supervisor.js'
import type {WorkerConfig} from './worker/worker-config.js'

/**
 * Unit seam: a stand-in worker entry speaking the child-process kit's lines (src/child/lines.ts:
 * ready line + health/stats routes, and on request a crash or a clean refusal) so the supervisor's process handling is tested without loading a model. Real
 * workers under the supervisor are exercised in test/e2e/serve*.test.ts.
 */
const dir = mkdtempSync(join(tmpdir(), 'hpd-supervisor-'))
const entry = join(dir, 'worker.mjs')
writeFileSync(
  entry,
  `import {createServer} from 'node:http'
import {createHmac} from 'node:crypto'
import {existsSync, writeFileSync} from 'node:fs'
// Answers as a cluster member: the proof of the token over the caller's nonce (src/serve/auth.ts).
const proof = (header) => createHmac('sha256', process.env.HPD_AUTH_TOKEN).update('hpd-v1-proof\\n' + String(header).split(' ')[2]).digest('base64url')
const mode = process.env.TEST_MODE
if (mode === 'crash-once' && !existsSync(process.env.TEST_MARKER)) { writeFileSync(process.env.TEST_MARKER, 'x'); process.kill(process.pid, 'SIGSEGV') }
if (mode === 'refuse-env') { process.stderr.write(JSON.stringify({hpdError: {kind: 'EnvironmentError', code: 'HPD_TEST_NO_UCX', message: 'no transport'}}) + '\\n'); process.exit(4) }
if (mode === 'refuse') { process.stderr.write(JSON.stringify({hpdError: {kind: 'UsageError', code: 'HPD_TEST_REFUSED', message: 'model directory is empty', hint: 'pass a model'}}) + '\\n'); process.exit(2) }
const server = createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.setHeader('x-hpd-auth-proof', proof(req.headers['x-hpd-auth']))
  res.end(JSON.stringify(req.url.endsWith('/health')
    ? {ok: true, role: 'prefill', engineId: 'w', engineEpoch: String(process.pid), tpSize: 1, compatibilityHash: 'h'}
    : {role: 'prefill', engineId: 'w', ok: true, refusedUnauthenticated: 0, inFlight: 0, kvBlocksUsed: 0, kvBlocksTotal: 1, leasesHeld: 0, leasesExpired: 0, leasesReleased: 0, transferBytes: 0, transferMs: 0, handshakes: 0, decodeBatchMax: 0}))
})
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({hpdReady: {role: 'prefill', controlUrl: 'http://127.0.0.1:' + server.address().port, engineId: 'w', pid: process.pid}})))
process.stdin.on('end', () => process.exit(0)); process.stdin.resume()
process.on('SIGTERM', () => process.exit(0))
`,
)

const config = (name: string): WorkerConfig => ({
  name,
  role: 'prefill',
  model: 'none',
  tp: 1,
  maxModelLen: 64,
  modelName: 'none',
  transport: 'auto',
  host: '127.0.0.1',
  leaseMs: 1000,
  maxLeaseMs: 2000,
  maxBatch: 1,
  handshakeTimeoutMs: 1000,
  transferTimeoutMs: 1000,
})

const supervisors: Supervisor[] = []
afterEach(async () => {
  await Promise.all(supervisors.splice(0).map((s) => s.stop()))
})

function supervise(env: Record<string, string>, names = ['prefill-0']): {s: Supervisor; log: string[]} {
  const s = new Supervisor({entryPath: entry, configs: names.map(config), clusterToken: 'test-cluster-token-0123456789', env, healthIntervalMs: 200, startupTimeoutMs: 20_000})
  const log: string[] = []
  s.on('log', (w, line) => log.push(`[${w}] ${line}`))
  supervisors.push(s)
  return {s, log}
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('Supervisor', () => {
  it('starts workers, and stops them all (no survivors)', async () => {
    const {s} = supervise({TEST_MODE: 'ok'}, ['prefill-0', 'prefill-1'])
    await s.start()
    expect(s.ready('prefill').map((w) => w.name)).toEqual(['prefill-0', 'prefill-1'])
    const pids = s.pids()
    expect(pids).toHaveLength(2)
    await s.stop()
    for (const pid of pids) expect(alive(pid)).toBe(false)
    expect(s.workers.map((w) => w.state)).toEqual(['stopped', 'stopped'])
  })

  it('starts a worker again after it crashed while starting, and says so', async () => {
    const {s, log} = supervise({TEST_MODE: 'crash-once', TEST_MARKER: join(dir, `marker-${Date.now()}`)})
    await s.start()
    expect(s.ready('prefill')).toHaveLength(1)
    expect(log.join('\n')).toContain('crashed with SIGSEGV while starting; starting it again')
  })

  it('does not retry a worker that refused its input, and passes its error on with its own code and exit code', async () => {
    const {s} = supervise({TEST_MODE: 'refuse'})
    await expect(s.start()).rejects.toMatchObject({
      code: 'HPD_TEST_REFUSED',
      exitCode: 2,
      message: 'worker prefill-0 refused its start: model directory is empty',
      hint: 'pass a model',
      details: {worker: 'prefill-0', role: 'prefill'},
    })
  })

  it('a worker failing to start for another reason is HPD_SERVE_WORKER_START (exit 4) naming its code', async () => {
    const {s} = supervise({TEST_MODE: 'refuse-env'})
    await expect(s.start()).rejects.toMatchObject({
      code: 'HPD_SERVE_WORKER_START',
      exitCode: 4,
      message: 'worker prefill-0 failed to start: HPD_TEST_NO_UCX: no transport',
    })
  })

  it('sees a ready worker die at once and restarts it', async () => {
    const {s} = supervise({TEST_MODE: 'ok'})
    await s.start()
    const w = s.workers[0]
    const first = w.pid!
    const states: string[] = []
    s.on('state', (x) => states.push(x.state))
    process.kill(first, 'SIGKILL')
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no restart; states ${states.join(',')}`)), 15_000)
      s.on('state', (x) => {
        if (x.state === 'ready') {
          clearTimeout(timer)
          resolve()
        }
      })
    })
    expect(states).toEqual(['dead', 'starting', 'ready'])
    expect(w.pid).not.toBe(first)
    expect(w.restarts).toBe(1)
  })
})
