/**
 * The decode side's hold on a prefill lease while it waits for blocks and reads: a first call that
 * confirms the params are the lease's own (grant, block ids, prompt digest: shared-memory reads are
 * one-sided, so this is checked before any read), then beats until stopped, and a release when the
 * decode side gives up before its read.
 */
import {ServeError} from '../backend.js'
import type {ControlClient} from '../http-json.js'
import {INTERNAL, type TransferParams} from '../protocol.js'

/**
 * Extends a prefill lease every third of its length (vLLM #41383 beats at a sixth; a third keeps
 * two beats of slack on loopback) until stopped. A refused or failed beat marks the lease lost.
 */
export class LeaseHeartbeat {
  private readonly timer: NodeJS.Timeout
  private lost: ServeError | undefined
  private readonly body: {requestId: string; grant?: string}

  constructor(
    private readonly client: ControlClient,
    private readonly controlUrl: string,
    private readonly t: TransferParams,
    private readonly timeoutMs: number,
    onLost: (error: ServeError) => void,
  ) {
    this.body = {requestId: t.requestId, ...(t.grant ? {grant: t.grant} : {})}
    const leaseMs = Math.max(150, t.leaseExpiresAtMs - Date.now())
    const beatMs = Math.max(50, Math.floor(leaseMs / 3))
    this.timer = setInterval(() => {
      client.call(`${controlUrl}${INTERNAL.leaseExtend}`, this.body, {timeoutMs: Math.min(timeoutMs, beatMs), retryOnReset: true}).catch((error: Error) => {
        if (this.lost) return
        this.lost = new ServeError(503, 'lease_lost', `the prefill lease of ${t.requestId} on ${t.engineId} could not be extended: ${error.message}`)
        onLost(this.lost)
      })
    }, beatMs)
    this.timer.unref()
  }

  /**
   * One beat now, awaited: the lease exists and the params are its own — grant (403 otherwise),
   * block ids and prompt digest (400 naming the field otherwise).
   */
  async confirm(blockIds: TransferParams['blockIds'], digest: string): Promise<void> {
    try {
      await this.client.call(`${this.controlUrl}${INTERNAL.leaseExtend}`, {...this.body, blockIds, promptDigest: digest}, {timeoutMs: this.timeoutMs, retryOnReset: true})
    } catch (error) {
      const e = error as ServeError
      const refused = e.status === 400 || e.status === 403
      throw new ServeError(refused ? e.status : 503, refused ? e.code : 'lease_lost', `the prefill lease of ${this.t.requestId} on ${this.t.engineId} cannot be used: ${e.message}`, refused ? e.param : undefined)
    }
  }

  /** Throws once the lease is lost. */
  check(): void {
    if (this.lost) throw this.lost
  }

  /** Tells the prefill side it may free the blocks now (best effort: the lease frees them otherwise). */
  release(): void {
    this.client.call(`${this.controlUrl}${INTERNAL.leaseRelease}`, this.body, {timeoutMs: this.timeoutMs}).catch(() => undefined)
  }

  stop(): void {
    clearInterval(this.timer)
  }
}
