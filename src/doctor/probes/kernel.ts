import {RootFs} from '../root-fs.js'

/** Kernel release, NVIDIA kernel driver and the GPUDirect RDMA modules. */
export interface KernelFacts {
  /** '6.1.0-18-amd64'; null when /proc/sys/kernel/osrelease is absent (a partial capture). */
  readonly release: string | null
  readonly nvidiaDriver: NvidiaDriver | null
  /** Which of the three files UCX probes for peer memory exist (src/uct/ib/base/ib_md.c). */
  readonly peerMemPaths: readonly string[]
  /** Loaded modules of interest from /proc/modules. */
  readonly modules: readonly string[]
}

export interface NvidiaDriver {
  /** '550.54.15' */
  readonly version: string
  /** The open GPU kernel module (needed for the dma-buf GPUDirect path) vs the proprietary one. */
  readonly openKernelModule: boolean
}

/** The exact three paths UCX checks before it enables GPUDirect RDMA through peer memory. */
export const PEER_MEM_PATHS = [
  '/sys/kernel/mm/memory_peers/nv_mem/version',
  '/sys/module/nvidia_peermem/version',
  '/sys/module/nv_peer_mem/version',
] as const

const MODULES_OF_INTEREST = new Set(['nvidia', 'nvidia_peermem', 'nv_peer_mem', 'gdrdrv', 'ib_core', 'mlx5_ib', 'rdma_rxe', 'siw'])

export async function probeKernel(fs: RootFs): Promise<KernelFacts> {
  const [release, nvidiaVersion, modules, ...peer] = await Promise.all([
    fs.readLine('/proc/sys/kernel/osrelease'),
    fs.readText('/proc/driver/nvidia/version'),
    fs.readText('/proc/modules'),
    ...PEER_MEM_PATHS.map(async (p): Promise<string | undefined> => ((await fs.exists(p)) ? p : undefined)),
  ])
  return {
    release: release || null,
    nvidiaDriver: parseNvidiaVersion(nvidiaVersion),
    peerMemPaths: (peer as (string | undefined)[]).filter((p): p is string => p !== undefined),
    modules: parseModules(modules).filter((m) => MODULES_OF_INTEREST.has(m)),
  }
}

/**
 * /proc/driver/nvidia/version, e.g.
 *   NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024
 *   NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build ...
 */
export function parseNvidiaVersion(text: string | undefined): NvidiaDriver | null {
  const line = text?.split('\n').find((l) => l.startsWith('NVRM version:'))
  if (!line) return null
  const version = /\b(\d+\.\d+(?:\.\d+)?)\b/u.exec(line.replace(/x86_64|aarch64/gu, ''))
  return {version: version ? version[1] : 'unknown', openKernelModule: /Open Kernel Module/u.test(line)}
}

export function parseModules(text: string | undefined): string[] {
  return (text ?? '')
    .split('\n')
    .map((l) => l.split(' ', 1)[0])
    .filter(Boolean)
}

/** '6.1.0-18-amd64' → [6, 1]; null if unparsable. */
export function kernelMajorMinor(release: string | null): readonly [number, number] | null {
  const m = /^(\d+)\.(\d+)/u.exec(release ?? '')
  return m ? [Number(m[1]), Number(m[2])] : null
}
