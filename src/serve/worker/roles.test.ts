import {afterEach, describe, expect, it} from 'vitest'

import {callJson, fetchBounded, ndjsonLines} from '../http-json.js'
import {INTERNAL, type PrefillResponse, type SamplingParams, type WorkerStats, type WorkerStreamEvent} from '../protocol.js'
import type {DecodeEntry, GroupBlockIds, PeerLink, WorkerEngine} from './engine-port.js'
import {startWorkerServer, type RunningWorker} from './worker-server.js'

/**
 * Unit seam: an in-memory engine whose "cache" is the token history and whose "model" is
 * next = (sum of history + 7) mod 251. The roles, leases, handshake and streams around it are the
 * real ones over real loopback HTTP; real engines and transfers are exercised in test/e2e.
 */
const registry = new Map<string, MemoryEngine>()

class MemoryEngine implements WorkerEngine {
  readonly tpSize = 1
  readonly eosTokenId = 257
  readonly caches = new Map<string, number[]>()
  private listeners: ((m: string) => void)[] = []
  constructor(
    readonly engineId: string,
    readonly compatibilityHash: string,
    private readonly totalBlocks = 8,
  ) {
    registry.set(engineId, this)
  }
  kvUsage() {
    return {usedBlocks: this.caches.size, totalBlocks: this.totalBlocks}
  }
  async prefillForTransfer(requestId: string, tokenIds: readonly number[]): Promise<GroupBlockIds> {
    this.caches.set(requestId, [...tokenIds])
    return [[this.caches.size - 1]]
  }
  transportInfo() {
    return {engineId: this.engineId}
  }
  onNotification(l: (m: string) => void) {
    this.listeners.push(l)
  }
  allocate(requestId: string): GroupBlockIds | null {
    if (this.caches.size >= this.totalBlocks) return null
    this.caches.set(requestId, [])
    return [[this.caches.size - 1]]
  }
  async connect(h: {engineId: string; engineEpoch: string}): Promise<PeerLink> {
    return {engineId: h.engineId, engineEpoch: h.engineEpoch, close: () => undefined}
  }
  async pull(peer: PeerLink, _local: GroupBlockIds, remote: {requestId: string}): Promise<{bytes: number; reads: number}> {
    const src = registry.get(peer.engineId)?.caches.get(remote.requestId)
    if (!src) throw new Error(`remote blocks of ${remote.requestId} are gone`)
    this.pending = [...src]
    return {bytes: src.length * 4, reads: 1}
  }
  private pending: number[] = []
  async notify(peer: PeerLink, message: string) {
    for (const l of registry.get(peer.engineId)!.listeners) l(message)
  }
  adopt(requestId: string) {
    this.caches.set(requestId, this.pending)
  }
  async prefillLocal(requestId: string, tokenIds: readonly number[], sampling: SamplingParams) {
    this.caches.set(requestId, [...tokenIds.slice(0, -1)])
    return (await this.decodeStep([{requestId, tokenId: tokenIds[tokenIds.length - 1], sampling}]))[0]
  }
  async decodeStep(entries: readonly DecodeEntry[]) {
    return entries.map((e) => {
      const h = this.caches.get(e.requestId)!
      h.push(e.tokenId)
      return (h.reduce((a, b) => a + b, 0) + 7) % 251
    })
  }
  free(requestId: string) {
    this.caches.delete(requestId)
  }
  async close() {}
}

const running: RunningWorker[] = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.close()))
  registry.clear()
})

async function worker(role: 'prefill' | 'decode' | 'colocated', engine: MemoryEngine, leaseMs = 10_000) {
  const w = await startWorkerServer({
    role,
    engine,
    engineEpoch: `${engine.engineId}-epoch`,
    host: '127.0.0.1',
    leaseMs,
    maxBatch: 8,
    handshakeTimeoutMs: 1000,
    transferTimeoutMs: 1000,
    log: () => undefined,
  })
  running.push(w)
  return w
}

const greedy: SamplingParams = {temperature: 0, topP: 1, topK: 0, seed: undefined, maxTokens: 5, ignoreEos: true}

async function generate(url: string, body: unknown): Promise<WorkerStreamEvent[]> {
  const res = await fetchBounded(`${url}${INTERNAL.generate}`, body, 5000)
  const out: WorkerStreamEvent[] = []
  for await (const ev of ndjsonLines<WorkerStreamEvent>(res.body!)) out.push(ev)
  return out
}

const tokens = (evs: WorkerStreamEvent[]) => evs.flatMap((e) => (e.type === 'token' ? [e.tokenId] : []))

