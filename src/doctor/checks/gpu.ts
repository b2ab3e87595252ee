import {MachineFacts} from '../collect.js'
import {nvidiaGpus} from '../derive.js'
import {hex4, plural} from '../format.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'NVIDIA GPUs (PCI scan, driver, nvidia-smi)'

export function checkGpu(facts: MachineFacts): DoctorCheck {
  if (facts.pci.length === 0) {
    return result('gpu', TITLE, 'skip', `no PCI devices under ${facts.root === '/' ? '' : facts.root}/sys/bus/pci/devices: cannot scan for GPUs`, {count: 0},
      'Capture /sys/bus/pci/devices (with its symlink targets under /sys/devices) from the machine being described.')
  }
  const gpus = nvidiaGpus(facts)
  const driver = facts.kernel.nvidiaDriver
  const smi = facts.nvidiaSmi
  const smiByBdf = new Map(smi.ok ? smi.value.map((g) => [g.bdf, g]) : [])
  const listed = gpus.map((g) => {
    const s = smiByBdf.get(g.bdf)
    return {bdf: g.bdf, pciId: `10de:${hex4(g.deviceId)}`, name: s?.name ?? null, memoryMiB: s?.memoryMiB ?? null, numaNode: g.numaNode, driver: g.driver}
  })
  const data = {
    count: gpus.length,
    driverVersion: driver?.version ?? null,
    openKernelModule: driver?.openKernelModule ?? null,
    gpus: listed,
    nvidiaSmi: smi.ok ? {used: true, source: smi.source, count: smi.value.length} : {used: false, reason: smi.reason},
    pciDevicesScanned: facts.pci.length,
  }
  if (gpus.length === 0) {
    return result('gpu', TITLE, 'warn', `no NVIDIA GPU among ${plural(facts.pci.length, 'PCI device')}: hpd serve runs its CPU kernels`, data,
      'Fine for development and tests. For GPU serving, run on a machine with NVIDIA GPUs and the driver loaded.')
  }
  const names = [...new Set(listed.map((g) => g.name ?? `NVIDIA ${g.pciId}`))].join(', ')
  const smiNote = smi.ok ? '' : `; nvidia-smi skipped: ${smi.reason}`
  if (!driver) {
    return result('gpu', TITLE, 'fail', `${plural(gpus.length, 'NVIDIA GPU')} (${names}) but no NVIDIA kernel driver (/proc/driver/nvidia/version absent)`, data,
      'Install and load the NVIDIA driver (`modprobe nvidia`); in a container, start it with the NVIDIA Container Toolkit (`--gpus all`).')
  }
  const base = `${gpus.length} × ${names}, driver ${driver.version}${driver.openKernelModule ? ' (open kernel module)' : ''}`
  if (smi.ok && smi.value.length !== gpus.length) {
    return result('gpu', TITLE, 'warn', `${base}; nvidia-smi sees ${smi.value.length} of ${gpus.length}`, data,
      'A GPU on the bus that nvidia-smi does not list is fallen off the bus, disabled or held by another driver (vfio); see `dmesg | grep -i nvrm`.')
  }
  return result('gpu', TITLE, 'ok', `${base}${smiNote}`, data)
}
