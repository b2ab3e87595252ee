import {fileURLToPath} from 'node:url'

import {execa} from 'execa'

import {BugError, HpdError, NativeError} from '../../errors.js'
import {planBench} from './cases.js'
import {bytesByView} from './geometry.js'
import {deserializeError, type FromWorker, type ReadReport, type ToWorker, type WorkerRole} from './protocol.js'
import {percentile} from './stats.js'
import type {BenchEvent, BenchTransferOptions, BenchTransferResult, TransferCaseResult} from './types.js'

/** How long a worker may take to start and allocate (node start + UCX init + region allocation). */
const START_TIMEOUT_MS = 60_000

/** Spawns the worker entry: dist/…/worker-main.js, or the .ts source under tsx when running from src (tests). */
function spawnWorker(role: WorkerRole) {
  const fromSource = import.meta.url.endsWith('.ts')
  const entry = fileURLToPath(new URL(fromSource ? './worker-main.ts' : './worker-main.js', import.meta.url))
  return execa(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), entry], {
    ipc: true,
    serialization: 'json',
    stdio: ['ignore', 'inherit', 'inherit'],
    reject: false,
    env: {HPD_BENCH_ROLE: role},
  })
}

/** One worker process and its request/answer channel. Errors it sends fail the whole run. */
class WorkerChannel {
  private waiter: {resolve: (m: FromWorker) => void; reject: (e: Error) => void; timer: NodeJS.Timeout} | undefined
  readonly child: ReturnType<typeof spawnWorker>
  private killedOnPurpose = false

  constructor(
    readonly role: WorkerRole,
    private readonly onFailure: (error: HpdError) => void,
  ) {
    this.child = spawnWorker(role)
    this.child.on('message', (raw: unknown) => {
      const m = raw as FromWorker
      if (m.type === 'error') {
        this.fail(deserializeError(m.error, {side: role}))
        return
      }
      const w = this.waiter
      this.waiter = undefined
      if (w) {
        clearTimeout(w.timer)
        w.resolve(m)
      }
    })
    this.child.on('exit', (code, signal) => {
      if (this.killedOnPurpose) return
      this.fail(new NativeError('HPD_BENCH_WORKER_EXITED', `the ${role} worker process exited (${signal ?? `code ${code}`})`, {hint: 'Its own error, if any, is printed above.', details: {side: role}}))
    })
  }

  private fail(error: HpdError): void {
    const w = this.waiter
    this.waiter = undefined
    if (w) {
      clearTimeout(w.timer)
      w.reject(error)
    }
    this.onFailure(error)
  }

  request<T extends FromWorker['type']>(message: ToWorker, expect: T, timeoutMs: number): Promise<Extract<FromWorker, {type: T}>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        reject(new NativeError('HPD_BENCH_WORKER_TIMEOUT', `the ${this.role} worker did not answer '${message.type}' within ${timeoutMs} ms`, {hint: 'Raise --timeout-ms, or check the worker is not stuck.', details: {side: this.role}}))
      }, timeoutMs)
      this.waiter = {
        resolve: (m) => (m.type === expect ? resolve(m as Extract<FromWorker, {type: T}>) : reject(new NativeError('HPD_BENCH_PROTOCOL', `the ${this.role} worker answered '${m.type}' to '${message.type}'`))),
        reject,
        timer,
      }
      this.child.send(message)
    })
  }

  /** --inject-fault kill-peer: the other side must notice by itself. */
  killForFault(): void {
    this.killedOnPurpose = true
    this.child.kill('SIGKILL')
  }

  close(): void {
    if (this.child.exitCode === null && this.child.connected) this.child.send({type: 'close'} satisfies ToWorker)
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 3000)
    killer.unref()
  }
}

/**
 * `hpd bench transfer`: starts a prefill-side and a decode-side process, each with one agent per
 * TP rank and the layout's shared tensors, runs the layout's read plan for every case and
 * request, and emits events (setup, case-start, progress, case-done, summary). The first failure
 * (a worker's typed error, a dead peer, a timeout) ends the run by throwing it.
 */
