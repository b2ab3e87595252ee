/**
 * What the router needs of "the workers", whoever manages them: the local supervisor (worker
 * processes it launched) or the cluster pool (workers registered in etcd, on any host). The
 * backend routes over `ready(role)`, reports connection failures with `suspect()`, and watches
 * 'state' events (a prefill worker going dead while its cache is pulled fails that request).
 *
 * HealthMonitor is the shared health polling: one poll at a time per worker, a generous bound, a
 * refused connection re-polled at once, three silent polls to turn unhealthy, and a worker's own
 * report of a problem (leaked blocks) passed to the pool to act on.
 */
import type {EventEmitter} from 'node:events'

import type {ControlClient} from './http-json.js'
import {UNREACHABLE} from './http-json.js'
import {INTERNAL, type WorkerRole, type WorkerStats} from './protocol.js'

export type WorkerState = 'starting' | 'ready' | 'unhealthy' | 'dead' | 'stopped'

export interface PoolWorker {
  readonly name: string
  readonly role: WorkerRole
  state: WorkerState
  controlUrl: string | undefined
  /** Changes when the worker restarts (its engine, and its cache regions, are new). */
  engineEpoch: string | undefined
  pid: number | undefined
  stats: WorkerStats | undefined
  restarts: number
  /** Times the restart budget ran out for this worker (local workers only). */
  budgetExhausted: number
  /** Why it is not ready, when the pool knows (backoff, a reported problem). */
  problem: string | undefined
  failedHealthChecks: number
}

export interface PoolEvents {
  log: [worker: string, line: string]
  state: [worker: PoolWorker]
}

export interface WorkerPool extends EventEmitter<PoolEvents> {
  readonly workers: readonly PoolWorker[]
  ready(role: WorkerRole): PoolWorker[]
  /** The router could not reach `worker` (`code`: http-json.ts's connection codes). */
  suspect(worker: PoolWorker, code: string): void
  /** A condition of the pool itself the router's /health should show (etcd unreachable), or undefined. */
  condition(): string | undefined
  stop(): Promise<void>
}

/** Bound of one health/stats poll; three missed in a row (~15 s) make a worker unhealthy. */
export const HEALTH_TIMEOUT_MS = 5000

export class HealthMonitor {
  private readonly polling = new Set<string>()
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly client: ControlClient,
    private readonly setState: (w: PoolWorker, state: WorkerState) => void,
    /** Called on each poll that reports `ok: false`; undefined problem = it recovered. */
    private readonly onReport: (w: PoolWorker, problem: string | undefined) => void,
  ) {}

  start(workers: () => readonly PoolWorker[], intervalMs: number): void {
    this.timer = setInterval(() => void Promise.all(workers().map((w) => this.poll(w))), intervalMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /** A new worker: polled at once, ready on a good answer, unhealthy (and polled on) otherwise. */
  async admit(w: PoolWorker): Promise<void> {
    this.setState(w, 'unhealthy')
    await this.poll(w)
  }

  async poll(w: PoolWorker): Promise<void> {
    if (!w.controlUrl || w.state === 'dead' || w.state === 'stopped' || w.state === 'starting') return
    // A worker answers between engine calls, which run on its event loop: a queue of long
    // prefills delays the answer by seconds without anything being wrong. So one poll at a
    // time, a generous bound, and only a refused connection or ~15 s of silence is sick.
    if (this.polling.has(w.name)) return
    this.polling.add(w.name)
    try {
      w.stats = await this.client.call<WorkerStats>(`${w.controlUrl}${INTERNAL.stats}`, undefined, {timeoutMs: HEALTH_TIMEOUT_MS, retryOnReset: true})
      w.failedHealthChecks = 0
      if (w.stats.ok === false) {
        w.problem = w.stats.problem ?? 'the worker reports itself unhealthy'
        if (w.state === 'ready') this.setState(w, 'unhealthy')
        this.onReport(w, w.problem)
      } else {
        if (w.problem !== undefined) this.onReport(w, undefined)
        w.problem = undefined
        if (w.state === 'unhealthy') this.setState(w, 'ready')
      }
    } catch (error) {
      w.failedHealthChecks++
      const refused = (error as {code?: string}).code === UNREACHABLE
      if ((refused || w.failedHealthChecks >= 3) && w.state === 'ready') this.setState(w, 'unhealthy')
    } finally {
      this.polling.delete(w.name)
    }
  }

  /** A refused connection: unhealthy now, re-polled at once to come back as soon as it answers. */
  suspect(w: PoolWorker, code: string): void {
    if (code !== UNREACHABLE || w.state !== 'ready') return
    this.setState(w, 'unhealthy')
    void this.poll(w)
  }
}
