/**
 * `hpd serve` as a library call: launches the workers (supervisor), waits until they are healthy,
 * then opens the router. Returns a handle whose snapshot() feeds the dashboard and whose close()
 * stops everything (router first, then workers, bounded).
 */
import {existsSync} from 'node:fs'
import {hostname} from 'node:os'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'

import {EnvironmentError, UsageError} from '../errors.js'
import {packageRoot} from '../native/load-addon.js'
import {generateClusterToken} from './auth.js'
import type {ServeModel} from './backend.js'
import {ServeMetrics, type WorkerGauge} from './metrics.js'
import {createRouter, type RouterLogEvent} from './router.js'
import {checkReachable, etcdClient} from '../cluster/etcd.js'
import {ClusterPool} from './cluster-pool.js'
import {modelCompatibilityHash} from './serve-model.js'
import {Supervisor} from './supervisor.js'
import type {WorkerPool, WorkerState} from './worker-pool.js'
import type {StepSchedulerOptions} from '../engine/step-scheduler.js'
import {KvEventFeed} from './routing/kv-event-feed.js'
import {DEFAULT_ROUTING, type RoutingOptions, WorkerBackend} from './worker-backend.js'
import type {WorkerConfig} from './worker/worker-config.js'

export interface ServeOptions {
  readonly model: ServeModel
  readonly prefillTp: number
  readonly decodeTp: number
  readonly prefillWorkers: number
  readonly decodeWorkers: number
  readonly host: string
  /** 0 picks a free port. */
  readonly port: number
  readonly transport: 'auto' | 'shm' | 'tcp'
  readonly colocated: boolean
  readonly leaseMs: number
  readonly maxBatch: number
  readonly kvBlocks?: number
  readonly requestTimeoutMs: number
  /** Bound on one prefill call (queueing on the prefill worker included); past it the next prefill worker is tried. */
  readonly prefillTimeoutMs: number
  readonly transferTimeoutMs: number
  /** The cluster token workers require; a random one is generated when absent (local mode). */
  readonly clusterToken?: string
  /** When set, /v1/* on the router requires `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string
  /** Cluster mode: workers register in etcd and the router routes over what etcd knows. */
  readonly etcd?: {readonly urls: readonly string[]; readonly cluster: string}
  /** Launch local workers (false: the router alone, over workers running elsewhere; needs etcd). */
  readonly localWorkers: boolean
  /** vLLM --served-model-name: names clients may pass as `model` (a response carries the one its request used; repeated names count once); default the model's name. */
  readonly servedModelNames?: readonly string[]
  /** Chunked prefill on every worker: tokens per engine step and per long-prompt chunk (default DEFAULT_STEP_OPTIONS). */
  readonly steps?: StepSchedulerOptions
  /** Test hook passed to decode workers (see DecodeRoleOptions.pauseBeforeReadMs). */
  readonly pauseBeforeReadMs?: number
  /** Decode workers digest both sides of every transfer and fail a request whose digests differ (DecodeRoleOptions.verifyTransfers). */
  readonly verifyTransfers?: boolean
  /** Prefix caching on every worker (default true, as vLLM V1; `--no-prefix-caching`). */
  readonly prefixCaching?: boolean
  /** Hybrids: a Mamba checkpoint every k-th logical-block boundary (default 1). */
  readonly mambaCheckpointEvery?: number
  /** How the router picks workers (default: by cached prefix and load, from the workers' KV events). */
  readonly routing?: RoutingOptions
  readonly onWorkerLog?: (worker: string, line: string) => void
  readonly onRequestLog?: (event: RouterLogEvent) => void
  readonly onWorkerState?: (worker: string, role: string, state: WorkerState, pid: number | undefined) => void
}

export interface ServeSnapshot {
  readonly url: string
  readonly model: string
  readonly mode: 'disaggregated' | 'colocated'
  readonly uptimeS: number
  readonly inFlight: number
  readonly requestsOk: number
  readonly requestsFailed: number
  readonly outputTokensPerS: number
  readonly ttftMs: {p50?: number; p90?: number; p99?: number}
  readonly itlMs: {p50?: number; p90?: number; p99?: number}
  readonly e2eMs: {p50?: number; p90?: number; p99?: number}
  readonly transferGBps: number | undefined
  readonly workers: readonly (WorkerGauge & {readonly pid: number | undefined})[]
}

