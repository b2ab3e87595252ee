/**
 * `hpd bench serve`: the load of serve-load.ts against a running server (--url), or against
 * servers it starts itself (--spawn), optionally the same load against a colocated server
 * (--compare-colocated) for a side-by-side report. Spawned servers are always stopped.
 *
 * Head-of-line blocking (--long-prompt-tokens N): on each server a short load runs twice, first on
 * the idle server, then while one N-token request is kept in flight the whole time; the result
 * compares their median TTFT and counts workers that turned unhealthy meanwhile. The two phases
 * send different prompts (the loaded phase's are drawn from another seed): with prefix caching on
 * (the default, what users run) the loaded phase would otherwise find the idle phase's prompts in
 * the cache and look faster than it is. The report shows the prefix-cache hits of each phase
 * (spawned servers), which should be 0.
 *
 * Token counts: the server's usage or token ids; failing both, the streamed text through the
 * model's tokenizer (`tokenizer`: --model's for spawned servers). A run that completed nothing, or
 * counted no generated token, fails the benchmark (VerificationError), never a zero with exit 0.
 */
import {VerificationError} from '../errors.js'
import type {StepSchedulerOptions} from '../engine/step-scheduler.js'
import type {ServeModel} from '../serve/backend.js'
import {checkServeLayout, resolveServeModel} from '../serve/serve-model.js'
import {startServe, type RunningServe} from '../serve/serve.js'
import {runLongPromptLoop, runServeLoad, type LongPromptLoopResult, type ServeLoadEvent, type ServeLoadReport} from './serve-load.js'

export interface ServeBenchOptions {
  readonly url?: string
  readonly spawn: boolean
  readonly compareColocated: boolean
  readonly model: string
  readonly prefillTp: number
  readonly decodeTp: number
  readonly prefillWorkers: number
  readonly decodeWorkers: number
  readonly concurrency: number
  readonly requests: number
  readonly promptTokens: number
  readonly outputTokens: number
  readonly seed: number
  /** Head-of-line mode: the prompt length of the request kept in flight during the second run. */
  readonly longPromptTokens?: number
  /** Chunked prefill of spawned servers (default: the engine's). */
  readonly steps?: StepSchedulerOptions
  /** Prefix-repetition prompts (ServeLoadOptions.sharedPrefixTokens / numPrefixes). */
  readonly sharedPrefixTokens?: number
  readonly numPrefixes?: number
  /** Spawned servers: run each with --no-prefix-caching, then with prefix caching, and compare. */
  readonly comparePrefixCaching?: boolean
  /** KV blocks per worker rank of spawned servers (default: the engine's). */
  readonly kvBlocks?: number
  /**
   * Model (preset or directory) whose tokenizer counts generated text a server reports neither in
   * usage nor as token ids. Default: `model` for spawned servers, none for --url.
   */
  readonly tokenizer?: string
  /** --url: the server's API key (--api-key-file / HPD_API_KEY), sent as `Authorization: Bearer`. */
  readonly apiKey?: string
  readonly onServerLog?: (worker: string, line: string) => void
}

/** One server's head-of-line comparison (--long-prompt-tokens). */
export interface HeadOfLineReport {
  readonly server: string
  readonly longPromptTokens: number
  readonly idleTtftMedianMs: number
  readonly loadedTtftMedianMs: number
  /** loaded / idle median TTFT of the short requests. */
  readonly ttftRatio: number
  readonly longRequests: LongPromptLoopResult
  /** Worker transitions to `unhealthy` during the loaded run (spawned servers; undefined for --url). */
  readonly unhealthyTransitions: number | undefined
  /**
   * Prompt tokens the workers found in their prefix caches during each phase (spawned servers;
   * undefined for --url or without prefix caching): 0 when the phases' prompts are unbiased.
   */
  readonly prefixCacheHitTokens?: {readonly idle: number; readonly loaded: number}
}

/** One server kind's prefix caching on vs off (--compare-prefix-caching). */
export interface PrefixCachingReport {
  readonly server: string
  readonly ttftMedianOffMs: number
  readonly ttftMedianOnMs: number
  /** on / off median TTFT (the issue's bar: ≤ 0.3 for 90 % shared 4096-token prompts). */
  readonly ttftMedianRatio: number
  /** KV bytes pulled per request without and with prefix caching (disaggregated only: the decode-side hit). */
  readonly transferBytesPerRequestOff: number | undefined
  readonly transferBytesPerRequestOn: number | undefined
}

