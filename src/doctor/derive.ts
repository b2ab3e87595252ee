import {MachineFacts} from './collect.js'
import {PciDevice, isNvidiaGpu} from './probes/pci.js'
import {RdmaDevice, RdmaPort, isRoutableGid} from './probes/rdma.js'

/** Views over the facts that several checks share. */

export function nvidiaGpus(facts: MachineFacts): PciDevice[] {
  return facts.pci.filter(isNvidiaGpu)
}

export interface RdmaNic {
  readonly device: RdmaDevice
  /** The PCI function behind it, when it has one in the scan. */
  readonly pci: PciDevice | undefined
}

export function rdmaNics(facts: MachineFacts): RdmaNic[] {
  const byBdf = new Map(facts.pci.map((d) => [d.bdf, d]))
  return facts.rdma.map((device) => ({device, pci: device.bdf ? byBdf.get(device.bdf) : undefined}))
}

/** First routable RoCE v2 GID index of an Ethernet port (what UCX/NCCL/Mooncake pick), or null. */
export function roceV2GidIndex(port: RdmaPort): number | null {
  const gid = port.gids.find((g) => isRoutableGid(g) && (g.type === null || /v2/iu.test(g.type)))
  return gid ? gid.index : null
}

/** A port UCX can carry traffic on: up, and for RoCE, addressable. */
export function isUsablePort(port: RdmaPort): boolean {
  const up = port.state === 'ACTIVE' && port.physState === 'LinkUp'
  return up && (port.linkLayer !== 'Ethernet' || roceV2GidIndex(port) !== null)
}

/**
 * RDMA devices exist in sysfs but user space has no /dev/infiniband/uverbs* nodes to open them
 * (a container started without --device=/dev/infiniband, or ib_uverbs not loaded). Unknown (false)
 * when the capture has no /dev at all.
 */
export function rdmaUserspaceBlocked(facts: MachineFacts): boolean {
  const c = facts.container
  return facts.rdma.length > 0 && c.devListed && !c.devInfiniband.some((d) => d.startsWith('uverbs'))
}

/** Ports UCX could actually use: up, addressable, and openable from user space. */
export function usableRdmaPortCount(facts: MachineFacts): number {
  if (rdmaUserspaceBlocked(facts)) return 0
  return facts.rdma.reduce((n, d) => n + d.ports.filter(isUsablePort).length, 0)
}

/**
 * GPU↔NIC distance in `nvidia-smi topo -m` terms, best first:
 * PIX (one PCIe bridge apart), PXB (several bridges, no host bridge), PHB (through a host
 * bridge), NODE (different host bridges, same NUMA node), SYS (crosses the NUMA interconnect).
 */
export const PCI_DISTANCES = ['PIX', 'PXB', 'PHB', 'NODE', 'SYS'] as const
export type PciDistance = (typeof PCI_DISTANCES)[number]

export function pciDistance(a: PciDevice, b: PciDevice): PciDistance {
  const sameNuma = a.numaNode === null || b.numaNode === null || a.numaNode === b.numaNode
  if (a.pciPath.length === 0 || b.pciPath.length === 0 || a.pciPath[0] !== b.pciPath[0]) return sameNuma ? 'NODE' : 'SYS'
  let common = 0
  while (common < a.pciPath.length && common < b.pciPath.length && a.pciPath[common] === b.pciPath[common]) common++
  // Only the host bridge (pciDDDD:BB) in common: traffic turns at the root complex.
  if (common <= 1) return 'PHB'
  const bridgesBelowCommon = a.pciPath.length - common + (b.pciPath.length - common)
  // Siblings under one switch port hierarchy: the common parent is a bridge with both below it.
  return bridgesBelowCommon <= 2 ? 'PIX' : 'PXB'
}
