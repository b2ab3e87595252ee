/**
 * One `hpd serve` session: resolve the model, start workers and router, show it, wait for
 * SIGINT/SIGTERM, stop everything (bounded), and return a summary as the command's result.
 */
import {checkServeLayout, resolveServeModel} from './serve-model.js'
import {startServe, type RunningServe, type ServeOptions} from './serve.js'

export interface ServeFlags extends Omit<ServeOptions, 'model' | 'transferTimeoutMs'> {
  readonly model: string
}

export interface ServeResult {
  readonly url: string
  readonly model: string
  readonly mode: 'disaggregated' | 'colocated'
  readonly stoppedBy: string
  readonly uptimeS: number
  readonly requestsOk: number
  readonly requestsFailed: number
  readonly workers: readonly {readonly name: string; readonly role: string; readonly restarts: number}[]
}

type Sinks = Pick<ServeOptions, 'onWorkerLog' | 'onWorkerState' | 'onRequestLog'>

export async function serveUntilSignal(flags: ServeFlags, sinks: Sinks, present: (running: RunningServe) => () => void): Promise<ServeResult> {
  const model = resolveServeModel(flags.model)
  checkServeLayout(model, flags.colocated ? flags.decodeTp : flags.prefillTp, flags.decodeTp)
  // Test hook for fault tests (documented in README.md): decode workers pause before their read.
  const pause = Number(process.env.HPD_SERVE_PAUSE_BEFORE_READ_MS ?? 0)
  const running = await startServe({
    ...flags,
    ...sinks,
    model,
    transferTimeoutMs: Number(process.env.HPD_SERVE_TRANSFER_TIMEOUT_MS ?? 2000),
    pauseBeforeReadMs: pause > 0 ? pause : undefined,
  })
  const stopView = present(running)
  const stoppedBy = await new Promise<string>((resolve) => {
    const on = (signal: string) => () => resolve(signal)
    process.once('SIGINT', on('SIGINT'))
    process.once('SIGTERM', on('SIGTERM'))
  })
  stopView()
  const snap = running.snapshot()
  await running.close()
  return {
    url: running.url,
    model: model.name,
    mode: snap.mode,
    stoppedBy,
    uptimeS: snap.uptimeS,
    requestsOk: snap.requestsOk,
    requestsFailed: snap.requestsFailed,
    workers: running.supervisor.workers.map((w) => ({name: w.name, role: w.role, restarts: w.restarts})),
  }
}
