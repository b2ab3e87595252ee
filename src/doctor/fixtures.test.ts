import {fileURLToPath} from 'node:url'
import {beforeAll, describe, expect, it} from 'vitest'

import {runDoctor} from './run-doctor.js'
import {CHECK_IDS, CheckId, DoctorCheck, DoctorReport} from './types.js'

/**
 * Each fixture tree under test/fixtures/doctor (built by build-fixtures.mjs) stands for one kind of
 * machine; these tests pin what the doctor must find there: ids, statuses and data.
 */
const FIXTURES_DIR = fileURLToPath(new URL('../../test/fixtures/doctor/', import.meta.url))

async function doctorOn(name: string): Promise<DoctorReport> {
  return runDoctor({root: `${FIXTURES_DIR}${name}`})
}

function byId(report: DoctorReport): Record<CheckId, DoctorCheck> {
  return Object.fromEntries(report.checks.map((c) => [c.id, c])) as Record<CheckId, DoctorCheck>
}

function statuses(report: DoctorReport): Record<string, string> {
  return Object.fromEntries(report.checks.map((c) => [c.id, c.status]))
}

describe('doctor on fixture (a) cpu-only: this kind of machine, no GPU, no RDMA', () => {
  let report: DoctorReport
  let c: Record<CheckId, DoctorCheck>
  beforeAll(async () => {
    report = await doctorOn('cpu-only')
    c = byId(report)
  })

  it('reports every check id once, in order, and a warn verdict', () => {
    expect(report.checks.map((x) => x.id)).toEqual([...CHECK_IDS])
    expect(report.captured).toBe(true)
    expect(statuses(report)).toEqual({
      host: 'ok', gpu: 'warn', rdma: 'warn', gpudirect: 'skip', pcie: 'skip', 'numa-affinity': 'skip',
      memlock: 'ok', hugepages: 'ok', shm: 'ok', container: 'ok', ucx: 'ok', 'hpd-native': 'skip',
    })
    expect(report.verdict).toBe('warn')
    expect(report.counts).toEqual({ok: 6, warn: 2, fail: 0, skip: 4})
  })

  it('says plainly: no GPU, no RDMA device, so transfers go over shared memory or TCP only', () => {
    expect(report.headline).toMatch(/^No GPU and no RDMA device: .*shared memory \(same host\) or TCP \(across hosts\) only\.$/u)
    expect(c.gpu.data).toMatchObject({count: 0, pciDevicesScanned: 6})
    expect(c.rdma.data).toMatchObject({deviceCount: 0, activePorts: 0, usablePorts: 0, maxRateGbps: null, userspaceAccess: null})
    expect(c.rdma.summary).toContain('shared memory')
  })

  it('reads host facts from the tree, not from systeminformation', () => {
    expect(c.host.data).toMatchObject({source: 'files', os: 'Debian GNU/Linux 12 (bookworm)', logicalCpus: 2})
    expect(c.host.data.simd).toContain('avx2')
  })

  it('reads UCX 1.13.1 from the captured ucx_info and notes default TCP segments (hpd tunes its own)', () => {
    expect(c.ucx.data).toMatchObject({
      version: '1.13.1',
      transports: ['self', 'tcp', 'sysv', 'posix', 'cma'],
      cudaTransports: [],
      tcpTxSegBytes: 8192,
      tcpRxSegBytes: 65536,
      tcpSegmentsTuned: false,
    })
    expect(c.ucx.summary).toContain('hpd applies 256 KiB itself')
    expect(c.ucx.summary).toContain('UCX_TCP_TX_SEG_SIZE/RX_SEG_SIZE=256k')
  })

  it('judges limits and the container it was captured in', () => {
    expect(c.memlock.data).toMatchObject({softBytes: 8 * 1024 * 1024, unlimited: false, rdmaPresent: false})
    expect(c.shm.data).toMatchObject({sizeSource: 'mount-option', fsType: 'tmpfs'})
    expect(c.shm.data.sizeBytes as number).toBeGreaterThan(1024 ** 3)
    expect(c.container.data).toMatchObject({runtime: 'docker'})
    expect(c['hpd-native'].summary).toMatch(/another machine/u)
  })

  it('never gives a skipped check a passing status, and gives every non-ok check a reason', () => {
    for (const check of report.checks) {
      if (check.status === 'ok') expect(check.hint).toBeUndefined()
      expect(check.summary.length).toBeGreaterThan(0)
    }
  })
})

