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
import {ServeError} from '../backend.js'
import type {ControlClient} from '../http-json.js'
import {INTERNAL, type GenerateRequest, type TransferParams, type WorkerStreamEvent} from '../protocol.js'
import {ContinuousBatcher} from './batcher.js'
import type {GroupBlockIds, WorkerEngine} from './engine-port.js'
import {PeerCache} from './peer-cache.js'
import type {PeerDirectory} from './peer-directory.js'
import {READ_DONE_PREFIX} from './prefill-role.js'

export interface DecodeRoleOptions {
  readonly engine: WorkerEngine
  readonly client: ControlClient
  readonly peers: PeerDirectory
  readonly maxBatch: number
  readonly handshakeTimeoutMs: number
  readonly transferTimeoutMs: number
  /** Poll interval while the KV pool is full; the prefill lease is extended on the same beat. */
  readonly allocRetryMs: number
  readonly log: (event: string, fields: Record<string, unknown>) => void
  /** Test hook: pause after the handshake, before the read (lets fault tests kill a peer mid-transfer). */
  readonly pauseBeforeReadMs?: number
}

export type Emit = (event: WorkerStreamEvent) => void

export class DecodeRole {
  readonly batcher: ContinuousBatcher
  readonly links: PeerCache
  /** Requests between admission and the end of their stream (ids are unique while here). */
  private readonly active = new Set<string>()
  transferBytes = 0
  transferMs = 0

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
    // Ours from here until the batcher takes it: the finally below frees it on every other path.
    let ownsBlocks = true
    try {
      const prompt = req.promptTokenIds
      let firstInput: number
      let produced = 0
      if (req.transfer) {
        await this.pullTransferred(req, emit, signal)
        firstInput = prompt[prompt.length - 1]
      } else {
        const first = await this.o.engine.prefillLocal(req.requestId, prompt, req.sampling)
        if (first === this.o.engine.eosTokenId && !req.sampling.ignoreEos) {
          emit({type: 'done', finishReason: 'stop', numOutputTokens: 0})
          return
        }
        emit({type: 'token', tokenId: first})
        produced = 1
        if (req.sampling.maxTokens <= 1) {
          emit({type: 'done', finishReason: 'length', numOutputTokens: 1})
          return
        }
        firstInput = first
      }
      if (signal.aborted) throw signal.reason
      emit({type: 'phase', phase: 'decode', atMs: Date.now()})
      ownsBlocks = false // the batcher frees them from here on
      await this.decode(req, firstInput, produced, emit, signal)
    } catch (error) {
      const e = error instanceof ServeError ? error : new ServeError(500, 'worker_error', String((error as Error)?.message ?? error))
      emit({type: 'error', code: e.code, message: e.message, status: e.status})
    } finally {
      if (ownsBlocks) this.o.engine.free(req.requestId)
      this.active.delete(req.requestId)
    }
  }

  private decode(req: GenerateRequest, firstInput: number, produced: number, emit: Emit, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      let count = produced
      const onAbort = () => this.batcher.cancel(req.requestId)
      signal.addEventListener('abort', onAbort, {once: true})
      this.batcher.add({
        requestId: req.requestId,
        sampling: req.sampling,
        nextInputTokenId: firstInput,
        producedTokens: produced,
        onToken: (tokenId) => {
          count++
          emit({type: 'token', tokenId})
        },
        onDone: (finishReason) => {
          signal.removeEventListener('abort', onAbort)
          emit({type: 'done', finishReason, numOutputTokens: count})
          resolve()
        },
        onError: (error) => {
          signal.removeEventListener('abort', onAbort)
          const e = error as {code?: string}
          emit({type: 'error', code: 'decode_failed', message: `${e.code ? `${e.code}: ` : ''}${error.message}`, status: 500})
          resolve()
        },
      })
    })
  }

  private async pullTransferred(req: GenerateRequest, emit: Emit, signal: AbortSignal): Promise<void> {
    const t = req.transfer!
    // Refuses engines nobody registered before anything is fetched or kept.
    const controlUrl = this.o.peers.controlUrlOf(t)
    // From here until the read is done the prefill side must keep the blocks: heartbeat its lease.
    const lease = new LeaseHeartbeat(this.o.client, controlUrl, t, this.o.handshakeTimeoutMs, (error) => {
      this.o.log('lease-lost', {requestId: req.requestId, prefillEngine: t.engineId, message: error.message})
    })
    try {
      const handshakeStart = performance.now()
      emit({type: 'phase', phase: 'handshake', atMs: Date.now()})
      const peer = await this.links.get(t, controlUrl)
      const handshakeMs = performance.now() - handshakeStart
      const local = await this.allocate(req, lease, signal)
      if (this.o.pauseBeforeReadMs) {
        this.o.log('pause-before-read', {requestId: req.requestId, prefillEngine: t.engineId, ms: this.o.pauseBeforeReadMs})
        await sleep(this.o.pauseBeforeReadMs, signal)
      }
      // Blocks whose lease ended may already hold another request: never read them.
      lease.check()
      emit({type: 'phase', phase: 'transfer', atMs: Date.now()})
      const transferStart = performance.now()
      let pulled
      try {
        pulled = await this.o.engine.pull(peer, local, t, this.o.transferTimeoutMs)
      } catch (error) {
        await this.links.drop(t.engineId)
        throw new ServeError(502, 'kv_transfer_failed', `pulling request ${req.requestId} from prefill engine ${t.engineId} failed: ${(error as Error).message}`)
      }
      lease.stop()
      const transferMs = performance.now() - transferStart
      this.transferBytes += pulled.bytes
      this.transferMs += transferMs
      this.o.engine.adopt(req.requestId, t.numComputedTokens)
      // The prefill side frees its blocks on this; if it is lost, the lease frees them anyway.
      this.o.engine.notify(peer, `${READ_DONE_PREFIX}${t.requestId}`).catch((error: Error) => {
        this.o.log('notify-failed', {requestId: req.requestId, message: error.message})
      })
      emit({type: 'transfer-done', handshakeMs, transferMs, bytes: pulled.bytes, reads: pulled.reads})
    } finally {
      lease.stop()
    }
  }

  /** Waits for local blocks (the pool may be full); the lease heartbeat keeps the prefill blocks meanwhile. */
  private async allocate(req: GenerateRequest, lease: LeaseHeartbeat, signal: AbortSignal): Promise<GroupBlockIds> {
    for (;;) {
      const got = this.o.engine.allocate(req.requestId, req.transfer!.numComputedTokens)
      if (got) return got
      if (signal.aborted) throw signal.reason
      lease.check()
      await sleep(this.o.allocRetryMs, signal)
    }
  }
}

