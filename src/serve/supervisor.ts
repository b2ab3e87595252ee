/**
 * Worker processes (the child-process kit, src/child): launched in parallel, each ready only after its ready line AND a
 * health check; output prefixed with the worker name and passed to one sink; health polled on a
 * fixed beat; a dead worker is seen at once (process exit) and restarted with a fresh engine
 * epoch. `stop()` sends SIGTERM to all and SIGKILL to whatever is still alive after
 * `stopGraceMs`, so no worker outlives the server. Workers also exit on their own when their
 * stdin closes, which covers the supervisor being killed outright.
 *
 * Healing: restarts are budgeted per time window (default 5 a minute); past the budget a worker
 * is still restarted, after an exponential backoff (capped), with a log line and a counter, and
 * the router's /health says why. A worker that reports itself unhealthy (leaked KV blocks) for a
 * few polls in a row is restarted. One failed poll never flips a worker: a refused connection
 * triggers an immediate re-poll, and only repeated silence makes it unhealthy.
 *
 * Security: every worker gets the cluster token through its environment (never argv) and every
 * call carries it. Decode workers learn the prefill engines they may contact from the
 * supervisor (POST /v1/internal/peers) before any prefill worker is marked ready.
 */
import {EventEmitter} from 'node:events'

import type {ResultPromise} from 'execa'

import {type ChildHandle, spawnChild} from '../child/index.js'
import {EnvironmentError, type HpdError, ModelConfigError, UsageError} from '../errors.js'
import {CLUSTER_TOKEN_ENV} from './auth.js'
import {ControlClient} from './http-json.js'
import {INTERNAL, type PeersRequest, type WorkerHealth, type WorkerReadyLine, type WorkerRole, type WorkerStats} from './protocol.js'
import {HEALTH_TIMEOUT_MS, HealthMonitor, type PoolEvents, type PoolWorker, type WorkerPool, type WorkerState} from './worker-pool.js'
import type {WorkerConfig} from './worker/worker-config.js'

export type {WorkerState} from './worker-pool.js'

export interface ManagedWorker extends PoolWorker {
  readonly config: WorkerConfig
  /** Last few stderr lines, for the error shown when it fails to start. */
  readonly recentOutput: string[]
}

export interface RestartBudget {
  /** Restarts allowed within `windowMs` before backoff starts. */
  readonly count: number
  readonly windowMs: number
  /** Delay of a restart within budget; past it the delay doubles per extra restart. */
  readonly delayMs: number
  readonly maxBackoffMs: number
}

export const DEFAULT_RESTART_BUDGET: RestartBudget = {count: 5, windowMs: 60_000, delayMs: 500, maxBackoffMs: 30_000}

export interface SupervisorOptions {
  /** Absolute path of the worker entry script (dist/serve/worker/main.js). */
  readonly entryPath: string
  readonly configs: readonly WorkerConfig[]
  /** Handed to every worker (environment) and signs every call to one (undefined: --insecure). */
  readonly clusterToken: string | undefined
  /** Tell decode workers the prefill engines (false when they learn them from etcd). */
  readonly publishPeers?: boolean
  readonly startupTimeoutMs?: number
  readonly healthIntervalMs?: number
  readonly stopGraceMs?: number
  readonly restartBudget?: RestartBudget
  readonly env?: Record<string, string>
}

const OUTPUT_KEPT = 20
/** Polls in a row a worker may report a problem (leaked blocks) before it is restarted. */
const PROBLEM_POLLS_BEFORE_RESTART = 3

export class Supervisor extends EventEmitter<PoolEvents> implements WorkerPool {
  readonly workers: ManagedWorker[]
  private readonly processes = new Map<string, ResultPromise>()
  private readonly crashTimesMs = new Map<string, number[]>()
  private readonly problemPolls = new Map<string, number>()
  private readonly client: ControlClient
  private readonly health: HealthMonitor
  private stopping = false

  constructor(private readonly o: SupervisorOptions) {
    super()
    this.client = new ControlClient(o.clusterToken)
    this.health = new HealthMonitor(this.client, (w, state) => this.setState(w as ManagedWorker, state), (w, problem) => this.onReport(w as ManagedWorker, problem))
    this.workers = o.configs.map((config) => ({
      name: config.name,
      role: config.role,
      config,
      state: 'starting',
      controlUrl: undefined,
      pid: undefined,
      engineEpoch: undefined,
      stats: undefined,
      restarts: 0,
      budgetExhausted: 0,
      problem: undefined,
      recentOutput: [],
      failedHealthChecks: 0,
    }))
  }