export interface RunningServe {
  readonly url: string
  /** The local workers' supervisor (none with --no-local-workers). */
  readonly supervisor: Supervisor | undefined
  /** The workers the router routes over (the supervisor's, or those registered in etcd). */
  readonly pool: WorkerPool
  readonly metrics: ServeMetrics
  snapshot(): ServeSnapshot
  close(): Promise<void>
}

/** The maxima of serve's counts and durations (README "Limits"): far above any real use, below anything absurd. */
export const SERVE_LIMITS = {
  tp: 64,
  workers: 64,
  maxBatch: 4096,
  kvBlocks: 1_048_576,
  leaseMs: 3_600_000,
  timeoutMs: 86_400_000,
  /** Tokens of one engine step (chunked prefill). */
  stepTokens: 1_048_576,
  /** Logical blocks between two grid Mamba checkpoints. */
  checkpointEvery: 1_048_576,
} as const

/** Checks the counts and durations given (absent ones are skipped). */
export function validateServeOptions(o: Partial<ServeOptions>): void {
  const range = (name: string, v: number | undefined, min: number, max: number, unit = '') => {
    if (v === undefined) return
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new UsageError('HPD_SERVE_BAD_FLAG', `--${name} must be an integer ${min}..${max}${unit}, got ${v}`, {hint: `Pass --${name} between ${min} and ${max}${unit}.`, details: {flag: name}})
    }
  }
  range('prefill-tp', o.prefillTp, 1, SERVE_LIMITS.tp)
  range('decode-tp', o.decodeTp, 1, SERVE_LIMITS.tp)
  range('prefill-workers', o.prefillWorkers, 1, SERVE_LIMITS.workers)
  range('decode-workers', o.decodeWorkers, 1, SERVE_LIMITS.workers)
  range('max-batch', o.maxBatch, 1, SERVE_LIMITS.maxBatch)
  range('kv-blocks', o.kvBlocks, 1, SERVE_LIMITS.kvBlocks)
  // Below ~100 ms a heartbeat or a first token cannot make it on a loaded machine.
  range('lease-ms', o.leaseMs, 100, SERVE_LIMITS.leaseMs, ' (ms)')
  range('request-timeout-ms', o.requestTimeoutMs, 100, SERVE_LIMITS.timeoutMs, ' (ms)')
  range('prefill-timeout-ms', o.prefillTimeoutMs, 100, SERVE_LIMITS.timeoutMs, ' (ms)')
  range('port', o.port, 0, 65_535)
  range('max-num-batched-tokens', o.steps?.maxStepTokens, 1, SERVE_LIMITS.stepTokens)
  range('long-prefill-tokens', o.steps?.longPrefillTokens, 1, SERVE_LIMITS.stepTokens)
  range('mamba-checkpoint-every', o.mambaCheckpointEvery, 1, SERVE_LIMITS.checkpointEvery)
  const weight = o.routing?.prefixWeight
  if (weight !== undefined && !(Number.isFinite(weight) && weight >= 0 && weight <= 1)) {
    throw new UsageError('HPD_SERVE_BAD_FLAG', `--prefix-routing-weight must be a number 0..1, got ${weight}`, {hint: 'Pass --prefix-routing-weight between 0 (load only) and 1 (cached prefix only).', details: {flag: 'prefix-routing-weight'}})
  }
  for (const name of o.servedModelNames ?? []) {
    if (name.length === 0 || name.length > 256 || /[\s\x00-\x1f]/.test(name)) {
      throw new UsageError('HPD_SERVE_BAD_FLAG', `--served-model-name must be 1..256 characters without spaces, got ${JSON.stringify(name.slice(0, 64))}`, {hint: 'Pass --served-model-name NAME once per name clients may use.', details: {flag: 'served-model-name'}})
    }
  }
}

export function workerEntryPath(): string {
  return join(packageRoot(), 'dist', 'serve', 'worker', 'main.js')
}