export interface ServeBenchResult {
  readonly runs: readonly ServeLoadReport[]
  /** With --compare-prefix-caching: per server kind, prefix caching off vs on. */
  readonly prefixCaching?: readonly PrefixCachingReport[]
  /** With --long-prompt-tokens: per server, idle vs long-prompt-in-flight. */
  readonly headOfLine?: readonly HeadOfLineReport[]
  /** colocated / disaggregated ratios when both ran (throughput > 1: colocated faster). */
  readonly comparison?: {
    readonly outputThroughputRatio: number
    readonly ttftMeanRatio: number
    readonly tpotMeanRatio: number
  }
}

export async function* runServeBench(o: ServeBenchOptions): AsyncGenerator<ServeLoadEvent, ServeBenchResult> {
  const runs: ServeLoadReport[] = []
  const headOfLine: HeadOfLineReport[] = []
  const prefixCaching: PrefixCachingReport[] = []
  const counter = tokenCounter(o.tokenizer ?? (o.url && !o.spawn && !o.compareColocated ? undefined : o.model))
  const load = (url: string, label: string, seed = o.seed) =>
    runServeLoad({url, label, concurrency: o.concurrency, requests: o.requests, promptTokens: o.promptTokens, outputTokens: o.outputTokens, seed, sharedPrefixTokens: o.sharedPrefixTokens, numPrefixes: o.numPrefixes, countTokens: counter, apiKey: o.apiKey})
  // The load of one server: once, or idle then with a long prompt in flight.
  async function* measure(url: string, label: string, unhealthy: () => number | undefined, cacheHits: () => Promise<number | undefined>): AsyncGenerator<ServeLoadEvent> {
    if (o.longPromptTokens === undefined) {
      for await (const ev of load(url, label)) {
        if (ev.type === 'summary') runs.push(ev.report)
        yield ev
      }
      return
    }
    let idle: ServeLoadReport | undefined
    const hits0 = await cacheHits()
    for await (const ev of load(url, `${label} idle`)) {
      if (ev.type === 'summary') runs.push((idle = ev.report))
      yield ev
    }
    const hits1 = await cacheHits()
    const stop = new AbortController()
    const long = runLongPromptLoop({url, promptTokens: o.longPromptTokens, outputTokens: 4, seed: o.seed, countTokens: counter, apiKey: o.apiKey}, stop.signal)
    // Let the long prompt reach the engine before the short requests start.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const before = unhealthy()
    let loaded: ServeLoadReport | undefined
    try {
      // Other prompts than the idle phase's (another seed): none of them is in the prefix cache.
      for await (const ev of load(url, `${label} +long`, o.seed + LOADED_PHASE_SEED_OFFSET)) {
        if (ev.type === 'summary') runs.push((loaded = ev.report))
        yield ev
      }
    } finally {
      stop.abort()
    }
    const longRequests = await long
    const after = unhealthy()
    const hits2 = await cacheHits()
    headOfLine.push({
      server: label,
      longPromptTokens: o.longPromptTokens,
      idleTtftMedianMs: idle!.ttft.medianMs,
      loadedTtftMedianMs: loaded!.ttft.medianMs,
      ttftRatio: loaded!.ttft.medianMs / idle!.ttft.medianMs,
      longRequests,
      unhealthyTransitions: before === undefined || after === undefined ? undefined : after - before,
      ...(hits0 !== undefined && hits1 !== undefined && hits2 !== undefined ? {prefixCacheHitTokens: {idle: hits1 - hits0, loaded: hits2 - hits1}} : {}),
    })
  }

  if (o.url && !o.spawn && !o.compareColocated) {
    yield* measure(o.url.replace(/\/+$/u, ''), 'server', () => undefined, async () => undefined)
  } else {
    const modes: ('disaggregated' | 'colocated')[] = o.compareColocated ? ['disaggregated', 'colocated'] : ['disaggregated']
    const model = resolveServeModel(o.model)
    checkServeLayout(model, o.prefillTp, o.decodeTp)
    const caching = o.comparePrefixCaching ? [false, true] : [true]
    for (const [mode, prefix] of modes.flatMap((m) => caching.map((c) => [m, c] as const))) {
      let server: RunningServe | undefined
      let unhealthy = 0
      // Short labels: the report table's columns are 16 characters wide.
      const label = o.comparePrefixCaching ? `${mode === 'disaggregated' ? 'disagg' : 'coloc'} ${prefix ? 'cache' : 'no-cache'}` : mode
      try {
        server = await startServe({
          model,
          prefillTp: o.prefillTp,
          decodeTp: o.decodeTp,
          prefillWorkers: o.prefillWorkers,
          decodeWorkers: o.decodeWorkers,
          host: '127.0.0.1',
          port: 0,
          transport: 'auto',
          colocated: mode === 'colocated',
          localWorkers: true,
          leaseMs: 30_000,
          maxBatch: 64,
          requestTimeoutMs: 300_000,
          prefillTimeoutMs: 300_000,
          transferTimeoutMs: 2000,
          steps: o.steps,
          prefixCaching: prefix,
          ...(o.kvBlocks === undefined ? {} : {kvBlocks: o.kvBlocks}),
          onWorkerLog: o.onServerLog,
          onWorkerState: (_w, _role, state) => {
            if (state === 'unhealthy') unhealthy++
          },
        })
        const running = server
        yield* measure(server.url, label, () => unhealthy, () => (prefix ? prefixCacheHits(running) : Promise.resolve(undefined)))
      } finally {
        await server?.close()
      }
      if (o.comparePrefixCaching && prefix) {
        const [off, on] = runs.slice(-2)
        prefixCaching.push({
          server: mode,
          ttftMedianOffMs: off.ttft.medianMs,
          ttftMedianOnMs: on.ttft.medianMs,
          ttftMedianRatio: on.ttft.medianMs / off.ttft.medianMs,
          transferBytesPerRequestOff: off.kvTransferBytesPerRequest,
          transferBytesPerRequestOn: on.kvTransferBytesPerRequest,
        })
      }
    }
  }
  // A run that completed nothing, or counted no output token, measured nothing: never a success.
  const none = runs.find((r) => r.completed === 0)
  if (none) {
    throw new VerificationError('HPD_BENCH_ALL_FAILED', `run ${none.label}: none of its ${none.failed} requests succeeded${none.failureMessages.length > 0 ? `: ${none.failureMessages.join('; ').slice(0, 600)}` : ''}`, {
      hint: 'Check the server (URL, model name, API key) with one request first; a server that returns neither usage nor token ids needs --tokenizer to count its output.',
      details: {run: none.label, failed: none.failed, failureMessages: none.failureMessages},
    })
  }
  const empty = runs.find((r) => r.totalOutputTokens === 0)
  if (empty) throw new VerificationError('HPD_BENCH_NO_OUTPUT', `run ${empty.label} completed ${empty.completed} requests but counted 0 generated tokens`, {hint: 'The server must send a usage chunk (stream_options.include_usage) or token ids, or text that --tokenizer can count.'})
  const pair = o.longPromptTokens === undefined && !o.comparePrefixCaching && runs.length === 2 ? runs : undefined
  return {
    runs,
    ...(prefixCaching.length > 0 ? {prefixCaching} : {}),
    ...(headOfLine.length > 0 ? {headOfLine} : {}),
    ...(pair
      ? {
          comparison: {
            outputThroughputRatio: pair[1].outputTokenThroughputPerS / pair[0].outputTokenThroughputPerS,
            ttftMeanRatio: pair[1].ttft.meanMs / pair[0].ttft.meanMs,
            tpotMeanRatio: pair[1].tpot.meanMs / pair[0].tpot.meanMs,
          },
        }
      : {}),
  }
}

