import {fileURLToPath} from 'node:url'
import {render} from 'ink-testing-library'
import {beforeAll, describe, expect, it} from 'vitest'

import {runDoctor} from '../doctor/run-doctor.js'
import type {DoctorReport} from '../doctor/types.js'
import {DoctorChecklist} from './DoctorChecklist.js'

const FIXTURES_DIR = fileURLToPath(new URL('../../test/fixtures/doctor/', import.meta.url))
// eslint-disable-next-line no-control-regex
const ANSI = /\u001B\[[0-9;]*m/gu
const WIDTH = 80

function frameOf(report: DoctorReport): string[] {
  const {lastFrame, unmount} = render(<DoctorChecklist report={report} width={WIDTH} />)
  const frame = (lastFrame() ?? '').replaceAll(ANSI, '')
  if (process.env.HPD_SHOW_FRAME) process.stderr.write(`${frame}\n`)
  unmount()
  return frame.split('\n')
}

describe('DoctorChecklist', () => {
  let failing: DoctorReport
  let passing: DoctorReport
  beforeAll(async () => {
    ;[failing, passing] = await Promise.all([runDoctor({root: `${FIXTURES_DIR}container-memlock`}), runDoctor({root: `${FIXTURES_DIR}ib-8gpu-peermem`})])
  })

  it('groups checks under their titles, in order, with the verdict last', () => {
    const lines = frameOf(failing)
    // The title stays on one line however deep the checkout lies: the path keeps its tail.
    expect(lines[0]).toMatch(/^hpd doctor: captured tree (\/|…).*container-memlock$/u)
    expect(lines[0].length).toBeLessThanOrEqual(WIDTH)
    const titles = lines.filter((l) => /^(Host|GPUs and PCIe|RDMA and UCX|Limits and container|hpd)$/u.test(l))
    expect(titles).toEqual(['Host', 'GPUs and PCIe', 'RDMA and UCX', 'Limits and container', 'hpd'])
    expect(lines.at(-1)).toBe('verdict: fail (5 ok, 1 warn, 4 fail, 2 skip)')
    const headline = lines.findIndex((l) => l.startsWith('2 GPUs, 1 RDMA device that user space cannot open'))
    expect(headline).toBeGreaterThan(lines.findIndex((l) => l.startsWith('○ hpd-native')))
  })

  it('shortens a deep captured tree to its tail on the title line', () => {
    const root = `/${'very-long-directory-name/'.repeat(8)}node-a`
    const lines = frameOf({...failing, root})
    expect(lines[0]).toBe(`hpd doctor: captured tree …${root.slice(-(WIDTH - 'hpd doctor: captured tree …'.length))}`)
    expect(lines[0].length).toBe(WIDTH)
    expect(lines[0].endsWith('/node-a')).toBe(true)
  })

  it('marks each row with its status symbol and id, and wraps within the width', () => {
    const lines = frameOf(failing)
    expect(lines).toContain('✖ memlock        64 KiB with RDMA devices present: registering KV-cache regions')
    expect(lines.find((l) => l.startsWith('▲ shm '))).toBe('▲ shm            64 MiB tmpfs: same-host KV regions UCX maps through /dev/shm')
    expect(lines.find((l) => l.startsWith('○ hpd-native '))).toMatch(/^○ hpd-native     the addon on this machine says nothing about/u)
    expect(lines.find((l) => l.startsWith('✔ host '))).toMatch(/^✔ host           Ubuntu 22\.04\.4 LTS/u)
    // Hints sit under their summary, in the summary's column.
    const memlock = lines.findIndex((l) => l.startsWith('✖ memlock'))
    expect(lines.slice(memlock, memlock + 4).some((l) => l.startsWith('                 hint: Raise it to unlimited'))).toBe(true)
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(WIDTH)
  })

  it('shows no hints when everything passes', () => {
    const lines = frameOf(passing)
    expect(lines.some((l) => l.includes('hint:'))).toBe(false)
    expect(lines.filter((l) => l.startsWith('✔ '))).toHaveLength(11)
    expect(lines.at(-1)).toBe('verdict: ok (11 ok, 0 warn, 0 fail, 1 skip)')
  })
})
