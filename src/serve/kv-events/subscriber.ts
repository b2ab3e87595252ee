/**
 * The router's side of KV events: one ZeroMQ SUB socket per worker endpoint, each batch decoded
 * (format.ts, every field checked) and handed to `onBatch` with its sequence number. A sequence
 * gap (the publisher dropped batches for this subscriber) is reported so the caller can treat
 * its view of that worker as stale. Receiving is a loop per socket that ends when it is closed.
 */
import {curveKeyPair, Subscriber} from 'zeromq'

import {decodeBatch, type WireBatch} from './format.js'

export interface SubscriptionHandlers {
  onBatch(batch: WireBatch, seq: bigint): void
  /** A batch missing between `expected` and `got` (or a payload that is not a KVEventBatch). */
  onGap?(expected: bigint, got: bigint): void
}

export class KvEventSubscription {
  private readonly socket: Subscriber
  private expected: bigint | undefined
  private closed = false

  /** `curveServerKey` (Z85): the publisher is a CurveZMQ server with this public key (curve.ts); this side uses a fresh key pair. */
  constructor(
    readonly endpoint: string,
    topic: string,
    private readonly handlers: SubscriptionHandlers,
    curveServerKey?: string,
  ) {
    const own = curveServerKey ? curveKeyPair() : undefined
    this.socket = new Subscriber({linger: 0, ...(own ? {curveServerKey, curvePublicKey: own.publicKey, curveSecretKey: own.secretKey} : {})})
    this.socket.connect(endpoint)
    this.socket.subscribe(topic)
    void this.loop()
  }

  private async loop(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        if (frames.length !== 3 || frames[1].length !== 8) continue
        const seq = frames[1].readBigUInt64BE(0)
        const batch = decodeBatch(frames[2])
        if (this.expected !== undefined && seq !== this.expected) this.handlers.onGap?.(this.expected, seq)
        this.expected = seq + 1n
        if (batch) this.handlers.onBatch(batch, seq)
        else this.handlers.onGap?.(seq, seq)
      }
    } catch {
      // closed while receiving: the loop ends
    }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.socket.close()
  }
}
