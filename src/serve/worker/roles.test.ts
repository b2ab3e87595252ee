import {afterEach, describe, expect, it} from 'vitest'

import {ControlClient, ndjsonLines} from '../http-json.js'
import {kvParamsOf, parseKvTransferParams, PREFILL_LEG_PARAMS} from '../kv-contract.js'
import {bodyOfSampling} from '../openai/sampling-body.js'
import {INTERNAL, promptDigest, type LeaseExtendResponse, type SamplingParams, type TransferParams, type WorkerStats, type WorkerStreamEvent} from '../protocol.js'
import {EVENTS_HEADER} from '../router.js'
import {VerificationError} from '../../errors.js'
import type {DecodeEntry, GroupBlockIds, PeerLink, PullOptions, PullResult, WorkerEngine} from './engine-port.js'
import type {KvLoadFailurePolicy} from './local-backend.js'
import {startWorkerServer, type RunningWorker} from './worker-server.js'
import {byteTokenizer} from '../../testing/byte-tokenizer.js'

/**
 * Unit seam: an in-memory engine whose "cache" is the token history and whose "model" is
 * next = (sum of history + 7) mod 251. The roles, leases, handshake and streams around it are the
 * real ones over real loopback HTTP, driven through the workers' contract (vLLM's
 * kv_transfer_params on /v1/completions); real engines and transfers are exercised in test/e2e.
 */
const bytes = byteTokenizer()

/** The worker's own id for a request sent with X-Request-Id `xid` (it adds a suffix: ids stay unique). */
function workerIdOf(engine: {caches: Map<string, unknown>; seen: string[]}, xid: string): string {
  const id = engine.seen.find((k) => k.startsWith(`cmpl-${xid}-`) && !k.includes(':'))
  if (!id) throw new Error(`no request ${xid} on this engine`)
  return id
}
const registry = new Map<string, MemoryEngine>()

