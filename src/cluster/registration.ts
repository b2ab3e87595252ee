/**
 * A worker's registration: its record under a lease it keeps alive (TTL a few seconds), so the key
 * vanishes within the TTL when the worker dies or loses etcd. When the lease is lost (etcd was
 * unreachable past the TTL) the worker registers again as soon as etcd answers, with backoff;
 * close() revokes the lease, so a clean stop disappears at once.
 */
import type {Etcd3, Lease} from 'etcd3'

import {workerKey, type WorkerRecord} from './record.js'

/** Default lease TTL: a dead worker's key is gone within this. */
export const REGISTRATION_TTL_S = 3

export interface RegistrationOptions {
  readonly client: Etcd3
  readonly cluster: string
  readonly record: WorkerRecord
  readonly ttlS?: number
  readonly log: (event: string, fields: Record<string, unknown>) => void
}

export class Registration {
  private lease: Lease | undefined
  private closed = false
  private retry: NodeJS.Timeout | undefined
  private readonly key: string

  private constructor(private readonly o: RegistrationOptions) {
    this.key = workerKey(o.cluster, o.record.role, o.record.engineId)
  }

  /** Registers now (throws when etcd cannot take it: the caller fails its start). */
  static async start(o: RegistrationOptions): Promise<Registration> {
    const r = new Registration(o)
    await r.register()
    o.log('registered', {key: r.key, ttlS: o.ttlS ?? REGISTRATION_TTL_S})
    return r
  }

  /**
   * One attempt: a new lease, the record put under it. The lease becomes ours (and its loss is
   * watched) only once the put succeeded; a failed attempt revokes what it made, so no
   * half-registered lease keeps itself alive.
   */
  private async register(): Promise<void> {
    const lease = this.o.client.lease(this.o.ttlS ?? REGISTRATION_TTL_S, {autoKeepAlive: true})
    try {
      await lease.put(this.key).value(JSON.stringify(this.o.record))
    } catch (error) {
      await lease.revoke().catch(() => undefined)
      throw error
    }
    if (this.closed) {
      await lease.revoke().catch(() => undefined)
      return
    }
    lease.on('lost', (error) => this.onLost(lease, error))
    this.lease = lease
  }

  private onLost(lease: Lease, error: Error): void {
    if (this.closed || lease !== this.lease) return
    this.lease = undefined
    lease.removeAllListeners('lost')
    void lease.revoke().catch(() => undefined)
    this.o.log('registration-lost', {key: this.key, message: error.message.slice(0, 200)})
    this.reregister(500)
  }

  /**
   * Registers again with backoff until etcd takes it. One chain at a time: `retry` stays set from
   * the timer until its attempt settled, so a loss reported meanwhile starts nothing (two chains
   * would double at every failure and flood etcd with leases).
   */
  private reregister(delayMs: number): void {
    if (this.closed || this.retry !== undefined) return
    this.retry = setTimeout(() => {
      this.register().then(
        () => {
          this.retry = undefined
          if (!this.closed) this.o.log('registered-again', {key: this.key})
        },
        () => {
          this.retry = undefined
          this.reregister(Math.min(delayMs * 2, 5000))
        },
      )
    }, delayMs)
    this.retry.unref()
  }

  /** Removes the record now (bounded by the client's call deadline). */
  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retry)
    const lease = this.lease
    this.lease = undefined
    if (lease) await lease.revoke().catch(() => undefined)
  }
}
