/**
 * The decode side's hold on a prefill lease while it waits for blocks and reads: a first call that
 * confirms the params are the lease's own (grant, block ids, prompt digest: shared-memory reads are
 * one-sided, so this is checked before any read), then beats until stopped, and a release when the
 * decode side gives up before its read.
 */
import {ServeError} from '../backend.js'
import type {ControlClient} from '../http-json.js'
import {INTERNAL, type LeaseExtendResponse, type TransferParams} from '../protocol.js'

/**
 * Extends a prefill lease every third of its length (vLLM #41383 beats at a sixth; a third keeps
 * two beats of slack on loopback) from the confirm until stopped. The pace comes from the prefill
 * side's answer, never from the caller's params (a forged expiry could make beats spin or stop),
 * and is kept within [50 ms, 10 s]. A refused or failed beat marks the lease lost.
 */
export class LeaseHeartbeat {
  private timer: NodeJS.Timeout | undefined
  private lost: ServeError | undefined
  private claim: string | undefined
  private readonly body: {requestId: string; grant?: string}

  constructor(
    private readonly client: ControlClient,
    private readonly controlUrl: string,
    private readonly t: TransferParams,
    private readonly timeoutMs: number,
    private readonly onLost: (error: ServeError) => void,
  ) {
    this.body = {requestId: t.requestId, ...(t.grant ? {grant: t.grant} : {})}
  }

  private get claimed(): {requestId: string; grant?: string; claim?: string} {
    return {...this.body, ...(this.claim ? {claim: this.claim} : {})}
  }

  /**
   * The first call, awaited: the lease exists and the params are its own — grant (403), block ids
   * and prompt digest (400 naming the field) — and nobody else claimed it (409 `lease_claimed`).
   * The lease is then this leg's: only its calls extend or release it. Resolves with the prefill
   * side's own count of prompt tokens its prefix cache served.
   */
  async confirm(blockIds: TransferParams['blockIds'], digest: string): Promise<{cachedTokens: number}> {
    let answer: LeaseExtendResponse
    try {
      answer = await this.client.call<LeaseExtendResponse>(`${this.controlUrl}${INTERNAL.leaseExtend}`, {...this.body, blockIds, promptDigest: digest}, {timeoutMs: this.timeoutMs, retryOnReset: true})
    } catch (error) {
      const e = error as ServeError
      const refused = e.status === 400 || e.status === 403 || e.status === 409
      throw new ServeError(refused ? e.status : 503, refused ? e.code : 'lease_lost', `the prefill lease of ${this.t.requestId} on ${this.t.engineId} cannot be used: ${e.message}`, refused ? e.param : undefined)
    }
    this.claim = answer.claim
    const leaseMs = Math.min(Math.max(answer.leaseExpiresAtMs - Date.now(), 150), 600_000)
    const beatMs = Math.min(Math.max(Math.floor(leaseMs / 3), 50), 10_000)
    this.timer = setInterval(() => {
      this.client.call(`${this.controlUrl}${INTERNAL.leaseExtend}`, this.claimed, {timeoutMs: Math.min(this.timeoutMs, beatMs), retryOnReset: true}).catch((error: Error) => this.markLost(error))
    }, beatMs)
    this.timer.unref()
    return {cachedTokens: Math.min(Math.max(answer.cachedTokens ?? 0, 0), this.t.numComputedTokens)}
  }

  /**
   * Right before the read, awaited: the lease is still this leg's and now runs a full lease length
   * again, which the read (bounded far below it) cannot outlast. Without this, a lease lost since
   * the last beat (expired, released) would be noticed only at the next beat, after the read of
   * blocks that may already hold another request.
   */
  async reconfirm(): Promise<void> {
    this.check()
    try {
      await this.client.call(`${this.controlUrl}${INTERNAL.leaseExtend}`, this.claimed, {timeoutMs: this.timeoutMs, retryOnReset: true})
    } catch (error) {
      this.markLost(error as Error)
      this.check()
    }
  }

  private markLost(error: Error): void {
    if (this.lost) return
    this.lost = new ServeError(503, 'lease_lost', `the prefill lease of ${this.t.requestId} on ${this.t.engineId} could not be extended: ${error.message}`)
    this.onLost(this.lost)
  }

  /** Throws once the lease is lost. */
  check(): void {
    if (this.lost) throw this.lost
  }

  /** Tells the prefill side it may free the blocks now (best effort: the lease frees them otherwise). A lease another leg claimed is refused there. */
  release(): void {
    this.client.call(`${this.controlUrl}${INTERNAL.leaseRelease}`, this.claimed, {timeoutMs: this.timeoutMs}).catch(() => undefined)
  }

  stop(): void {
    clearInterval(this.timer)
  }
}
