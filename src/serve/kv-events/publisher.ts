/**
 * A worker's KV-event publisher: vLLM's ZmqEventPublisher wire protocol on a ZeroMQ PUB socket,
 * one multipart message per batch: [topic, sequence (8 bytes, big-endian), KVEventBatch
 * (MessagePack, format.ts)]. The engine's prefix-cache events are gathered while the event loop
 * runs and sent as one batch per turn (an engine step stores many blocks at once).
 *
 * Best effort by design, as vLLM's: PUB drops messages nobody subscribed to, and a slow
 * subscriber's backlog is capped (high-water mark); a subscriber that sees a sequence gap knows
 * its view is stale. No replay socket (vLLM's is optional): hpd's router rebuilds its view from
 * the live stream and drops a worker's view when its engine restarts.
 */
import {Publisher} from 'zeromq'

import {EnvironmentError} from '../../errors.js'
import type {PrefixCacheEvent} from '../../engine/prefix-cache.js'
import type {CurveServerKeys} from './curve.js'
import {encodeBatch, type WireEvent, wireEvent} from './format.js'

/** vLLM's default topic is "" (every subscriber gets every batch); hpd's is the same. */
export const KV_EVENTS_TOPIC = ''

export class KvEventPublisher {
  private readonly socket: Publisher
  private pending: WireEvent[] = []
  private scheduled = false
  private seq = 0n
  private closed = false
  /** Batches sent and events in them (for tests and stats). */
  batches = 0
  events = 0

  private constructor(
    socket: Publisher,
    /** The bound endpoint (a wildcard port resolved). */
    readonly endpoint: string,
    readonly topic: string,
  ) {
    this.socket = socket
  }

  /**
   * Binds a PUB socket on `endpoint` (`tcp://HOST:PORT`, PORT `*` or 0 for any free one); with
   * `curve`, a CurveZMQ server with those keys (curve.ts): only subscribers that know its public
   * key get anything, encrypted. Throws HPD_SERVE_KV_EVENTS_BIND (exit 4) when the address cannot
   * be bound.
   */
  static async bind(endpoint: string, topic = KV_EVENTS_TOPIC, curve?: CurveServerKeys): Promise<KvEventPublisher> {
    const socket = new Publisher({linger: 0, sendHighWaterMark: 100_000, ...(curve ? {curveServer: true, curveSecretKey: curve.secretKey} : {})})
    const address = endpoint.replace(/:0$/, ':*')
    try {
      await socket.bind(address)
    } catch (error) {
      socket.close()
      throw new EnvironmentError('HPD_SERVE_KV_EVENTS_BIND', `cannot bind the KV-event publisher on ${endpoint}: ${(error as Error).message}`, {
        hint: 'Pass --kv-events-endpoint tcp://HOST:PORT with an address of this host and a free port (PORT * picks one).',
        cause: error,
      })
    }
    return new KvEventPublisher(socket, socket.lastEndpoint ?? endpoint, topic)
  }

  /** Queues an engine event; the batch goes out at the end of this event-loop turn. */
  publish(event: PrefixCacheEvent): void {
    if (this.closed) return
    this.pending.push(wireEvent(event))
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => this.flush())
  }

  private flush(): void {
    this.scheduled = false
    if (this.closed || this.pending.length === 0) return
    const events = this.pending
    this.pending = []
    const seq = Buffer.alloc(8)
    seq.writeBigUInt64BE(this.seq++)
    const payload = encodeBatch({ts: Date.now() / 1000, events, data_parallel_rank: 0})
    this.batches++
    this.events += events.length
    // A PUB socket never blocks: past the high-water mark ZeroMQ drops (as vLLM's publisher does).
    this.socket.send([this.topic, seq, payload]).catch(() => undefined)
  }

  /** Says AllBlocksCleared (the engine's cache dies with it), then closes without lingering. */
  async close(): Promise<void> {
    if (this.closed) return
    this.pending.push({type: 'AllBlocksCleared'})
    this.flush()
    this.closed = true
    this.socket.close()
  }
}
