/**
 * Worker processes (execa): launched in parallel, each ready only after its ready line AND a
 * health check; output prefixed with the worker name and passed to one sink; health polled on a
 * fixed beat; a dead worker is seen at once (process exit) and restarted with a fresh engine
 * epoch after a short backoff. `stop()` sends SIGTERM to all and SIGKILL to whatever is still
 * alive after `stopGraceMs`, so no worker outlives the server. Workers also exit on their own
 * when their stdin closes, which covers the supervisor being killed outright.
 */
import {EventEmitter} from 'node:events'
import {createInterface} from 'node:readline'

import {execa, type ResultPromise} from 'execa'

import {EnvironmentError} from '../errors.js'
import {callJson} from './http-json.js'
import {INTERNAL, type WorkerHealth, type WorkerReadyLine, type WorkerRole, type WorkerStats} from './protocol.js'
import type {WorkerConfig} from './worker/worker-config.js'

export type WorkerState = 'starting' | 'ready' | 'unhealthy' | 'dead' | 'stopped'

export interface ManagedWorker {
  readonly name: string
  readonly role: WorkerRole
  readonly config: WorkerConfig
  state: WorkerState
  controlUrl: string | undefined
  pid: number | undefined
  engineEpoch: string | undefined
  stats: WorkerStats | undefined
  restarts: number
  /** Last few stderr lines, for the error shown when it fails to start. */
  readonly recentOutput: string[]
  failedHealthChecks: number
}

export interface SupervisorOptions {
  /** Absolute path of the worker entry script (dist/serve/worker/main.js). */
  readonly entryPath: string
  readonly configs: readonly WorkerConfig[]
  readonly startupTimeoutMs?: number
  readonly healthIntervalMs?: number
  readonly stopGraceMs?: number
  readonly maxRestarts?: number
  readonly env?: Record<string, string>
}

export interface SupervisorEvents {
  log: [worker: string, line: string]
  state: [worker: ManagedWorker]
}

const OUTPUT_KEPT = 20
/** Bound of one health/stats poll; three missed in a row (~15 s) make a worker unhealthy. */
const HEALTH_TIMEOUT_MS = 5000

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly workers: ManagedWorker[]
  private readonly processes = new Map<string, ResultPromise>()
  private healthTimer: NodeJS.Timeout | undefined
  private stopping = false
  private readonly polling = new Set<string>()

  constructor(private readonly o: SupervisorOptions) {
    super()
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
    const interval = this.o.healthIntervalMs ?? 1000
    this.healthTimer = setInterval(() => void this.pollAll(), interval)
    this.healthTimer.unref()
  }

  ready(role: WorkerRole): ManagedWorker[] {
    return this.workers.filter((w) => w.role === role && w.state === 'ready')
  }

  /** Marks a worker unhealthy right away (the router saw it refuse a connection). */
  suspect(worker: ManagedWorker): void {
    if (worker.state === 'ready') this.setState(worker, 'unhealthy')
  }

  async stop(): Promise<void> {
    this.stopping = true
    if (this.healthTimer) clearInterval(this.healthTimer)
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
    const p = execa(process.execPath, [this.o.entryPath, '--config', JSON.stringify(w.config)], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: true,
      env: {UCX_HANDLE_ERRORS: 'none', ...this.o.env},
    })
    this.processes.set(w.name, p)
    w.pid = p.pid
    w.controlUrl = undefined
    this.setState(w, 'starting')

    const timeoutMs = this.o.startupTimeoutMs ?? 120_000
    const readyLine = new Promise<WorkerReadyLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(this.startError(w, `did not report ready within ${timeoutMs} ms`)), timeoutMs)
      createInterface({input: p.stdout!}).on('line', (line) => {
        if (line.startsWith('{"hpdWorkerReady"')) {
          clearTimeout(timer)
          resolve(JSON.parse(line) as WorkerReadyLine)
        } else this.output(w, line)
      })
      void p.then((result) => {
        clearTimeout(timer)
        const error = this.startError(w, `exited with ${result.signal ?? `code ${result.exitCode}`} before it was ready`)
        if (result.signal && result.signal !== 'SIGTERM' && result.signal !== 'SIGINT') Object.assign(error, {crashSignal: result.signal})
        reject(error)
      })
    })
    createInterface({input: p.stderr!}).on('line', (line) => this.output(w, line))
    void p.then((result) => {
      if (this.processes.get(w.name) !== p) return
      this.processes.delete(w.name)
      if (this.stopping) return
      // Died while starting: launch() rejects and its caller decides (retry or fail the start).
      const wasServing = w.state !== 'starting'
      this.output(w, `exited (${result.signal ?? `code ${result.exitCode}`})`)
      this.setState(w, 'dead')
      if (wasServing) this.restartLater(w)
    })

    const ready = await readyLine
    w.controlUrl = ready.controlUrl
    const health = await callJson<WorkerHealth>(`${ready.controlUrl}${INTERNAL.health}`, undefined, 5000)
    w.engineEpoch = health.engineEpoch
    w.failedHealthChecks = 0
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

  private restartLater(w: ManagedWorker): void {
    if (w.restarts >= (this.o.maxRestarts ?? 5)) return
    w.restarts++
    const timer = setTimeout(() => {
      if (this.stopping) return
      this.launchRetryingCrashes(w).catch((error: Error) => this.output(w, `restart failed: ${error.message}`))
    }, 500)
    timer.unref()
  }

  private async pollAll(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        if (!w.controlUrl || w.state === 'dead' || w.state === 'stopped' || w.state === 'starting') return
        // A worker answers between engine calls, which run on its event loop: a queue of long
        // prefills delays the answer by seconds without anything being wrong. So one poll at a
        // time, a generous bound, and only a refused connection or ~15 s of silence is sick.
        if (this.polling.has(w.name)) return
        this.polling.add(w.name)
        try {
          w.stats = await callJson<WorkerStats>(`${w.controlUrl}${INTERNAL.stats}`, undefined, HEALTH_TIMEOUT_MS)
          w.failedHealthChecks = 0
          if (w.state === 'unhealthy') this.setState(w, 'ready')
        } catch (error) {
          w.failedHealthChecks++
          const refused = (error as {code?: string}).code === 'worker_unreachable'
          if (refused || w.failedHealthChecks >= 3) this.suspect(w)
        } finally {
          this.polling.delete(w.name)
        }
      }),
    )
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

  private startError(w: ManagedWorker, what: string): EnvironmentError {
    // A worker that failed cleanly logged {"event":"failed", code, message, hint}: pass that on.
    for (const line of [...w.recentOutput].reverse()) {
      try {
        const ev = JSON.parse(line) as {event?: string; code?: string; message?: string; hint?: string}
        if (ev.event === 'failed') {
          return new EnvironmentError('HPD_SERVE_WORKER_START', `worker ${w.name} failed to start: ${ev.code ? `${ev.code}: ` : ''}${ev.message}`, {
            hint: ev.hint ?? 'Check the worker output above.',
            details: {worker: w.name, role: w.role, workerCode: ev.code},
          })
        }
      } catch {
        // not a JSON line
      }
    }
    const tail = w.recentOutput.slice(-5).join('\n')
    return new EnvironmentError('HPD_SERVE_WORKER_START', `worker ${w.name} ${what}${tail ? `; its last output:\n${tail}` : ''}`, {
      hint: 'Check the worker output above; `hpd doctor` checks UCX and the native addon.',
      details: {worker: w.name, role: w.role},
    })
  }
}
