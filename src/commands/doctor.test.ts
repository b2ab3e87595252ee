import {fileURLToPath} from 'node:url'
import {afterEach, describe, expect, it, vi} from 'vitest'

import {packageRoot} from '../native/load-addon.js'
import Doctor from './doctor.js'

const FIXTURES_DIR = fileURLToPath(new URL('../../test/fixtures/doctor/', import.meta.url))

async function runDoctorCommand(argv: string[]): Promise<{out: string; err: string; exitCode: number | string | undefined}> {
  let out = ''
  let err = ''
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true))
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((err += String(chunk)), true))
  try {
    await Doctor.run(argv, {root: packageRoot()})
  } finally {
    vi.restoreAllMocks()
  }
  return {out, err, exitCode: process.exitCode}
}

describe('hpd doctor (in process)', () => {
  afterEach(() => {
    process.exitCode = undefined
  })

  it('returns the report as the --json result when nothing failed', async () => {
    const {out, exitCode} = await runDoctorCommand(['--root', `${FIXTURES_DIR}ib-8gpu-peermem`, '--json'])
    const envelope = JSON.parse(out)
    expect(envelope).toMatchObject({ok: true, command: 'doctor', schemaVersion: 1, result: {verdict: 'ok', captured: true}})
    expect(envelope.result.checks.map((c: {id: string}) => c.id)).toContain('numa-affinity')
    expect(exitCode ?? 0).toBe(0)
  })

  it('turns a failed verdict into HPD_DOCTOR_FAILED (exit 4) with the full report in error.details', async () => {
    const {out, exitCode} = await runDoctorCommand(['--root', `${FIXTURES_DIR}container-memlock`, '--json'])
    const envelope = JSON.parse(out)
    expect(envelope).toMatchObject({
      ok: false,
      command: 'doctor',
      error: {code: 'HPD_DOCTOR_FAILED', message: '4 doctor checks failed: rdma, gpudirect, memlock, container', details: {verdict: 'fail'}},
    })
    expect(envelope.error.details.checks).toHaveLength(12)
    expect(envelope.error.details.checks.find((c: {id: string}) => c.id === 'memlock')).toMatchObject({status: 'fail', data: {softBytes: 65536}})
    expect(exitCode).toBe(4)
  })

  it('prints the plain report, then the error, when a check failed and stdout is not a terminal', async () => {
    const {out, err, exitCode} = await runDoctorCommand(['--root', `${FIXTURES_DIR}container-memlock`])
    expect(out.trimEnd().split('\n').at(-1)).toBe('verdict: fail (5 ok, 1 warn, 4 fail, 2 skip)')
    expect(err).toContain('error HPD_DOCTOR_FAILED: 4 doctor checks failed: rdma, gpudirect, memlock, container')
    expect(err).not.toMatch(/\n\s+at /u)
    expect(exitCode).toBe(4)
  })

  it('rejects a missing --root directory as a usage error', async () => {
    const {out, exitCode} = await runDoctorCommand(['--root', `${FIXTURES_DIR}nope`, '--json'])
    expect(JSON.parse(out)).toMatchObject({ok: false, error: {code: 'HPD_DOCTOR_ROOT_NOT_FOUND'}})
    expect(exitCode).toBe(2)
  })
})
