/**
 * The decode side of P/D (and the colocated baseline): for a transferred request it handshakes
 * (cached, registered prefill engines only), waits for local blocks while extending the prefill
 * lease, pulls the cache with the layout engine's read plan, notifies the prefill side, then joins
 * continuous batching, feeding the last prompt token first (the prefill side computed N−1).
 * Tokens stream back as NDJSON.
 *
 * Ownership: a request's local blocks belong to its generate() call from before the first engine
 * call that may allocate them until the batcher takes them over; every exit path in between frees
 * them (engine.free is a no-op for ids it does not hold).
 */
import {HpdError, VerificationError} from '../../errors.js'
import {errorEvent, ServeError} from '../backend.js'
import type {ControlClient} from '../http-json.js'
import {sequenceBlocks} from '../kv-capacity.js'
import {INTERNAL, promptDigest, type DigestsResponse, type FinishReason, type GenerateRequest, type TransferParams, type WorkerStreamEvent} from '../protocol.js'
import {ContinuousBatcher, endOf} from './batcher.js'
import type {BlockGate} from './block-gate.js'
import type {GroupBlockIds, PullOptions, PullResult, SampledToken, WorkerEngine} from './engine-port.js'
import {LeaseHeartbeat} from './lease-heartbeat.js'
import {PeerCache} from './peer-cache.js'
import type {PeerDirectory} from './peer-directory.js'

export interface DecodeRoleOptions {
  readonly engine: WorkerEngine
  readonly client: ControlClient
  readonly peers: PeerDirectory
  readonly maxBatch: number
  readonly handshakeTimeoutMs: number
  readonly transferTimeoutMs: number
  /**
   * Admission into the KV pool (FCFS, at full length), shared with the prefill role: a request
   * waits here until its blocks fit, so it never runs out of them midway.
   */
  readonly gate: BlockGate
  /** Poll interval while an admitted request's blocks are still being freed by a running step. */
  readonly allocRetryMs: number
  readonly log: (event: string, fields: Record<string, unknown>) => void
  /** Test hook: pause after the handshake, before the read (lets fault tests kill a peer mid-transfer). */
  readonly pauseBeforeReadMs?: number
  /**
   * `--verify-transfers`: after each read both sides digest the request's reads (the prefill
   * side's answer comes over the control plane) and a mismatch fails the request, never served.
   */
  readonly verifyTransfers?: boolean
}

export type Emit = (event: WorkerStreamEvent) => void

export class DecodeRole {
  readonly batcher: ContinuousBatcher
  readonly links: PeerCache
  /** Requests between admission and the end of their stream (ids are unique while here). */
  private readonly active = new Set<string>()
  transferBytes = 0
  transferMs = 0
  /** --verify-transfers: requests verified, and the time it took (digests of both sides + the round trip). */
  verifiedTransfers = 0
  verifyMs = 0

  constructor(private readonly o: DecodeRoleOptions) {
    this.batcher = new ContinuousBatcher(o.engine, o.maxBatch)
    this.links = new PeerCache(o.engine, o.client, o.peers, o.handshakeTimeoutMs, o.log)
  }

  get inFlight(): number {
    return this.active.size
  }

  /** Refuses a request id already running here (its blocks must not be touched by a second call). */
  admit(requestId: string): void {
    if (this.active.has(requestId)) throw new ServeError(409, 'duplicate_request', `request ${requestId} is already running on this worker`)
  }