  /** Launches every worker and resolves once all are healthy; throws (after stopping all) if one is not within the startup bound. */
  async start(): Promise<void> {
    try {
      await Promise.all(this.workers.map((w) => this.launchRetryingCrashes(w)))
    } catch (error) {
      await this.stop()
      throw error
    }
    this.health.start(() => this.workers, this.o.healthIntervalMs ?? 1000)
  }

  ready(role: WorkerRole): ManagedWorker[] {
    return this.workers.filter((w) => w.role === role && w.state === 'ready')
  }

  suspect(worker: PoolWorker, code: string): void {
    this.health.suspect(worker, code)
  }

  condition(): string | undefined {
    return undefined
  }

  async stop(): Promise<void> {
    this.stopping = true
    this.health.stop()
    const grace = this.o.stopGraceMs ?? 3000
    await Promise.all(
      [...this.processes.entries()].map(async ([name, p]) => {
        p.kill('SIGTERM')
        const killer = setTimeout(() => p.kill('SIGKILL'), grace)
        await p.catch(() => undefined)
        clearTimeout(killer)
        const w = this.workers.find((x) => x.name === name)
        if (w) this.setState(w, 'stopped')
      }),
    )
    this.processes.clear()
  }

  /** The pid of every live worker process (tests check none survives stop()). */
  pids(): number[] {
    return [...this.processes.values()].map((p) => p.pid).filter((p): p is number => p !== undefined)
  }

  private async launch(w: ManagedWorker): Promise<void> {
    // The child-process kit (src/child): ready line, error line, lifeline (stdin), output lines.
    const child = spawnChild<WorkerReadyLine>({
      name: `worker ${w.name}`,
      entry: this.o.entryPath,
      args: ['--config', JSON.stringify(w.config)],
      env: {...this.o.env, ...(this.o.clusterToken === undefined ? {} : {[CLUSTER_TOKEN_ENV]: this.o.clusterToken})},
      startTimeoutMs: this.o.startupTimeoutMs ?? 120_000,
      onOutput: (line) => this.output(w, line),
    })
    const p = child.process
    this.processes.set(w.name, p)
    w.pid = p.pid
    w.controlUrl = undefined
    this.setState(w, 'starting')

    const readyLine = child.ready.catch((error: unknown) => {
      throw this.startError(w, child, error)
    })
    void child.exited.then((result) => {
      if (this.processes.get(w.name) !== p) return
      this.processes.delete(w.name)
      if (this.stopping) return
      // Died while starting: launch() rejects and its caller decides (retry or fail the start).
      const wasServing = w.state !== 'starting'
      this.output(w, `exited (${result.signal ?? `code ${result.code}`})`)
      this.setState(w, 'dead')
      if (wasServing) this.restartLater(w)
    })

    const ready = await readyLine
    w.controlUrl = ready.controlUrl
    const health = await this.client.call<WorkerHealth>(`${ready.controlUrl}${INTERNAL.health}`, undefined, {timeoutMs: 5000, retryOnReset: true})
    w.engineEpoch = health.engineEpoch
    // Its pool's geometry (stats) before it takes traffic: the router refuses what no pool could hold.
    w.stats = await this.client.call<WorkerStats>(`${ready.controlUrl}${INTERNAL.stats}`, undefined, {timeoutMs: 5000, retryOnReset: true}).catch(() => undefined)
    w.failedHealthChecks = 0
    w.problem = undefined
    // Decode workers must know a prefill engine before it can hand out transfer params.
    if (this.o.publishPeers !== false) {
      if (w.role === 'prefill') await this.publishPeers()
      if (w.role === 'decode') await this.sendPeers(w)
    }
    this.setState(w, 'ready')
  }

