/**
 * The prefill side of P/D: computes N−1 prompt tokens, holds the request's blocks under a lease,
 * answers with transfer params, serves the handshake, and frees blocks on the decode side's
 * "read done" notification (or an HTTP release) or when the lease expires.
 */
import {ServeError} from '../backend.js'
import {PROTOCOL_VERSION, type HandshakePayload, type PrefillRequest, type PrefillResponse} from '../protocol.js'
import type {WorkerEngine} from './engine-port.js'
import {LeaseTable} from './lease-table.js'

/** Notification text the decode side sends once it has read a request's cache. */
export const READ_DONE_PREFIX = 'hpd-read-done:'

export interface PrefillRoleOptions {
  readonly engine: WorkerEngine
  readonly engineEpoch: string
  readonly controlUrl: () => string
  readonly leaseMs: number
  readonly log: (event: string, fields: Record<string, unknown>) => void
}

export class PrefillRole {
  readonly leases: LeaseTable
  private readonly sweeper: NodeJS.Timeout
  inFlight = 0

  constructor(private readonly o: PrefillRoleOptions) {
    this.leases = new LeaseTable({
      durationMs: o.leaseMs,
      onEnd: (requestId, why) => {
        o.engine.free(requestId)
        o.log(why === 'expired' ? 'lease-expired' : 'lease-released', {requestId})
      },
    })
    // Sweep a few times per lease so expiry is late by at most a quarter of it.
    this.sweeper = setInterval(() => this.leases.sweep(), Math.max(50, Math.floor(o.leaseMs / 4)))
    this.sweeper.unref()
    o.engine.onNotification((message) => {
      if (message.startsWith(READ_DONE_PREFIX)) this.leases.release(message.slice(READ_DONE_PREFIX.length))
    })
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

  async prefill(body: unknown): Promise<PrefillResponse> {
    const req = body as PrefillRequest
    if (typeof req?.requestId !== 'string' || !Array.isArray(req.promptTokenIds) || req.promptTokenIds.length < 2) {
      throw new ServeError(400, 'bad_prefill_request', 'prefill needs requestId and at least 2 promptTokenIds')
    }
    const started = performance.now()
    const computed = req.promptTokenIds.slice(0, -1)
    this.inFlight++
    let blockIds
    try {
      blockIds = await this.o.engine.prefillForTransfer(req.requestId, computed)
    } finally {
      this.inFlight--
    }
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
      },
    }
  }

  extend(body: unknown): {leaseExpiresAtMs: number} {
    const id = (body as {requestId?: string})?.requestId ?? ''
    const at = this.leases.extend(id)
    if (at === undefined) throw new ServeError(410, 'lease_gone', `no lease is held for request ${id}: it expired or was released`)
    return {leaseExpiresAtMs: at}
  }

  release(body: unknown): {released: boolean} {
    return {released: this.leases.release((body as {requestId?: string})?.requestId ?? '')}
  }

  close(): void {
    clearInterval(this.sweeper)
    this.leases.clear()
  }
}