  /** Runs one request to completion, emitting its events; resolves when it ended (any way). */
  async generate(req: GenerateRequest, emit: Emit, signal: AbortSignal): Promise<void> {
    this.admit(req.requestId)
    this.active.add(req.requestId)
    const n = req.sampling.n ?? 1
    const ids = sequenceIds(req.requestId, n)
    // Ours from here until the batcher takes them: the finally below frees them on every other path.
    let ownsBlocks = true
    // The request's commitment in the KV pool (admission): released once its blocks are all freed.
    const admission: Admission = {release: undefined}
    try {
      const prompt = req.promptTokenIds
      ids.forEach((id, j) => this.o.engine.openSequence(id, prompt, req.sampling, j))
      let starts: SequenceStart[]
      let cachedTokens = 0
      if (req.transfer) {
        const prefillCached = await this.pullTransferred(req, emit, signal, admission)
        // n > 1: the pulled N−1 tokens are copied for the other continuations; each recomputes the last prompt token itself.
        if (n > 1) await this.withBlocks(signal, () => this.o.engine.fork(req.requestId, ids.slice(1)))
        starts = ids.map(() => ({input: prompt[prompt.length - 1], produced: 0}))
        // The prompt tokens served from a prefix cache: the prefill side's hit, as it counted it
        // (the params' `cached_tokens` is the caller's copy, not trusted for usage).
        cachedTokens = prefillCached
      } else {
        admission.release = await this.admitBlocks(req, emit, signal)
        // A client gone mid-prefill frees the request now: its queued chunks are dropped.
        const onAbort = () => this.o.engine.free(req.requestId)
        signal.addEventListener('abort', onAbort, {once: true})
        let firsts
        try {
          // Short of blocks (only while a running step still holds some it freed): every sequence
          // is freed and reopened, and the prefill starts over (nothing was sampled yet).
          const retry = () => {
            for (const id of ids) this.o.engine.free(id)
            ids.forEach((id, j) => this.o.engine.openSequence(id, prompt, req.sampling, j))
          }
          firsts = await this.withBlocks(signal, () => this.o.engine.prefillLocal(req.requestId, prompt, ids.slice(1)), retry)
          cachedTokens = this.o.engine.cachedTokens?.(req.requestId) ?? 0
        } finally {
          signal.removeEventListener('abort', onAbort)
        }
        emit({type: 'prefilled', cachedTokens})
        starts = firsts.map((first, j) => this.firstToken(req, first, j, n, emit))
      }
      if (req.transfer) emit({type: 'prefilled', cachedTokens})
      if (signal.aborted) throw signal.reason
      emit({type: 'phase', phase: 'decode', atMs: Date.now()})
      ownsBlocks = false // the batcher frees them from here on
      // A continuation that fails fails the request: the others are cancelled (their blocks
      // freed by the batcher), and the stream ends with the error once all of them stopped.
      const ended = await Promise.all(
        ids.map((id, j) =>
          this.decode(req, id, j, n, starts[j], emit, signal).then((end) => {
            if (end.error) for (const other of ids) this.batcher.cancel(other)
            return end
          }),
        ),
      )
      const failed = ended.find((e) => e.error)
      if (failed) throw failed.error
      emit({type: 'done', finishReason: ended[0].finishReason, numOutputTokens: ended.reduce((a, e) => a + e.numOutputTokens, 0)})
    } catch (error) {
      const e = error instanceof ServeError ? error : new ServeError(500, 'worker_error', String((error as Error)?.message ?? error))
      emit(errorEvent(e))
    } finally {
      if (ownsBlocks) for (const id of ids) this.o.engine.free(id)
      // Every sequence is freed by now (the batcher frees each as it ends, before its promise resolves).
      admission.release?.()
      this.active.delete(req.requestId)
    }
  }

  /**
   * Waits (FCFS) until the request's blocks at full length — every continuation, prompt plus
   * max_tokens — fit in the pool beside those of the requests admitted before it. While it waits,
   * a `queued` phase event goes out every few seconds so the caller's idle bound does not expire.
   */
  private async admitBlocks(req: GenerateRequest, emit: Emit, signal: AbortSignal): Promise<() => void> {
    const n = req.sampling.n ?? 1
    const blocks = n * sequenceBlocks(this.o.engine.kvGeometry(), req.promptTokenIds.length + req.sampling.maxTokens - 1)
    const pending = this.o.gate.acquire(blocks, signal)
    const beat = setInterval(() => emit({type: 'phase', phase: 'queued', atMs: Date.now()}), QUEUED_BEAT_MS)
    try {
      if (this.o.gate.waiting > 0) emit({type: 'phase', phase: 'queued', atMs: Date.now()})
      return await pending
    } finally {
      clearInterval(beat)
    }
  }