  /**
   * A worker killed by a signal while starting (a native crash, not a refusal it logged) is
   * started again, at most twice, with the crash logged: one rare crash should not stop a server
   * from coming up. A worker that failed cleanly (bad model, missing addon) is not retried.
   */
  private async launchRetryingCrashes(w: ManagedWorker): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.launch(w)
        return
      } catch (error) {
        const signal = (error as {crashSignal?: string}).crashSignal
        if (!signal || attempt >= 2 || this.stopping) throw error
        this.output(w, `crashed with ${signal} while starting; starting it again (attempt ${attempt + 2} of 3)`)
      }
    }
  }

  /** Restarts a worker that died while serving: at once within the budget, after a backoff past it. */
  private restartLater(w: ManagedWorker): void {
    const budget = this.o.restartBudget ?? DEFAULT_RESTART_BUDGET
    const now = Date.now()
    const recent = (this.crashTimesMs.get(w.name) ?? []).filter((t) => now - t < budget.windowMs)
    recent.push(now)
    this.crashTimesMs.set(w.name, recent)
    let delayMs = budget.delayMs
    if (recent.length > budget.count) {
      delayMs = Math.min(budget.maxBackoffMs, budget.delayMs * 2 ** (recent.length - budget.count))
      w.budgetExhausted++
      w.problem = `restart budget exhausted: ${recent.length} restarts within ${budget.windowMs / 1000} s (budget ${budget.count}); next restart in ${(delayMs / 1000).toFixed(1)} s`
      this.output(w, JSON.stringify({event: 'restart-budget-exhausted', worker: w.name, restartsInWindow: recent.length, windowS: budget.windowMs / 1000, budget: budget.count, backoffMs: delayMs}))
    } else w.problem = undefined
    w.restarts++
    const timer = setTimeout(() => {
      if (this.stopping) return
      this.launchRetryingCrashes(w).catch((error: Error) => {
        this.output(w, `restart failed: ${error.message}`)
        if (this.stopping) return
        this.setState(w, 'dead')
        this.restartLater(w)
      })
    }, delayMs)
    timer.unref()
  }

  /** A worker that stays unhealthy by its own account is restarted (its leaked blocks die with it). */
  private onReport(w: ManagedWorker, problem: string | undefined): void {
    if (problem === undefined) {
      this.problemPolls.delete(w.name)
      return
    }
    const polls = (this.problemPolls.get(w.name) ?? 0) + 1
    this.problemPolls.set(w.name, polls)
    if (polls === PROBLEM_POLLS_BEFORE_RESTART) {
      this.output(w, JSON.stringify({event: 'worker-unhealthy-restart', worker: w.name, problem}))
      this.processes.get(w.name)?.kill('SIGTERM')
      this.problemPolls.delete(w.name)
    }
  }

  /** The prefill engines decode workers may contact (engine id = worker name). */
  private peers(): PeersRequest {
    return {peers: this.workers.filter((w) => w.role === 'prefill' && w.controlUrl).map((w) => ({engineId: w.name, controlUrl: w.controlUrl!}))}
  }

  private async publishPeers(): Promise<void> {
    await Promise.all(this.workers.filter((w) => w.role === 'decode' && w.controlUrl && w.state !== 'dead' && w.state !== 'stopped').map((w) => this.sendPeers(w)))
  }

  private async sendPeers(w: ManagedWorker): Promise<void> {
    try {
      await this.client.call(`${w.controlUrl}${INTERNAL.peers}`, this.peers(), {timeoutMs: HEALTH_TIMEOUT_MS, retryOnReset: true})
    } catch (error) {
      // That decode worker is down or stalled: it gets the whole directory when it is ready again.
      this.output(w, `could not send it the prefill directory: ${(error as Error).message}`)
      if (w.state === 'starting') throw error
    }
  }

  private output(w: ManagedWorker, line: string): void {
    w.recentOutput.push(line)
    if (w.recentOutput.length > OUTPUT_KEPT) w.recentOutput.shift()
    this.emit('log', w.name, line)
  }

  private setState(w: ManagedWorker, state: WorkerState): void {
    if (w.state === state) return
    w.state = state
    this.emit('state', w)
  }

  /**
   * Why a worker did not start, as the serve error: its own error when it reported one, else what
   * the kit saw. A refusal of the user's input (the model directory's weights or config, a flag)
   * keeps its own class, code and exit code (3 for a missing tensor, as `hpd generate` says); other
   * failures to start are the environment's (exit 4).
   */
  private startError(w: ManagedWorker, child: ChildHandle<WorkerReadyLine>, error: unknown): HpdError {
    const own = child.childError
    if (own instanceof ModelConfigError || own instanceof UsageError) {
      const Kind = own instanceof ModelConfigError ? ModelConfigError : UsageError
      return new Kind(own.code, `worker ${w.name} refused its start: ${own.message}`, {...(own.hint ? {hint: own.hint} : {}), details: {...own.details, worker: w.name, role: w.role}})
    }
    if (own) {
      return new EnvironmentError('HPD_SERVE_WORKER_START', `worker ${w.name} failed to start: ${own.code}: ${own.message}`, {
        hint: own.hint ?? 'Check the worker output above.',
        details: {worker: w.name, role: w.role, workerCode: own.code},
      })
    }
    const e = error as HpdError
    const signal = e.details?.signal as string | undefined
    const out = new EnvironmentError('HPD_SERVE_WORKER_START', e.message, {
      hint: 'Check the worker output above; `hpd doctor` checks UCX and the native addon.',
      details: {worker: w.name, role: w.role},
    })
    // A native crash while starting is retried (launchRetryingCrashes); a clean refusal is not.
    if (signal && signal !== 'SIGTERM' && signal !== 'SIGINT') Object.assign(out, {crashSignal: signal})
    return out
  }
}
