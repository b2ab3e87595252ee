/**
 * Keeps one KV-event subscription per worker of the pool that publishes them (its stats carry
 * `kvEvents.endpoint`), feeding the PrefixIndex: subscribes when a worker shows an endpoint,
 * resubscribes (and forgets the worker's view) when the endpoint or the engine epoch changes,
 * and forgets a worker that is gone. `sync()` is cheap; it runs on a timer and before routing.
 */
import {kvEventCurveKeys} from '../kv-events/curve.js'
import {KvEventSubscription} from '../kv-events/subscriber.js'
import type {PoolWorker, WorkerPool} from '../worker-pool.js'
import {PrefixIndex} from './prefix-index.js'

interface Feed {
  readonly key: string
  readonly sub: KvEventSubscription
}

export class KvEventFeed {
  readonly index = new PrefixIndex()
  private readonly feeds = new Map<string, Feed>()
  private readonly timer: NodeJS.Timeout
  private readonly curveServerKey: string | undefined
  /** Batches applied and gaps seen, for stats and tests. */
  batches = 0
  gaps = 0

  /** `clusterToken`: what encrypted publishers' keys derive from (kv-events/curve.ts). */
  constructor(
    private readonly pool: WorkerPool,
    clusterToken?: string,
  ) {
    this.curveServerKey = clusterToken ? kvEventCurveKeys(clusterToken).publicKey : undefined
    this.timer = setInterval(() => this.sync(), 500)
    this.timer.unref()
  }

  sync(): void {
    const live = new Set<string>()
    for (const w of this.pool.workers) {
      const endpoint = w.stats?.kvEvents?.endpoint
      if (!endpoint || w.state === 'dead' || w.state === 'stopped') continue
      live.add(w.name)
      const key = `${endpoint}|${w.engineEpoch ?? ''}`
      const feed = this.feeds.get(w.name)
      if (feed?.key === key) continue
      feed?.sub.close()
      this.index.reset(w.name)
      this.feeds.set(w.name, {key, sub: this.subscribe(w, endpoint)})
    }
    for (const [name, feed] of this.feeds) {
      if (live.has(name)) continue
      feed.sub.close()
      this.feeds.delete(name)
      this.index.reset(name)
    }
  }

  private subscribe(w: PoolWorker, endpoint: string): KvEventSubscription {
    return new KvEventSubscription(endpoint, w.stats?.kvEvents?.topic ?? '', {
      onBatch: (batch) => {
        this.batches++
        this.index.apply(w.name, batch)
      },
      // Batches were lost: what the router believes of this worker may be stale. Keep it (a stale
      // entry costs a miss, the worker checks its own cache); removals still arrive from here on.
      onGap: () => {
        this.gaps++
      },
    }, w.stats?.kvEvents?.encryption === 'curve' ? this.curveServerKey : undefined)
  }

  close(): void {
    clearInterval(this.timer)
    for (const f of this.feeds.values()) f.sub.close()
    this.feeds.clear()
  }
}