  /**
   * Runs an allocating engine call of an admitted request; while the pool is short (blocks freed
   * during a running engine step come back when it ends) it is retried every allocRetryMs.
   */
  private async withBlocks<T>(signal: AbortSignal, call: () => T | Promise<T>, beforeRetry?: () => void): Promise<T> {
    for (;;) {
      try {
        return await call()
      } catch (error) {
        if (!(error instanceof HpdError && error.code === 'HPD_ENGINE_POOL_FULL') || signal.aborted) throw error
      }
      await sleep(this.o.allocRetryMs, signal)
      beforeRetry?.()
    }
  }

  /**
   * The first token a local prefill sampled for continuation `index`: emitted, and the sequence
   * either ends here (EOS, a stop token id, max_tokens 1, its own failure) or decodes on from it.
   */
  private firstToken(req: GenerateRequest, first: SampledToken | Error, index: number, n: number, emit: Emit): SequenceStart {
    // One continuation's failed first sampling fails the request (the finally frees every sequence).
    if (first instanceof Error) throw first
    const end = endOf(first.tokenId, this.o.engine.eosTokenId, req.sampling)
    emit(tokenEvent(first, index, n))
    if (end !== undefined) return {ended: {finishReason: 'stop', numOutputTokens: 1}}
    if (req.sampling.maxTokens <= 1) return {ended: {finishReason: 'length', numOutputTokens: 1}}
    return {input: first.tokenId, produced: 1}
  }

  /** Decodes one continuation in the shared batch; resolves when it ended (a 'finish' was emitted when n > 1 and it did not fail). */
  private decode(req: GenerateRequest, sequenceId: string, index: number, n: number, start: SequenceStart, emit: Emit, signal: AbortSignal): Promise<SequenceEnd> {
    const finish = (end: SequenceEnd): SequenceEnd => {
      if (n > 1 && !end.error) emit({type: 'finish', index, finishReason: end.finishReason, numOutputTokens: end.numOutputTokens})
      return end
    }
    if ('ended' in start) {
      this.o.engine.free(sequenceId)
      return Promise.resolve(finish(start.ended))
    }
    return new Promise<SequenceEnd>((resolve) => {
      let count = start.produced
      const onAbort = () => this.batcher.cancel(sequenceId)
      signal.addEventListener('abort', onAbort, {once: true})
      this.batcher.add({
        requestId: sequenceId,
        sampling: req.sampling,
        nextInputTokenId: start.input,
        producedTokens: start.produced,
        onToken: (token) => {
          count++
          emit(tokenEvent(token, index, n))
        },
        onDone: (finishReason) => {
          signal.removeEventListener('abort', onAbort)
          resolve(finish({finishReason, numOutputTokens: count}))
        },
        onError: (error) => {
          signal.removeEventListener('abort', onAbort)
          const e = error as {code?: string}
          resolve({finishReason: 'abort', numOutputTokens: count, error: new ServeError(500, 'decode_failed', `${e.code ? `${e.code}: ` : ''}${error.message}`)})
        },
      })
    })
  }

