import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {describe, expect, it} from 'vitest'

import {kernelMajorMinor, parseNvidiaVersion} from './probes/kernel.js'
import {parseMemlock} from './probes/limits.js'
import {parseMeminfo, parseSizeOption} from './probes/memory.js'
import {normaliseBusId, parseNvidiaSmiCsv} from './probes/nvidia-smi.js'
import {parseLinkSpeedGTs, pciAncestors} from './probes/pci.js'
import {parseRateGbps} from './probes/rdma.js'
import {parseUcxDevices, parseUcxSize, parseUcxVersion, versionAtLeast} from './probes/ucx-info.js'

const FIXTURES_DIR = fileURLToPath(new URL('../../test/fixtures/doctor/', import.meta.url))

describe('ucx_info parsing', () => {
  it('reads the 1.13 `-v` format and the >= 1.14 one', () => {
    const v113 = readFileSync(`${FIXTURES_DIR}cpu-only/.hpd-doctor/ucx_info-v.txt`, 'utf8')
    expect(parseUcxVersion(v113)).toMatchObject({version: '1.13.1'})
    expect(parseUcxVersion(v113)?.configureFlags).toContain('--with-verbs')
    expect(parseUcxVersion('# Library version: 1.16.0\n# Library path: /x\n# API headers version: 1.16.0\n# Configured with: --with-cuda=/usr/local/cuda')).toEqual({
      version: '1.16.0',
      configureFlags: ['--with-cuda=/usr/local/cuda'],
    })
    expect(parseUcxVersion('ucx_info: command garbled')).toBeUndefined()
  })

  it('reads transports, devices, failures and tcp segment sizes from real `ucx_info -d` output of this machine', () => {
    const d = parseUcxDevices(readFileSync(`${FIXTURES_DIR}cpu-only/.hpd-doctor/ucx_info-d.txt`, 'utf8'))
    expect(d?.memoryDomains).toEqual(['self', 'tcp', 'sysv', 'posix', 'cma'])
    expect(d?.transports.find((t) => t.name === 'tcp')?.devices).toEqual(['eth0', 'lo'])
    expect(d?.failures).toEqual(['failed to open connection manager rdmacm'])
    expect(d).toMatchObject({tcpTxSegBytes: 8192, tcpRxSegBytes: 65536, dmabuf: false})
  })

  it('sees tuned segments as UCX prints them under UCX_TCP_TX_SEG_SIZE=256k', () => {
    const text = '# Memory domain: tcp\n#      Transport: tcp\n#         Device: lo\n#             am_bcopy: <= 256K\n#             am_zcopy: <= 256K, up to 6 iov\n'
    expect(parseUcxDevices(text)).toMatchObject({tcpTxSegBytes: 256 * 1024, tcpRxSegBytes: 256 * 1024})
  })

  it('parses sizes and compares versions', () => {
    expect(parseUcxSize('<= 8K')).toBe(8192)
    expect(parseUcxSize('<= 64K, up to 6 iov')).toBe(65536)
    expect(parseUcxSize('<= 8256')).toBe(8256)
    expect(parseUcxSize('unlimited')).toBe(Number.POSITIVE_INFINITY)
    expect(versionAtLeast('1.13.1', '1.14')).toBe(false)
    expect(versionAtLeast('1.14.0', '1.14')).toBe(true)
    expect(versionAtLeast('2.0', '1.14')).toBe(true)
  })
})

describe('procfs and sysfs parsing', () => {
  it('reads memlock limits, unlimited included', () => {
    const limits = 'Limit  Soft Limit  Hard Limit  Units\nMax locked memory         8388608              8388608              bytes     \n'
    expect(parseMemlock(limits)).toEqual({softBytes: 8388608, hardBytes: 8388608})
    expect(parseMemlock('Max locked memory         unlimited            unlimited            bytes')).toEqual({softBytes: null, hardBytes: null})
    expect(parseMemlock('Max open files 1024 1024 files')).toBeUndefined()
  })

  it('reads the NVIDIA driver version and which kernel module it is', () => {
    expect(parseNvidiaVersion('NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n')).toEqual({
      version: '550.54.15',
      openKernelModule: false,
    })
    expect(parseNvidiaVersion('NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release Build\n')).toEqual({
      version: '560.35.03',
      openKernelModule: true,
    })
    expect(parseNvidiaVersion(undefined)).toBeNull()
    expect(kernelMajorMinor('5.15.0-105-generic')).toEqual([5, 15])
    expect(kernelMajorMinor(null)).toBeNull()
  })

  it('reads meminfo in bytes and tmpfs size options', () => {
    const m = parseMeminfo('MemTotal:       24683656 kB\nHugePages_Total:      16\nHugepagesize:       2048 kB\n')
    expect(m.get('MemTotal')).toBe(24683656 * 1024)
    expect(m.get('HugePages_Total')).toBe(16)
    expect(parseSizeOption('65536k')).toBe(64 * 1024 * 1024)
    expect(parseSizeOption('8g')).toBe(8 * 1024 ** 3)
    expect(parseSizeOption('50%')).toBeUndefined()
  })

  it('reads PCIe speeds, IB rates and PCI ancestry', () => {
    expect(parseLinkSpeedGTs('16.0 GT/s PCIe')).toBe(16)
    expect(parseLinkSpeedGTs('2.5 GT/s')).toBe(2.5)
    expect(parseLinkSpeedGTs('Unknown')).toBeNaN()
    expect(parseRateGbps('400 Gb/sec (4X NDR)')).toBe(400)
    expect(parseRateGbps('2.5 Gb/sec (1X SDR)')).toBe(2.5)
    expect(parseRateGbps(undefined)).toBeNull()
    expect(pciAncestors('/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0', '0000:01:00.0')).toEqual(['pci0000:00', '0000:00:01.0'])
    expect(pciAncestors('/sys/devices/platform/soc/pci0000:00/0000:00:00.0', '0000:00:00.0')).toEqual(['pci0000:00'])
  })

  it('reads nvidia-smi csv and normalises its bus ids to sysfs spelling', () => {
    expect(normaliseBusId('00000000:1A:00.0')).toBe('0000:1a:00.0')
    expect(parseNvidiaSmiCsv('0, 00000000:1A:00.0, NVIDIA H100 80GB HBM3, 550.54.15, 81559\n')).toEqual([
      {index: 0, bdf: '0000:1a:00.0', name: 'NVIDIA H100 80GB HBM3', driverVersion: '550.54.15', memoryMiB: 81559},
    ])
    expect(parseNvidiaSmiCsv('NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.')).toBeUndefined()
  })
})