/** The loaded phase of head-of-line mode draws its prompts from this seed offset (a prime far from the others). */
const LOADED_PHASE_SEED_OFFSET = 1_000_003

/** Tokens of generated text with the model's tokenizer (no special tokens), or undefined without a model. */
function tokenCounter(model: string | undefined): ((text: string) => number) | undefined {
  if (model === undefined) return undefined
  const tokenizer: ServeModel['tokenizer'] = resolveServeModel(model).tokenizer
  return (text) => tokenizer.encode(text, {addSpecialTokens: false}).length
}

/** Prompt tokens the spawned server's workers found in their prefix caches so far (vllm:prefix_cache_hits_total, attention), or undefined. */
async function prefixCacheHits(server: RunningServe): Promise<number | undefined> {
  try {
    const counts = await Promise.all(
      server.pool.workers.map(async (w) => {
        if (!w.controlUrl) return 0
        const text = await (await fetch(`${w.controlUrl}/metrics`, {signal: AbortSignal.timeout(2000)})).text()
        return Number(/^vllm:prefix_cache_hits_total\{kind="attention"\} ([0-9.e+]+)$/m.exec(text)?.[1] ?? 0)
      }),
    )
    return counts.reduce((a, b) => a + b, 0)
  } catch {
    return undefined
  }
}
