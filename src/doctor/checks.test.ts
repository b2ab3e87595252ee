import {fileURLToPath} from 'node:url'
import {beforeAll, describe, expect, it} from 'vitest'

import {MachineFacts, collectFacts} from './collect.js'
import {pciDistance} from './derive.js'
import {PciDevice} from './probes/pci.js'
import {judge} from './run-doctor.js'
import {LiveToolRunner, ToolRunner} from './tools.js'
import {CheckId, DoctorCheck} from './types.js'

const FIXTURES_DIR = fileURLToPath(new URL('../../test/fixtures/doctor/', import.meta.url))

function check(facts: MachineFacts, id: CheckId): DoctorCheck {
  const found = judge(facts).checks.find((c) => c.id === id)
  if (!found) throw new Error(`no check ${id}`)
  return found
}

const noTools: ToolRunner = {run: async () => ({kind: 'unavailable', reason: 'ucx_info is not installed (not found on PATH)'})}

describe('checks over varied facts', () => {
  let roce: MachineFacts
  let cpuOnly: MachineFacts
  let container: MachineFacts
  beforeAll(async () => {
    ;[roce, cpuOnly, container] = await Promise.all(['roce-misaligned', 'cpu-only', 'container-memlock'].map((f) => collectFacts({root: `${FIXTURES_DIR}${f}`})))
  })

  it('a missing tool makes its check skip with the reason, never ok', async () => {
    const facts = await collectFacts({root: `${FIXTURES_DIR}cpu-only`, tools: noTools})
    const ucx = check(facts, 'ucx')
    expect(ucx).toMatchObject({status: 'skip', summary: 'ucx_info is not installed (not found on PATH)'})
    expect(ucx.hint).toMatch(/^Capture `ucx_info -v`/u)
    expect(check(facts, 'gpu').data).toMatchObject({count: 0, nvidiaSmi: {used: false, reason: 'ucx_info is not installed (not found on PATH)'}})
  })

  it('dma-buf needs UCX >= 1.14: with 1.13 and no peer memory, gpudirect fails', () => {
    const ucx113 = {...roce, ucx: cpuOnly.ucx}
    const c = check(ucx113, 'gpudirect')
    expect(c.status).toBe('fail')
    expect(c.summary).toContain('dma-buf needs UCX >= 1.14 but UCX is 1.13.1')
    expect(c.data).toMatchObject({path: null, dmabuf: {ucxOk: false}})
  })

  it('dma-buf with an unknown UCX version is a warning, not a pass', () => {
    const unknown = {...roce, ucx: {version: {ok: false as const, reason: 'not captured'}, devices: {ok: false as const, reason: 'not captured'}}}
    expect(check(unknown, 'gpudirect').status).toBe('warn')
  })

  it('GPUs with a UCX built without CUDA fail the ucx check', () => {
    const noCuda = {...roce, ucx: cpuOnly.ucx}
    const c = check(noCuda, 'ucx')
    expect(c.status).toBe('fail')
    expect(c.summary).toMatch(/no CUDA transports/u)
    expect(c.summary).toMatch(/no verbs transports though 2 RDMA device/u)
  })

  it('tuned TCP segments pass, default ones warn only when TCP carries cross-host traffic', () => {
    if (!cpuOnly.ucx.devices.ok) throw new Error('fixture lacks ucx_info -d')
    const tuned = {...cpuOnly.ucx.devices.value, tcpTxSegBytes: 256 * 1024, tcpRxSegBytes: 256 * 1024}
    const c = check({...cpuOnly, ucx: {...cpuOnly.ucx, devices: {...cpuOnly.ucx.devices, value: tuned}}}, 'ucx')
    expect(c).toMatchObject({status: 'ok', data: {tcpSegmentsTuned: true}})
    expect(c.summary).toContain('TCP segments tuned (256 KiB TX)')
    expect(c.hint).toBeUndefined()
  })

  it('small TCP segments pinned by UCX_TCP_*_SEG_SIZE warn: hpd honours the user\'s setting', () => {
    const c = check({...cpuOnly, ucxEnv: {UCX_TCP_TX_SEG_SIZE: '8k'}}, 'ucx')
    expect(c.status).toBe('warn')
    expect(c.summary).toMatch(/TCP pinned to 8 KiB TX/u)
    expect(c.hint).toContain('UCX_TCP_TX_SEG_SIZE=256k')
  })

  it('CAP_IPC_LOCK lifts a low memlock limit for RDMA registration', () => {
    const c = check({...container, limits: {...container.limits, capIpcLock: true}}, 'memlock')
    expect(c.status).toBe('ok')
    expect(c.summary).toMatch(/CAP_IPC_LOCK/u)
  })

  it('a memlock limit of 128 MiB or more with RDMA is a warning', () => {
    const c = check({...container, limits: {...container.limits, memlockSoftBytes: 512 * 1024 * 1024}}, 'memlock')
    expect(c).toMatchObject({status: 'warn', summary: expect.stringMatching(/^512 MiB: /u)})
  })

  it('an addon that does not load fails hpd-native with the loader\'s code and hint', () => {
    const failed = {
      ...cpuOnly,
      native: {state: 'failed' as const, path: '/x/hpd_native.node', code: 'HPD_NATIVE_ADDON_MISSING', message: 'the native addon is not built', hint: 'Run setup.'},
    }
    expect(check(failed, 'hpd-native')).toMatchObject({
      status: 'fail',
      summary: 'HPD_NATIVE_ADDON_MISSING: the native addon is not built',
      hint: 'Run setup.',
      data: {loaded: false},
    })
    expect(judge(failed).verdict).toBe('fail')
  })

  it('an idle GPU at 2.5 GT/s is not a downgraded link, a GPU at 8 of 16 GT/s is', () => {
    const withGpuLink = (link: {currentSpeedGTs: number; currentWidth: number}) => ({
      ...roce,
      pci: roce.pci.map((d) => (d.bdf === '0000:17:00.0' ? {...d, link: {currentSpeedGTs: link.currentSpeedGTs, maxSpeedGTs: 16, currentWidth: link.currentWidth, maxWidth: 16}} : d)),
    })
    const idle = check(withGpuLink({currentSpeedGTs: 2.5, currentWidth: 16}), 'pcie')
    expect(idle).toMatchObject({status: 'ok', data: {downgraded: 0}})
    expect(idle.summary).toMatch(/1 idle GPU at 2\.5 GT\/s/u)
    const slow = check(withGpuLink({currentSpeedGTs: 8, currentWidth: 16}), 'pcie')
    expect(slow).toMatchObject({status: 'warn', data: {downgraded: 1}})
    expect(slow.summary).toContain('GPU 0000:17:00.0 runs 8 GT/s x16 of 16 GT/s x16')
  })

  it('a check that trips over odd facts becomes a skip naming the defect; the others still report', () => {
    const odd = {...roce, limits: null as unknown as MachineFacts['limits']}
    const report = judge(odd)
    expect(report.checks.find((c) => c.id === 'memlock')).toMatchObject({status: 'skip', summary: expect.stringMatching(/^internal error in this check: /u)})
    expect(report.checks.find((c) => c.id === 'rdma')?.status).toBe('warn')
    expect(report.verdict).toBe('warn')
  })

  it('exhausted hugepages warn', () => {
    const c = check({...cpuOnly, memory: {...cpuOnly.memory, hugePagesTotal: 64, hugePagesFree: 0}}, 'hugepages')
    expect(c.status).toBe('warn')
  })
})

