/**
 * `hpd serve` as a library call: launches the workers (supervisor), waits until they are healthy,
 * then opens the router. Returns a handle whose snapshot() feeds the dashboard and whose close()
 * stops everything (router first, then workers, bounded).
 */
import {existsSync} from 'node:fs'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'

import {EnvironmentError, UsageError} from '../errors.js'
import {packageRoot} from '../native/load-addon.js'
import {generateClusterToken} from './auth.js'
import type {ServeModel} from './backend.js'
import {ServeMetrics, type WorkerGauge} from './metrics.js'
import {createRouter, type RouterLogEvent} from './router.js'
import {Supervisor, type WorkerState} from './supervisor.js'
import {WorkerBackend} from './worker-backend.js'
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
  /** Test hook passed to decode workers (see DecodeRoleOptions.pauseBeforeReadMs). */
  readonly pauseBeforeReadMs?: number
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
  readonly supervisor: Supervisor
  readonly metrics: ServeMetrics
  snapshot(): ServeSnapshot
  close(): Promise<void>
}

export function validateServeOptions(o: ServeOptions): void {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new UsageError('HPD_SERVE_BAD_FLAG', `--${name} must be a positive integer, got ${v}`, {hint: `Pass --${name} 1 or more.`})
  }
  positive('prefill-tp', o.prefillTp)
  positive('decode-tp', o.decodeTp)
  positive('prefill-workers', o.prefillWorkers)
  positive('decode-workers', o.decodeWorkers)
  positive('max-batch', o.maxBatch)
  if (o.kvBlocks !== undefined) positive('kv-blocks', o.kvBlocks)
  for (const [name, v] of [['lease-ms', o.leaseMs], ['request-timeout-ms', o.requestTimeoutMs], ['prefill-timeout-ms', o.prefillTimeoutMs]] as const) {
    // Below ~100 ms a heartbeat or a first token cannot make it on a loaded machine.
    if (!Number.isInteger(v) || v < 100) throw new UsageError('HPD_SERVE_BAD_FLAG', `--${name} must be an integer >= 100 (ms), got ${v}`, {hint: `Pass --${name} in milliseconds, e.g. 30000.`})
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65_535) {
    throw new UsageError('HPD_SERVE_BAD_FLAG', `--port must be 0..65535, got ${o.port}`, {hint: 'Pass a free TCP port, or 0 for any.'})
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
  }
  const configs: WorkerConfig[] = o.colocated
    ? Array.from({length: o.decodeWorkers}, (_, i) => ({...base, name: `colocated-${i}`, role: 'colocated', tp: o.decodeTp, peerTp: o.decodeTp}))
    : [
        ...Array.from({length: o.prefillWorkers}, (_, i): WorkerConfig => ({...base, name: `prefill-${i}`, role: 'prefill', tp: o.prefillTp, peerTp: o.decodeTp})),
        ...Array.from({length: o.decodeWorkers}, (_, i): WorkerConfig => ({
          ...base,
          name: `decode-${i}`,
          role: 'decode',
          tp: o.decodeTp,
          peerTp: o.prefillTp,
          pauseBeforeReadMs: o.pauseBeforeReadMs,
        })),
      ]
  // A taken port fails here, before any worker starts (a race with another binder is still
  // caught by the real listen below).
  if (o.port !== 0) await probePort(o.host, o.port)
  const clusterToken = o.clusterToken ?? generateClusterToken()
  const supervisor = new Supervisor({entryPath, configs, clusterToken})
  if (o.onWorkerLog) supervisor.on('log', o.onWorkerLog)
  if (o.onWorkerState) supervisor.on('state', (w) => o.onWorkerState!(w.name, w.role, w.state, w.pid))
  await supervisor.start()

  const metrics = new ServeMetrics()
  const backend = new WorkerBackend({
    pool: supervisor,
    clusterToken,
    mode: o.colocated ? 'colocated' : 'disaggregated',
    prefillTimeoutMs: Math.min(o.prefillTimeoutMs, o.requestTimeoutMs),
    streamIdleTimeoutMs: Math.min(o.requestTimeoutMs, 30_000),
  })
  const server = createRouter({
    backend,
    tokenizer: o.model.tokenizer,
    modelName: o.model.name,
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
    await supervisor.stop()
    portError(o.host, o.port)(error)
  }
  const url = `http://${o.host}:${(server.address() as AddressInfo).port}`

  const snapshot = (): ServeSnapshot => {
    const workers = supervisor.workers.map((w) => ({
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
    }))
    metrics.workers = workers
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
    metrics,
    snapshot,
    close: () =>
      (closed ??= (async () => {
        clearInterval(refresher)
        server.closeAllConnections()
        await new Promise<void>((resolve) => server.close(() => resolve()))
        await supervisor.stop()
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
