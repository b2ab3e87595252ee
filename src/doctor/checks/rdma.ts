import {MachineFacts} from '../collect.js'
import {isUsablePort, rdmaNics, rdmaUserspaceBlocked, roceV2GidIndex} from '../derive.js'
import {plural} from '../format.js'
import {isEfa} from '../probes/pci.js'
import {RdmaPort} from '../probes/rdma.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'RDMA devices and ports'

/** Mooncake and most RoCE guides default to GID index 3 (RoCE v2 over IPv4). */
const CONVENTIONAL_ROCE_GID_INDEX = 3

export function checkRdma(facts: MachineFacts): DoctorCheck {
  const nics = rdmaNics(facts)
  const efa = facts.pci.filter(isEfa).map((d) => d.bdf)
  const devices = nics.map(({device, pci}) => ({
    name: device.name,
    fwVersion: device.fwVersion,
    bdf: device.bdf,
    numaNode: pci?.numaNode ?? null,
    ports: device.ports.map((p) => ({
      port: p.port,
      state: p.state,
      physState: p.physState,
      rateGbps: p.rateGbps,
      linkLayer: p.linkLayer,
      gids: p.gids,
      roceV2GidIndex: p.linkLayer === 'Ethernet' ? roceV2GidIndex(p) : null,
      usable: isUsablePort(p),
    })),
  }))
  const ports = facts.rdma.flatMap((d) => d.ports.map((p) => ({device: d.name, port: p})))
  const activePorts = ports.filter(({port}) => port.state === 'ACTIVE').length
  const usable = ports.filter(({port}) => isUsablePort(port))
  const blocked = rdmaUserspaceBlocked(facts)
  const data = {
    deviceCount: devices.length,
    // null: nothing to open, or a capture without /dev.
    userspaceAccess: devices.length > 0 && facts.container.devListed ? !blocked : null,
    uverbsDevices: facts.container.devInfiniband.filter((d) => d.startsWith('uverbs')),
    activePorts,
    usablePorts: usable.length,
    linkLayers: [...new Set(ports.map(({port}) => port.linkLayer))],
    maxRateGbps: usable.length > 0 ? Math.max(...usable.map(({port}) => port.rateGbps ?? 0)) : null,
    devices,
    efaDevices: efa,
  }
  if (devices.length === 0) {
    if (efa.length > 0) {
      return result('rdma', TITLE, 'warn', `${plural(efa.length, 'AWS EFA device')} on PCI but no RDMA device in /sys/class/infiniband`, data,
        'Load the efa kernel module. UCX does not drive EFA: transfers over it need libfabric (NIXL warns the same).')
    }
    return result('rdma', TITLE, 'warn', 'no RDMA device (/sys/class/infiniband absent or empty): hpd serve moves KV cache over shared memory (same host) or TCP (across hosts) only', data,
      'Fine on one host. For cross-host transfers at line rate, run on hosts with InfiniBand or RoCE NICs (in a container: --device=/dev/infiniband).')
  }
  const problems = ports.filter(({port}) => !isUsablePort(port)).map(({device, port}) => portProblem(device, port))
  const rates = [...new Set(usable.map(({port}) => `${port.linkLayer === 'Ethernet' ? 'RoCE' : port.linkLayer} ${port.rateGbps ?? '?'} Gb/s`))]
  const base = `${plural(devices.length, 'device')}, ${usable.length} of ${plural(ports.length, 'port')} usable${rates.length ? ` (${rates.join(', ')})` : ''}`
  if (efa.length > 0) problems.push(`${plural(efa.length, 'EFA device')}: UCX does not drive EFA (use libfabric)`)
  if (blocked) {
    const inContainer = facts.container.runtime !== null
    return result('rdma', TITLE, 'fail', `${base}, but /dev/infiniband has no uverbs device nodes: user space (UCX) cannot open them and falls back to TCP`, data,
      inContainer
        ? 'Start the container with --device=/dev/infiniband (and --ulimit memlock=-1).'
        : 'Load the user-space verbs module (`modprobe ib_uverbs`; rdma-core\'s udev rules create /dev/infiniband/uverbs*).')
  }
  if (usable.length === 0) {
    return result('rdma', TITLE, 'fail', `${base}: ${problems.join('; ')}`, data, portHint(ports.map(({port}) => port)))
  }
  if (problems.length > 0) {
    return result('rdma', TITLE, 'warn', `${base}; ${problems.join('; ')}`, data, portHint(ports.filter(({port}) => !isUsablePort(port)).map(({port}) => port)))
  }
  return result('rdma', TITLE, 'ok', base, data)
}

function portProblem(device: string, port: RdmaPort): string {
  const name = `${device} port ${port.port}`
  if (port.state !== 'ACTIVE' || port.physState !== 'LinkUp') return `${name} is ${port.state} (${port.physState})`
  const conventional = port.gids.some((g) => g.index === CONVENTIONAL_ROCE_GID_INDEX)
  return `${name} (RoCE) has no routable RoCE v2 GID${conventional ? '' : ` (GID index ${CONVENTIONAL_ROCE_GID_INDEX} is zero)`}`
}

function portHint(ports: readonly RdmaPort[]): string {
  const hints: string[] = []
  if (ports.some((p) => p.state !== 'ACTIVE' || p.physState !== 'LinkUp')) {
    hints.push('Bring the link up: check cables and the switch port; on InfiniBand a port stuck in INIT needs a subnet manager (opensm)')
  }
  if (ports.some((p) => p.state === 'ACTIVE' && p.linkLayer === 'Ethernet' && roceV2GidIndex(p) === null)) {
    hints.push('give the RoCE netdev an IP address (a zero GID means none is assigned; `rdma link` shows the netdev), then pick its RoCE v2 GID index')
  }
  if (hints.length === 0) hints.push('For EFA, use a libfabric transport; UCX does not drive it')
  return `${hints.join('; ')}.`
}
