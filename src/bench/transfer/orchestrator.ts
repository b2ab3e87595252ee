import {BugError, HpdError, NativeError} from '../../errors.js'
import {percentiles} from '../../percentiles.js'
import {planBench, warmupRequests} from './cases.js'
import {localWorker, type WorkerEndpoint, workerError} from './endpoint.js'
import {bytesByView} from './geometry.js'
import type {FromWorker, ReadReport, ToWorker} from './protocol.js'
import {prefillSide, remotePrefill} from './remote.js'
import type {BenchEvent, BenchTransferOptions, BenchTransferResult, TransferCaseResult} from './types.js'

/** One worker and its request/answer channel. Errors it sends (or its going away) fail the whole run. */
class WorkerChannel {
  private waiter: {resolve: (m: FromWorker) => void; reject: (e: Error) => void; timer: NodeJS.Timeout} | undefined

  constructor(
    readonly endpoint: WorkerEndpoint,
    private readonly onFailure: (error: HpdError) => void,
  ) {
    endpoint.onMessage((m) => {
      if (m.type === 'error') {
        this.fail(workerError(m, endpoint.role))
        return
      }
      const w = this.waiter
      this.waiter = undefined
      if (w) {
        clearTimeout(w.timer)
        w.resolve(m)
      }
    })
    endpoint.onGone((error) => this.fail(error))
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
    const role = this.endpoint.role
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        reject(new NativeError('HPD_BENCH_WORKER_TIMEOUT', `the ${role} worker did not answer '${message.type}' within ${timeoutMs} ms`, {hint: 'Raise --timeout-ms, or check the worker is not stuck.', details: {side: role}}))
      }, timeoutMs)
      this.waiter = {
        resolve: (m) => (m.type === expect ? resolve(m as Extract<FromWorker, {type: T}>) : reject(new NativeError('HPD_BENCH_PROTOCOL', `the ${role} worker answered '${m.type}' to '${message.type}'`))),
        reject,
        timer,
      }
      this.endpoint.send(message)
    })
  }
}

/**
 * `hpd bench transfer`: a prefill side and a decode side (child processes of this one, or across
 * hosts this process's decode worker and a prefill side found through etcd), each with the
 * layout's shared tensors; runs the layout's read plan through the KV link for every case and
 * request, and emits events (setup, case-start, progress, case-done, summary). The first failure
 * (a worker's typed error, a dead peer, a timeout) ends the run by throwing it.
 */
export async function* runTransferBench(options: BenchTransferOptions): AsyncGenerator<BenchEvent, BenchTransferResult> {
  const bench = planBench(options) // fails fast (usage/model errors) before any process starts
  // Across hosts, the prefill host only serves: the decode host drives the run and sends the result.
  if (options.cluster?.role === 'prefill') return yield* prefillSide(options)
  let failure: HpdError | undefined
  let abort!: (e: HpdError) => void
  const aborted = new Promise<never>((_, reject) => (abort = reject))
  aborted.catch(() => {})
  let closing = false
  const onFailure = (e: HpdError): void => {
    if (failure || closing) return
    failure = e
    abort(e)
  }
  const step = <T>(p: Promise<T>): Promise<T> => Promise.race([p, aborted])
  const endpoints: WorkerEndpoint[] = []
  let killedAt: number | undefined
  let runError: HpdError | undefined
  let runResult: BenchTransferResult | undefined
  try {
    const decodeEndpoint = localWorker('decode', options)
    endpoints.push(decodeEndpoint)
    const decode = new WorkerChannel(decodeEndpoint, onFailure)
    const prefillEndpoint = options.cluster ? await step(remotePrefill(options, options.cluster)) : localWorker('prefill', options)
    endpoints.push(prefillEndpoint)
    const prefill = new WorkerChannel(prefillEndpoint, onFailure)
    const [pReady, dReady] = await step(Promise.all([prefillEndpoint.ready, decodeEndpoint.ready]))
    const [, dConnected] = await step(Promise.all([prefill.request({type: 'connect', peer: dReady.link}, 'connected', options.timeoutMs), decode.request({type: 'connect', peer: pReady.link}, 'connected', options.timeoutMs)]))
    const registrationMs = Math.max(pReady.registrationMs, dReady.registrationMs)
    yield {type: 'setup', registrationMs, firstHandshakeMs: dConnected.handshakeMs, processes: 2}

    const cases: TransferCaseResult[] = []
    let pairListPrepares: number | undefined
    for (let index = 0; index < bench.requests.length; index++) {
      const req = bench.requests[index]
      const promptTokens = bench.promptTokens[index]
      yield {type: 'case-start', index, promptTokens, requests: options.requests}
      // A worker step bundles several bounded operations (fill or read + verify + notify + copy)
      // whose CPU work grows with the request: allow for it beyond the transfer deadline itself.
      const {faBytes, ssmBytes} = bytesByView(req)
      const stepTimeoutMs = 3 * options.timeoutMs + Math.ceil((faBytes + ssmBytes) / 20_000)
      const reports: ReadReport[] = []
      let warmupMs = 0
      let verifiedBytes = 0
      const warmups = warmupRequests(options)
      for (let request = 0; request < warmups + options.requests; request++) {
        const filled = await step(prefill.request({type: 'fill', caseIndex: index, request, digests: options.verify === 'digest'}, 'filled', stepTimeoutMs))
        if (options.fault === 'kill-peer' && index === 0 && request === 0) {
          prefillEndpoint.kill!()
          killedAt = performance.now()
        }
        const done = await step(
          decode.request(
            {type: 'read', caseIndex: index, request, grants: filled.grants, ...(filled.blockIds ? {prefillBlockIds: filled.blockIds} : {}), ...(filled.digests ? {digests: filled.digests} : {})},
            'read-done',
            stepTimeoutMs,
          ),
        )
        verifiedBytes += done.report.verifiedBytes
        if (done.pairListPrepares !== undefined) pairListPrepares = done.pairListPrepares
        if (request < warmups) {
          if (request === 0) warmupMs = done.report.latencyMs
          continue
        }
        reports.push(done.report)
        yield {type: 'progress', index, done: request - warmups + 1, requests: options.requests, latencyMs: done.report.latencyMs}
      }
      const result = caseResult(promptTokens, req, reports, warmupMs, options.path === 'case' ? dConnected.prepareMs : undefined, options, verifiedBytes)
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
      ...(bench.plan.model.stateMixer ? {mambaCacheDtype: bench.plan.decode.dtypes.conv, mambaSsmDtype: bench.plan.decode.dtypes.ssm} : {}),
      attention: bench.plan.mapping.attention,
      transport: options.transport,
      tcpSegmentBytes: options.tcpSegmentBytes ?? 256 * 1024,
      readProtocol: dConnected.readProtocol ?? 'get',
      verify: options.verify,
      registrationMs,
      firstHandshakeMs: dConnected.handshakeMs,
      path: options.path,
      ...(options.path === 'serve' ? {lists: options.lists, poolBlocks: bench.decodeBlocks} : {}),
      ...(pairListPrepares === undefined ? {} : {pairListPrepares}),
      ...(options.cluster ? {hosts: {prefill: pReady.host, decode: dReady.host}} : {}),
      cases,
    }
    runResult = result
    yield {type: 'summary', result}
    return result
  } catch (error) {
    runError = error instanceof HpdError ? error : new BugError('HPD_BUG', String((error as Error)?.message ?? error))
    if (killedAt !== undefined && error instanceof HpdError) {
      const detectionMs = Math.round(performance.now() - killedAt)
      throw Object.assign(error, {message: `${error.message} (noticed ${detectionMs} ms after the prefill process was killed)`, details: {...error.details, detectionMs, injectedFault: 'kill-peer'}})
    }
    throw error
  } finally {
    closing = true
    await Promise.race([Promise.all(endpoints.map((e) => e.close(runError, runResult).catch(() => undefined))), new Promise((r) => setTimeout(r, 5000).unref())])
  }
}

