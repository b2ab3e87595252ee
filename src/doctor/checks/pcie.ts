import {MachineFacts} from '../collect.js'
import {nvidiaGpus, rdmaNics} from '../derive.js'
import {plural} from '../format.js'
import {PciDevice} from '../probes/pci.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'PCIe links of GPUs and NICs'

export function checkPcie(facts: MachineFacts): DoctorCheck {
  const devices: {kind: 'gpu' | 'nic'; name: string; dev: PciDevice}[] = [
    ...nvidiaGpus(facts).map((dev) => ({kind: 'gpu' as const, name: `GPU ${dev.bdf}`, dev})),
    ...rdmaNics(facts).flatMap(({device, pci}) => (pci ? [{kind: 'nic' as const, name: `${device.name} (${pci.bdf})`, dev: pci}] : [])),
  ]
  const links = devices.map(({kind, name, dev}) => ({
    bdf: dev.bdf,
    kind,
    name,
    currentSpeedGTs: dev.link?.currentSpeedGTs ?? null,
    maxSpeedGTs: dev.link?.maxSpeedGTs ?? null,
    currentWidth: dev.link?.currentWidth ?? null,
    maxWidth: dev.link?.maxWidth ?? null,
    downgraded: dev.link ? dev.link.currentSpeedGTs < dev.link.maxSpeedGTs || dev.link.currentWidth < dev.link.maxWidth : null,
  }))
  const judged = links.filter((l) => l.downgraded !== null)
  const downgraded = judged.filter((l) => l.downgraded)
  const data = {links, downgraded: downgraded.length}
  if (devices.length === 0) return result('pcie', TITLE, 'skip', 'does not apply: no GPU or RDMA NIC', data)
  if (judged.length === 0) {
    return result('pcie', TITLE, 'skip', `${plural(devices.length, 'device')} but no link attributes in sysfs (current/max_link_speed/width)`, data,
      'Virtual machines often hide PCIe link state; check with `lspci -vv` (LnkSta/LnkCap) on the host.')
  }
  if (downgraded.length > 0) {
    const detail = downgraded.map((l) => `${l.name} runs ${l.currentSpeedGTs} GT/s x${l.currentWidth} of ${l.maxSpeedGTs} GT/s x${l.maxWidth}`)
    return result('pcie', TITLE, 'warn', `${downgraded.length} of ${plural(judged.length, 'link')} below maximum: ${detail.join('; ')}`, data,
      'A narrower link than the card supports means a bad seat, riser or BIOS lane split: reseat or fix the slot. A GPU lowers its link speed when idle, so re-check speed under load (`nvidia-smi -q -d PCIE`); width does not change with load.')
  }
  const kinds = [...new Set(judged.map((l) => `${l.maxSpeedGTs} GT/s x${l.maxWidth}`))].join(', ')
  return result('pcie', TITLE, 'ok', `${plural(judged.length, 'link')} at full speed and width (${kinds})`, data)
}
