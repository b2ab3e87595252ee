// Two real processes, real UCX: this process holds one TransferAgent, a forked child
// (transfer-agent-peer.ts) holds the other. Proves one-sided reads of allocated and registered
// memory over shared memory and TCP, merging, notifications both ways, peer death as a typed
// error, and close().
import {readdirSync, readFileSync} from 'node:fs'

import {describe, expect, it} from 'vitest'

import {fillPattern, type Peer, type TransferAgent, TransportError, verifyPattern} from '../../src/transport/index.js'
import {cleanUpAfterEach, makeAgent, nextMessage, type Ready, startPeer as startAnyPeer} from './transfer-agent-harness.js'

const REGION_BYTES = 4 << 20

cleanUpAfterEach()

const startPeer = (env: Record<string, string>) => startAnyPeer({PEER_REGION_BYTES: String(REGION_BYTES), ...env})

/** SIGSTOP takes effect asynchronously: wait (bounded) until /proc says every thread stopped. */
async function waitUntilStopped(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const tasks = readdirSync(`/proc/${pid}/task`)
    if (tasks.every((t) => /^\d+ \(.*\) [tT] /su.test(readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8')))) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`process ${pid} did not stop`)
}

/** Reads the peer's region in 64 KiB descriptors, some pairs permuted so they cannot merge. */
async function readAndVerify(agent: TransferAgent, peer: Peer, ready: Ready): Promise<{runs: number; descriptors: number}> {
  const local = agent.allocRegion(REGION_BYTES)
  const chunk = 64 << 10
  const count = REGION_BYTES / chunk
  const descs = Array.from({length: count}, (_, i) => ({offsetBytes: i * chunk, sizeBytes: chunk}))
  const localList = agent.prepareLocal(descs.map((d) => ({...d, region: local.id})))
  const remoteList = agent.prepareRemote(peer, descs.map((d) => ({...d, region: ready.region.id})))
  // Identity pairs for the first half (merge into one run); the second half reversed (one run each).
  const half = count / 2
  const idx = [...Array.from({length: half}, (_, i) => i), ...Array.from({length: half}, (_, i) => count - 1 - i)]
  const result = await agent.read(localList, idx, remoteList, idx, {timeoutMs: 10_000, grant: ready.grant})
  expect(result.bytes).toBe(REGION_BYTES)
  const mismatch = await verifyPattern(local.buffer, [
    {offsetBytes: 0, sizeBytes: REGION_BYTES, key: {engine: 9, request: 1, rank: 0, tensor: ready.region.id, block: 0, part: 0}, partOffsetBytes: 0},
  ])
  expect(mismatch).toBeNull()
  return {runs: result.runs, descriptors: result.descriptors}
}

describe('transfer agent between two processes', () => {
  it('reads allocated shared memory one-sided, merges adjacent descriptors, and notifies both ways', async () => {
    const {child, ready} = await startPeer({PEER_NAME: 'owner'})
    expect(ready.region.allocated).toBe(true)
    const agent = makeAgent('reader')
    const peer = agent.connect(Buffer.from(ready.metadata, 'base64'))
    expect(peer.name).toBe('owner')
    const shape = await readAndVerify(agent, peer, ready)
    expect(shape).toEqual({descriptors: 64, runs: 1 + 32})

    child.send({op: 'connect', metadata: Buffer.from(agent.metadata()).toString('base64')})
    await nextMessage(child, (m) => m.reply === 'connect')
    const received = nextMessage<{text: string; peerName: string}>(child, (m) => m.event === 'notification')
    await agent.notify(peer, 'request 7 read; free its blocks')
    expect(await received).toMatchObject({text: 'request 7 read; free its blocks', peerName: 'reader'})

    child.send({op: 'notify', text: 'freed 7'})
    const note = await agent.nextNotification({from: peer, timeoutMs: 10_000})
    expect(new TextDecoder().decode(note.payload)).toBe('freed 7')
    expect(note.peerName).toBe('owner')
  })

  it('reads registered (caller-owned) memory, which UCX emulates with the owner progressing', async () => {
    const {ready} = await startPeer({PEER_NAME: 'owner-registered', PEER_REGISTER: '1'})
    expect(ready.region.allocated).toBe(false)
    const agent = makeAgent('reader-registered')
    const peer = agent.connect(Buffer.from(ready.metadata, 'base64'))
    await readAndVerify(agent, peer, ready)
  })

  it('reads over TCP as served reads (the owner sends into receives posted on our memory), or as emulated GETs on request', async () => {
    const {ready} = await startPeer({PEER_NAME: 'owner-tcp', PEER_TRANSPORT: 'tcp'})
    const agent = makeAgent('reader-tcp', {transport: 'tcp'})
    const peer = agent.connect(Buffer.from(ready.metadata, 'base64'))
    expect(peer.readProtocol).toBe('served')
    expect(await readAndVerify(agent, peer, ready)).toEqual({descriptors: 64, runs: 1 + 32})
    // Twice more: the owner reuses its endpoint to us, and fresh local regions need no new handshake.
    await readAndVerify(agent, peer, ready)
    await readAndVerify(agent, peer, ready)

    const getter = makeAgent('reader-tcp-get', {transport: 'tcp', readProtocol: 'get'})
    const getPeer = getter.connect(Buffer.from(ready.metadata, 'base64'))
    expect(getPeer.readProtocol).toBe('get')
    await readAndVerify(getter, getPeer, ready)
  })

  it('keeps one-sided GETs over same-host shared memory in auto mode', async () => {
    const {ready} = await startPeer({PEER_NAME: 'owner-auto'})
    const agent = makeAgent('reader-auto')
    expect(agent.connect(Buffer.from(ready.metadata, 'base64')).readProtocol).toBe('get')
  })

  it('has the owner refuse a served read of a region it freed, naming the piece, before sending anything', async () => {
    // An owner that serves ungranted reads: what is checked here is the region, not the grant.
    const {child, ready} = await startPeer({PEER_NAME: 'owner-freed', PEER_TRANSPORT: 'tcp', PEER_REQUIRE_GRANT: '0'})
    const agent = makeAgent('reader-freed', {transport: 'tcp'})
    const peer = agent.connect(Buffer.from(ready.metadata, 'base64'))
    const local = agent.allocRegion(REGION_BYTES)
    new Uint8Array(local.buffer).fill(0x5a)
    const l = agent.prepareLocal([{region: local.id, offsetBytes: 0, sizeBytes: REGION_BYTES}])
    const r = agent.prepareRemote(peer, [{region: ready.region.id, offsetBytes: 0, sizeBytes: REGION_BYTES}])
    child.send({op: 'free'})
    await nextMessage(child, (m) => m.reply === 'free')
    const error = await agent.read(l, [0], r, [0], {timeoutMs: 5000}).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TransportError)
    expect(error).toMatchObject({code: 'HPD_NATIVE_INVALID_ARGUMENT', operation: 'read'})
    expect((error as Error).message).toMatch(/owner-freed' refused: piece 0 names region \d+, which the owner does not have/)
    expect(new Uint8Array(local.buffer).every((b) => b === 0x5a)).toBe(true)
    // The peer itself is fine: a refusal is not a failure.
    expect(agent.peerFailure(peer)).toBeUndefined()
  })

  it('fails a served read from a killed owner with a typed error within 2 s', async () => {
    const {child, ready} = await startPeer({PEER_NAME: 'doomed-tcp', PEER_TRANSPORT: 'tcp'})
    const agent = makeAgent('survivor-tcp', {transport: 'tcp'})
    const peer = agent.connect(Buffer.from(ready.metadata, 'base64'))
    await readAndVerify(agent, peer, ready)
    const local = agent.allocRegion(REGION_BYTES)
    const l = agent.prepareLocal([{region: local.id, offsetBytes: 0, sizeBytes: REGION_BYTES}])
    const r = agent.prepareRemote(peer, [{region: ready.region.id, offsetBytes: 0, sizeBytes: REGION_BYTES}])
    child.kill('SIGKILL')
    const t0 = performance.now()
    let error: unknown
    // The kill may land after a read completed: keep reading until one fails (each bounded at 10 s).
    while (error === undefined && performance.now() - t0 < 5000) error = await agent.read(l, [0], r, [0], {timeoutMs: 10_000, grant: ready.grant}).then(() => undefined, (e: unknown) => e)
    expect(performance.now() - t0).toBeLessThan(2000)
    expect(error).toMatchObject({code: 'HPD_NATIVE_PEER_UNREACHABLE', operation: 'read', peer: 'doomed-tcp'})
  })

  it('an owner whose reader dies mid served read keeps serving others and frees its region', async () => {
    const owner = makeAgent('owner-local', {transport: 'tcp'})
    const region = owner.allocRegion(REGION_BYTES)
    await fillPattern(region.buffer, [{offsetBytes: 0, sizeBytes: REGION_BYTES, key: {engine: 9, request: 1, rank: 0, tensor: region.id, block: 0, part: 0}, partOffsetBytes: 0}])
    const metadata = Buffer.from(owner.metadata()).toString('base64')
    const grant = owner.grant([{region, offsetBytes: 0, sizeBytes: REGION_BYTES}]).id
    const {child} = await startPeer({PEER_NAME: 'doomed-reader', PEER_TRANSPORT: 'tcp'})
    child.send({op: 'read-forever', metadata, region: region.id, sizeBytes: REGION_BYTES, timeoutMs: 1500, grant})
    await nextMessage(child, (m) => m.reply === 'reading')
    child.kill('SIGKILL')
    // A second reader is served as before.
    const {child: next} = await startPeer({PEER_NAME: 'next-reader', PEER_TRANSPORT: 'tcp'})
    next.send({op: 'read-forever', metadata, region: region.id, sizeBytes: REGION_BYTES, timeoutMs: 1500, grant})
    await nextMessage(next, (m) => m.reply === 'reading')
    next.kill('SIGKILL')
    // Sends to the dead readers end (failed, or closed at the readers' 1.5 s budget): then the
    // region can be freed. Never a hang, never a crash of the owner.
    const t0 = performance.now()
    for (;;) {
      try {
        owner.freeRegion(region)
        break
      } catch (error) {
        expect((error as Error).message).toMatch(/cannot be freed while transfers are in flight/)
        if (performance.now() - t0 > 5000) throw error
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  })

  it('refuses a peer whose TCP segment size differs (UCX would abort the reader)', async () => {
    const {ready} = await startPeer({PEER_NAME: 'owner-seg', PEER_TCP_SEGMENT_BYTES: '0'})
    const agent = makeAgent('reader-seg')
    expect(() => agent.connect(Buffer.from(ready.metadata, 'base64'))).toThrow(/TCP segments of 0 bytes.*262144/)
  })

  it('bounds a read from a stopped owner (never detected by UCX) with its deadline', async () => {
    // UCX's TCP transport has no GET: a read is emulated with active messages the owner's progress
    // thread must answer, and a SIGSTOPped owner never does (its kernel still ACKs, so UCX sees a
    // live peer). Only the read's deadline ends it (then the endpoint is force-closed).
    const {child, ready} = await startPeer({PEER_NAME: 'frozen', PEER_TRANSPORT: 'tcp'})
    const agent = makeAgent('waiter', {transport: 'tcp'})
    const peer = agent.connect(Buffer.from(ready.metadata, 'base64'))
    await readAndVerify(agent, peer, ready)
    child.kill('SIGSTOP')
    await waitUntilStopped(child.pid!)
    try {
      const local = agent.allocRegion(REGION_BYTES)
      const l = agent.prepareLocal([{region: local.id, offsetBytes: 0, sizeBytes: REGION_BYTES}])
      const r = agent.prepareRemote(peer, [{region: ready.region.id, offsetBytes: 0, sizeBytes: REGION_BYTES}])
      await expect(agent.read(l, [0], r, [0], {timeoutMs: 300, grant: ready.grant})).rejects.toMatchObject({code: 'HPD_NATIVE_TIMEOUT', operation: 'read', peer: 'frozen'})
      expect(agent.peerFailure(peer)?.operation).toBe('timeout')
    } finally {
      child.kill('SIGCONT')
    }
  })

  it('turns a killed peer into a typed transport error naming the peer, not a hang', async () => {
    const {child, ready} = await startPeer({PEER_NAME: 'doomed'})
    const agent = makeAgent('survivor')
    const peer = agent.connect(Buffer.from(ready.metadata, 'base64'))
    await readAndVerify(agent, peer, ready)
    const failures: string[] = []
    agent.onPeerFailure((f) => failures.push(`${f.peerName}:${f.operation}`))
    child.kill('SIGKILL')
    // The wait's own deadline is 5 s; keepalive (500 ms) must fail it first with PEER_UNREACHABLE.
    const error = await agent.nextNotification({from: peer, timeoutMs: 5000}).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TransportError)
    expect(error).toMatchObject({code: 'HPD_NATIVE_PEER_UNREACHABLE', peer: 'doomed', exitCode: 5})
    expect(failures).toEqual(['doomed:keepalive'])
    // Later operations on the dead peer fail at once, typed.
    const local = agent.allocRegion(4096)
    const l = agent.prepareLocal([{region: local.id, offsetBytes: 0, sizeBytes: 4096}])
    const r = agent.prepareRemote(peer, [{region: ready.region.id, offsetBytes: 0, sizeBytes: 4096}])
    await expect(agent.read(l, [0], r, [0], {timeoutMs: 5000})).rejects.toMatchObject({code: 'HPD_NATIVE_PEER_UNREACHABLE', operation: 'read'})
  })
})