function caseResult(promptTokens: number, req: ReturnType<typeof planBench>['requests'][number], reports: readonly ReadReport[], warmupMs: number, casePrepareMs: number | undefined, options: BenchTransferOptions, verifiedBytes: number): TransferCaseResult {
  const bytes = reports.reduce((s, r) => s + r.bytes, 0)
  // Bandwidths and ratios use progress-thread times for reads and copies alike; percentiles are
  // the wall latency a caller of read() sees.
  const readMs = reports.reduce((s, r) => s + r.transferMs, 0)
  const copyMs = reports.reduce((s, r) => s + r.copyMs, 0)
  const latencies = reports.map((r) => r.latencyMs)
  const p50 = (xs: readonly number[]): number => percentiles(xs, [50])[0] ?? 0
  const gbPerSecond = readMs > 0 ? bytes / readMs / 1e6 : 0
  const memcpyGbPerSecond = copyMs > 0 ? bytes / copyMs / 1e6 : 0
  const {faBytes, ssmBytes} = bytesByView(req)
  const best = Math.max(0, ...reports.map((r) => (r.transferMs > 0 ? r.bytes / r.transferMs / 1e6 : 0)))
  const bestMemcpy = Math.max(0, ...reports.map((r) => (r.copyMs > 0 ? r.bytes / r.copyMs / 1e6 : 0)))
  const verifyMs = reports.flatMap((r) => (r.verifyMs === undefined ? [] : [r.verifyMs]))
  const [p50Ms, p99Ms] = percentiles(latencies, [50, 99]).map((v) => v ?? 0)
  return {
    promptTokens,
    requests: reports.length,
    bytesPerRequest: faBytes + ssmBytes,
    faBytesPerRequest: faBytes,
    ssmBytesPerRequest: ssmBytes,
    readsPerRequest: req.reads,
    runsPerRequest: reports.length > 0 ? reports[0].runs : 0,
    plannedRunsPerRequest: reports.length > 0 ? reports[0].plannedRuns : req.coalescedRuns,
    rankPairs: req.pairs.length,
    gbPerSecond,
    p50Ms,
    p99Ms,
    memcpyGbPerSecond,
    // Paired: each request's read against the memcpy of the same bytes right after it, so drift
    // in machine load (shared CI hosts) cancels; the median resists single outliers.
    ratioToMemcpy: p50(reports.map((r) => (r.transferMs > 0 ? r.copyMs / r.transferMs : 0))),
    bestGbPerSecond: best,
    bestMemcpyGbPerSecond: bestMemcpy,
    ratioBestToMemcpy: bestMemcpy > 0 ? best / bestMemcpy : 0,
    warmupMs,
    prepareMs: casePrepareMs ?? p50(reports.map((r) => r.prepareMs)),
    verify: options.verify,
    verifiedBytes,
    ...(verifyMs.length > 0 ? {verifyMsP50: p50(verifyMs)} : {}),
  }
}