describe('doctor on fixture (b) ib-8gpu-peermem: 8 GPUs + 8 InfiniBand NICs with peer memory', () => {
  let report: DoctorReport
  let c: Record<CheckId, DoctorCheck>
  beforeAll(async () => {
    report = await doctorOn('ib-8gpu-peermem')
    c = byId(report)
  })

  it('passes every check that applies', () => {
    expect(report.verdict).toBe('ok')
    expect(report.checks.filter((x) => x.status !== 'ok').map((x) => x.id)).toEqual(['hpd-native'])
    expect(report.headline).toBe('8 GPUs, 8 usable RDMA ports, GPUDirect RDMA via peer-memory: KV cache can move GPU to NIC directly.')
  })

  it('finds 8 H100s on PCI, named by the captured nvidia-smi', () => {
    expect(c.gpu.data).toMatchObject({count: 8, driverVersion: '550.54.15', openKernelModule: false, nvidiaSmi: {used: true, count: 8}})
    const gpus = c.gpu.data.gpus as {bdf: string; name: string; memoryMiB: number; numaNode: number}[]
    expect(gpus[0]).toMatchObject({bdf: '0000:1a:00.0', name: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559, numaNode: 0})
    expect(gpus.filter((g) => g.numaNode === 1)).toHaveLength(4)
  })

  it('counts 8 active 400 Gb/s InfiniBand ports', () => {
    expect(c.rdma.data).toMatchObject({deviceCount: 8, activePorts: 8, usablePorts: 8, linkLayers: ['InfiniBand'], maxRateGbps: 400, userspaceAccess: true})
    const devices = c.rdma.data.devices as {name: string; bdf: string; ports: {rateGbps: number; state: string}[]}[]
    expect(devices.map((d) => d.name)).toEqual(['mlx5_0', 'mlx5_1', 'mlx5_2', 'mlx5_3', 'mlx5_4', 'mlx5_5', 'mlx5_6', 'mlx5_7'])
    expect(devices[0]).toMatchObject({bdf: '0000:1b:00.0', ports: [{state: 'ACTIVE', physState: 'LinkUp', rateGbps: 400}]})
  })

  it('sees peer memory, full-width links and a PIX NIC for every GPU', () => {
    expect(c.gpudirect.data).toMatchObject({path: 'peer-memory', peerMemPaths: ['/sys/module/nvidia_peermem/version'], gdrcopy: true})
    expect(c.pcie.data).toMatchObject({downgraded: 0})
    expect(c.pcie.data.links as unknown[]).toHaveLength(16)
    const pairs = c['numa-affinity'].data.pairs as {gpu: string; nic: string; distance: string}[]
    expect(pairs.map((p) => p.distance)).toEqual(Array(8).fill('PIX'))
    expect(pairs[4]).toMatchObject({gpu: '0000:9c:00.0', nic: 'mlx5_4', gpuNumaNode: 1, nicNumaNode: 1})
  })

  it('finds CUDA and accelerated IB transports in UCX 1.16 and does not nag about TCP', () => {
    expect(c.ucx.data).toMatchObject({version: '1.16.0', cudaTransports: ['cuda_copy', 'cuda_ipc', 'gdr_copy'], tcpSegmentsTuned: false})
    expect(c.ucx.data.ibTransports).toEqual(['rc_verbs', 'rc_mlx5', 'dc_mlx5', 'ud_verbs', 'ud_mlx5'])
    expect(c.hugepages.data).toMatchObject({totalPages: 1024, freePages: 1000, pageSizeBytes: 2 * 1024 * 1024})
    expect(c.memlock.data).toMatchObject({unlimited: true})
    expect(c.container.data).toMatchObject({runtime: null})
  })
})

