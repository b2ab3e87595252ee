/**
 * Handshakes with prefill engines, once each: the payload's compatibility hash is checked before
 * anything else is used (reference §5.1), the link is cached by engine id, and refreshed when the
 * engine's epoch changes (the prefill worker restarted: its old regions are gone). The handshake
 * carries the cluster token and goes only to registered engines (peer-directory.ts).
 */
import {ServeError} from '../backend.js'
import type {ControlClient} from '../http-json.js'
import {INTERNAL, PROTOCOL_VERSION, type HandshakePayload, type TransferParams} from '../protocol.js'
import type {PeerLink, WorkerEngine} from './engine-port.js'
import type {PeerDirectory} from './peer-directory.js'

export class PeerCache {
  private readonly links = new Map<string, Promise<PeerLink>>()
  handshakes = 0

  constructor(
    private readonly engine: WorkerEngine,
    private readonly client: ControlClient,
    private readonly directory: PeerDirectory,
    private readonly timeoutMs: number,
    private readonly log: (event: string, fields: Record<string, unknown>) => void = () => undefined,
  ) {}

  /** The link to the params' engine at its registered `controlUrl`, handshaking when needed. */
  async get(t: TransferParams, controlUrl = this.directory.controlUrlOf(t)): Promise<PeerLink> {
    const cached = this.links.get(t.engineId)
    if (cached) {
      const link = await cached.catch(() => undefined)
      if (link && link.engineEpoch === t.engineEpoch) return link
      if (this.links.get(t.engineId) === cached) this.links.delete(t.engineId)
      if (link) await link.close()
    }
    let pending = this.links.get(t.engineId)
    if (!pending) {
      pending = this.handshake(t, controlUrl)
      this.links.set(t.engineId, pending)
      const mine = pending
      pending.catch(() => {
        if (this.links.get(t.engineId) === mine) this.links.delete(t.engineId)
      })
    }
    return pending
  }

  /** Forgets a link (after a transfer error), so the next request handshakes again. */
  async drop(engineId: string): Promise<void> {
    const cached = this.links.get(engineId)
    this.links.delete(engineId)
    const link = await cached?.catch(() => undefined)
    await link?.close()
  }

  private async handshake(t: TransferParams, controlUrl: string): Promise<PeerLink> {
    const payload = await this.client.call<HandshakePayload>(`${controlUrl}${INTERNAL.metadata}`, undefined, {timeoutMs: this.timeoutMs, retryOnReset: true})
    if (payload.protocolVersion !== PROTOCOL_VERSION) {
      throw new ServeError(502, 'protocol_mismatch', `prefill engine ${t.engineId} speaks protocol ${payload.protocolVersion}, this decode worker ${PROTOCOL_VERSION}`)
    }
    if (payload.compatibilityHash !== this.engine.compatibilityHash) {
      throw new ServeError(
        502,
        'compatibility_mismatch',
        `prefill engine ${t.engineId} has compatibility hash ${payload.compatibilityHash}, this decode engine ${this.engine.compatibilityHash}: their cache layouts differ (model, dtypes or block sizes)`,
      )
    }
    if (payload.engineEpoch !== t.engineEpoch) {
      throw new ServeError(502, 'engine_restarted', `prefill engine ${t.engineId} restarted since it prefilled request ${t.requestId}`)
    }
    this.handshakes++
    const link = await this.engine.connect(payload)
    this.log('handshake', {prefillEngine: payload.engineId, epoch: payload.engineEpoch, tp: payload.tpSize})
    return link
  }
}