describe('GPU ↔ NIC PCI distance (nvidia-smi topo terms)', () => {
  const dev = (bdf: string, pciPath: string[], numaNode: number | null = 0): PciDevice => ({
    bdf, vendorId: 0, deviceId: 0, classCode: 0, numaNode, link: null, pciPath, driver: null,
  })
  const sw = ['pci0000:00', '0000:00:01.0', '0000:01:00.0']
  it('classifies PIX, PXB, PHB, NODE and SYS', () => {
    expect(pciDistance(dev('0000:03:00.0', [...sw, '0000:02:00.0']), dev('0000:04:00.0', [...sw, '0000:02:01.0']))).toBe('PIX')
    expect(pciDistance(dev('0000:05:00.0', [...sw, '0000:02:00.0', '0000:03:00.0', '0000:04:00.0']), dev('0000:07:00.0', [...sw, '0000:02:01.0']))).toBe('PXB')
    expect(pciDistance(dev('0000:01:00.0', ['pci0000:00', '0000:00:01.0']), dev('0000:02:00.0', ['pci0000:00', '0000:00:02.0']))).toBe('PHB')
    expect(pciDistance(dev('0000:17:00.0', ['pci0000:16']), dev('0000:31:00.0', ['pci0000:30']))).toBe('NODE')
    expect(pciDistance(dev('0000:17:00.0', ['pci0000:16'], 0), dev('0000:99:00.0', ['pci0000:98'], 1))).toBe('SYS')
  })
})

describe('live probes on this machine', () => {
  it('use systeminformation for the host and report a missing ucx_info as skip', async () => {
    const facts = await collectFacts({tools: new LiveToolRunner({PATH: '/nonexistent'})})
    expect(facts.captured).toBe(false)
    expect(facts.host).toMatchObject({ok: true, value: {source: 'systeminformation'}})
    const report = judge(facts)
    expect(report.checks.find((c) => c.id === 'ucx')).toMatchObject({status: 'skip', summary: 'ucx_info is not installed (not found on PATH)'})
    expect(report.checks.find((c) => c.id === 'ucx')?.hint).toMatch(/ucx-utils/u)
    expect(report.checks.find((c) => c.id === 'host')?.status).toMatch(/^(ok|warn)$/u)
  })

  it('reject a --root that is not a directory as a usage error', async () => {
    await expect(collectFacts({root: `${FIXTURES_DIR}no-such-tree`})).rejects.toMatchObject({code: 'HPD_DOCTOR_ROOT_NOT_FOUND', exitCode: 2})
  })
})
