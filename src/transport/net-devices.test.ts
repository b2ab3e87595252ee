// Where the agent may listen: bind addresses and device names resolved against a fixed picture
// of the machine's interfaces (what os.networkInterfaces() and /sys/class/infiniband say).
import type {NetworkInterfaceInfo} from 'node:os'

import {describe, expect, it} from 'vitest'

import {UsageError} from '../errors.js'
import {type NetworkFacts, resolveNetDevices} from './net-devices.js'
import {resolveAgentOptions} from './options.js'

function iface(address: string, family: 'IPv4' | 'IPv6', internal = false): NetworkInterfaceInfo {
  return {address, family, internal, netmask: '', mac: '00:00:00:00:00:00', cidr: null, ...(family === 'IPv6' ? {scopeid: 0} : {})} as NetworkInterfaceInfo
}

const facts: NetworkFacts = {
  interfaces: {
    lo: [iface('127.0.0.1', 'IPv4', true), iface('::1', 'IPv6', true)],
    eth0: [iface('192.0.2.2', 'IPv4'), iface('fd00::2', 'IPv6'), iface('fe80::fc:ff:fe00:1', 'IPv6')],
    eth1: [iface('198.18.0.7', 'IPv4')],
  },
  rdmaPorts: ['mlx5_0:1'],
}
const noEnv = {}

describe('resolveNetDevices', () => {
  it('defaults to loopback, unless UCX_NET_DEVICES in the environment already says', () => {
    expect(resolveNetDevices({}, noEnv, facts)).toEqual(['lo'])
    expect(resolveNetDevices({}, {UCX_NET_DEVICES: 'eth1'}, facts)).toEqual([])
    // An explicit choice beats the environment: it is a boundary, not a tuning.
    expect(resolveNetDevices({bindAddress: '127.0.0.1'}, {UCX_NET_DEVICES: 'all'}, facts)).toEqual(['lo'])
  })

  it('maps an address to the interface carrying it; loopback stays loopback, others keep the RDMA ports', () => {
    expect(resolveNetDevices({bindAddress: '::1'}, noEnv, facts)).toEqual(['lo'])
    expect(resolveNetDevices({bindAddress: 'localhost'}, noEnv, facts)).toEqual(['lo'])
    expect(resolveNetDevices({bindAddress: '127.0.0.53'}, noEnv, facts)).toEqual(['lo'])
    expect(resolveNetDevices({bindAddress: '192.0.2.2'}, noEnv, facts)).toEqual(['eth0', 'mlx5_0:1'])
    expect(resolveNetDevices({bindAddress: 'FD00:0::2'}, noEnv, facts)).toEqual(['eth0', 'mlx5_0:1'])
    expect(resolveNetDevices({bindAddress: 'fe80::fc:ff:fe00:1%eth0'}, noEnv, facts)).toEqual(['eth0', 'mlx5_0:1'])
    expect(resolveNetDevices({bindAddress: '::ffff:198.18.0.7'}, noEnv, facts)).toEqual(['eth1', 'mlx5_0:1'])
    expect(resolveNetDevices({bindAddress: '0.0.0.0'}, noEnv, facts)).toEqual([])
    expect(resolveNetDevices({bindAddress: '::'}, noEnv, facts)).toEqual([])
  })

  it('refuses an address no local interface carries, and host names, with typed errors', () => {
    let error: unknown
    try {
      resolveNetDevices({bindAddress: '10.9.8.7'}, noEnv, facts)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(UsageError)
    expect(error).toMatchObject({code: 'HPD_TRANSPORT_BIND_ADDRESS_NOT_LOCAL', exitCode: 2})
    expect((error as Error).message).toBe('bindAddress 10.9.8.7 is not an address of any network interface of this machine')
    expect((error as UsageError).hint).toContain('192.0.2.2 (eth0)')
    expect(() => resolveNetDevices({bindAddress: 'example.com'}, noEnv, facts)).toThrow(/an IPv4 or IPv6 address of this machine \(or localhost\) for bindAddress/)
  })

  it('takes device names as given, but only names of this machine, without list separators', () => {
    expect(resolveNetDevices({netDevices: ['lo', 'mlx5_0:1']}, noEnv, facts)).toEqual(['lo', 'mlx5_0:1'])
    expect(() => resolveNetDevices({netDevices: ['wlan0']}, noEnv, facts)).toThrow(expect.objectContaining({code: 'HPD_TRANSPORT_NET_DEVICE_UNKNOWN'}))
    expect(() => resolveNetDevices({netDevices: ['lo,eth0']}, noEnv, facts)).toThrow(/netDevices\[0\]/)
    expect(() => resolveNetDevices({netDevices: []}, noEnv, facts)).toThrow(/non-empty array/)
    expect(() => resolveNetDevices({netDevices: ['lo'], bindAddress: '127.0.0.1'}, noEnv, facts)).toThrow(/at most one of bindAddress and netDevices/)
  })

  it('is part of the agent options, next to the grant requirement', () => {
    const resolved = resolveAgentOptions({name: 'x', bindAddress: '192.0.2.2'}, noEnv, facts)
    expect(resolved).toMatchObject({netDevices: ['eth0', 'mlx5_0:1'], servedReadsRequireGrant: true})
    expect(resolveAgentOptions({name: 'x', servedReadsRequireGrant: false}, noEnv, facts).servedReadsRequireGrant).toBe(false)
    expect(() => resolveAgentOptions({name: 'x', servedReadsRequireGrant: 'no' as never}, noEnv, facts)).toThrow(/a boolean for servedReadsRequireGrant/)
  })
})
