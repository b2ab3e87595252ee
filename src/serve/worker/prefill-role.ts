/**
 * The prefill side of P/D: computes N−1 prompt tokens, holds the request's blocks under a lease,
 * answers with transfer params, serves the handshake, and frees blocks on the decode side's
 * "read done" notification (or an HTTP release) or when the lease expires.
 *
 * Ownership: a request's blocks belong to its prefill() call until the lease holds them; a prefill
 * that fails frees what it allocated. A lease can be extended, but never past `maxLeaseMs` after
 * it began: a caller that keeps beating cannot pin blocks forever.
 */
import {randomBytes} from 'node:crypto'

import {HpdError, ModelConfigError, UsageError} from '../../errors.js'
import {transferredTokens} from '../../layout/index.js'
import {ServeError} from '../backend.js'
import {sequenceBlocks} from '../kv-capacity.js'
import {PROTOCOL_VERSION, promptDigest, type HandshakePayload, type LeaseExtendResponse, type LeaseRequest, type PrefillRequest, type PrefillResponse} from '../protocol.js'
import type {GroupBlockIds} from './engine-port.js'
import type {WorkerEngine} from './engine-port.js'
import type {BlockGate} from './block-gate.js'
import {LeaseTable} from './lease-table.js'

export interface PrefillRoleOptions {
  readonly engine: WorkerEngine
  readonly engineEpoch: string
  readonly controlUrl: () => string
  readonly leaseMs: number
  /** Longest a lease may be held, extensions included (the router's request bound covers any real wait). */
  readonly maxLeaseMs: number
  /** Admission into the KV pool (FCFS), shared with the decode role: a prompt waits here until its blocks fit. */
  readonly gate: BlockGate
  /** Poll interval while an admitted prompt's blocks are still being freed by a running step. */
  readonly allocRetryMs: number
  readonly log: (event: string, fields: Record<string, unknown>) => void
}

export class PrefillRole {
  readonly leases: LeaseTable
  private readonly sweeper: NodeJS.Timeout
  /** Requests admitted and being prefilled now (their blocks are not under a lease yet). */
  private readonly computing = new Set<string>()
  /** Requests waiting for blocks (KV-pool admission). */
  private readonly queued = new Set<string>()
  /** Each held request's KV-pool commitment, released with its blocks. */
  private readonly admissions = new Map<string, () => void>()
  /**
   * What each leased request's decode leg must present: the served-read grant (the KV link revokes
   * it with the lease), the block ids and the digest of the prefilled tokens (see confirm()).
   */
  private readonly leased = new Map<string, LeasedRequest>()

  constructor(private readonly o: PrefillRoleOptions) {
    this.leases = new LeaseTable({
      durationMs: o.leaseMs,
      maxHoldMs: o.maxLeaseMs,
      onEnd: (requestId, why) => {
        this.leased.delete(requestId)
        // The grant goes before the blocks: nobody may be served them once they can be reused.
        o.engine.endTransfer(requestId)
        o.engine.free(requestId)
        this.admissions.get(requestId)?.()
        this.admissions.delete(requestId)
        o.log(why === 'expired' ? 'lease-expired' : 'lease-released', {requestId})
      },
    })
    // Sweep a few times per lease so expiry is late by at most a quarter of it.
    this.sweeper = setInterval(() => this.leases.sweep(), Math.max(50, Math.floor(o.leaseMs / 4)))
    this.sweeper.unref()
    o.engine.onReadDone((requestId) => this.leases.release(requestId))
  }

  /** Prompts being computed now. */
  get inFlight(): number {
    return this.computing.size
  }

  /** Prompts waiting for KV blocks. */
  get waiting(): number {
    return this.queued.size
  }

  handshake(): HandshakePayload {
    const e = this.o.engine
    return {
      protocolVersion: PROTOCOL_VERSION,
      compatibilityHash: e.compatibilityHash,
      engineId: e.engineId,
      engineEpoch: this.o.engineEpoch,
      tpSize: e.tpSize,
      transport: e.transportInfo(),
    }
  }

