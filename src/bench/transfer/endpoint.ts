import {fileURLToPath} from 'node:url'

import {type ChildHandle, errorFromJson, spawnChild} from '../../child/index.js'
import {type HpdError, NativeError} from '../../errors.js'
import type {FromWorker, ToWorker, WorkerReady, WorkerRole} from './protocol.js'
import type {BenchTransferOptions, BenchTransferResult} from './types.js'

/** How long a worker may take to start and allocate (node start + UCX init + region allocation). */
export const START_TIMEOUT_MS = 60_000

/**
 * One side of a run as the orchestrator drives it: a local child process (IPC, the child-process
 * kit) or, across hosts, a prefill side reached over an authenticated socket (remote.ts).
 */
export interface WorkerEndpoint {
  readonly role: WorkerRole
  readonly ready: Promise<WorkerReady>
  send(m: ToWorker): void
  onMessage(listener: (m: FromWorker) => void): void
  /** Settles with the failure once the side is gone while the run still needed it. */
  onGone(listener: (error: HpdError) => void): void
  /** --inject-fault kill-peer (local children only). */
  readonly kill?: () => void
  /** Ends the side (its own process, or tells a remote one how the run ended: its result or its error). */
  close(error?: HpdError, result?: BenchTransferResult): Promise<void>
}

/** A worker as a child process: worker-main.js, or the .ts source under tsx when running from src (tests). */
export function localWorker(role: WorkerRole, options: BenchTransferOptions): WorkerEndpoint {
  const fromSource = import.meta.url.endsWith('.ts')
  const child: ChildHandle<WorkerReady> = spawnChild<WorkerReady>({
    name: `the ${role} bench worker`,
    entry: fileURLToPath(new URL(fromSource ? './worker-main.ts' : './worker-main.js', import.meta.url)),
    // The cluster token stays in this process (argv is world-readable through ps; workers need none).
    args: ['--role', role, '--options', JSON.stringify(options.cluster ? {...options, cluster: {...options.cluster, token: undefined}} : options)],
    ipc: true,
    startTimeoutMs: START_TIMEOUT_MS,
    // The workers' own output (warnings, a crash's last words) goes where the command's stderr goes.
    onOutput: (line) => process.stderr.write(`${line}\n`),
  })
  let expectedExit = false
  return {
    role,
    ready: child.ready,
    send: (m) => child.send(m),
    onMessage: (listener) => child.onMessage((m) => listener(m as FromWorker)),
    onGone: (listener) => {
      void child.exited.then((x) => {
        if (expectedExit) return
        listener(child.childError ?? new NativeError('HPD_BENCH_WORKER_EXITED', `the ${role} worker process exited (${x.signal ?? `code ${x.code}`})`, {hint: 'Its own error, if any, is printed above.', details: {side: role}}))
      })
    },
    kill: () => {
      expectedExit = true
      child.kill('SIGKILL')
    },
    close: async () => {
      expectedExit = true
      await child.stop(3000)
    },
  }
}

/** A worker's 'error' message as the HpdError it was, naming the side. */
export function workerError(m: Extract<FromWorker, {type: 'error'}>, role: WorkerRole): HpdError {
  return errorFromJson(m.error, {side: role})
}
