import {MachineFacts} from '../collect.js'
import {PCI_DISTANCES, PciDistance, nvidiaGpus, pciDistance, rdmaNics} from '../derive.js'
import {plural} from '../format.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'GPU ↔ RDMA NIC affinity (NUMA node, PCI path)'

export function checkNumaAffinity(facts: MachineFacts): DoctorCheck {
  const gpus = nvidiaGpus(facts)
  const nics = rdmaNics(facts).flatMap(({device, pci}) => (pci ? [{name: device.name, pci}] : []))
  if (gpus.length === 0 || nics.length === 0) {
    const missing = [gpus.length === 0 ? 'no GPU' : undefined, nics.length === 0 ? 'no RDMA NIC on PCI' : undefined].filter(Boolean).join(' and ')
    return result('numa-affinity', TITLE, 'skip', `does not apply: ${missing}`, {pairs: [], gpusWithoutLocalNic: 0})
  }
  const rank = (d: PciDistance): number => PCI_DISTANCES.indexOf(d)
  const pairs = gpus.map((gpu) => {
    const nearest = nics
      .map((nic) => ({nic, distance: pciDistance(gpu, nic.pci)}))
      .sort((a, b) => rank(a.distance) - rank(b.distance) || a.nic.name.localeCompare(b.nic.name))[0]
    const localNic = gpu.numaNode === null || nics.some((n) => n.pci.numaNode === null || n.pci.numaNode === gpu.numaNode)
    return {
      gpu: gpu.bdf,
      gpuNumaNode: gpu.numaNode,
      nic: nearest.nic.name,
      nicNumaNode: nearest.nic.pci.numaNode,
      distance: nearest.distance,
      localNic,
    }
  })
  const remote = pairs.filter((p) => !p.localNic)
  const data = {pairs, gpusWithoutLocalNic: remote.length}
  if (remote.length > 0) {
    const detail = remote.map((p) => `GPU ${p.gpu} (NUMA ${p.gpuNumaNode}) → nearest ${p.nic} (NUMA ${p.nicNumaNode}, ${p.distance})`)
    return result('numa-affinity', TITLE, 'warn', `${remote.length} of ${plural(gpus.length, 'GPU')} have no RDMA NIC on their NUMA node: ${detail.join('; ')}`, data,
      'Traffic then crosses the socket interconnect. Move the NIC or GPU to the same socket, or give each worker the NIC nearest its GPU (UCX_NET_DEVICES=<nic>:1) and bind it with `numactl --cpunodebind=<node>`.')
  }
  const counts = PCI_DISTANCES.map((d) => [d, pairs.filter((p) => p.distance === d).length] as const).filter(([, n]) => n > 0)
  return result('numa-affinity', TITLE, 'ok', `every GPU has an RDMA NIC on its NUMA node (nearest: ${counts.map(([d, n]) => `${n} × ${d}`).join(', ')})`, data)
}
