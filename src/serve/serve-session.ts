/**
 * One `hpd serve` session: resolve the model, start workers and router, show it, wait for
 * SIGINT/SIGTERM, stop everything (bounded), and return a summary as the command's result.
 */
import {checkClusterName} from '../cluster/record.js'
import {parseEtcdFlag} from '../cluster/etcd.js'
import {UsageError} from '../errors.js'
import {API_KEY_ENV, CLUSTER_TOKEN_ENV} from './auth.js'
import {checkBind} from './bind-policy.js'
import {readSecret} from './secrets.js'
import {checkServeLayout, resolveServeModel} from './serve-model.js'
import {startServe, type RunningServe, type ServeOptions} from './serve.js'

export interface ServeFlags extends Omit<ServeOptions, 'model' | 'transferTimeoutMs' | 'clusterToken' | 'apiKey' | 'etcd'> {
  readonly model: string
  /** `--etcd URL[,URL…]`: cluster mode. */
  readonly etcd?: string
  readonly cluster: string
  /** Run without the cluster token on a non-loopback address, knowingly. */
  readonly insecure: boolean
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
  const etcd = flags.etcd === undefined ? undefined : {urls: parseEtcdFlag(flags.etcd).urls, cluster: checkClusterName(flags.cluster)}
  if (!etcd && !flags.localWorkers) {
    throw new UsageError('HPD_SERVE_BAD_FLAG', '--no-local-workers needs --etcd: without a registry the router has no workers', {hint: 'Pass --etcd http://HOST:2379 --cluster NAME, or drop --no-local-workers.'})
  }
  // In a cluster the token is shared with workers elsewhere: it must be given, not made up here.
  if (etcd && !clusterToken && !flags.insecure) {
    throw new UsageError('HPD_AUTH_REQUIRED', 'a cluster (--etcd) needs the cluster token its workers were started with', {
      hint: 'Give it with --auth-token-file F (or HPD_AUTH_TOKEN), or pass --insecure to run the whole cluster unauthenticated knowingly.',
    })
  }
  checkBind('the router', '--host', flags.host, clusterToken !== undefined || !etcd, flags.insecure)
  const apiKey = readSecret({flag: 'api-key-file', file: flags.apiKeyFile, envName: API_KEY_ENV})
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
    etcd,
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
    workers: running.pool.workers.map((w) => ({name: w.name, role: w.role, restarts: w.restarts})),
  }
}