  /** Resolves with the prompt tokens the prefill side's prefix cache served (its own count, from the confirm). */
  private async pullTransferred(req: GenerateRequest, emit: Emit, signal: AbortSignal, admission: Admission): Promise<number> {
    const t = req.transfer!
    // Refuses engines nobody registered before anything is fetched or kept.
    const controlUrl = await this.o.peers.resolve(t)
    // A lost lease ends the wait for blocks at once (the prefill side's blocks may be reused).
    const leaseLost = new AbortController()
    // From here until the read is done the prefill side must keep the blocks: heartbeat its lease.
    const lease = new LeaseHeartbeat(this.o.client, controlUrl, t, this.o.handshakeTimeoutMs, (error) => {
      this.o.log('lease-lost', {requestId: req.requestId, prefillEngine: t.engineId, message: error.message})
      leaseLost.abort(error)
    })
    let read = false
    try {
      const handshakeStart = performance.now()
      emit({type: 'phase', phase: 'handshake', atMs: Date.now()})
      const peer = await this.links.get(t, controlUrl)
      // The params must be that engine's answer for this request: the lease's grant, its block ids
      // and the prefilled tokens' digest prove it (a caller naming someone else's blocks or
      // sending another prompt of the same length cannot make this worker read or reuse them).
      const confirmed = await lease.confirm(t.blockIds, promptDigest(req.promptTokenIds.slice(0, t.numComputedTokens)))
      const handshakeMs = performance.now() - handshakeStart
      admission.release = await this.admitBlocks(req, emit, AbortSignal.any([signal, leaseLost.signal]))
      const {blockIds: local, cachedTokens} = await this.allocate(req, lease, signal)
      if (this.o.pauseBeforeReadMs) {
        this.o.log('pause-before-read', {requestId: req.requestId, prefillEngine: t.engineId, ms: this.o.pauseBeforeReadMs})
        await sleep(this.o.pauseBeforeReadMs, signal)
      }
      // Blocks whose lease ended may already hold another request: never read them. The lease is
      // re-confirmed now (still ours, a full lease length ahead of the bounded read).
      await lease.reconfirm()
      emit({type: 'phase', phase: 'transfer', atMs: Date.now()})
      const transferStart = performance.now()
      let pulled: PullResult
      try {
        pulled = await this.o.engine.pull(peer, local, t, this.o.transferTimeoutMs, {...this.verifyOptions(t, controlUrl, cachedTokens), ...(cachedTokens > 0 ? {cachedTokens} : {})})
      } catch (error) {
        // Verified or not, the read is over: the prefill side may free its blocks now.
        if (error instanceof VerifyFailed || error instanceof VerificationError) this.readDone(peer, req.requestId, t)
        else await this.links.drop(t.engineId)
        throw asTransferError(req.requestId, t, error)
      }
      lease.stop()
      const transferMs = performance.now() - transferStart
      this.transferBytes += pulled.bytes
      this.transferMs += transferMs
      if (pulled.verifyMs !== undefined) {
        this.verifiedTransfers++
        this.verifyMs += pulled.verifyMs
      }
      this.o.engine.adopt(req.requestId, t.numComputedTokens)
      // The prefill side frees its blocks on this; if it is lost, the lease frees them anyway.
      this.readDone(peer, req.requestId, t)
      // One line per pull, under the request id a proxy sent (X-Request-Id): what schedulers and operators correlate.
      this.o.log('kv-transfer', {requestId: req.requestId, prefillEngine: t.engineId, prefillRequestId: t.requestId, bytes: pulled.bytes, reads: pulled.reads, handshakeMs: round(handshakeMs), transferMs: round(transferMs), ...(cachedTokens > 0 ? {cachedTokens} : {}), ...(pulled.verifyMs !== undefined ? {verifyMs: round(pulled.verifyMs)} : {})})
      emit({type: 'transfer-done', handshakeMs, transferMs, bytes: pulled.bytes, reads: pulled.reads, ...(cachedTokens > 0 ? {cachedTokens} : {})})
      read = true
      return confirmed.cachedTokens
    } finally {
      lease.stop()
      // Given up before the read (client gone, no blocks, an error): the prefill side may free
      // its blocks now rather than at lease expiry (vLLM sends an empty-block notification).
      if (!read) lease.release()
    }
  }

