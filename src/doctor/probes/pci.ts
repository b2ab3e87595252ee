import {RootFs} from '../root-fs.js'

/**
 * PCI scan of /sys/bus/pci/devices (the same scan NIXL's hw_info does): identities, NUMA node,
 * PCIe link state and the device's position in the PCI tree.
 */
export interface PcieLink {
  readonly currentSpeedGTs: number
  readonly maxSpeedGTs: number
  readonly currentWidth: number
  readonly maxWidth: number
}

export interface PciDevice {
  /** Domain:bus:device.function, lowercase as sysfs spells it: '0000:17:00.0'. */
  readonly bdf: string
  readonly vendorId: number
  readonly deviceId: number
  /** 24-bit class code, e.g. 0x030200 (3D controller). */
  readonly classCode: number
  /** null when the kernel reports -1 (no NUMA information). */
  readonly numaNode: number | null
  /** null when the device exposes no link attributes (virtual devices, root ports of some VMs). */
  readonly link: PcieLink | null
  /** Ancestors from the host bridge down, excluding the device: ['pci0000:00', '0000:00:01.0', '0000:01:00.0']. */
  readonly pciPath: readonly string[]
  /** Kernel driver bound to the device, if any ('nvidia', 'mlx5_core', 'virtio-pci'). */
  readonly driver: string | null
}

export const PCI_VENDOR_NVIDIA = 0x10de
export const PCI_VENDOR_AMAZON = 0x1d0f
export const PCI_VENDOR_MELLANOX = 0x15b3

/** NVIDIA VGA (0x0300) and 3D controllers (0x0302); the low byte is the programming interface. */
export function isNvidiaGpu(dev: PciDevice): boolean {
  const base = dev.classCode >> 8
  return dev.vendorId === PCI_VENDOR_NVIDIA && (base === 0x0300 || base === 0x0302)
}

/** AWS Elastic Fabric Adapter: vendor 0x1d0f, devices 0xefa0-0xefa3 (NIXL's check). */
export function isEfa(dev: PciDevice): boolean {
  return dev.vendorId === PCI_VENDOR_AMAZON && dev.deviceId >= 0xefa0 && dev.deviceId <= 0xefa3
}

export async function scanPci(fs: RootFs): Promise<PciDevice[]> {
  const bdfs = await fs.list('/sys/bus/pci/devices')
  return Promise.all(bdfs.map(async (bdf) => readPciDevice(fs, bdf)))
}

export async function readPciDevice(fs: RootFs, bdf: string): Promise<PciDevice> {
  const dir = `/sys/bus/pci/devices/${bdf}`
  const [vendor, device, klass, numa, curSpeed, maxSpeed, curWidth, maxWidth, real, driverPath] = await Promise.all([
    fs.readLine(`${dir}/vendor`),
    fs.readLine(`${dir}/device`),
    fs.readLine(`${dir}/class`),
    fs.readLine(`${dir}/numa_node`),
    fs.readLine(`${dir}/current_link_speed`),
    fs.readLine(`${dir}/max_link_speed`),
    fs.readLine(`${dir}/current_link_width`),
    fs.readLine(`${dir}/max_link_width`),
    fs.realMachinePath(dir),
    fs.realMachinePath(`${dir}/driver`),
  ])
  return {
    bdf,
    vendorId: parseHex(vendor),
    deviceId: parseHex(device),
    classCode: parseHex(klass),
    numaNode: parseNumaNode(numa),
    link: parseLink(curSpeed, maxSpeed, curWidth, maxWidth),
    pciPath: pciAncestors(real, bdf),
    driver: driverPath ? driverPath.split('/').pop() ?? null : null,
  }
}

function parseHex(text: string | undefined): number {
  const n = text === undefined ? Number.NaN : Number.parseInt(text, 16)
  return Number.isFinite(n) ? n : -1
}

export function parseNumaNode(text: string | undefined): number | null {
  const n = text === undefined ? Number.NaN : Number.parseInt(text, 10)
  return Number.isInteger(n) && n >= 0 ? n : null
}

/** '16.0 GT/s PCIe' / '8 GT/s' / '2.5 GT/s' → GT/s; 'Unknown' → NaN. */
export function parseLinkSpeedGTs(text: string | undefined): number {
  const m = /^([\d.]+)\s*GT\/s/u.exec(text ?? '')
  return m ? Number.parseFloat(m[1]) : Number.NaN
}

function parseLink(cs?: string, ms?: string, cw?: string, mw?: string): PcieLink | null {
  const link = {
    currentSpeedGTs: parseLinkSpeedGTs(cs),
    maxSpeedGTs: parseLinkSpeedGTs(ms),
    currentWidth: Number.parseInt(cw ?? '', 10),
    maxWidth: Number.parseInt(mw ?? '', 10),
  }
  // Width 0 or 255 means "unknown/not trained" in sysfs; such a device has no link to judge.
  const valid = Object.values(link).every((v) => Number.isFinite(v) && v > 0) && link.maxWidth < 255
  return valid ? link : null
}

/** '/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0' → ['pci0000:00', '0000:00:01.0'] for device 0000:01:00.0. */
export function pciAncestors(realPath: string | undefined, bdf: string): string[] {
  if (!realPath) return []
  const parts = realPath.split('/').filter(Boolean)
  const start = parts.findIndex((p) => p.startsWith('pci'))
  if (start < 0) return []
  const chain = parts.slice(start)
  if (chain.at(-1) === bdf) chain.pop()
  return chain
}
