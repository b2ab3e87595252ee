import {existsSync, readdirSync} from 'node:fs'
import {isIP} from 'node:net'
import {networkInterfaces, type NetworkInterfaceInfo} from 'node:os'
import {join} from 'node:path'

import {UsageError} from '../errors.js'
import {invalidArgument} from './errors.js'

/**
 * Where the agent's UCX may listen and connect: the network devices handed to UCX_NET_DEVICES.
 * UCX's tcp transport opens one listening socket per device and worker (the agent has two
 * workers), bound to that device's address, so naming devices is what keeps the agent off the
 * machine's other interfaces. Shared-memory transports are not network devices and are never
 * affected.
 */
export interface NetDeviceOptions {
  /** An IP address of this machine (or 'localhost'): the interface(s) carrying it. '0.0.0.0' / '::': every device. */
  readonly bindAddress?: string
  /** Interface names ('lo', 'eth0') or RDMA ports ('mlx5_0:1') directly. */
  readonly netDevices?: readonly string[]
}

/** What resolution reads from the machine; injectable for tests. */
export interface NetworkFacts {
  readonly interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>
  /** RDMA ports as UCX names them ('mlx5_0:1'). */
  readonly rdmaPorts: readonly string[]
}

/** Loopback: the default, as hpd's other listeners (issue 9: "loopback by default"). */
export const DEFAULT_BIND_ADDRESS = '127.0.0.1'

const DEVICE_NAME = /^[A-Za-z0-9_.-]{1,64}(:\d{1,3})?$/u

export function localNetworkFacts(sysfsRoot = '/sys'): NetworkFacts {
  const rdmaPorts: string[] = []
  const ib = join(sysfsRoot, 'class/infiniband')
  if (existsSync(ib)) {
    for (const dev of readdirSync(ib)) {
      const ports = join(ib, dev, 'ports')
      if (existsSync(ports)) for (const port of readdirSync(ports)) rdmaPorts.push(`${dev}:${port}`)
    }
  }
  return {interfaces: networkInterfaces(), rdmaPorts}
}

/**
 * The device list for UCX (empty: leave UCX's choice). Precedence: `netDevices`, then
 * `bindAddress`, then UCX_NET_DEVICES from the environment (UCX reads it itself), then loopback.
 *
 * A bind address names interfaces, not one address: UCX's tcp transport listens on one address
 * per interface (IPv4 first), so 'fd00::2' on eth0 may listen on eth0's IPv4 address. A
 * non-loopback address also keeps this machine's RDMA ports, which open no TCP socket and are
 * how GETs cross hosts where they exist.
 */
export function resolveNetDevices(options: NetDeviceOptions, env: NodeJS.ProcessEnv = process.env, facts?: NetworkFacts): readonly string[] {
  if (options.bindAddress !== undefined && options.netDevices !== undefined) {
    throw invalidArgument('bindAddress/netDevices', 'at most one of bindAddress and netDevices', 'both')
  }
  if (options.netDevices !== undefined) return checkDevices(options.netDevices, facts ?? localNetworkFacts())
  if (options.bindAddress === undefined && env.UCX_NET_DEVICES !== undefined) return []
  return devicesForAddress(options.bindAddress ?? DEFAULT_BIND_ADDRESS, facts ?? localNetworkFacts())
}

function checkDevices(devices: readonly string[], facts: NetworkFacts): readonly string[] {
  if (!Array.isArray(devices) || devices.length === 0 || devices.length > 64) {
    throw invalidArgument('netDevices', 'a non-empty array of at most 64 device names', devices)
  }
  devices.forEach((d, i) => {
    // No commas or spaces: the list is joined into one UCX value.
    if (typeof d !== 'string' || !DEVICE_NAME.test(d)) throw invalidArgument(`netDevices[${i}]`, "an interface name ('lo') or RDMA port ('mlx5_0:1')", d)
    if (facts.interfaces[d] === undefined && !facts.rdmaPorts.includes(d)) {
      throw new UsageError('HPD_TRANSPORT_NET_DEVICE_UNKNOWN', `netDevices[${i}] names '${d}', which is not a network interface or RDMA port of this machine`, {
        hint: `Local devices: ${[...Object.keys(facts.interfaces), ...facts.rdmaPorts].join(', ') || 'none'}.`,
      })
    }
  })
  return [...devices]
}

function devicesForAddress(address: string, facts: NetworkFacts): readonly string[] {
  // 'localhost' is loopback by definition (RFC 6761), no lookup needed.
  if (address === 'localhost') return devicesForAddress('127.0.0.1', facts)
  if (typeof address !== 'string' || isIP(stripZone(address)) === 0) {
    // Resolving a host name would need DNS, which create() (synchronous) cannot wait for.
    throw invalidArgument('bindAddress', 'an IPv4 or IPv6 address of this machine (or localhost)', address)
  }
  const wanted = normalize(address)
  if (wanted === '0.0.0.0' || wanted === normalize('::')) return []
  const names: string[] = []
  let internal = true
  for (const [name, addrs] of Object.entries(facts.interfaces)) {
    if (addrs?.some((a) => carries(a, wanted))) {
      names.push(name)
      internal &&= addrs.every((a) => a.internal)
    }
  }
  if (names.length === 0) {
    const local = Object.entries(facts.interfaces).flatMap(([name, addrs]) => (addrs ?? []).map((a) => `${a.address} (${name})`))
    throw new UsageError('HPD_TRANSPORT_BIND_ADDRESS_NOT_LOCAL', `bindAddress ${address} is not an address of any network interface of this machine`, {
      hint: `Pass an address this machine carries: ${local.join(', ') || 'none found'}; or 0.0.0.0 for every interface.`,
    })
  }
  return internal ? names : [...names, ...facts.rdmaPorts]
}

function carries(a: NetworkInterfaceInfo, wanted: string): boolean {
  if (normalize(a.address) === wanted) return true
  // The loopback interface answers for all of 127.0.0.0/8, not only the address it lists.
  return a.internal && a.family === 'IPv4' && a.address.startsWith('127.') && wanted.startsWith('127.')
}

function stripZone(address: string): string {
  const zone = address.indexOf('%')
  return zone < 0 ? address : address.slice(0, zone)
}

function normalize(address: string): string {
  const plain = stripZone(address).toLowerCase()
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/u.exec(plain)
  if (mapped) return mapped[1]
  if (isIP(plain) !== 6) return plain
  return expandIPv6(plain)
}

/** A canonical spelling of an IPv6 address ('::1' and '0:0::1' compare equal). */
function expandIPv6(address: string): string {
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const zeros = tail === undefined ? [] : Array.from({length: 8 - h.length - t.length}, () => '0')
  return [...h, ...zeros, ...t].map((g) => g.replace(/^0+(?=.)/u, '')).join(':')
}
