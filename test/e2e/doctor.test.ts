import {execa} from 'execa'
import {fileURLToPath} from 'node:url'
import {describe, expect, it} from 'vitest'

/**
 * `hpd doctor` as a user runs it: a separate process over dist/ (`npm test` builds first).
 * The live case runs on whatever machine the tests run on; assertions that depend on the
 * machine are made against the report's own findings, not hard-coded.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const FIXTURES = `${ROOT}test/fixtures/doctor`
const TIMEOUT_MS = 30_000

function hpd(args: string[], env: NodeJS.ProcessEnv = {}) {
  const childEnv = {...process.env, ...env}
  delete childEnv.CI
  return execa('node', ['bin/run.js', ...args], {cwd: ROOT, reject: false, timeout: TIMEOUT_MS, env: childEnv, extendEnv: false})
}

interface Check {
  id: string
  status: string
  summary: string
  data: Record<string, unknown>
}

describe('hpd doctor (process)', () => {
  it('on this machine: one JSON envelope on stdout whose ok and exit code agree with the verdict', async () => {
    const run = await hpd(['doctor', '--json'])
    const envelope = JSON.parse(run.stdout)
    const report = envelope.ok ? envelope.result : envelope.error.details
    expect(report.checks.map((c: Check) => c.id)).toEqual([
      'host', 'gpu', 'rdma', 'gpudirect', 'pcie', 'numa-affinity', 'memlock', 'hugepages', 'shm', 'container', 'ucx', 'hpd-native',
    ])
    expect(envelope.ok).toBe(report.verdict !== 'fail')
    expect(run.exitCode).toBe(report.verdict === 'fail' ? 4 : 0)
    const byId = Object.fromEntries(report.checks.map((c: Check) => [c.id, c])) as Record<string, Check>
    expect(byId.host.data.source).toBe('systeminformation')
    // Needs build/Release/hpd_native.node (setup.sh builds it; a rebuild running meanwhile removes it).
    expect(byId['hpd-native'], byId['hpd-native'].summary).toMatchObject({status: 'ok', data: {loaded: true}})
    // On a machine like the build VM (no GPU, no RDMA) the doctor must say so plainly.
    if (byId.gpu.data.count === 0 && byId.rdma.data.deviceCount === 0) {
      expect(byId.gpu.status).toBe('warn')
      expect(byId.rdma.status).toBe('warn')
      expect(report.headline).toBe(
        'No GPU and no RDMA device: hpd serve runs its CPU kernels and moves KV cache over shared memory (same host) or TCP (across hosts) only.',
      )
    }
  })

  it('on this machine, piped: plain lines on stdout with the headline and the verdict last', async () => {
    const run = await hpd(['doctor'])
    const lines = run.stdout.trimEnd().split('\n')
    expect(lines[0]).toBe('hpd doctor: this machine')
    expect(lines.at(-1)).toMatch(/^verdict: (ok|warn|fail) \(\d+ ok, \d+ warn, \d+ fail, \d+ skip\)$/u)
    expect(run.stdout).not.toMatch(/\u001B\[/u)
    expect(lines).toContain('Limits and container')
  })

  it('on a fixture with failed checks: exit 4, the report on stdout, HPD_DOCTOR_FAILED on stderr', async () => {
    const run = await hpd(['doctor', '--root', `${FIXTURES}/container-memlock`])
    expect(run.exitCode).toBe(4)
    expect(run.stdout).toContain('  fail  memlock         64 KiB with RDMA devices present')
    expect(run.stdout.trimEnd().split('\n').at(-1)).toBe('verdict: fail (5 ok, 1 warn, 4 fail, 2 skip)')
    expect(run.stderr).toContain('error HPD_DOCTOR_FAILED: 4 doctor checks failed: rdma, gpudirect, memlock, container')
  })

  it('reads --root from HPD_DOCTOR_ROOT, and with --json puts the failed report in error.details', async () => {
    const run = await hpd(['doctor', '--json'], {HPD_DOCTOR_ROOT: `${FIXTURES}/container-memlock`})
    expect(run.exitCode).toBe(4)
    const envelope = JSON.parse(run.stdout)
    expect(envelope).toMatchObject({ok: false, command: 'doctor', error: {code: 'HPD_DOCTOR_FAILED', details: {verdict: 'fail', captured: true}}})
    const memlock = envelope.error.details.checks.find((c: Check) => c.id === 'memlock')
    expect(memlock).toMatchObject({status: 'fail', data: {softBytes: 65536, hardBytes: 65536}})
  })

  it('reads a big node\'s tree under a 128-descriptor limit without losing files', async () => {
    // ~1000 sysfs reads fire at once on this fixture; unbounded, they would fail with EMFILE
    // and read as "absent".
    const run = await execa('bash', ['-c', `ulimit -n 128 && exec node bin/run.js doctor --json --root ${FIXTURES}/ib-8gpu-peermem`], {
      cwd: ROOT,
      reject: false,
      timeout: TIMEOUT_MS,
    })
    const report = JSON.parse(run.stdout).result
    expect(report.verdict).toBe('ok')
    const byId = Object.fromEntries(report.checks.map((c: Check) => [c.id, c])) as Record<string, Check>
    expect(byId.gpu.data.count).toBe(8)
    expect(byId.rdma.data).toMatchObject({deviceCount: 8, usablePorts: 8})
    expect(byId.pcie.data.links).toHaveLength(16)
  })

  it('draws the Ink checklist on a terminal', async () => {
    // `script` gives the child a pseudo-terminal; 100 columns so the layout is known.
    const env = {...process.env, TERM: 'xterm-256color'}
    delete env.CI
    const run = await execa('script', ['-qec', `stty cols 100 rows 60; node bin/run.js doctor --root ${FIXTURES}/ib-8gpu-peermem`, '/dev/null'], {
      cwd: ROOT,
      reject: false,
      timeout: TIMEOUT_MS,
      env,
      extendEnv: false,
    })
    const screen = run.stdout.replaceAll(/\u001B\[[0-9;?]*[A-Za-z]/gu, '').replaceAll('\r', '')
    expect(run.exitCode).toBe(0)
    expect(run.stdout).toMatch(/\u001B\[32m/u) // green: coloured on a terminal
    expect(screen).toMatch(/^✔ numa-affinity  every GPU has an RDMA NIC on its NUMA node \(nearest: 8 × PIX\)$/mu)
    expect(screen.trimEnd().split('\n').at(-1)).toBe('verdict: ok (11 ok, 0 warn, 0 fail, 1 skip)')
  })
})
