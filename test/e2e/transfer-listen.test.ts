// Where the agent listens: UCX's tcp transport opens one listening socket per network device and
// worker (two workers per agent). An agent told loopback must have none on any other address,
// and two such agents must still move bytes over TCP. Sockets are read from the kernel:
// /proc/<pid>/fd names the process's socket inodes, /proc/net/tcp{,6} their state and address.
import {networkInterfaces} from 'node:os'

import {describe, expect, it} from 'vitest'

import {TransferAgent} from '../../src/transport/index.js'
import {isLoopback, listeners} from './proc-sockets.js'
import {ask, cleanUpAfterEach, startPeer} from './transfer-agent-harness.js'

cleanUpAfterEach()

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