describe('doctor on fixture (c) roce-misaligned: zero GID, downgraded link, GPUs and NICs on different NUMA nodes', () => {
  let report: DoctorReport
  let c: Record<CheckId, DoctorCheck>
  beforeAll(async () => {
    report = await doctorOn('roce-misaligned')
    c = byId(report)
  })

  it('warns on rdma, pcie and numa-affinity and nothing else', () => {
    expect(report.verdict).toBe('warn')
    expect(report.checks.filter((x) => x.status === 'warn').map((x) => x.id)).toEqual(['rdma', 'pcie', 'numa-affinity'])
    expect(report.counts.fail).toBe(0)
  })

  it('finds the RoCE port whose v2 GIDs are zero', () => {
    expect(c.rdma.data).toMatchObject({deviceCount: 2, activePorts: 2, usablePorts: 1, linkLayers: ['Ethernet'], maxRateGbps: 100})
    const [good, bad] = c.rdma.data.devices as {name: string; ports: {roceV2GidIndex: number | null; usable: boolean; gids: {index: number}[]}[]}[]
    expect(good).toMatchObject({name: 'mlx5_0', ports: [{roceV2GidIndex: 3, usable: true}]})
    expect(bad).toMatchObject({name: 'mlx5_1', ports: [{roceV2GidIndex: null, usable: false}]})
    expect(bad.ports[0].gids.map((g) => g.index)).toEqual([0, 1])
    expect(c.rdma.summary).toContain('mlx5_1 port 1 (RoCE) has no routable RoCE v2 GID (GID index 3 is zero)')
    expect(c.rdma.hint).toMatch(/IP address/u)
  })

  it('flags the GPU trained at x8 in an x16 slot', () => {
    expect(c.pcie.data.downgraded).toBe(1)
    const links = c.pcie.data.links as {bdf: string; downgraded: boolean; currentWidth: number; maxWidth: number}[]
    expect(links.find((l) => l.downgraded)).toMatchObject({bdf: '0000:17:00.0', currentWidth: 8, maxWidth: 16})
    expect(c.pcie.summary).toContain('GPU 0000:17:00.0 runs 16 GT/s x8 of 16 GT/s x16')
  })

  it('flags both GPUs for having no NIC on their NUMA node (SYS)', () => {
    expect(c['numa-affinity'].data).toMatchObject({
      gpusWithoutLocalNic: 2,
      pairs: [
        {gpu: '0000:17:00.0', gpuNumaNode: 0, nic: 'mlx5_0', nicNumaNode: 1, distance: 'SYS', localNic: false},
        {gpu: '0000:31:00.0', gpuNumaNode: 0, nic: 'mlx5_0', nicNumaNode: 1, distance: 'SYS', localNic: false},
      ],
    })
  })

  it('accepts the dma-buf GPUDirect path (open module, kernel 5.15, UCX 1.15) and skips nvidia-smi with the reason', () => {
    expect(c.gpudirect).toMatchObject({status: 'ok', data: {path: 'dma-buf', peerMemPaths: [], dmabuf: {kernelOk: true, openKernelModule: true, ucxOk: true}}})
    expect(c.gpu.data).toMatchObject({count: 2, openKernelModule: true, nvidiaSmi: {used: false}})
    expect((c.gpu.data.nvidiaSmi as {reason: string}).reason).toMatch(/^not captured/u)
  })
})

describe('doctor on fixture (d) container-memlock: a container with a 64 KiB memlock limit', () => {
  let report: DoctorReport
  let c: Record<CheckId, DoctorCheck>
  beforeAll(async () => {
    report = await doctorOn('container-memlock')
    c = byId(report)
  })

  it('fails memlock, container, rdma and gpudirect; warns on shm; skips the uncaptured ucx', () => {
    expect(report.verdict).toBe('fail')
    expect(statuses(report)).toMatchObject({memlock: 'fail', container: 'fail', rdma: 'fail', gpudirect: 'fail', shm: 'warn', ucx: 'skip'})
  })

  it('reads the 64 KiB limit and the missing CAP_IPC_LOCK', () => {
    expect(c.memlock.data).toEqual({softBytes: 65536, hardBytes: 65536, unlimited: false, capIpcLock: false, rdmaPresent: true})
    expect(c.memlock.summary).toMatch(/^64 KiB with RDMA devices present/u)
    expect(c.memlock.hint).toContain('--ulimit memlock=-1')
  })

  it('lists what the container must be given', () => {
    expect(c.container.data).toMatchObject({runtime: 'docker', evidence: ['/.dockerenv exists']})
    const needs = c.container.data.needs as {flag: string; given: boolean}[]
    expect(needs.filter((n) => !n.given).map((n) => n.flag)).toEqual([
      '--device=/dev/infiniband',
      '--ulimit memlock=-1',
      '--shm-size=8g (or --ipc=host)',
      '--cap-add=SYS_PTRACE',
    ])
    expect(needs.find((n) => n.flag === '--gpus all')).toMatchObject({given: true})
    expect(c.shm.data).toMatchObject({sizeBytes: 64 * 1024 * 1024, sizeSource: 'mount-option'})
  })

  it('explains that RDMA cannot be opened and GPUDirect has no path', () => {
    expect(c.rdma.data).toMatchObject({deviceCount: 1, activePorts: 1, userspaceAccess: false, uverbsDevices: []})
    expect(c.gpudirect.data).toMatchObject({path: null, peerMemPaths: [], dmabuf: {openKernelModule: false}})
    expect(c.ucx.summary).toMatch(/^not captured/u)
    expect(report.headline).toMatch(/cannot open .* TCP \(across hosts\) only\.$/u)
  })
})