class MemoryEngine implements WorkerEngine {
  readonly tpSize = 1
  readonly eosTokenId = 257
  readonly limits = {maxModelLen: 64, vocabSize: 300}
  readonly tokenizer = bytes
  /**
   * Requests whose sampling fails (the in-memory stand-in for a native sampler error), by their
   * X-Request-Id, optionally with a continuation suffix (`s2:n1`).
   */
  readonly poisoned = new Set<string>()
  readonly caches = new Map<string, number[]>()
  /** Every request id this engine held blocks for, in order. */
  readonly seen: string[] = []
  private listeners: ((requestId: string) => void)[] = []
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
  /** One block per sequence, whatever its length. */
  kvGeometry() {
    return {capacityBlocks: this.totalBlocks, blockTokens: 1_000_000, attentionGroups: 1, fixedBlocksPerSequence: 0}
  }
  /** grant id → the request it covers (the stand-in for the agent's served-read grants). */
  readonly grants = new Map<string, string>()
  /** A prefill takes this long (its blocks held meanwhile); free() during it cancels it, as the scheduler does. */
  prefillDelayMs = 0
  async prefillForTransfer(requestId: string, tokenIds: readonly number[]) {
    this.seen.push(requestId)
    this.caches.set(requestId, [...tokenIds])
    if (this.prefillDelayMs > 0) {
      await new Promise((r) => setTimeout(r, this.prefillDelayMs))
      if (!this.caches.has(requestId)) throw new Error(`request ${requestId} was cancelled`)
    }
    const grant = `${this.engineId.replace(/[^0-9a-f]/g, 'a')}${this.grants.size}`.padEnd(32, '0').slice(0, 32)
    this.grants.set(grant, requestId)
    return {blockIds: [[this.caches.size - 1]] as GroupBlockIds, grant}
  }
  endTransfer(requestId: string) {
    for (const [grant, id] of this.grants) if (id === requestId) this.grants.delete(grant)
  }
  transportInfo() {
    return {engineId: this.engineId}
  }
  onReadDone(l: (requestId: string) => void) {
    this.listeners.push(l)
  }
  async transferDigests(requestId: string) {
    return [{requestId, sum: this.caches.get(requestId)?.reduce((a, b) => a + b, 0)}]
  }
  allocate(requestId: string): {blockIds: GroupBlockIds; cachedTokens: number} | null {
    if (this.caches.size >= this.totalBlocks) return null
    this.seen.push(requestId)
    this.caches.set(requestId, [])
    return {blockIds: [[this.caches.size - 1]], cachedTokens: 0}
  }
  async connect(h: {engineId: string; engineEpoch: string}): Promise<PeerLink> {
    return {engineId: h.engineId, engineEpoch: h.engineEpoch, close: () => undefined}
  }
  /** Prefill-side request ids whose pulled copy arrives damaged (the stand-in for HPD_TEST_CORRUPT_TRANSFER_FOR). */
  readonly damaged = new Set<string>()
  async pull(peer: PeerLink, _local: GroupBlockIds, remote: {requestId: string; grant?: string}, _timeoutMs: number, o: PullOptions = {}): Promise<PullResult> {
    const owner = registry.get(peer.engineId)
    if (owner?.grants.get(remote.grant ?? '') !== remote.requestId) throw new Error(`the read of ${remote.requestId} carries no grant for it`)
    const src = owner.caches.get(remote.requestId)
    if (!src) throw new Error(`remote blocks of ${remote.requestId} are gone`)
    this.pending = [...src]
    if (this.damaged.has(remote.requestId)) this.pending[0] ^= 1
    if (!o.verify) return {bytes: src.length * 4, reads: 1}
    // The stand-in digest: the sum of the tokens, ours against the owner's answer over the control plane.
    const [theirs] = (await o.verify(this.tpSize)) as {sum: number}[]
    if (theirs.sum !== this.pending.reduce((a, b) => a + b, 0)) throw new VerificationError('HPD_KVLINK_DIGEST_MISMATCH', `the digest of ${remote.requestId} differs from the prefill side's`)
    return {bytes: src.length * 4, reads: 1, verifyMs: 0.1}
  }
  private pending: number[] = []
  async readDone(peer: PeerLink, requestId: string) {
    for (const l of registry.get(peer.engineId)!.listeners) l(requestId)
  }
  adopt(requestId: string) {
    this.caches.set(requestId, this.pending)
  }
  /** Sequences with an open sampler (openSequence) and their continuation offset (seed + j shifts the model). */
  readonly sequences = new Map<string, number>()
  openSequence(requestId: string, _prompt: readonly number[], s: SamplingParams, continuation = 0) {
    this.sequences.set(requestId, (s.seed ?? 0) + continuation)
  }
  fork(requestId: string, childIds: readonly string[]) {
    for (const c of childIds) this.caches.set(c, [...this.caches.get(requestId)!])
  }
  async prefillLocal(requestId: string, tokenIds: readonly number[], forks: readonly string[]) {
    this.seen.push(requestId)
    this.caches.set(requestId, [...tokenIds.slice(0, -1)])
    for (const f of forks) this.caches.set(f, [...tokenIds.slice(0, -1)])
    return this.decodeStep([requestId, ...forks].map((id) => ({requestId: id, tokenId: tokenIds[tokenIds.length - 1]})))
  }
  async decodeStep(entries: readonly DecodeEntry[]) {
    return entries.map((e) => {
      const h = this.caches.get(e.requestId)!
      h.push(e.tokenId)
      if ([...this.poisoned].some((p) => poisons(p, e.requestId))) return new Error(`sampling failed for ${e.requestId}`)
      return {tokenId: (h.reduce((a, b) => a + b, 0) + 7 + (this.sequences.get(e.requestId) ?? 0)) % 251}
    })
  }
  free(requestId: string) {
    this.caches.delete(requestId)
    this.sequences.delete(requestId)
  }
  async close() {}
}

/** Poison `xid` or `xid:suffix` matches the worker's id cmpl-<xid>-<8 hex>[<:suffix>]. */
function poisons(poison: string, id: string): boolean {
  const [xid, suffix] = poison.split(':')
  return new RegExp(`^cmpl-${xid}-[0-9a-f]{8}${suffix ? `:${suffix}` : ''}$`).test(id)
}

const running: RunningWorker[] = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.close()))
  prefills.splice(0)
  registry.clear()
})

const TOKEN = 'roles-test-cluster-token-0123'
const control = new ControlClient(TOKEN)
const callJson = <T>(url: string, body: unknown, timeoutMs: number) => control.call<T>(url, body, {timeoutMs})
const prefills: RunningWorker[] = []

async function worker(role: 'prefill' | 'decode' | 'colocated', engine: MemoryEngine, leaseMs = 10_000, kvLoadFailurePolicy: KvLoadFailurePolicy = 'fail', verifyTransfers = false) {
  const w = await startWorkerServer({
    role,
    engine,
    engineEpoch: `${engine.engineId}-epoch`,
    modelNames: ['tiny'],
    kvLoadFailurePolicy,
    verifyTransfers,
    host: '127.0.0.1',
    clusterToken: TOKEN,
    leaseMs,
    maxLeaseMs: 60_000,
    maxBatch: 8,
    handshakeTimeoutMs: 1000,
    transferTimeoutMs: 1000,
    log: () => undefined,
  })
  running.push(w)
  engineIds.set(w, engine.engineId)
  // Every decode worker knows every prefill worker of this test (as the supervisor tells them).
  if (role === 'prefill') prefills.push(w)
  const directory = prefills.map((p) => ({engineId: registryIdOf(p), controlUrl: p.controlUrl}))
  for (const d of running.filter((r) => r.peers)) d.peers.replace(directory)
  return w
}

