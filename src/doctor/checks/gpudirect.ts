import {MachineFacts} from '../collect.js'
import {nvidiaGpus} from '../derive.js'
import {plural} from '../format.js'
import {kernelMajorMinor} from '../probes/kernel.js'
import {versionAtLeast} from '../probes/ucx-info.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'GPUDirect RDMA (peer memory or dma-buf)'

/** dma-buf import of GPU memory by an RDMA NIC: kernel >= 5.12, the open GPU kernel module, UCX >= 1.14. */
const DMABUF_MIN_KERNEL: readonly [number, number] = [5, 12]
const DMABUF_MIN_UCX = '1.14'

export function checkGpudirect(facts: MachineFacts): DoctorCheck {
  const gpus = nvidiaGpus(facts).length
  const nics = facts.rdma.length
  const k = facts.kernel
  const kernel = kernelMajorMinor(k.release)
  const kernelOk = kernel !== null && (kernel[0] > DMABUF_MIN_KERNEL[0] || (kernel[0] === DMABUF_MIN_KERNEL[0] && kernel[1] >= DMABUF_MIN_KERNEL[1]))
  const openModule = k.nvidiaDriver?.openKernelModule ?? false
  const ucxVersion = facts.ucx.version.ok ? facts.ucx.version.value.version : null
  const ucxDmabuf = facts.ucx.devices.ok && facts.ucx.devices.value.dmabuf
  const ucxOk = ucxDmabuf || (ucxVersion === null ? null : versionAtLeast(ucxVersion, DMABUF_MIN_UCX))
  const gdrcopy = k.modules.includes('gdrdrv')
  const peerMem = k.peerMemPaths
  const dmabufPossible = kernelOk && openModule
  const path = peerMem.length > 0 ? 'peer-memory' : dmabufPossible && ucxOk ? 'dma-buf' : null
  const data = {
    path,
    peerMemPaths: peerMem,
    dmabuf: {kernel: k.release, kernelOk, openKernelModule: openModule, ucxVersion, ucxOk},
    gdrcopy,
  }
  if (gpus === 0 || nics === 0) {
    const missing = [gpus === 0 ? 'no GPU' : undefined, nics === 0 ? 'no RDMA NIC' : undefined].filter(Boolean).join(' and ')
    return result('gpudirect', TITLE, 'skip', `does not apply: ${missing}`, data)
  }
  const gdrNote = gdrcopy ? ', gdrcopy loaded' : ''
  if (peerMem.length > 0) {
    return result('gpudirect', TITLE, 'ok', `peer memory available (${peerMem[0]})${gdrNote}`, data)
  }
  const pair = `${plural(gpus, 'GPU')} and ${plural(nics, 'RDMA NIC')}`
  if (dmabufPossible && ucxOk) {
    return result('gpudirect', TITLE, 'ok', `dma-buf path: kernel ${k.release}, open GPU kernel module, UCX ${ucxVersion ?? '(dmabuf listed)'}${gdrNote}`, data)
  }
  if (dmabufPossible && ucxOk === null) {
    return result('gpudirect', TITLE, 'warn', `${pair}; no peer-memory module; the kernel and open GPU module allow dma-buf but the UCX version is unknown`, data,
      `The dma-buf path needs UCX >= ${DMABUF_MIN_UCX}: check with \`ucx_info -v\`, or load nvidia-peermem.`)
  }
  const why = [
    'no peer-memory module (none of the 3 paths UCX probes exists)',
    dmabufPossible
      ? `dma-buf needs UCX >= ${DMABUF_MIN_UCX} but UCX is ${ucxVersion}`
      : `no dma-buf path (${!kernelOk ? `kernel ${k.release ?? 'unknown'} < 5.12` : 'proprietary GPU kernel module, dma-buf needs the open one'})`,
  ]
  return result('gpudirect', TITLE, 'fail', `${pair} but no GPUDirect RDMA: ${why.join('; ')}: transfers stage through host memory`, data,
    '`modprobe nvidia-peermem` (shipped with the NVIDIA driver), or use the open GPU kernel module on kernel >= 5.12 with UCX >= 1.14 (dma-buf, NVIDIA\'s recommendation).')
}
