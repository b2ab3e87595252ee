import {RootFs} from '../root-fs.js'

/** Memory, hugepages and /dev/shm, from /proc/meminfo, /sys/kernel/mm and /proc/mounts. */
export interface MemoryFacts {
  readonly memTotalBytes: number | undefined
  readonly hugePagesTotal: number | undefined
  readonly hugePagesFree: number | undefined
  readonly hugePageSizeBytes: number | undefined
  /** Transparent hugepages mode: 'always' | 'madvise' | 'never' (the bracketed word). */
  readonly thpMode: string | undefined
  readonly shm: ShmFacts
}

export interface ShmFacts {
  /** False when /proc/mounts has no /dev/shm entry (UCX's posix transport then has nowhere to map); undefined when /proc/mounts is unreadable. */
  readonly mounted: boolean | undefined
  readonly fsType: string | undefined
  readonly sizeBytes: number | undefined
  /** Where sizeBytes came from. */
  readonly sizeSource: 'statfs' | 'mount-option' | 'tmpfs-default' | 'unknown'
}

export async function probeMemory(fs: RootFs): Promise<MemoryFacts> {
  const [meminfo, thp, mounts, statfsBytes] = await Promise.all([
    fs.readText('/proc/meminfo'),
    fs.readLine('/sys/kernel/mm/transparent_hugepage/enabled'),
    fs.readText('/proc/mounts'),
    fs.filesystemSizeBytes('/dev/shm'),
  ])
  const info = parseMeminfo(meminfo)
  const memTotalBytes = info.get('MemTotal')
  return {
    memTotalBytes,
    hugePagesTotal: info.get('HugePages_Total'),
    hugePagesFree: info.get('HugePages_Free'),
    hugePageSizeBytes: info.get('Hugepagesize'),
    thpMode: /\[(\w+)\]/u.exec(thp ?? '')?.[1],
    shm: shmFacts(mounts, statfsBytes, memTotalBytes),
  }
}

/** Values in bytes for 'kB' lines, plain counts otherwise. */
export function parseMeminfo(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of (text ?? '').split('\n')) {
    const m = /^(\w+):\s+(\d+)(\s+kB)?/u.exec(line)
    if (m) out.set(m[1], Number(m[2]) * (m[3] ? 1024 : 1))
  }
  return out
}

function shmFacts(mounts: string | undefined, statfsBytes: number | undefined, memTotalBytes: number | undefined): ShmFacts {
  if (mounts === undefined) return {mounted: undefined, fsType: undefined, sizeBytes: statfsBytes, sizeSource: statfsBytes === undefined ? 'unknown' : 'statfs'}
  // The last entry wins: a later mount over /dev/shm hides the earlier one.
  const entry = mounts
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[1] === '/dev/shm')
    .at(-1)
  if (!entry) return {mounted: false, fsType: undefined, sizeBytes: undefined, sizeSource: 'unknown'}
  const fsType = entry[2]
  if (statfsBytes !== undefined) return {mounted: true, fsType, sizeBytes: statfsBytes, sizeSource: 'statfs'}
  const sizeOption = (entry[3] ?? '').split(',').find((o) => o.startsWith('size='))
  if (sizeOption) return {mounted: true, fsType, sizeBytes: parseSizeOption(sizeOption.slice(5)), sizeSource: 'mount-option'}
  // tmpfs without size= gets half of RAM.
  if (fsType === 'tmpfs' && memTotalBytes !== undefined) {
    return {mounted: true, fsType, sizeBytes: Math.floor(memTotalBytes / 2), sizeSource: 'tmpfs-default'}
  }
  return {mounted: true, fsType, sizeBytes: undefined, sizeSource: 'unknown'}
}

/** tmpfs size= as /proc/mounts prints it: '65536k', '8g', '24683656k', or plain bytes. */
export function parseSizeOption(text: string): number | undefined {
  const m = /^(\d+)([kmg%]?)$/iu.exec(text)
  if (!m || m[2] === '%') return undefined
  const unit = {'': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3}[m[2].toLowerCase() as '' | 'k' | 'm' | 'g']
  return Number(m[1]) * unit
}