  /**
   * `req` is validated (protocol-schema.ts): ids, token ids inside the vocabulary, 2..context−1
   * tokens. Waits (FCFS) until the prompt's blocks fit the pool. `signal`: the caller left (its
   * client, its timeout, a sibling prompt of its request failing). Its wait or its prefill stops
   * (queued chunks dropped, blocks freed), and a prefill that finished for nobody is not leased: no
   * one will ever send its decode leg, so holding its blocks for the lease would only starve the
   * requests that are still here.
   */
  async prefill(req: PrefillRequest, signal: AbortSignal = new AbortController().signal): Promise<PrefillResponse> {
    if (this.computing.has(req.requestId) || this.queued.has(req.requestId) || this.leases.has(req.requestId)) {
      throw new ServeError(409, 'duplicate_request', `request ${req.requestId} is already prefilled or being prefilled on this worker`)
    }
    const started = performance.now()
    const computed = req.promptTokenIds.slice(0, transferredTokens(req.promptTokenIds.length))
    let release: (() => void) | undefined
    const abandon = () => {
      this.o.engine.endTransfer(req.requestId)
      this.o.engine.free(req.requestId)
    }
    let prefilled
    try {
      this.queued.add(req.requestId)
      try {
        release = await this.o.gate.acquire(sequenceBlocks(this.o.engine.kvGeometry(), computed.length), signal)
      } finally {
        this.queued.delete(req.requestId)
      }
      this.computing.add(req.requestId)
      signal.addEventListener('abort', abandon, {once: true})
      prefilled = await this.whenBlocksFree(signal, () => this.o.engine.prefillForTransfer(req.requestId, computed))
      if (signal.aborted) throw signal.reason
    } catch (error) {
      abandon()
      release?.()
      if (signal.aborted) {
        this.o.log('prefill-abandoned', {requestId: req.requestId, tokens: computed.length})
        throw signal.reason instanceof ServeError ? signal.reason : new ServeError(499, 'client_closed', `the caller of request ${req.requestId} left during its prefill`)
      }
      throw error
    } finally {
      signal.removeEventListener('abort', abandon)
      this.computing.delete(req.requestId)
    }
    const {blockIds, grant, cachedTokens} = prefilled
    this.leased.set(req.requestId, {grant, blockIds, promptDigest: promptDigest(computed), cachedTokens: cachedTokens ?? 0})
    this.admissions.set(req.requestId, release)
    const leaseExpiresAtMs = this.leases.hold(req.requestId)
    return {
      prefillMs: performance.now() - started,
      transfer: {
        engineId: this.o.engine.engineId,
        engineEpoch: this.o.engineEpoch,
        handshakeUrl: this.o.controlUrl(),
        requestId: req.requestId,
        blockIds,
        tpSize: this.o.engine.tpSize,
        compatibilityHash: this.o.engine.compatibilityHash,
        numComputedTokens: computed.length,
        leaseExpiresAtMs,
        grant,
        ...(cachedTokens ? {cachedTokens} : {}),
      },
    }
  }

