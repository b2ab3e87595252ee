/**
 * `hpd worker`: one worker as a standalone process on any host — the engine, its control server
 * and transfer agent on --listen's interface, registered in etcd (--etcd) so routers and decode
 * workers of the cluster find it — until SIGINT/SIGTERM, then deregistered and stopped (bounded).
 */
import {hostname} from 'node:os'

import {parseEtcdFlag} from '../cluster/etcd.js'
import {checkClusterName} from '../cluster/record.js'
import type {StepSchedulerOptions} from '../engine/step-scheduler.js'
import {UsageError} from '../errors.js'
import {API_KEY_ENV, CLUSTER_TOKEN_ENV} from './auth.js'
import {checkBind, isLoopback} from './bind-policy.js'
import type {WorkerRole} from './protocol.js'
import {readSecret} from './secrets.js'
import {resolveServeModel} from './serve-model.js'
import {SERVE_LIMITS, validateServeOptions} from './serve.js'
import {runWorker} from './worker/run-worker.js'

export interface WorkerFlags {
  readonly role: WorkerRole
  readonly model: string
  readonly tp: number
  readonly name?: string
  /** HOST:PORT the control server and transfer agent listen on. */
  readonly listen: string
  /** HOST:PORT other hosts reach it at (default: --listen). */
  readonly advertise?: string
  readonly etcd?: string
  readonly cluster: string
  readonly transport: 'auto' | 'shm' | 'tcp'
  readonly leaseMs: number
  readonly maxBatch: number
  readonly kvBlocks?: number
  readonly requestTimeoutMs: number
  readonly authTokenFile?: string
  /** File holding the API key unsigned clients must send on /v1/* (else HPD_API_KEY). */
  readonly apiKeyFile?: string
  /** Serve the OpenAI routes to unsigned clients without a key (a plain vLLM server's behaviour). */
  readonly openApi: boolean
  readonly kvLoadFailurePolicy: 'fail' | 'recompute'
  readonly insecure: boolean
  /** Digest both sides of every transfer this (decode) worker pulls; a mismatch fails the request. */
  readonly verifyTransfers?: boolean
  /** Prefix caching (default true; `--no-prefix-caching`). */
  readonly prefixCaching?: boolean
  readonly mambaCheckpointEvery?: number
  /** `tcp://HOST:PORT` to publish KV events on ('none': no events; default tcp://<listen host>:*). */
  readonly kvEventsEndpoint?: string
  readonly kvEventsPlain?: boolean
  /** Names clients may pass as `model` on this worker (vLLM --served-model-name); the model's own name is accepted too. */
  readonly servedModelNames?: readonly string[]
  /** Chunked prefill: tokens per engine step and per long-prompt chunk (as `hpd serve`; default the engine's). */
  readonly steps?: StepSchedulerOptions
}

export interface WorkerResult {
  readonly engineId: string
  readonly role: WorkerRole
  readonly controlUrl: string
  readonly cluster: string | undefined
  readonly stoppedBy: string
  readonly uptimeS: number
}

/** `HOST:PORT` (IPv6 in brackets) → parts; port 0 = any free port. */
export function parseHostPort(flag: string, value: string): {host: string; port: number} {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(value)
  const port = m ? Number(m[2]) : Number.NaN
  if (!m || port > 65_535) throw new UsageError('HPD_SERVE_BAD_FLAG', `--${flag} must be HOST:PORT (port 0..65535), got ${JSON.stringify(value.slice(0, 100))}`, {hint: `Pass e.g. --${flag} 10.0.0.5:8101, or [::1]:8101.`, details: {flag}})
  return {host: m[1].replace(/^\[|\]$/g, ''), port}
}

