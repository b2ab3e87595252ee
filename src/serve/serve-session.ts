/**
 * One `hpd serve` session: resolve the model, start workers and router, show it, wait for
 * SIGINT/SIGTERM, stop everything (bounded), and return a summary as the command's result.
 */
import {CLUSTER_TOKEN_ENV} from './auth.js'
import {readSecret} from './secrets.js'
import {checkServeLayout, resolveServeModel} from './serve-model.js'
import {startServe, type RunningServe, type ServeOptions} from './serve.js'

export interface ServeFlags extends Omit<ServeOptions, 'model' | 'transferTimeoutMs' | 'clusterToken' | 'apiKey'> {
  readonly model: string
  /** File holding the cluster token (else HPD_AUTH_TOKEN, else a random one). */
  readonly authTokenFile?: string
  /** File holding the public API key (else HPD_API_KEY, else none). */
  readonly apiKeyFile?: string
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
  const clusterToken = readSecret({flag: 'auth-token-file', file: flags.authTokenFile, envName: CLUSTER_TOKEN_ENV})
  const apiKey = readSecret({flag: 'api-key-file', file: flags.apiKeyFile, envName: 'HPD_API_KEY'})
  const model = resolveServeModel(flags.model)
  checkServeLayout(model, flags.colocated ? flags.decodeTp : flags.prefillTp, flags.decodeTp)
  // Test hook for fault tests (documented in README.md): decode workers pause before their read.
  const pause = Number(process.env.HPD_SERVE_PAUSE_BEFORE_READ_MS ?? 0)
  const running = await startServe({
    ...flags,
    ...sinks,
    model,
    clusterToken,
    apiKey,
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