/**
 * Extends a prefill lease every third of its length (vLLM #41383 beats at a sixth; a third keeps
 * two beats of slack on loopback) until stopped. A refused or failed beat marks the lease lost.
 */
class LeaseHeartbeat {
  private readonly timer: NodeJS.Timeout
  private lost: ServeError | undefined

  constructor(client: ControlClient, controlUrl: string, t: TransferParams, timeoutMs: number, onLost: (error: ServeError) => void) {
    const leaseMs = Math.max(150, t.leaseExpiresAtMs - Date.now())
    const beatMs = Math.max(50, Math.floor(leaseMs / 3))
    this.timer = setInterval(() => {
      client.call(`${controlUrl}${INTERNAL.leaseExtend}`, {requestId: t.requestId}, {timeoutMs: Math.min(timeoutMs, beatMs), retryOnReset: true}).catch((error: Error) => {
        if (this.lost) return
        this.lost = new ServeError(503, 'lease_lost', `the prefill lease of ${t.requestId} on ${t.engineId} could not be extended: ${error.message}`)
        onLost(this.lost)
      })
    }, beatMs)
    this.timer.unref()
  }

  /** Throws once the lease is lost. */
  check(): void {
    if (this.lost) throw this.lost
  }

  stop(): void {
    clearInterval(this.timer)
  }
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