export async function* runTransferBench(options: BenchTransferOptions): AsyncGenerator<BenchEvent, BenchTransferResult> {
  const bench = planBench(options) // fails fast (usage/model errors) before any process starts
  let failure: HpdError | undefined
  let abort!: (e: HpdError) => void
  const aborted = new Promise<never>((_, reject) => (abort = reject))
  aborted.catch(() => {})
  const onFailure = (e: HpdError): void => {
    if (failure || closing) return
    failure = e
    abort(e)
  }
  let closing = false
  const prefill = new WorkerChannel('prefill', onFailure)
  const decode = new WorkerChannel('decode', onFailure)
  const step = <T>(p: Promise<T>): Promise<T> => Promise.race([p, aborted])
  let killedAt: number | undefined
  try {
    const [pReady, dReady] = await step(Promise.all([prefill.request({type: 'init', role: 'prefill', options}, 'ready', START_TIMEOUT_MS), decode.request({type: 'init', role: 'decode', options}, 'ready', START_TIMEOUT_MS)]))
    const [, dConnected] = await step(Promise.all([prefill.request({type: 'connect', peers: dReady.agents}, 'connected', options.timeoutMs), decode.request({type: 'connect', peers: pReady.agents}, 'connected', options.timeoutMs)]))
    const registrationMs = Math.max(pReady.registrationMs, dReady.registrationMs)
    yield {type: 'setup', registrationMs, firstHandshakeMs: dConnected.handshakeMs, processes: 2}

    const cases: TransferCaseResult[] = []
    for (let index = 0; index < bench.requests.length; index++) {
      const req = bench.requests[index]
      yield {type: 'case-start', index, promptTokens: req.promptTokens, requests: options.requests}
      // A worker step bundles several bounded operations (fill or read + verify + notify + copy)
      // whose CPU work grows with the request: allow for it beyond the transfer deadline itself.
      const {faBytes, ssmBytes} = bytesByView(req)
      const stepTimeoutMs = 3 * options.timeoutMs + Math.ceil((faBytes + ssmBytes) / 20_000)
      const reports: ReadReport[] = []
      let warmupMs = 0
      let verifiedBytes = 0
      for (let request = 0; request <= options.requests; request++) {
        const filled = await step(prefill.request({type: 'fill', caseIndex: index, request, digests: options.verify === 'digest'}, 'filled', stepTimeoutMs))
        if (options.fault === 'kill-peer' && index === 0 && request === 0) {
          prefill.killForFault()
          killedAt = performance.now()
        }
        const done = await step(decode.request({type: 'read', caseIndex: index, request, grants: filled.grants, ...(filled.digests ? {digests: filled.digests} : {})}, 'read-done', stepTimeoutMs))
        verifiedBytes += done.report.verifiedBytes
        if (request === 0) {
          warmupMs = done.report.latencyMs
          continue
        }
        reports.push(done.report)
        yield {type: 'progress', index, done: request, requests: options.requests, latencyMs: done.report.latencyMs}
      }
      const result = caseResult(req, reports, warmupMs, dConnected.prepareMs, options, verifiedBytes)
      cases.push(result)
      yield {type: 'case-done', index, result}
    }
    if (options.fault) {
      throw new BugError('HPD_BENCH_FAULT_MISSED', `--inject-fault ${options.fault} was injected but the run did not catch it`, {hint: 'This is a defect in the verification; report it.'})
    }
    const result: BenchTransferResult = {
      model: bench.plan.model.name,
      prefillTp: options.prefillTp,
      decodeTp: options.decodeTp,
      kvCacheDtype: bench.plan.decode.dtypes.kv,
      attention: bench.plan.mapping.attention,
      transport: options.transport,
      tcpSegmentBytes: options.tcpSegmentBytes ?? 256 * 1024,
      readProtocol: dConnected.readProtocol ?? 'get',
      verify: options.verify,
      registrationMs,
      firstHandshakeMs: dConnected.handshakeMs,
      cases,
    }
    yield {type: 'summary', result}
    return result
  } catch (error) {
    if (killedAt !== undefined && error instanceof HpdError) {
      const detectionMs = Math.round(performance.now() - killedAt)
      throw Object.assign(error, {message: `${error.message} (noticed ${detectionMs} ms after the prefill process was killed)`, details: {...error.details, detectionMs, injectedFault: 'kill-peer'}})
    }
    throw error
  } finally {
    closing = true
    prefill.close()
    decode.close()
    await Promise.race([Promise.all([prefill.child, decode.child]), new Promise((r) => setTimeout(r, 5000).unref())])
  }
}

function caseResult(req: ReturnType<typeof planBench>['requests'][number], reports: readonly ReadReport[], warmupMs: number, prepareMs: number, options: BenchTransferOptions, verifiedBytes: number): TransferCaseResult {
  const bytes = reports.reduce((s, r) => s + r.bytes, 0)
  // Bandwidths and ratios use progress-thread times for reads and copies alike; percentiles are
  // the wall latency a caller of read() sees.
  const readMs = reports.reduce((s, r) => s + r.transferMs, 0)
  const copyMs = reports.reduce((s, r) => s + r.copyMs, 0)
  const latencies = reports.map((r) => r.latencyMs)
  const gbPerSecond = readMs > 0 ? bytes / readMs / 1e6 : 0
  const memcpyGbPerSecond = copyMs > 0 ? bytes / copyMs / 1e6 : 0
  const {faBytes, ssmBytes} = bytesByView(req)
  const best = Math.max(0, ...reports.map((r) => (r.transferMs > 0 ? r.bytes / r.transferMs / 1e6 : 0)))
  const bestMemcpy = Math.max(0, ...reports.map((r) => (r.copyMs > 0 ? r.bytes / r.copyMs / 1e6 : 0)))
  return {
    promptTokens: req.promptTokens,
    requests: reports.length,
    bytesPerRequest: faBytes + ssmBytes,
    faBytesPerRequest: faBytes,
    ssmBytesPerRequest: ssmBytes,
    readsPerRequest: req.reads,
    runsPerRequest: reports.length > 0 ? reports[0].runs : 0,
    plannedRunsPerRequest: req.coalescedRuns,
    rankPairs: req.pairs.length,
    gbPerSecond,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    memcpyGbPerSecond,
    // Paired: each request's read against the memcpy of the same bytes right after it, so drift
    // in machine load (shared CI hosts) cancels; the median resists single outliers.
    ratioToMemcpy: percentile(reports.map((r) => (r.transferMs > 0 ? r.copyMs / r.transferMs : 0)), 50),
    bestGbPerSecond: best,
    bestMemcpyGbPerSecond: bestMemcpy,
    ratioBestToMemcpy: bestMemcpy > 0 ? best / bestMemcpy : 0,
    warmupMs,
    prepareMs,
    verify: options.verify,
    verifiedBytes,
  }
}