export async function startServe(o: ServeOptions): Promise<RunningServe> {
  validateServeOptions(o)
  const entryPath = workerEntryPath()
  if (!existsSync(entryPath)) {
    throw new EnvironmentError('HPD_SERVE_NOT_BUILT', `the worker entry ${entryPath} does not exist`, {hint: 'Build hpd first: `npm run build`.'})
  }
  const base = {
    model: o.model.dir,
    modelName: o.model.name,
    etcd: o.etcd,
    maxModelLen: o.model.maxModelLen,
    transport: o.transport,
    host: '127.0.0.1',
    leaseMs: o.leaseMs,
    // A decode worker beats the lease while it waits for blocks; the router gives up on the
    // request after requestTimeoutMs, so no legitimate hold lasts longer than that.
    maxLeaseMs: o.requestTimeoutMs + o.leaseMs,
    maxBatch: o.maxBatch,
    kvBlocks: o.kvBlocks,
    handshakeTimeoutMs: 5000,
    transferTimeoutMs: o.transferTimeoutMs,
    steps: o.steps,
    prefixCaching: o.prefixCaching !== false,
    ...(o.mambaCheckpointEvery === undefined ? {} : {mambaCheckpointEvery: o.mambaCheckpointEvery}),
    // Local workers publish KV events on loopback (any free port); the router subscribes to them.
    ...(o.prefixCaching !== false ? {kvEventsEndpoint: 'tcp://127.0.0.1:*'} : {}),
  }
  // In a cluster, local workers register in etcd under names unique across hosts.
  const prefix = o.etcd ? `${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-` : ''
  const worker = (role: WorkerConfig['role'], i: number, tp: number): WorkerConfig => ({...base, name: `${prefix}${role}-${i}`, role, tp})
  const configs: WorkerConfig[] = !o.localWorkers
    ? []
    : o.colocated
      ? Array.from({length: o.decodeWorkers}, (_, i) => worker('colocated', i, o.decodeTp))
      : [
          ...Array.from({length: o.prefillWorkers}, (_, i) => worker('prefill', i, o.prefillTp)),
          ...Array.from({length: o.decodeWorkers}, (_, i) => ({...worker('decode', i, o.decodeTp), pauseBeforeReadMs: o.pauseBeforeReadMs, ...(o.verifyTransfers ? {verifyTransfers: true} : {})})),
        ]
  // A taken port fails here, before any worker starts (a race with another binder is still
  // caught by the real listen below).
  if (o.port !== 0) await probePort(o.host, o.port)
  const clusterToken = o.clusterToken ?? (o.etcd ? undefined : generateClusterToken())
  const etcd = o.etcd ? etcdClient({urls: o.etcd.urls}) : undefined
  if (etcd) await checkReachable(etcd, {urls: o.etcd!.urls}).catch((error: unknown) => {
    etcd.close()
    throw error
  })
  // Local workers: launched and healed by the supervisor. In a cluster they register in etcd and
  // learn their peers there; the router routes over what etcd knows (local or not).
  const supervisor = configs.length > 0 ? new Supervisor({entryPath, configs, clusterToken, publishPeers: !o.etcd}) : undefined
  if (supervisor && o.onWorkerLog) supervisor.on('log', o.onWorkerLog)
  if (supervisor && o.onWorkerState) supervisor.on('state', (w) => o.onWorkerState!(w.name, w.role, w.state, w.pid))
  let pool: WorkerPool
  try {
    await supervisor?.start()
    pool = etcd
      ? await ClusterPool.start({
          client: etcd,
          cluster: o.etcd!.cluster,
          clusterToken,
          modelName: o.model.name,
          compatibilityHash: modelCompatibilityHash(o.model),
          log: (event, fields) => o.onWorkerLog?.('router', JSON.stringify({event, ...fields})),
        })
      : supervisor!
  } catch (error) {
    await supervisor?.stop()
    etcd?.close()
    throw error
  }
  if (etcd) {
    if (o.onWorkerState) pool.on('state', (w) => o.onWorkerState!(w.name, w.role, w.state, w.pid))
    if (o.onWorkerLog) pool.on('log', o.onWorkerLog)
  }
  const stopWorkers = async () => {
    if (pool !== supervisor) await pool.stop()
    await supervisor?.stop()
    etcd?.close()
  }

  const metrics = new ServeMetrics()
  const routing = o.routing ?? (o.prefixCaching === false ? {...DEFAULT_ROUTING, policy: 'round-robin' as const} : DEFAULT_ROUTING)
  const feed = routing.policy === 'prefix' ? new KvEventFeed(pool, clusterToken) : undefined
  const backend = new WorkerBackend({
    pool,
    modelName: o.model.name,
    clusterToken,
    mode: o.colocated ? 'colocated' : 'disaggregated',
    prefillTimeoutMs: Math.min(o.prefillTimeoutMs, o.requestTimeoutMs),
    streamIdleTimeoutMs: Math.min(o.requestTimeoutMs, 30_000),
    routing,
    feed,
  })
  metrics.routing = {prefixRouted: () => backend.prefixRouted, prefixRoutedTokens: () => backend.prefixRoutedTokens, kvEventBatches: () => feed?.batches ?? 0}
  const server = createRouter({
    backend,
    tokenizer: o.model.tokenizer,
    modelName: o.model.name,
    servedModelNames: o.servedModelNames,
    maxModelLen: o.model.maxModelLen,
    vocabSize: o.model.vocabSize,
    metrics,
    requestTimeoutMs: o.requestTimeoutMs,
    apiKey: o.apiKey,
    log: o.onRequestLog,
  })
  try {
    await listen(server, o.host, o.port)
  } catch (error) {
    feed?.close()
    await stopWorkers()
    portError(o.host, o.port)(error)
  }
  const url = `http://${o.host}:${(server.address() as AddressInfo).port}`

  const snapshot = (): ServeSnapshot => {
    const workers = pool.workers.map((w) => ({
      name: w.name,
      role: w.role,
      state: w.state,
      pid: w.pid,
      restarts: w.restarts,
      budgetExhausted: w.budgetExhausted,
      inFlight: w.stats?.inFlight ?? 0,
      kvBlocksUsed: w.stats?.kvBlocksUsed ?? 0,
      kvBlocksTotal: w.stats?.kvBlocksTotal ?? 0,
      leasesHeld: w.stats?.leasesHeld ?? 0,
      leasesExpired: w.stats?.leasesExpired ?? 0,
      transferBytes: w.stats?.transferBytes ?? 0,
      transferMs: w.stats?.transferMs ?? 0,
      verifiedTransfers: w.stats?.verifiedTransfers ?? 0,
      verifyMs: w.stats?.verifyMs ?? 0,
    }))
    metrics.workers = workers
    if (pool instanceof ClusterPool) metrics.etcdUp = pool.etcdUp ? 1 : 0
    const ms = (h: {percentiles(p: readonly number[]): (number | undefined)[]}) => {
      const [p50, p90, p99] = h.percentiles([50, 90, 99]).map((s) => (s === undefined ? undefined : s * 1000))
      return {p50, p90, p99}
    }
    const bytes = workers.reduce((a, w) => a + w.transferBytes, 0)
    const transferMs = workers.reduce((a, w) => a + w.transferMs, 0)
    const uptimeS = (Date.now() - metrics.startedAtMs) / 1000
    return {
      url,
      model: o.model.name,
      mode: o.colocated ? 'colocated' : 'disaggregated',
      uptimeS,
      inFlight: metrics.inFlight,
      requestsOk: metrics.requestsOk,
      requestsFailed: metrics.requestsFailed,
      outputTokensPerS: metrics.generationTokens / Math.max(uptimeS, 1e-9),
      ttftMs: ms(metrics.ttft),
      itlMs: ms(metrics.itl),
      e2eMs: ms(metrics.e2e),
      transferGBps: transferMs > 0 ? bytes / (transferMs / 1000) / 1e9 : undefined,
      workers,
    }
  }
  // Keep /metrics' per-worker gauges current even when nobody renders a dashboard.
  const refresher = setInterval(snapshot, 1000)
  refresher.unref()

  let closed: Promise<void> | undefined
  return {
    url,
    supervisor,
    pool,
    metrics,
    snapshot,
    close: () =>
      (closed ??= (async () => {
        clearInterval(refresher)
        feed?.close()
        server.closeAllConnections()
        await new Promise<void>((resolve) => server.close(() => resolve()))
        await stopWorkers()
      })()),
  }
}

function portError(host: string, port: number): (error: unknown) => never {
  return (error) => {
    const e = error as NodeJS.ErrnoException
    throw new EnvironmentError('HPD_SERVE_PORT', `cannot listen on ${host}:${port}: ${e.code ?? e.message}`, {
      hint: e.code === 'EADDRINUSE' ? `Another process uses port ${port}; pass --port with a free one.` : 'Check --host and --port.',
      details: {host, port},
    })
  }
}

async function probePort(host: string, port: number): Promise<void> {
  const probe = createServer()
  try {
    await listen(probe, host, port)
  } catch (error) {
    portError(host, port)(error)
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()))
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}