describe('prefill + decode worker roles', () => {
  it('gives the same tokens disaggregated (N−1 transferred + last recomputed) as colocated, and frees prefill blocks on notify', async () => {
    const prompt = [10, 20, 30, 40]
    const colo = await worker('colocated', new MemoryEngine('c0', 'h1'))
    const expected = tokens(await generate(colo.controlUrl, {requestId: 'r0', promptTokenIds: prompt, sampling: greedy}))
    expect(expected).toHaveLength(5)

    const pEngine = new MemoryEngine('p0', 'h1')
    const p = await worker('prefill', pEngine)
    const d = await worker('decode', new MemoryEngine('d0', 'h1'))
    const pre = await callJson<PrefillResponse>(`${p.controlUrl}${INTERNAL.prefill}`, {requestId: 'r1', promptTokenIds: prompt}, 5000)
    expect(pre.transfer).toMatchObject({engineId: 'p0', numComputedTokens: 3, tpSize: 1, compatibilityHash: 'h1'})
    expect(pEngine.caches.get('r1')).toEqual([10, 20, 30])
    const evs = await generate(d.controlUrl, {requestId: 'r1', promptTokenIds: prompt, sampling: greedy, transfer: pre.transfer})
    expect(tokens(evs)).toEqual(expected)
    expect(evs.map((e) => e.type)).toEqual(['phase', 'phase', 'transfer-done', 'phase', 'token', 'token', 'token', 'token', 'token', 'done'])
    const stats = await callJson<WorkerStats>(`${p.controlUrl}${INTERNAL.stats}`, undefined, 1000)
    expect(stats).toMatchObject({leasesHeld: 0, leasesReleased: 1, kvBlocksUsed: 0})
  })

  it('refuses a prefill engine with another compatibility hash', async () => {
    const p = await worker('prefill', new MemoryEngine('p1', 'hash-A'))
    const d = await worker('decode', new MemoryEngine('d1', 'hash-B'))
    const pre = await callJson<PrefillResponse>(`${p.controlUrl}${INTERNAL.prefill}`, {requestId: 'r2', promptTokenIds: [1, 2, 3]}, 5000)
    const evs = await generate(d.controlUrl, {requestId: 'r2', promptTokenIds: [1, 2, 3], sampling: greedy, transfer: pre.transfer})
    expect(evs.at(-1)).toMatchObject({type: 'error', code: 'compatibility_mismatch'})
    expect((evs.at(-1) as {message: string}).message).toContain('hash-A')
  })

  it('reclaims prefill blocks by lease expiry when no decode side ever reads them', async () => {
    const pEngine = new MemoryEngine('p2', 'h')
    const p = await worker('prefill', pEngine, 200)
    await callJson(`${p.controlUrl}${INTERNAL.prefill}`, {requestId: 'r3', promptTokenIds: [1, 2, 3]}, 5000)
    expect(pEngine.caches.size).toBe(1)
    let stats: WorkerStats | undefined
    for (let i = 0; i < 40 && (stats?.leasesExpired ?? 0) === 0; i++) {
      await new Promise((r) => setTimeout(r, 50))
      stats = await callJson<WorkerStats>(`${p.controlUrl}${INTERNAL.stats}`, undefined, 1000)
    }
    expect(stats).toMatchObject({leasesHeld: 0, leasesExpired: 1, kvBlocksUsed: 0})
  })

  it('extends the lease while the decode pool is full, then serves the request once blocks free up', async () => {
    const pEngine = new MemoryEngine('p3', 'h')
    const dEngine = new MemoryEngine('d3', 'h', 1)
    const p = await worker('prefill', pEngine, 900)
    const d = await worker('decode', dEngine)
    dEngine.caches.set('hog', [])
    const pre = await callJson<PrefillResponse>(`${p.controlUrl}${INTERNAL.prefill}`, {requestId: 'r4', promptTokenIds: [5, 6, 7]}, 5000)
    // Held for more than twice the lease: only the heartbeats keep the prefill blocks.
    setTimeout(() => dEngine.free('hog'), 2000)
    const evs = await generate(d.controlUrl, {requestId: 'r4', promptTokenIds: [5, 6, 7], sampling: greedy, transfer: pre.transfer})
    expect(tokens(evs)).toHaveLength(5)
    const stats = await callJson<WorkerStats>(`${p.controlUrl}${INTERNAL.stats}`, undefined, 1000)
    expect(stats).toMatchObject({leasesExpired: 0, leasesReleased: 1})
  })

  it('batches concurrent requests on one decode worker', async () => {
    const c = await worker('colocated', new MemoryEngine('c4', 'h'))
    const runs = await Promise.all(
      Array.from({length: 6}, (_, i) => generate(c.controlUrl, {requestId: `b${i}`, promptTokenIds: [i + 1, 2], sampling: {...greedy, maxTokens: 20}})),
    )
    for (const evs of runs) expect(tokens(evs)).toHaveLength(20)
    const stats = await callJson<WorkerStats>(`${c.controlUrl}${INTERNAL.stats}`, undefined, 1000)
    expect(stats.decodeBatchMax).toBeGreaterThan(1)
  })
})