export async function workerUntilSignal(flags: WorkerFlags, log: (event: string, fields: Record<string, unknown>) => void, onReady: (r: {controlUrl: string; engineId: string}) => void): Promise<WorkerResult> {
  const listen = parseHostPort('listen', flags.listen)
  const advertise = flags.advertise === undefined ? undefined : parseHostPort('advertise', flags.advertise)
  const etcd = flags.etcd === undefined ? undefined : {urls: parseEtcdFlag(flags.etcd).urls, cluster: checkClusterName(flags.cluster)}
  const clusterToken = readSecret({flag: 'auth-token-file', file: flags.authTokenFile, envName: CLUSTER_TOKEN_ENV})
  const apiKey = readSecret({flag: 'api-key-file', file: flags.apiKeyFile, envName: API_KEY_ENV})
  // A worker always belongs to a cluster of processes that must share the token.
  if (!clusterToken && !flags.insecure) {
    throw new UsageError('HPD_AUTH_REQUIRED', 'a worker needs the cluster token its router and peers use', {
      hint: 'Give it with --auth-token-file F (or HPD_AUTH_TOKEN; make one with `openssl rand -base64 32`), or pass --insecure to run unauthenticated knowingly.',
    })
  }
  checkBind('the worker', '--listen', listen.host, clusterToken !== undefined, flags.insecure)
  if (etcd && advertise === undefined && (listen.host === '0.0.0.0' || listen.host === '::')) {
    throw new UsageError('HPD_SERVE_BAD_FLAG', `--listen ${flags.listen} is not an address other hosts can reach`, {hint: 'Pass --advertise HOST:PORT (the address and port peers should use), or --listen with one address of this host.', details: {flag: 'advertise'}})
  }
  if (!etcd && flags.role === 'decode') {
    log('warning', {message: 'without --etcd this decode worker knows no prefill engine: every decode leg (kv_transfer_params with do_remote_prefill) is refused with unknown_prefill_engine; requests without them are computed here', hint: 'Run the prefill and decode workers with the same --etcd and --cluster.'})
  }
  if (etcd && advertise === undefined && isLoopback(listen.host)) log('warning', {message: `--listen ${flags.listen} is loopback: only workers and routers on this host can reach this worker`})
  validateServeOptions({prefillTp: flags.tp, maxBatch: flags.maxBatch, kvBlocks: flags.kvBlocks, leaseMs: flags.leaseMs, requestTimeoutMs: flags.requestTimeoutMs, port: listen.port, mambaCheckpointEvery: flags.mambaCheckpointEvery, servedModelNames: flags.servedModelNames, steps: flags.steps})
  const kvEventsEndpoint = flags.prefixCaching === false || flags.kvEventsEndpoint === 'none' ? undefined : checkKvEventsEndpoint(flags.kvEventsEndpoint ?? `tcp://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:*`)
  const model = resolveServeModel(flags.model)
  const engineId = flags.name ?? `${flags.role}-${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-${listen.port === 0 ? process.pid : listen.port}`
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(engineId)) throw new UsageError('HPD_SERVE_BAD_FLAG', '--name must be 1..128 characters from A-Z a-z 0-9 . _ : -', {details: {flag: 'name'}})
  const startedAt = Date.now()
  const worker = await runWorker(
    {
      name: engineId,
      role: flags.role,
      model: model.dir,
      modelName: model.name,
      tp: flags.tp,
      maxModelLen: model.maxModelLen,
      transport: flags.transport,
      host: listen.host,
      port: listen.port,
      advertise: advertise ? `${advertise.host.includes(':') ? `[${advertise.host}]` : advertise.host}:${advertise.port}` : undefined,
      leaseMs: flags.leaseMs,
      maxLeaseMs: Math.min(flags.requestTimeoutMs + flags.leaseMs, SERVE_LIMITS.timeoutMs),
      maxBatch: flags.maxBatch,
      kvBlocks: flags.kvBlocks,
      handshakeTimeoutMs: 5000,
      transferTimeoutMs: Number(process.env.HPD_SERVE_TRANSFER_TIMEOUT_MS ?? 2000),
      // Test hook for fault tests (src/serve/README.md): pause before the KV read.
      pauseBeforeReadMs: Number(process.env.HPD_SERVE_PAUSE_BEFORE_READ_MS ?? 0) || undefined,
      publicAccess: flags.openApi ? 'open' : 'signed',
      kvLoadFailurePolicy: flags.kvLoadFailurePolicy,
      ...(flags.verifyTransfers ? {verifyTransfers: true} : {}),
      prefixCaching: flags.prefixCaching !== false,
      ...(flags.mambaCheckpointEvery === undefined ? {} : {mambaCheckpointEvery: flags.mambaCheckpointEvery}),
      ...(kvEventsEndpoint ? {kvEventsEndpoint, kvEventsPlain: flags.kvEventsPlain === true} : {}),
      ...(flags.servedModelNames && flags.servedModelNames.length > 0 ? {servedModelNames: flags.servedModelNames} : {}),
      ...(flags.steps ? {steps: flags.steps} : {}),
      etcd,
    },
    clusterToken,
    log,
    apiKey,
  )
  onReady({controlUrl: worker.controlUrl, engineId: worker.engineId})
  const stoppedBy = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  log('stopping', {why: stoppedBy})
  // Bounded: deregistering and closing take at most a few seconds; past that the process goes anyway.
  setTimeout(() => process.exit(0), 5000).unref()
  await worker.close()
  return {engineId: worker.engineId, role: flags.role, controlUrl: worker.controlUrl, cluster: etcd?.cluster, stoppedBy, uptimeS: (Date.now() - startedAt) / 1000}
}

/** `tcp://HOST:PORT` (PORT a number or *), checked before anything binds. */
function checkKvEventsEndpoint(value: string): string {
  if (!/^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._*-]+):(\*|\d{1,5})$/.test(value) || Number(value.split(':').at(-1)) > 65_535) {
    throw new UsageError('HPD_SERVE_BAD_FLAG', `--kv-events-endpoint must be tcp://HOST:PORT (PORT * for any free one) or none, got ${JSON.stringify(value.slice(0, 100))}`, {
      hint: 'Pass e.g. --kv-events-endpoint tcp://10.0.0.5:5557 (vLLM\'s default port), tcp://*:5557 for every interface, or none.',
      details: {flag: 'kv-events-endpoint'},
    })
  }
  return value
}
