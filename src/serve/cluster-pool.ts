/**
 * The router's workers when they run anywhere: those registered in etcd under the cluster
 * (src/cluster), kept if their compatibility hash, protocol and model match the router's, health
 * polled like local ones. A worker whose key disappears is dead to the router at once (requests
 * pulling from it fail fast with the reason); new keys become routable after one good poll. When
 * etcd is unreachable the pool keeps the workers it knows and says so in /health and /metrics.
 */
import {EventEmitter} from 'node:events'

import type {Etcd3} from 'etcd3'

import {ClusterDirectory} from '../cluster/directory.js'
import type {WorkerRecord} from '../cluster/record.js'
import {ControlClient} from './http-json.js'
import {PROTOCOL_VERSION, type WorkerRole} from './protocol.js'
import {HealthMonitor, type PoolEvents, type PoolWorker, type WorkerPool, type WorkerState} from './worker-pool.js'

export interface ClusterPoolOptions {
  readonly client: Etcd3
  readonly cluster: string
  readonly clusterToken: string | undefined
  /** What a worker must match to be routed to: the router's model (name and cache layout). */
  readonly modelName: string
  readonly compatibilityHash: string
  readonly healthIntervalMs?: number
  readonly log: (event: string, fields: Record<string, unknown>) => void
}

export class ClusterPool extends EventEmitter<PoolEvents> implements WorkerPool {
  readonly workers: PoolWorker[] = []
  private readonly health: HealthMonitor
  private readonly ignored = new Set<string>()
  private directory: ClusterDirectory | undefined

  private constructor(private readonly o: ClusterPoolOptions) {
    super()
    this.health = new HealthMonitor(new ControlClient(o.clusterToken), (w, state) => this.setState(w, state), () => undefined)
  }

  /** Reads the registered workers and starts watching (throws a typed error when etcd cannot answer). */
  static async start(o: ClusterPoolOptions): Promise<ClusterPool> {
    const pool = new ClusterPool(o)
    const directory = await ClusterDirectory.start({client: o.client, cluster: o.cluster, log: o.log})
    pool.directory = directory
    directory.on('added', (r) => pool.add(r))
    directory.on('removed', (r) => pool.remove(r))
    for (const r of directory.records()) pool.add(r)
    pool.health.start(() => pool.workers, o.healthIntervalMs ?? 1000)
    return pool
  }

  ready(role: WorkerRole): PoolWorker[] {
    return this.workers.filter((w) => w.role === role && w.state === 'ready')
  }

  suspect(worker: PoolWorker, code: string): void {
    this.health.suspect(worker, code)
  }

  condition(): string | undefined {
    const d = this.directory
    if (!d || d.etcdUp) return undefined
    return `etcd unreachable for ${Math.round((Date.now() - (d.etcdDownSinceMs ?? Date.now())) / 1000)} s (serving with the ${this.workers.length} workers known before)`
  }

  /** Whether etcd answers (for /metrics). */
  get etcdUp(): boolean {
    return this.directory?.etcdUp ?? false
  }

  async stop(): Promise<void> {
    this.health.stop()
    await this.directory?.close()
    for (const w of this.workers) this.setState(w, 'stopped')
  }

  private add(r: WorkerRecord): void {
    const mismatch =
      r.protocolVersion !== PROTOCOL_VERSION ? `protocol ${r.protocolVersion}, the router's ${PROTOCOL_VERSION}`
      : r.model !== this.o.modelName ? `model ${r.model}, the router's ${this.o.modelName}`
      : r.compatibilityHash !== this.o.compatibilityHash ? `compatibility hash ${r.compatibilityHash.slice(0, 12)}…, the router's ${this.o.compatibilityHash.slice(0, 12)}…`
      : undefined
    if (mismatch) {
      const key = `${r.engineId}/${r.engineEpoch}`
      if (!this.ignored.has(key)) this.o.log('worker-ignored', {worker: r.engineId, role: r.role, why: mismatch})
      this.ignored.add(key)
      return
    }
    const w: PoolWorker = {
      name: r.engineId,
      role: r.role,
      state: 'starting',
      controlUrl: r.controlUrl,
      engineEpoch: r.engineEpoch,
      pid: undefined,
      stats: undefined,
      restarts: 0,
      budgetExhausted: 0,
      problem: undefined,
      failedHealthChecks: 0,
    }
    this.workers.push(w)
    this.emit('log', w.name, `registered at ${r.controlUrl} (${r.role}, tp ${r.tp}, epoch ${r.engineEpoch})`)
    // Routable after one good poll (the worker proves the cluster token and answers).
    void this.health.admit(w)
  }

  private remove(r: WorkerRecord): void {
    const i = this.workers.findIndex((w) => w.name === r.engineId && w.engineEpoch === r.engineEpoch)
    if (i < 0) return
    const [w] = this.workers.splice(i, 1)
    w.problem = 'left the cluster (its etcd registration disappeared: stopped, crashed or cut off)'
    this.emit('log', w.name, 'its registration disappeared: no longer routed to')
    this.setState(w, 'dead')
  }

  private setState(w: PoolWorker, state: WorkerState): void {
    if (w.state === state) return
    w.state = state
    this.emit('state', w)
  }
}
