/**
 * The prefill side of P/D: computes N−1 prompt tokens, holds the request's blocks under a lease,
 * answers with transfer params, serves the handshake, and frees blocks on the decode side's
 * "read done" notification (or an HTTP release) or when the lease expires.
 *
 * Ownership: a request's blocks belong to its prefill() call until the lease holds them; a prefill
 * that fails frees what it allocated. A lease can be extended, but never past `maxLeaseMs` after
 * it began: a caller that keeps beating cannot pin blocks forever.
 */
import {transferredTokens} from '../../layout/index.js'
import {ServeError} from '../backend.js'
import {PROTOCOL_VERSION, type HandshakePayload, type PrefillRequest, type PrefillResponse} from '../protocol.js'
import type {WorkerEngine} from './engine-port.js'
import {LeaseTable} from './lease-table.js'

export interface PrefillRoleOptions {
  readonly engine: WorkerEngine
  readonly engineEpoch: string
  readonly controlUrl: () => string
  readonly leaseMs: number
  /** Longest a lease may be held, extensions included (the router's request bound covers any real wait). */
  readonly maxLeaseMs: number
  readonly log: (event: string, fields: Record<string, unknown>) => void
}

export class PrefillRole {
  readonly leases: LeaseTable
  private readonly sweeper: NodeJS.Timeout
  /** Requests being prefilled now (their blocks are not under a lease yet). */
  private readonly computing = new Set<string>()
  /** The served-read grant of each leased request: a decode leg proves its params with it (the KV link revokes it with the lease). */
  private readonly grants = new Map<string, string>()

  constructor(private readonly o: PrefillRoleOptions) {
    this.leases = new LeaseTable({
      durationMs: o.leaseMs,
      maxHoldMs: o.maxLeaseMs,
      onEnd: (requestId, why) => {
        this.grants.delete(requestId)
        // The grant goes before the blocks: nobody may be served them once they can be reused.
        o.engine.endTransfer(requestId)
        o.engine.free(requestId)
        o.log(why === 'expired' ? 'lease-expired' : 'lease-released', {requestId})
      },
    })
    // Sweep a few times per lease so expiry is late by at most a quarter of it.
    this.sweeper = setInterval(() => this.leases.sweep(), Math.max(50, Math.floor(o.leaseMs / 4)))
    this.sweeper.unref()
    o.engine.onReadDone((requestId) => this.leases.release(requestId))
  }

  get inFlight(): number {
    return this.computing.size
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

  /** `req` is validated (protocol-schema.ts): ids, token ids inside the vocabulary, 2..context−1 tokens. */
  async prefill(req: PrefillRequest): Promise<PrefillResponse> {
    if (this.computing.has(req.requestId) || this.leases.has(req.requestId)) {
      throw new ServeError(409, 'duplicate_request', `request ${req.requestId} is already prefilled or being prefilled on this worker`)
    }
    const started = performance.now()
    const computed = req.promptTokenIds.slice(0, transferredTokens(req.promptTokenIds.length))
    this.computing.add(req.requestId)
    let prefilled
    try {
      prefilled = await this.o.engine.prefillForTransfer(req.requestId, computed)
    } catch (error) {
      this.o.engine.endTransfer(req.requestId)
      this.o.engine.free(req.requestId)
      throw error
    } finally {
      this.computing.delete(req.requestId)
    }
    const {blockIds, grant, cachedTokens} = prefilled
    this.grants.set(req.requestId, grant)
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

  /**
   * Pushes a lease back. With `grant`, it must be the lease's own: the decode side proves its
   * params came from this worker's answer for that request (403 `grant_mismatch` otherwise).
   */
  extend(requestId: string, grant?: string): {leaseExpiresAtMs: number} {
    this.checkGrant(requestId, grant)
    const at = this.leases.extend(requestId)
    if (at === undefined) throw new ServeError(410, 'lease_gone', `no lease is held for request ${requestId}: it expired or was released`)
    return {leaseExpiresAtMs: at}
  }

  release(requestId: string, grant?: string): {released: boolean} {
    this.checkGrant(requestId, grant)
    return {released: this.leases.release(requestId)}
  }

  /** The prefill side's digests of a leased request's reads (a verifying decode worker asks before "read done"). */
  async digests(requestId: string, decodeTp: number, grant?: string, cachedTokens?: number): Promise<{pairs: unknown}> {
    this.checkGrant(requestId, grant)
    if (!this.leases.has(requestId)) throw new ServeError(410, 'lease_gone', `no lease is held for request ${requestId}: it expired or was released`)
    return {pairs: await this.o.engine.transferDigests(requestId, decodeTp, cachedTokens)}
  }

  private checkGrant(requestId: string, grant: string | undefined): void {
    const own = this.grants.get(requestId)
    if (grant !== undefined && own !== undefined && grant !== own) {
      throw new ServeError(403, 'grant_mismatch', `the grant presented for request ${requestId} is not the one its lease was given`)
    }
  }

  close(): void {
    clearInterval(this.sweeper)
    this.leases.clear()
  }
}