const engineIds = new Map<RunningWorker, string>()
function registryIdOf(w: RunningWorker): string {
  return engineIds.get(w)!
}

const greedy: SamplingParams = {temperature: 0, topP: 1, topK: 0, seed: undefined, maxTokens: 5, ignoreEos: true}

interface Leg {
  readonly requestId: string
  readonly promptTokenIds: readonly number[]
  readonly sampling: SamplingParams
  readonly transfer?: TransferParams
  /** Raw kv_transfer_params instead of `transfer`'s. */
  readonly kv?: unknown
}

/** A request through the worker's contract, answered as its events (hpd's router reads those). */
async function generate(url: string, leg: Leg): Promise<WorkerStreamEvent[]> {
  const kv = leg.kv ?? (leg.transfer ? kvParamsOf(leg.transfer) : undefined)
  const body = {model: 'tiny', prompt: leg.promptTokenIds, ...bodyOfSampling(leg.sampling), ...(kv !== undefined ? {kv_transfer_params: kv} : {})}
  const res = await control.open(`${url}/v1/completions`, body, {timeoutMs: 5000, headers: {[EVENTS_HEADER]: 'events', 'x-request-id': leg.requestId}})
  if (!res.ok) {
    const {code, message} = ((await res.json()) as {error: {code: string; message: string}}).error
    return [{type: 'error', status: res.status, code, message}]
  }
  const out: WorkerStreamEvent[] = []
  for await (const ev of ndjsonLines<WorkerStreamEvent>(res.body!)) out.push(ev)
  return out
}

