import {RootFs} from '../root-fs.js'

/**
 * RDMA devices and ports from /sys/class/infiniband (kernel ABI
 * Documentation/ABI/stable/sysfs-class-infiniband), read without ibverbs-utils so it also works
 * inside containers that lack them.
 */
export interface RdmaGid {
  readonly index: number
  /** As sysfs prints it: eight colon-separated 16-bit groups. */
  readonly gid: string
  /** 'IB/RoCE v1' or 'RoCE v2' (gid_attrs/types), null when the kernel does not say. */
  readonly type: string | null
}

export interface RdmaPort {
  readonly port: number
  /** 'ACTIVE', 'DOWN', 'INIT', 'ARMED' ... ('4: ACTIVE' without the number). */
  readonly state: string
  /** 'LinkUp', 'Polling', 'Disabled' ... */
  readonly physState: string
  /** Signalling rate in Gb/s ('400 Gb/sec (4X NDR)' → 400), null when unreadable. */
  readonly rateGbps: number | null
  /** 'InfiniBand' or 'Ethernet' (RoCE); EFA reports 'Unspecified'. */
  readonly linkLayer: string
  /** Only the non-zero GIDs: unused table slots read as all zeros. */
  readonly gids: readonly RdmaGid[]
}

export interface RdmaDevice {
  readonly name: string
  readonly fwVersion: string | null
  /** PCI function behind the device (from the `device` link), null for software devices (rxe, siw). */
  readonly bdf: string | null
  readonly ports: readonly RdmaPort[]
}

export const IB_CLASS_DIR = '/sys/class/infiniband'
const ZERO_GID = /^[0:]+$/u

export async function scanRdma(fs: RootFs): Promise<RdmaDevice[]> {
  const names = await fs.list(IB_CLASS_DIR)
  return Promise.all(names.map(async (name) => readDevice(fs, name)))
}

async function readDevice(fs: RootFs, name: string): Promise<RdmaDevice> {
  const dir = `${IB_CLASS_DIR}/${name}`
  const [fwVersion, devicePath, portNames] = await Promise.all([
    fs.readLine(`${dir}/fw_ver`),
    fs.realMachinePath(`${dir}/device`),
    fs.list(`${dir}/ports`),
  ])
  const bdfCandidate = devicePath?.split('/').pop()
  const bdf = bdfCandidate && /^[\da-f]{4}:[\da-f]{2}:[\da-f]{2}\.[\da-f]$/u.test(bdfCandidate) ? bdfCandidate : null
  const ports = await Promise.all(
    portNames.filter((p) => /^\d+$/u.test(p)).map(async (p) => readPort(fs, `${dir}/ports/${p}`, Number(p))),
  )
  return {name, fwVersion: fwVersion ?? null, bdf, ports: ports.sort((a, b) => a.port - b.port)}
}

async function readPort(fs: RootFs, dir: string, port: number): Promise<RdmaPort> {
  const [state, physState, rate, linkLayer, gidNames] = await Promise.all([
    fs.readLine(`${dir}/state`),
    fs.readLine(`${dir}/phys_state`),
    fs.readLine(`${dir}/rate`),
    fs.readLine(`${dir}/link_layer`),
    fs.list(`${dir}/gids`),
  ])
  const gids = await Promise.all(
    gidNames.map(async (i) => {
      const gid = await fs.readLine(`${dir}/gids/${i}`)
      if (!gid || ZERO_GID.test(gid)) return undefined
      // gid_attrs/types/<i> refuses reads (EINVAL) for empty slots, so only ask for populated ones.
      const type = await fs.readLine(`${dir}/gid_attrs/types/${i}`)
      return {index: Number(i), gid, type: type ?? null}
    }),
  )
  return {
    port,
    state: stripEnumPrefix(state) ?? 'UNKNOWN',
    physState: stripEnumPrefix(physState) ?? 'UNKNOWN',
    rateGbps: parseRateGbps(rate),
    linkLayer: linkLayer ?? 'UNKNOWN',
    gids: gids.filter((g): g is RdmaGid => g !== undefined).sort((a, b) => a.index - b.index),
  }
}

/** '4: ACTIVE' → 'ACTIVE'. */
function stripEnumPrefix(text: string | undefined): string | undefined {
  return text?.replace(/^\d+:\s*/u, '')
}

/** '400 Gb/sec (4X NDR)' → 400; '2.5 Gb/sec (1X SDR)' → 2.5. */
export function parseRateGbps(text: string | undefined): number | null {
  const m = /^([\d.]+)\s*Gb\/sec/u.exec(text ?? '')
  return m ? Number.parseFloat(m[1]) : null
}

/** Routable RoCE v2 GIDs: IPv4-mapped or global IPv6, not the fe80:: link-local one derived from the MAC. */
export function isRoutableGid(gid: RdmaGid): boolean {
  return !gid.gid.toLowerCase().startsWith('fe80:')
}
