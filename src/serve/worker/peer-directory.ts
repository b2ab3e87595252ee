/**
 * The prefill engines a decode worker may contact, by engine id: registered by whoever launched
 * the workers (the local supervisor, through PUT /v1/internal/peers) or, across hosts, by the
 * cluster registry. A request's transfer params name an engine; its control URL comes from here,
 * never from the request, so a worker can be made to contact only its own cluster's workers (no
 * request forgery, no cluster token sent to a stranger).
 */
import {ServeError} from '../backend.js'
import type {TransferParams} from '../protocol.js'
import type {PeerEntry} from '../protocol-schema.js'

export class PeerDirectory {
  private readonly byEngine = new Map<string, string>()
  private refresher: (() => Promise<void>) | undefined
  /** Engines registered in the cluster whose caches cannot be read by this one, and why. */
  private readonly incompatible = new Map<string, string>()

  /** Replaces the whole directory (the launcher always sends all of it). */
  replace(peers: readonly PeerEntry[], incompatible: ReadonlyMap<string, string> = new Map()): void {
    this.byEngine.clear()
    this.incompatible.clear()
    for (const p of peers) this.byEngine.set(p.engineId, p.controlUrl)
    for (const [engineId, why] of incompatible) this.incompatible.set(engineId, why)
  }

  set(engineId: string, controlUrl: string): void {
    this.byEngine.set(engineId, controlUrl)
  }

  delete(engineId: string): void {
    this.byEngine.delete(engineId)
  }

  /**
   * What to do when a request names an engine this directory does not know yet: re-read the
   * registry once (a just-registered engine may not have reached the watch), then look again.
   */
  onMiss(refresh: () => Promise<void>): void {
    this.refresher = refresh
  }

  /** controlUrlOf, after one registry re-read when the engine is unknown. */
  async resolve(t: TransferParams): Promise<string> {
    if (this.refresher && !this.byEngine.has(t.engineId) && !this.incompatible.has(t.engineId)) await this.refresher().catch(() => undefined)
    return this.controlUrlOf(t)
  }

  get size(): number {
    return this.byEngine.size
  }

  /** The registered control URL of the params' engine; refuses an unknown engine or a URL that is not its own. */
  controlUrlOf(t: TransferParams): string {
    const url = this.byEngine.get(t.engineId)
    const why = this.incompatible.get(t.engineId)
    if (url === undefined && why !== undefined) {
      throw new ServeError(502, 'compatibility_mismatch', `prefill engine ${t.engineId} is registered, but this decode engine cannot read its cache: ${why}`)
    }
    if (url === undefined) {
      throw new ServeError(400, 'unknown_prefill_engine', `prefill engine ${t.engineId} is not a registered worker of this cluster; refusing to contact it`)
    }
    if (t.handshakeUrl !== url) {
      throw new ServeError(400, 'unregistered_peer_url', `the transfer params of ${t.requestId} name ${t.handshakeUrl.slice(0, 200)} for engine ${t.engineId}, which is registered at another address; refusing to contact it`)
    }
    return url
  }
}
