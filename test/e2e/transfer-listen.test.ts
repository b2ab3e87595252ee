// Where the agent listens: UCX's tcp transport opens one listening socket per network device and
// worker (two workers per agent). An agent told loopback must have none on any other address,
// and two such agents must still move bytes over TCP. Sockets are read from the kernel:
// /proc/<pid>/fd names the process's socket inodes, /proc/net/tcp{,6} their state and address.
import {readdirSync, readFileSync, readlinkSync} from 'node:fs'
import {networkInterfaces} from 'node:os'

import {describe, expect, it} from 'vitest'

import {TransferAgent} from '../../src/transport/index.js'
import {ask, cleanUpAfterEach, startPeer} from './transfer-agent-harness.js'

cleanUpAfterEach()

interface Listener {
  readonly address: string
  readonly port: number
}

const TCP_LISTEN = '0A'

/** /proc/net/tcp6 prints an address as four 32-bit words, each in host (little-endian) order. */
function decodeAddress(hex: string): string {
  const words = hex.match(/.{8}/gu)!.map((w) => w.match(/../gu)!.reverse().join(''))
  if (words.length === 1) return words[0].match(/../gu)!.map((b) => parseInt(b, 16)).join('.')
  const groups = words.join('').match(/.{4}/gu)!.map((g) => parseInt(g, 16).toString(16))
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') {
    const v4 = words[3].match(/../gu)!.map((b) => parseInt(b, 16))
    return `::ffff:${v4.join('.')}`
  }
  return groups.join(':')
}

function listeners(pid: number): Listener[] {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/u.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) inodes.add(m[1])
    } catch {
      // closed between readdir and readlink
    }
  }
  const out: Listener[] = []
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/u)
      if (cols.length < 10 || cols[3] !== TCP_LISTEN || !inodes.has(cols[9])) continue
      const [addr, port] = cols[1].split(':')
      out.push({address: decodeAddress(addr), port: parseInt(port, 16)})
    }
  }
  return out
}

const isLoopback = (address: string): boolean => address.startsWith('127.') || address === '0:0:0:0:0:0:0:1' || address.startsWith('::ffff:127.')

describe('the agent listens only where it is told', () => {
  it.each(['tcp', 'auto'])('an agent told loopback (transport %s) has TCP listeners on loopback only; one told 0.0.0.0 also elsewhere', async (transport) => {
    const {ready} = await startPeer({PEER_NAME: 'bound-lo', PEER_TRANSPORT: transport, PEER_BIND_ADDRESS: '127.0.0.1'})
    const bound = listeners(ready.pid)
    expect(bound.length).toBeGreaterThanOrEqual(2) // the main and the bulk worker
    expect(bound.filter((l) => !isLoopback(l.address))).toEqual([])

    // Not a vacuous check: told every interface, the same agent listens beyond loopback (on a
    // machine that has another interface with an address).
    const elsewhere = Object.values(networkInterfaces()).some((addrs) => addrs?.some((a) => !a.internal && !a.address.startsWith('fe80')))
    const {ready: open} = await startPeer({PEER_NAME: 'bound-all', PEER_TRANSPORT: transport, PEER_BIND_ADDRESS: '0.0.0.0'})
    expect(listeners(open.pid).some((l) => !isLoopback(l.address))).toBe(elsewhere)
  })

  it('two agents told loopback still transfer over TCP, and neither listens elsewhere', async () => {
    const size = 4 << 20
    const env = {PEER_TRANSPORT: 'tcp', PEER_BIND_ADDRESS: '127.0.0.1', PEER_REGION_BYTES: String(size)}
    const {ready: owner} = await startPeer({...env, PEER_NAME: 'lo-owner'})
    const {child: reader, ready: readerReady} = await startPeer({...env, PEER_NAME: 'lo-reader'})
    const result = await ask<{bytes?: number; mismatch?: unknown; error?: unknown}>(reader, {
      op: 'read-once',
      metadata: owner.metadata,
      region: owner.region.id,
      offsetBytes: 0,
      sizeBytes: size,
      grant: owner.grant,
      timeoutMs: 10_000,
    })
    expect(result).toMatchObject({bytes: size, mismatch: null})
    expect(result.error).toBeUndefined()
    for (const pid of [owner.pid, readerReady.pid]) expect(listeners(pid).filter((l) => !isLoopback(l.address))).toEqual([])
  })

  it('refuses a bind address this machine does not carry, before creating anything', () => {
    expect(() => TransferAgent.create({name: 'nowhere', bindAddress: '203.0.113.9'})).toThrow(
      expect.objectContaining({code: 'HPD_TRANSPORT_BIND_ADDRESS_NOT_LOCAL', exitCode: 2}),
    )
  })
})
