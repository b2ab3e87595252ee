import {createInterface} from 'node:readline'

import {execa, type ResultPromise} from 'execa'

import {EnvironmentError, HpdError} from '../errors.js'
import {errorFromJson} from './error-json.js'
import {parseError, parseReady} from './lines.js'

export interface SpawnChildOptions {
  /** Names the child in errors ("worker prefill-0", "the decode bench worker"). */
  readonly name: string
  /** Absolute path of the entry script: a built .js, or a .ts run under tsx (tests from source). */
  readonly entry: string
  readonly args?: readonly string[]
  /** Added to the parent's environment (secrets go here, never in args: ps shows argv). */
  readonly env?: Record<string, string>
  /** A Node IPC channel for messages (send / onMessage), besides the ready line. */
  readonly ipc?: boolean
  /** Bound on the time from spawn to the ready line. */
  readonly startTimeoutMs: number
  /** Every output line but the ready line and the error line. */
  readonly onOutput?: (line: string, stream: 'stdout' | 'stderr') => void
}

export interface ChildExit {
  readonly code: number | undefined
  readonly signal: string | undefined
}

/** How many of the child's last output lines an error quotes. */
const KEPT_LINES = 20

/**
 * A child process started by the kit. Lifeline: its stdin is a pipe (and its IPC channel, if any,
 * stays open) for as long as this process lives, and the kit's child side exits when either
 * closes, so a child never outlives its parent, even one killed outright; execa's `cleanup` also
 * kills it when this process exits normally.
 */
export class ChildHandle<Ready = unknown> {
  readonly process: ResultPromise
  /** Resolves with the child's ready payload; rejects with its own error (its error line) or a start error. */
  readonly ready: Promise<Ready>
  /** Settles when the process is gone, however it went. */
  readonly exited: Promise<ChildExit>
  /** The child's error line, when it wrote one. */
  childError: HpdError | undefined
  private readonly recent: string[] = []

  constructor(private readonly o: SpawnChildOptions) {
    const [command, ...nodeArgs] = [process.execPath, ...(o.entry.endsWith('.ts') ? ['--import', 'tsx'] : [])]
    this.process = execa(command, [...nodeArgs, o.entry, ...(o.args ?? [])], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: true,
      ...(o.ipc ? {ipc: true, serialization: 'json' as const} : {}),
      env: {UCX_HANDLE_ERRORS: 'none', ...o.env},
    })
    this.exited = this.process.then((r) => ({code: r.exitCode, signal: r.signal}))
    this.ready = new Promise<Ready>((resolve, reject) => {
      let settled = false
      const settle = (f: () => void) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        f()
      }
      const timer = setTimeout(() => settle(() => reject(this.startError(`did not report ready within ${o.startTimeoutMs} ms`))), o.startTimeoutMs)
      timer.unref()
      createInterface({input: this.process.stdout!}).on('line', (line) => {
        const ready = settled ? undefined : parseReady(line)
        if (ready) settle(() => resolve(ready.payload as Ready))
        else this.output(line, 'stdout')
      })
      createInterface({input: this.process.stderr!}).on('line', (line) => {
        const e = parseError(line)
        if (e) this.childError = errorFromJson(e, {child: o.name})
        else this.output(line, 'stderr')
      })
      void this.exited.then((x) => settle(() => reject(this.childError ?? this.startError(`exited with ${x.signal ?? `code ${x.code}`} before it was ready`, x.signal))))
    })
    this.ready.catch(() => undefined) // observed by whoever awaits it
  }

  get pid(): number | undefined {
    return this.process.pid
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null
  }

  /** The last lines of the child's output (for errors that name why it went). */
  recentOutput(): readonly string[] {
    return this.recent
  }

  send(message: unknown): void {
    if (this.process.connected) this.process.send(message as never)
  }

  onMessage(listener: (message: unknown) => void): void {
    this.process.on('message', listener)
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.process.kill(signal)
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  async stop(graceMs: number): Promise<void> {
    if (!this.running) return
    this.process.kill('SIGTERM')
    const killer = setTimeout(() => this.process.kill('SIGKILL'), graceMs)
    await this.exited
    clearTimeout(killer)
  }

  private output(line: string, stream: 'stdout' | 'stderr'): void {
    this.recent.push(line)
    if (this.recent.length > KEPT_LINES) this.recent.shift()
    this.o.onOutput?.(line, stream)
  }

  private startError(what: string, signal?: string): EnvironmentError {
    const tail = this.recent.slice(-5).join('\n')
    return new EnvironmentError('HPD_CHILD_START', `${this.o.name} ${what}${tail ? `; its last output:\n${tail}` : ''}`, {
      hint: 'Check its output above; `hpd doctor` checks UCX and the native addon.',
      details: {child: this.o.name, ...(signal ? {signal} : {})},
    })
  }
}

/** Starts `entry` as a child process with the kit's ready line, error line and lifeline. */
export function spawnChild<Ready = unknown>(o: SpawnChildOptions): ChildHandle<Ready> {
  return new ChildHandle<Ready>(o)
}
