import {MachineFacts} from '../collect.js'
import {nvidiaGpus, rdmaNics} from '../derive.js'
import {plural} from '../format.js'
import {PciDevice} from '../probes/pci.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'PCIe links of GPUs and NICs'

const GEN1_SPEED_GTS = 2.5

export function checkPcie(facts: MachineFacts): DoctorCheck {
  const devices: {kind: 'gpu' | 'nic'; name: string; dev: PciDevice}[] = [
    ...nvidiaGpus(facts).map((dev) => ({kind: 'gpu' as const, name: `GPU ${dev.bdf}`, dev})),
    ...rdmaNics(facts).flatMap(({device, pci}) => (pci ? [{kind: 'nic' as const, name: `${device.name} (${pci.bdf})`, dev: pci}] : [])),
  ]
  const links = devices.map(({kind, name, dev}) => {
    const l = dev.link
    // An idle NVIDIA GPU drops its link to Gen1 (2.5 GT/s) to save power and retrains under load;
    // that alone is not a fault. Any other speed below maximum, or any narrower width, is.
    const idleDownshift = l !== null && kind === 'gpu' && l.currentSpeedGTs === GEN1_SPEED_GTS && l.maxSpeedGTs > GEN1_SPEED_GTS && l.currentWidth >= l.maxWidth
    return {
      bdf: dev.bdf,
      kind,
      name,
      currentSpeedGTs: l?.currentSpeedGTs ?? null,
      maxSpeedGTs: l?.maxSpeedGTs ?? null,
      currentWidth: l?.currentWidth ?? null,
      maxWidth: l?.maxWidth ?? null,
      idleDownshift,
      downgraded: l ? !idleDownshift && (l.currentSpeedGTs < l.maxSpeedGTs || l.currentWidth < l.maxWidth) : null,
    }
  })
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
      'A narrower or slower link than card and slot support means a bad seat, riser, BIOS lane split or PCIe generation setting: reseat or fix the slot. Check under load with `nvidia-smi -q -d PCIE` or `lspci -vv` (LnkSta vs LnkCap).')
  }
  const kinds = [...new Set(judged.map((l) => `${l.maxSpeedGTs} GT/s x${l.maxWidth}`))].join(', ')
  const idle = judged.filter((l) => l.idleDownshift).length
  const idleNote = idle > 0 ? `; ${plural(idle, 'idle GPU')} at 2.5 GT/s (power saving, retrains under load)` : ''
  return result('pcie', TITLE, 'ok', `${plural(judged.length, 'link')} at full speed and width (${kinds})${idleNote}`, data)
}