  /** Retries an admitted prompt's allocation while a running step still holds blocks it freed (they return when it ends). */
  private async whenBlocksFree<T>(signal: AbortSignal, call: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await call()
      } catch (error) {
        if (!(error instanceof HpdError && error.code === 'HPD_ENGINE_POOL_FULL') || signal.aborted) throw error
      }
      await new Promise((resolve) => setTimeout(resolve, this.o.allocRetryMs))
    }
  }

  /**
   * Pushes a lease back. The grant must be the lease's own: the decode side proves its params came
   * from this worker's answer for that request (403 `grant_mismatch` otherwise). With `params` it
   * is the decode leg's confirm: the params are checked and the lease is *claimed* by that leg
   * (the answer's `claim`); from then on only calls carrying the claim extend or release it, so a
   * second leg for the same lease (a replay, a retry, an attacker holding the params) can neither
   * read it (409 `lease_claimed`) nor make it free blocks the first leg is about to read.
   */
  extend(requestId: string, grant?: string, params?: Pick<LeaseRequest, 'blockIds' | 'promptDigest'>, claim?: string): LeaseExtendResponse {
    this.checkGrant(requestId, grant)
    const own = this.leased.get(requestId)
    if (own?.claim !== undefined && claim !== own.claim) {
      throw new ServeError(409, 'lease_claimed', `the lease of request ${requestId} is held by another decode leg`, 'kv_transfer_params.remote_request_id')
    }
    if (params) this.confirm(requestId, params)
    const at = this.leases.extend(requestId)
    if (at === undefined || !own) throw new ServeError(410, 'lease_gone', `no lease is held for request ${requestId}: it expired or was released`)
    if (params && own.claim === undefined) own.claim = randomBytes(16).toString('hex')
    return {leaseExpiresAtMs: at, ...(params ? {claim: own.claim!, cachedTokens: own.cachedTokens} : {})}
  }

  /**
   * Frees a lease now (the decode side gave up before its read). A claimed lease only by its
   * claimant, or by the router abandoning the request that made it (`abandon`).
   */
  release(requestId: string, grant?: string, claim?: string, abandon = false): {released: boolean} {
    this.checkGrant(requestId, grant)
    const own = this.leased.get(requestId)
    if (!abandon && own?.claim !== undefined && claim !== own.claim) {
      throw new ServeError(409, 'lease_claimed', `the lease of request ${requestId} is held by another decode leg`, 'kv_transfer_params.remote_request_id')
    }
    return {released: this.leases.release(requestId)}
  }

  /** The prefill side's digests of a leased request's reads (a verifying decode worker asks before "read done"). */
  async digests(requestId: string, decodeTp: number, grant?: string, cachedTokens?: number): Promise<{pairs: unknown}> {
    this.checkGrant(requestId, grant)
    if (!this.leases.has(requestId)) throw new ServeError(410, 'lease_gone', `no lease is held for request ${requestId}: it expired or was released`)
    try {
      return {pairs: await this.o.engine.transferDigests(requestId, decodeTp, cachedTokens)}
    } catch (error) {
      // A decode TP or cached-token count no plan can take is the caller's mistake, not this worker's failure.
      if (error instanceof UsageError || error instanceof ModelConfigError) throw new ServeError(400, 'invalid_value', `no read plan for decodeTp ${decodeTp}${cachedTokens ? `, cachedTokens ${cachedTokens}` : ''}: ${error.message}`, cachedTokens && /cached|multiple/i.test(error.message) ? 'cachedTokens' : 'decodeTp')
      throw error
    }
  }

  private checkGrant(requestId: string, grant: string | undefined): void {
    const own = this.leased.get(requestId)?.grant
    if (own !== undefined && grant !== own) {
      throw new ServeError(403, 'grant_mismatch', `the grant presented for request ${requestId} is ${grant === undefined ? 'missing' : 'not the one its lease was given'}`, 'kv_transfer_params.hpd_grant')
    }
  }

  /**
   * The decode leg's params must describe this lease: its blocks (a shared-memory read is
   * one-sided, so naming another request's blocks would read them) and its prompt (the same
   * length with other tokens would decode from someone else's cache).
   */
  private confirm(requestId: string, params: Pick<LeaseRequest, 'blockIds' | 'promptDigest'>): void {
    const own = this.leased.get(requestId)
    if (!own) return // no lease: extend answers lease_gone
    if (params.blockIds !== undefined && !sameBlocks(params.blockIds, own.blockIds)) {
      throw new ServeError(400, 'kv_params_mismatch', `'kv_transfer_params.remote_block_ids' are not the blocks leased to request ${requestId}: send the prefill leg's answer unchanged`, 'kv_transfer_params.remote_block_ids')
    }
    if (params.promptDigest !== undefined && params.promptDigest !== own.promptDigest) {
      throw new ServeError(400, 'prompt_mismatch', `the decode leg's prompt is not the one prefilled for request ${requestId} (same length, other tokens): send the decode leg the prefill leg's prompt`, 'prompt')
    }
  }

  close(): void {
    clearInterval(this.sweeper)
    this.leases.clear()
  }
}

interface LeasedRequest {
  readonly grant: string
  readonly blockIds: GroupBlockIds
  readonly promptDigest: string
  /** Prompt tokens the prefill found in its prefix cache (what the decode leg's usage reports). */
  readonly cachedTokens: number
  /** Set by the first confirm that passed: the decode leg that may read, beat and release. */
  claim?: string
}

function sameBlocks(a: GroupBlockIds, b: GroupBlockIds): boolean {
  return a.length === b.length && a.every((group, g) => group.length === b[g].length && group.every((id, i) => id === b[g][i]))
}