  private readDone(peer: Parameters<WorkerEngine['readDone']>[0], requestId: string, t: TransferParams): void {
    this.o.engine.readDone(peer, t.requestId).catch((error: Error) => {
      this.o.log('notify-failed', {requestId, message: error.message})
    })
  }

  /** With --verify-transfers: how the engine gets the prefill side's digests of this request's reads. */
  private verifyOptions(t: TransferParams, controlUrl: string, cachedTokens: number): PullOptions {
    if (!this.o.verifyTransfers) return {}
    return {
      verify: (decodeTp) =>
        this.o.client
          .call<DigestsResponse>(`${controlUrl}${INTERNAL.digests}`, {requestId: t.requestId, decodeTp, ...(cachedTokens > 0 ? {cachedTokens} : {}), ...(t.grant ? {grant: t.grant} : {})}, {timeoutMs: this.o.transferTimeoutMs, retryOnReset: true})
          .then(
            (r) => r.pairs,
            (error: Error) => {
              throw new VerifyFailed(`the prefill side could not digest request ${t.requestId}: ${error.message}`)
            },
          ),
    }
  }

  /**
   * Takes the admitted request's local blocks (retried while a running step still holds blocks it
   * freed); the lease heartbeat keeps the prefill blocks meanwhile. The prefix cache may hold the
   * request's leading attention blocks (this worker's own earlier turn): those are shared, and the
   * pull skips them (`cachedTokens`).
   */
  private async allocate(req: GenerateRequest, lease: LeaseHeartbeat, signal: AbortSignal): Promise<{blockIds: GroupBlockIds; cachedTokens: number}> {
    for (;;) {
      const got = this.o.engine.allocate(req.requestId, req.promptTokenIds.slice(0, req.transfer!.numComputedTokens))
      if (got) return got
      if (signal.aborted) throw signal.reason
      lease.check()
      await sleep(this.o.allocRetryMs, signal)
    }
  }
}

/** The prefill side's digests could not be had: the transfer cannot be verified, so it is not served. */
class VerifyFailed extends Error {}

/** A failed pull as the request's error: a verification failure says so (never served), others are transfer failures. */
function asTransferError(requestId: string, t: TransferParams, error: unknown): ServeError {
  const message = (error as Error)?.message ?? String(error)
  if (error instanceof VerificationError || error instanceof VerifyFailed) {
    return new ServeError(502, 'kv_verify_failed', `request ${requestId} from prefill engine ${t.engineId} failed verification, not served: ${message}`)
  }
  return new ServeError(502, 'kv_transfer_failed', `pulling request ${requestId} from prefill engine ${t.engineId} failed: ${message}`)
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, {once: true})
  })
}

/** Where a continuation starts decoding, or how it already ended (first token EOS, max_tokens 1, ...). */
type SequenceStart = {readonly input: number; readonly produced: number} | {readonly ended: SequenceEnd}

interface SequenceEnd {
  readonly finishReason: FinishReason
  readonly numOutputTokens: number
  /** This continuation failed (its sampling, its blocks): the request fails with it. */
  readonly error?: Error
}

/** Engine request ids of the n continuations: the request's own id, then `<id>:n<j>`. */
export function sequenceIds(requestId: string, n: number): string[] {
  return Array.from({length: n}, (_, j) => (j === 0 ? requestId : `${requestId}:n${j}`))
}

/** How often a request waiting for KV blocks tells its caller it is still queued (below every idle bound). */
const QUEUED_BEAT_MS = 5000

/** Holder of a request's KV-pool commitment, set once admitted. */
interface Admission {
  release: (() => void) | undefined
}

function tokenEvent(t: SampledToken, index: number, n: number): WorkerStreamEvent {
  return {
    type: 'token',
    tokenId: t.tokenId,
    ...(n > 1 ? {index} : {}),
    ...(t.logprob === undefined ? {} : {logprob: t.logprob, top: t.top ?? []}),
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100
}