/** The contract's prefill leg, as vLLM's proxy sends it; the decode leg's transfer (undefined: nothing to transfer). */
async function prefill(url: string, requestId: string, promptTokenIds: readonly number[]): Promise<{transfer: TransferParams}> {
  const body = {model: 'tiny', prompt: promptTokenIds, max_tokens: 1, stream: false, kv_transfer_params: PREFILL_LEG_PARAMS}
  const answer = await control.call<{kv_transfer_params: unknown}>(`${url}/v1/completions`, body, {timeoutMs: 5000, headers: {'x-request-id': requestId}})
  const leg = parseKvTransferParams(answer.kv_transfer_params)
  if (leg.leg !== 'decode') throw new Error(`the prefill leg answered ${JSON.stringify(answer.kv_transfer_params)}`)
  return {transfer: leg.transfer}
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
    const pre = await prefill(p.controlUrl, 'r1', prompt)
    expect(pre.transfer).toMatchObject({engineId: 'p0', numComputedTokens: 3, tpSize: 1, compatibilityHash: 'h1'})
    expect(pEngine.caches.get(workerIdOf(pEngine, 'r1'))).toEqual([10, 20, 30])
    const evs = await generate(d.controlUrl, {requestId: 'r1', promptTokenIds: prompt, sampling: greedy, transfer: pre.transfer})
    expect(tokens(evs)).toEqual(expected)
    expect(evs.map((e) => e.type)).toEqual(['phase', 'phase', 'transfer-done', 'prefilled', 'phase', 'token', 'token', 'token', 'token', 'token', 'done'])
    const stats = await callJson<WorkerStats>(`${p.controlUrl}${INTERNAL.stats}`, undefined, 1000)
    expect(stats).toMatchObject({leasesHeld: 0, leasesReleased: 1, kvBlocksUsed: 0})
  })

  it('n continuations: one prefill, the cache copied for each, continuation j seeded seed + j; disaggregated == colocated', async () => {
    const prompt = [10, 20, 30, 40]
    const sampling = {...greedy, seed: 10, n: 3, maxTokens: 4}
    const byIndex = (evs: WorkerStreamEvent[]) =>
      [0, 1, 2].map((j) => evs.flatMap((e) => (e.type === 'token' && (e.index ?? 0) === j ? [e.tokenId] : [])))
    const cEngine = new MemoryEngine('cn', 'h1')
    const colo = await worker('colocated', cEngine)
    const c = await generate(colo.controlUrl, {requestId: 'n0', promptTokenIds: prompt, sampling})
    const expected = byIndex(c)
    expect(expected.map((t) => t.length)).toEqual([4, 4, 4])
    expect(new Set(expected.map((t) => t.join(','))).size).toBe(3) // seeds 10, 11, 12 differ
    expect(c.filter((e) => e.type === 'finish').map((e) => (e as {index: number}).index).sort()).toEqual([0, 1, 2])
    expect(c.at(-1)).toMatchObject({type: 'done', numOutputTokens: 12})
    expect(cEngine.caches.size).toBe(0)

    const pEngine = new MemoryEngine('pn', 'h1')
    const p = await worker('prefill', pEngine)
    const dEngine = new MemoryEngine('dn', 'h1')
    const d = await worker('decode', dEngine)
    const pre = await prefill(p.controlUrl, 'n1', prompt)
    const evs = await generate(d.controlUrl, {requestId: 'n1', promptTokenIds: prompt, sampling, transfer: pre.transfer})
    expect(byIndex(evs)).toEqual(expected)
    expect(dEngine.caches.size).toBe(0)
  })

  it('a stop token id ends its continuation after the token; a failing continuation fails the request and frees all', async () => {
    const engine = new MemoryEngine('cs', 'h')
    const c = await worker('colocated', engine)
    const first = tokens(await generate(c.controlUrl, {requestId: 's0', promptTokenIds: [3], sampling: {...greedy, maxTokens: 6}}))
    const evs = await generate(c.controlUrl, {requestId: 's1', promptTokenIds: [3], sampling: {...greedy, maxTokens: 6, stopTokenIds: [first[2]]}})
    expect(tokens(evs)).toEqual(first.slice(0, 3))
    expect(evs.at(-1)).toMatchObject({type: 'done', finishReason: 'stop', numOutputTokens: 3})
    engine.poisoned.add('s2:n1')
    const failing = await generate(c.controlUrl, {requestId: 's2', promptTokenIds: [3, 4], sampling: {...greedy, maxTokens: 30, n: 3}})
    expect(failing.at(-1)).toMatchObject({type: 'error', code: 'worker_error'})
    expect(engine.caches.size).toBe(0)
    const others = await generate(c.controlUrl, {requestId: 's3', promptTokenIds: [3], sampling: {...greedy, maxTokens: 6}})
    expect(tokens(others)).toEqual(first)
  })

  it('refuses sampling fields outside their ranges before the engine sees them', async () => {
    const c = await worker('colocated', new MemoryEngine('cv', 'h'))
    const bads: Partial<SamplingParams>[] = [{presencePenalty: 3}, {repetitionPenalty: 0}, {logitBias: {'999': 1}}, {logitBias: {'5': 101}}, {minTokens: 9}, {stopTokenIds: [300]}, {logprobs: 21}, {n: 0}, {minP: 2}]
    for (const bad of bads) {
      const evs = await generate(c.controlUrl, {requestId: 'bad', promptTokenIds: [1], sampling: {...greedy, ...bad}})
      expect(evs[0], JSON.stringify(bad)).toMatchObject({type: 'error', status: 400})
    }
  })

  it('refuses a prefill engine with another compatibility hash', async () => {
    const p = await worker('prefill', new MemoryEngine('p1', 'hash-A'))
    const d = await worker('decode', new MemoryEngine('d1', 'hash-B'))
    const pre = await prefill(p.controlUrl, 'r2', [1, 2, 3])
    const evs = await generate(d.controlUrl, {requestId: 'r2', promptTokenIds: [1, 2, 3], sampling: greedy, transfer: pre.transfer})
    expect(evs.at(-1)).toMatchObject({type: 'error', code: 'compatibility_mismatch'})
    expect((evs.at(-1) as {message: string}).message).toContain('hash-A')
  })

  it('reclaims prefill blocks by lease expiry when no decode side ever reads them', async () => {
    const pEngine = new MemoryEngine('p2', 'h')
    const p = await worker('prefill', pEngine, 200)
    await prefill(p.controlUrl, 'r3', [1, 2, 3])
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
    const pre = await prefill(p.controlUrl, 'r4', [5, 6, 7])
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

  it('fails only the request whose sampling fails; the rest of its batch continues', async () => {
    const engine = new MemoryEngine('c5', 'h')
    const c = await worker('colocated', engine)
    engine.poisoned.add('bad')
    const runs = await Promise.all(
      ['ok0', 'bad', 'ok1', 'ok2'].map((id, i) => generate(c.controlUrl, {requestId: id, promptTokenIds: [i + 3], sampling: {...greedy, maxTokens: 12}})),
    )
    expect(runs[1].at(-1)).toMatchObject({type: 'error'})
    for (const i of [0, 2, 3]) expect(tokens(runs[i])).toHaveLength(12)
    expect(engine.caches.size).toBe(0)
  })

  it('frees the blocks of a local prefill whose first sampling fails (no leak)', async () => {
    const engine = new MemoryEngine('c6', 'h')
    const d = await worker('decode', engine)
    engine.poisoned.add('one-token')
    const evs = await generate(d.controlUrl, {requestId: 'one-token', promptTokenIds: [65], sampling: greedy})
    expect(evs.at(-1)).toMatchObject({type: 'error'})
    expect(engine.caches.size).toBe(0)
    const stats = await callJson<WorkerStats>(`${d.controlUrl}${INTERNAL.stats}`, undefined, 1000)
    expect(stats).toMatchObject({kvBlocksUsed: 0, inFlight: 0, ok: true})
  })

  it('keeps requests apart that share an X-Request-Id (each gets its own id and its own blocks)', async () => {
    const pEngine = new MemoryEngine('p7', 'h')
    const p = await worker('prefill', pEngine)
    const a = await prefill(p.controlUrl, 'dup', [1, 2, 3])
    const b = await prefill(p.controlUrl, 'dup', [4, 5, 6])
    expect(a.transfer.requestId).not.toBe(b.transfer.requestId)
    expect(pEngine.caches.get(a.transfer.requestId)).toEqual([1, 2])
    expect(pEngine.caches.get(b.transfer.requestId)).toEqual([4, 5])
  })

  it('validates every request before the engine sees it, kv_transfer_params included', async () => {
    const p = await worker('prefill', new MemoryEngine('p8', 'h'))
    const d = await worker('decode', new MemoryEngine('d8', 'h'))
    const gen = [
      {requestId: 'g', promptTokenIds: [1, 2], sampling: {...greedy, maxTokens: 1_000_000}},
      {requestId: 'g', promptTokenIds: [1, 2], sampling: {...greedy, topK: 1e20}},
      {requestId: 'g', promptTokenIds: [1, 2], sampling: {...greedy, temperature: -1}},
      {requestId: 'g', promptTokenIds: [1, 400], sampling: greedy},
      {requestId: 'g', promptTokenIds: Array.from({length: 64}, () => 1), sampling: greedy},
      {requestId: 'g', promptTokenIds: [1, 2], sampling: greedy, kv: {do_remote_decode: true, nixl_metadata: 'x'}},
      {requestId: 'g', promptTokenIds: [1, 2], sampling: greedy, kv: {do_remote_decode: 'yes'}},
      {requestId: 'g', promptTokenIds: [1, 2], sampling: greedy, kv: [1]},
    ]
    for (const leg of gen) {
      for (const url of [p.controlUrl, d.controlUrl]) expect((await generate(url, leg))[0], JSON.stringify(leg)).toMatchObject({type: 'error', status: 400})
    }
    const pre = await prefill(p.controlUrl, 'n', [1, 2, 3])
    const wrongLength = await generate(d.controlUrl, {requestId: 'n', promptTokenIds: [1, 2, 3, 4], sampling: greedy, transfer: pre.transfer})
    expect(wrongLength[0]).toMatchObject({type: 'error', status: 400, code: 'invalid_value'})
  })

  it('a one-token prompt has nothing to transfer: the prefill leg answers null params', async () => {
    const p = await worker('prefill', new MemoryEngine('p11', 'h'))
    const answer = await control.call<{kv_transfer_params: unknown; choices: unknown[]}>(
      `${p.controlUrl}/v1/completions`,
      {model: 'tiny', prompt: [65], max_tokens: 1, stream: false, kv_transfer_params: PREFILL_LEG_PARAMS},
      {timeoutMs: 5000},
    )
    expect(answer.kv_transfer_params).toBeNull()
  })

  it('refuses params naming someone else’s blocks: the grant must be the lease’s own', async () => {
    const p = await worker('prefill', new MemoryEngine('p12', 'h'))
    const dEngine = new MemoryEngine('d12', 'h')
    const d = await worker('decode', dEngine)
    const mine = await prefill(p.controlUrl, 'mine', [1, 2, 3])
    const theirs = await prefill(p.controlUrl, 'theirs', [4, 5, 6])
    const stolen = await generate(d.controlUrl, {requestId: 'thief', promptTokenIds: [4, 5, 6], sampling: greedy, transfer: {...theirs.transfer, grant: mine.transfer.grant}})
    expect(stolen.at(-1)).toMatchObject({type: 'error', code: 'grant_mismatch'})
    expect(dEngine.caches.size).toBe(0)
  })

  it('refuses params that are not the lease’s own: other block ids, another prompt of the same length, no grant', async () => {
    const pEngine = new MemoryEngine('p15', 'h')
    const p = await worker('prefill', pEngine)
    const dEngine = new MemoryEngine('d15', 'h')
    const d = await worker('decode', dEngine)
    const mine = await prefill(p.controlUrl, 'mine15', [1, 2, 3])
    const theirs = await prefill(p.controlUrl, 'theirs15', [4, 5, 6])
    const third = await prefill(p.controlUrl, 'third15', [7, 8, 9])
    // A shared-memory read is one-sided: the prefill side must refuse before the decode side reads.
    const otherBlocks = await generate(d.controlUrl, {requestId: 'mine15', promptTokenIds: [1, 2, 3], sampling: greedy, transfer: {...mine.transfer, blockIds: theirs.transfer.blockIds}})
    expect(otherBlocks.at(-1)).toMatchObject({type: 'error', status: 400, code: 'kv_params_mismatch', param: 'kv_transfer_params.remote_block_ids'})
    const otherPrompt = await generate(d.controlUrl, {requestId: 'theirs15', promptTokenIds: [4, 9, 6], sampling: greedy, transfer: theirs.transfer})
    expect(otherPrompt.at(-1)).toMatchObject({type: 'error', status: 400, code: 'prompt_mismatch', param: 'prompt'})
    expect(dEngine.caches.size).toBe(0)
    // The holder of a lease's params gave up on it: released at once (as any decode leg failing before its read).
    const held = () => pEngine.caches.has(mine.transfer.requestId) || pEngine.caches.has(theirs.transfer.requestId)
    for (let i = 0; i < 100 && held(); i++) await new Promise((r) => setTimeout(r, 20))
    expect(held()).toBe(false)
    // A lease call without the grant is refused ...
    await expect(control.call(`${p.controlUrl}${INTERNAL.leaseExtend}`, {requestId: third.transfer.requestId}, {timeoutMs: 5000})).rejects.toMatchObject({status: 403, code: 'grant_mismatch'})
    // ... and without it a decode leg's params are incomplete: computed here (vLLM's rule), nothing read from the lease.
    const {grant: _dropped, ...noGrant} = third.transfer
    const ungranted = await generate(d.controlUrl, {requestId: 'third15', promptTokenIds: [7, 8, 9], sampling: greedy, transfer: noGrant})
    expect(ungranted.at(-1)).toMatchObject({type: 'done'})
    expect(await (await fetch(`${d.controlUrl}/metrics`)).text()).toMatch(/^hpd_kv_params_incomplete_total 1$/m)
  })

  it('the first confirm claims the lease: a second leg cannot confirm, beat or release it (409); the claimant can', async () => {
    const pEngine = new MemoryEngine('p17', 'h')
    const p = await worker('prefill', pEngine)
    const {transfer: t} = await prefill(p.controlUrl, 'claim17', [3, 4, 5, 6])
    const url = (route: string) => `${p.controlUrl}${route}`
    const base = {requestId: t.requestId, grant: t.grant}
    const confirm = {...base, blockIds: t.blockIds, promptDigest: promptDigest([3, 4, 5])}
    const first = await control.call<LeaseExtendResponse>(url(INTERNAL.leaseExtend), confirm, {timeoutMs: 5000})
    expect(first.claim).toMatch(/^[0-9a-f]{32}$/)
    expect(first.cachedTokens).toBe(0)
    // A second leg holding the same params (a replay, a retry, or whoever else has them).
    await expect(control.call(url(INTERNAL.leaseExtend), confirm, {timeoutMs: 5000})).rejects.toMatchObject({status: 409, code: 'lease_claimed'})
    await expect(control.call(url(INTERNAL.leaseExtend), base, {timeoutMs: 5000})).rejects.toMatchObject({status: 409, code: 'lease_claimed'})
    await expect(control.call(url(INTERNAL.leaseRelease), base, {timeoutMs: 5000})).rejects.toMatchObject({status: 409, code: 'lease_claimed'})
    expect(pEngine.caches.has(t.requestId)).toBe(true)
    // The claimant beats and releases.
    const beat = await control.call<LeaseExtendResponse>(url(INTERNAL.leaseExtend), {...base, claim: first.claim}, {timeoutMs: 5000})
    expect(beat.leaseExpiresAtMs).toBeGreaterThan(Date.now())
    expect(await control.call(url(INTERNAL.leaseRelease), {...base, claim: first.claim}, {timeoutMs: 5000})).toEqual({released: true})
    expect(pEngine.caches.has(t.requestId)).toBe(false)
    // The router abandoning the request that made a lease frees it, claimed or not.
    const {transfer: u} = await prefill(p.controlUrl, 'claim17b', [3, 4, 5, 7])
    await control.call(url(INTERNAL.leaseExtend), {requestId: u.requestId, grant: u.grant, blockIds: u.blockIds, promptDigest: promptDigest([3, 4, 5])}, {timeoutMs: 5000})
    expect(await control.call(url(INTERNAL.leaseRelease), {requestId: u.requestId, grant: u.grant, abandon: true}, {timeoutMs: 5000})).toEqual({released: true})
  })

  it('a prefill leg whose caller left is stopped and never leased: its blocks are back at once', async () => {
    const pEngine = new MemoryEngine('p16', 'h')
    pEngine.prefillDelayMs = 400
    const p = await worker('prefill', pEngine)
    const leave = new AbortController()
    const body = {model: 'tiny', prompt: [1, 2, 3, 4], max_tokens: 1, stream: false, kv_transfer_params: PREFILL_LEG_PARAMS}
    const leg = control.call(`${p.controlUrl}/v1/completions`, body, {timeoutMs: 5000, signal: leave.signal, headers: {'x-request-id': 'left16'}}).catch(() => undefined)
    for (let i = 0; i < 100 && pEngine.caches.size === 0; i++) await new Promise((r) => setTimeout(r, 10))
    expect(pEngine.caches.size).toBe(1)
    leave.abort()
    await leg
    for (let i = 0; i < 100 && pEngine.caches.size > 0; i++) await new Promise((r) => setTimeout(r, 10))
    expect(pEngine.caches.size).toBe(0)
    await new Promise((r) => setTimeout(r, 500)) // past the prefill's end: nothing is leased afterwards
    expect(pEngine.caches.size).toBe(0)
    const stats = await callJson<WorkerStats>(`${p.controlUrl}${INTERNAL.stats}`, undefined, 1000)
    expect(stats.leasesHeld).toBe(0)
    // Its admission into the pool is given back too.
    expect(stats.kvBlocksCommitted).toBe(0)
  })

  it('computes locally, logging and counting it, when a decode leg’s params lack fields; recompute policy survives a failed pull', async () => {
    const dEngine = new MemoryEngine('d13', 'h')
    const d = await worker('decode', dEngine)
    const colo = await worker('colocated', new MemoryEngine('c13', 'h'))
    const expected = tokens(await generate(colo.controlUrl, {requestId: 'e', promptTokenIds: [7, 8, 9], sampling: greedy}))
    const incomplete = await generate(d.controlUrl, {requestId: 'i', promptTokenIds: [7, 8, 9], sampling: greedy, kv: {do_remote_prefill: true, remote_engine_id: 'p'}})
    expect(tokens(incomplete)).toEqual(expected)
    expect(await (await fetch(`${d.controlUrl}/metrics`)).text()).toMatch(/^hpd_kv_params_incomplete_total 1$/m)

    const p = await worker('prefill', new MemoryEngine('p13', 'h-other-layout'))
    const lenient = await worker('decode', new MemoryEngine('d13b', 'h'), 10_000, 'recompute')
    const pre = await prefill(p.controlUrl, 'r', [7, 8, 9])
    const strict = await generate(d.controlUrl, {requestId: 'r', promptTokenIds: [7, 8, 9], sampling: greedy, transfer: pre.transfer})
    expect(strict.at(-1)).toMatchObject({type: 'error', code: 'compatibility_mismatch'})
    const recomputed = await generate(lenient.controlUrl, {requestId: 'r', promptTokenIds: [7, 8, 9], sampling: greedy, transfer: pre.transfer})
    expect(tokens(recomputed)).toEqual(expected)
    expect(await (await fetch(`${lenient.controlUrl}/metrics`)).text()).toMatch(/^hpd_kv_load_failures_total 1$/m)
  })

  it('--verify-transfers: the prefill side digests over the control plane (the lease\'s grant presented); a mismatch fails the request (kv_verify_failed) or, with recompute, computes it here; the prefill blocks go either way', async () => {
    const pEngine = new MemoryEngine('p14', 'h')
    const p = await worker('prefill', pEngine)
    const dEngine = new MemoryEngine('d14', 'h')
    const d = await worker('decode', dEngine, 10_000, 'fail', true)
    const lenientEngine = new MemoryEngine('d14b', 'h')
    const lenient = await worker('decode', lenientEngine, 10_000, 'recompute', true)
    const colo = await worker('colocated', new MemoryEngine('c14', 'h'))
    const expected = tokens(await generate(colo.controlUrl, {requestId: 'e', promptTokenIds: [5, 6, 7, 8], sampling: greedy}))

    const good = await prefill(p.controlUrl, 'v-good', [5, 6, 7, 8])
    expect(tokens(await generate(d.controlUrl, {requestId: 'v-good', promptTokenIds: [5, 6, 7, 8], sampling: greedy, transfer: good.transfer}))).toEqual(expected)

    const bad = await prefill(p.controlUrl, 'v-bad', [5, 6, 7, 8])
    dEngine.damaged.add(bad.transfer.requestId)
    const failed = await generate(d.controlUrl, {requestId: 'v-bad', promptTokenIds: [5, 6, 7, 8], sampling: greedy, transfer: bad.transfer})
    expect(failed.at(-1)).toMatchObject({type: 'error', code: 'kv_verify_failed'})
    expect(tokens(failed)).toEqual([])

    const again = await prefill(p.controlUrl, 'v-again', [5, 6, 7, 8])
    lenientEngine.damaged.add(again.transfer.requestId)
    expect(tokens(await generate(lenient.controlUrl, {requestId: 'v-again', promptTokenIds: [5, 6, 7, 8], sampling: greedy, transfer: again.transfer}))).toEqual(expected)

    // "read done" went out after each verification, failed or not: no lease is left.
    for (let i = 0; i < 50 && pEngine.caches.size > 0; i++) await new Promise((r) => setTimeout(r, 20))
    expect(pEngine.caches.size).toBe(0)
    const stats = await callJson<WorkerStats>(`${d.controlUrl}${INTERNAL.stats}`, undefined, 1000)
    expect(stats).toMatchObject({verifiedTransfers: 1})
    expect(await (await fetch(`${d.controlUrl}/metrics`)).text()).toMatch(/^hpd_kv_verify_failures_total 1$/m)
  })

  it('contacts only registered prefill engines, at their registered address', async () => {
    const p = await worker('prefill', new MemoryEngine('p9', 'h'))
    const d = await worker('decode', new MemoryEngine('d9', 'h'))
    const pre = await prefill(p.controlUrl, 'ssrf', [1, 2, 3])
    const forged = await generate(d.controlUrl, {requestId: 'ssrf', promptTokenIds: [1, 2, 3], sampling: greedy, transfer: {...pre.transfer, handshakeUrl: 'http://127.0.0.1:9'}})
    expect(forged.at(-1)).toMatchObject({type: 'error', code: 'unregistered_peer_url'})
    const stranger = await generate(d.controlUrl, {requestId: 'ssrf2', promptTokenIds: [1, 2, 3], sampling: greedy, transfer: {...pre.transfer, engineId: 'elsewhere'}})
    expect(stranger.at(-1)).toMatchObject({type: 'error', code: 'unknown_prefill_engine'})
  })

  it('a request larger than the free pool waits for blocks (FCFS) instead of failing; one larger than the whole pool is a 400', async () => {
    const engine = new MemoryEngine('c12', 'h', 4)
    const c = await worker('colocated', engine)
    const many = {...greedy, n: 3, maxTokens: 12}
    const [first, second, third] = await Promise.all([
      generate(c.controlUrl, {requestId: 'w0', promptTokenIds: [1, 2], sampling: many}),
      generate(c.controlUrl, {requestId: 'w1', promptTokenIds: [3, 4], sampling: many}),
      generate(c.controlUrl, {requestId: 'w2', promptTokenIds: [5], sampling: greedy}),
    ])
    for (const evs of [first, second, third]) expect(evs.at(-1)).toMatchObject({type: 'done'})
    // Someone waited (3 + 3 + 1 blocks > 4), and said so while waiting.
    expect([first, second, third].some((evs) => evs.some((e) => e.type === 'phase' && e.phase === 'queued'))).toBe(true)
    expect(engine.caches.size).toBe(0)
    const tooMany = await generate(c.controlUrl, {requestId: 'w3', promptTokenIds: [1], sampling: {...greedy, n: 5}})
    expect(tooMany[0]).toMatchObject({type: 'error', status: 400, code: 'kv_capacity_exceeded'})
    const stats = await callJson<WorkerStats>(`${c.controlUrl}${INTERNAL.stats}`, undefined, 1000)
    expect(stats).toMatchObject({kvBlocksUsed: 0, kvBlocksCommitted: 0, kvQueued: 0})
  })

  it('answers callers without the cluster token with 401 and nothing else', async () => {
    const p = await worker('prefill', new MemoryEngine('p10', 'h'))
    for (const path of [INTERNAL.metadata, INTERNAL.health, INTERNAL.stats]) {
      const res = await fetch(`${p.controlUrl}${path}`)
      expect(res.status).toBe(401)
      expect(await res.json()).toEqual({error: {code: 'unauthorized', message: 'this endpoint needs a call signed with the cluster token'}})
    }
    const wrong = await new ControlClient('another-token-that-is-wrong').call(`${p.controlUrl}${INTERNAL.metadata}`, undefined, {timeoutMs: 1000}).catch((e: unknown) => e)
    expect(wrong).toMatchObject({status: 401})
    const stats = await callJson<WorkerStats>(`${p.controlUrl}${INTERNAL.stats}`, undefined, 1000)
    expect(stats.refusedUnauthenticated).toBe(4)
  })
})
