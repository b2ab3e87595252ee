import {fileURLToPath} from 'node:url'
import {describe, expect, it} from 'vitest'

import {runDoctor} from '../doctor/run-doctor.js'
import {formatDoctorPlain} from './doctor-plain.js'
import {renderDoctorReport, shouldUseInk} from './doctor-render.js'

const FIXTURES_DIR = fileURLToPath(new URL('../../test/fixtures/doctor/', import.meta.url))

describe('doctor output mode', () => {
  it('uses Ink only on an interactive terminal outside CI', () => {
    expect(shouldUseInk(true, {})).toBe(true)
    expect(shouldUseInk(false, {})).toBe(false)
    expect(shouldUseInk(undefined, {})).toBe(false)
    expect(shouldUseInk(true, {CI: 'true'})).toBe(false)
    expect(shouldUseInk(true, {CI: '1'})).toBe(false)
    expect(shouldUseInk(true, {CI: 'false'})).toBe(true)
    expect(shouldUseInk(true, {TERM: 'dumb'})).toBe(false)
  })

  it('prints plain grouped lines, hints below, headline and verdict last', async () => {
    const report = await runDoctor({root: `${FIXTURES_DIR}cpu-only`})
    const text = formatDoctorPlain(report)
    const lines = text.trimEnd().split('\n')
    expect(lines[0]).toBe(`hpd doctor: captured tree ${FIXTURES_DIR}cpu-only`)
    expect(lines).toContain('  warn  gpu             no NVIDIA GPU among 6 PCI devices: hpd serve runs its CPU kernels')
    expect(lines).toContain('  skip  gpudirect       does not apply: no GPU and no RDMA NIC')
    expect(lines.indexOf('GPUs and PCIe')).toBeLessThan(lines.indexOf('RDMA and UCX'))
    expect(lines.at(-2)).toMatch(/^No GPU and no RDMA device: /u)
    expect(lines.at(-1)).toBe('verdict: warn (6 ok, 2 warn, 0 fail, 4 skip)')
    expect(text).not.toMatch(/\u001B\[/u)
  })

  it('writes plain lines to a stream that is not a terminal', async () => {
    const report = await runDoctor({root: `${FIXTURES_DIR}cpu-only`})
    let written = ''
    const stdout = {isTTY: false, write: (chunk: string) => ((written += chunk), true)} as unknown as NodeJS.WriteStream
    await renderDoctorReport(report, {stdout, env: {}})
    expect(written).toBe(formatDoctorPlain(report))
  })
})

describe('wrapWords', () => {
  it('wraps greedily without leading blanks and cuts words longer than the width', async () => {
    const {wrapWords} = await import('./doctor-style.js')
    expect(wrapWords('alpha beta gamma delta', 11)).toEqual(['alpha beta', 'gamma delta'])
    expect(wrapWords('x /a/very/long/path/name', 10)).toEqual(['x', '/a/very/lo', 'ng/path/na', 'me'])
    expect(wrapWords('', 10)).toEqual([''])
  })
})
