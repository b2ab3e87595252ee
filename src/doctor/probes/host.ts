import {RootFs} from '../root-fs.js'
import {parseMeminfo} from './memory.js'

/** OS, kernel, CPU and memory of the probed machine. */
export interface HostFacts {
  /** 'systeminformation' on a live machine; 'files' when reading a --root tree (systeminformation only sees this machine). */
  readonly source: 'systeminformation' | 'files'
  /** 'Debian GNU/Linux 12 (bookworm)' */
  readonly os: string | null
  readonly kernel: string | null
  readonly arch: string | null
  readonly cpuModel: string | null
  readonly logicalCpus: number | null
  /** All CPU flags as the kernel lists them; checks pick the SIMD ones. */
  readonly cpuFlags: readonly string[]
  readonly memTotalBytes: number | null
}

/** SIMD features that matter for hpd's CPU kernels and OpenBLAS, in the order shown. */
export const SIMD_FLAGS = [
  'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16',
  'asimd', 'sve',
] as const

export async function probeHost(fs: RootFs): Promise<HostFacts> {
  return fs.isLive ? probeLiveHost() : probeHostFiles(fs)
}

async function probeLiveHost(): Promise<HostFacts> {
  // Only the cheap calls: osInfo (~45 ms), cpu (~25 ms), mem (~3 ms). si.versions() spawns a
  // dozen tools (~1 s) and stays out.
  const {default: si} = await import('systeminformation')
  const [os, cpu, mem] = await Promise.all([si.osInfo(), si.cpu(), si.mem()])
  const flags = (cpu as {flags?: string}).flags ?? (await si.cpuFlags())
  return {
    source: 'systeminformation',
    os: [os.distro, os.release, os.codename ? `(${os.codename})` : ''].filter(Boolean).join(' ') || null,
    kernel: os.kernel || null,
    arch: os.arch || null,
    cpuModel: [cpu.manufacturer, cpu.brand].filter(Boolean).join(' ') || null,
    logicalCpus: cpu.cores || null,
    cpuFlags: flags.split(/\s+/u).filter(Boolean),
    memTotalBytes: mem.total || null,
  }
}

async function probeHostFiles(fs: RootFs): Promise<HostFacts> {
  const [osRelease, kernel, cpuinfo, meminfo] = await Promise.all([
    fs.readText('/etc/os-release'),
    fs.readLine('/proc/sys/kernel/osrelease'),
    fs.readText('/proc/cpuinfo'),
    fs.readText('/proc/meminfo'),
  ])
  const osName = /^PRETTY_NAME="?([^"\n]*)"?$/mu.exec(osRelease ?? '')?.[1] ?? null
  const cpuField = (name: string): string | undefined =>
    new RegExp(`^${name}\\s*:\\s*(.*)$`, 'mu').exec(cpuinfo ?? '')?.[1]?.trim()
  const processors = (cpuinfo ?? '').match(/^processor\s*:/gmu)?.length ?? 0
  const flags = cpuField('flags') ?? cpuField('Features') ?? ''
  const memTotal = parseMeminfo(meminfo).get('MemTotal')
  return {
    source: 'files',
    os: osName,
    kernel: kernel || null,
    arch: kernel ? (/(x86_64|amd64|aarch64|arm64)/u.exec(kernel)?.[1] ?? null) : null,
    cpuModel: cpuField('model name') ?? null,
    logicalCpus: processors || null,
    cpuFlags: flags.split(/\s+/u).filter(Boolean),
    memTotalBytes: memTotal ?? null,
  }
}
