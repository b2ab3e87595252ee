/**
 * `hpd bench serve`'s load generator: K completion requests at concurrency C against an
 * OpenAI-compatible server, streamed, each with N prompt tokens (token ids) and M output tokens
 * (ignore_eos). It measures what `vllm bench serve` reports (TTFT, TPOT, ITL, E2E latency,
 * throughputs, failures) and emits a typed event stream the Ink view and the plain-line printer
 * fold. Tokens are counted from what the server says: the usage chunk (requested with
 * stream_options.include_usage) for input and output, else the streamed token ids, else (output
 * only) the streamed text through the model's tokenizer (`countTokens`, as `vllm bench serve`
 * counts); without usage, input tokens are the token ids sent. Each run reports which counts it
 * used. A request whose output cannot be counted is a failure, never zero tokens.
 */
import {EnvironmentError} from '../errors.js'
import {percentiles} from '../serve/metrics.js'
import {uniformStream} from '../engine/random.js'

export interface ServeLoadOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:8000 */
  readonly url: string
  readonly model?: string
  readonly concurrency: number
  readonly requests: number
  readonly promptTokens: number
  readonly outputTokens: number
  /** Token ids are drawn from [0, vocabLimit) (bytes for the tiny models). */
  readonly vocabLimit?: number
  readonly seed?: number
  /** Bound on each request, first byte to last. */
  readonly requestTimeoutMs?: number
  /** A label for this run in side-by-side reports ("disaggregated", "colocated"). */
  readonly label?: string
  /**
   * `vllm bench serve`'s prefix-repetition dataset: every prompt starts with one of `numPrefixes`
   * shared prefixes of this many tokens (request i: prefix i mod P), then its own random tokens.
   * One warm-up request per prefix runs first, unmeasured (the cold prefill of each prefix).
   */
  readonly sharedPrefixTokens?: number
  readonly numPrefixes?: number
  /** Tokens of generated text (the model's tokenizer, no special tokens): counts output a server reports neither in usage nor as token ids. */
  readonly countTokens?: (text: string) => number
  /** Sent as `Authorization: Bearer` (a server started with --api-key-file). */
  readonly apiKey?: string
}

/** Where a run's token counts came from (each request counted one way; a run lists every way used). */
export type OutputCount = 'usage' | 'token-ids' | 'tokenizer'
export type InputCount = 'usage' | 'sent-token-ids'

export interface LatencyStats {
  readonly meanMs: number
  readonly medianMs: number
  readonly p90Ms: number
  readonly p99Ms: number
}

export interface ServeLoadReport {
  readonly label: string
  readonly url: string
  readonly concurrency: number
  readonly completed: number
  readonly failed: number
  /** First few distinct failure messages. */
  readonly failureMessages: readonly string[]
  readonly durationS: number
  readonly totalInputTokens: number
  readonly totalOutputTokens: number
  /** How the completed requests' output and input tokens were counted. */
  readonly outputTokensCountedBy: readonly OutputCount[]
  readonly inputTokensCountedBy: readonly InputCount[]
  readonly requestThroughputPerS: number
  readonly outputTokenThroughputPerS: number
  readonly totalTokenThroughputPerS: number
  readonly ttft: LatencyStats
  /** Time per output token after the first: (E2E − TTFT) / (tokens − 1). */
  readonly tpot: LatencyStats
  readonly itl: LatencyStats
  readonly e2e: LatencyStats
  /** From the server's /metrics (hpd servers only): handshake + transfer seconds / TTFT seconds. */
  readonly kvTransferShareOfTtft: number | undefined
  /** From the server's /metrics (hpd servers only): KV cache and state bytes pulled per completed request. */
  readonly kvTransferBytesPerRequest: number | undefined
  /** With --shared-prefix-tokens: the shared prefix length and how many prefixes. */
  readonly sharedPrefix?: {readonly tokens: number; readonly prefixes: number}
}

export type ServeLoadEvent =
  | {readonly type: 'start'; readonly label: string; readonly total: number}
  | {readonly type: 'progress'; readonly label: string; readonly completed: number; readonly failed: number; readonly inFlight: number; readonly total: number}
  | {readonly type: 'summary'; readonly report: ServeLoadReport}

interface OneResult {
  readonly ok: boolean
  readonly error?: string
  readonly ttftMs: number
  readonly e2eMs: number
  readonly itlMs: readonly number[]
  readonly inputTokens: number
  readonly outputTokens: number
  readonly outputFrom?: OutputCount
  readonly inputFrom?: InputCount
}

export async function* runServeLoad(o: ServeLoadOptions): AsyncGenerator<ServeLoadEvent> {
  const label = o.label ?? 'run'
  const model = o.model ?? (await discoverModel(o.url, o.apiKey))
  const rng = uniformStream(o.seed ?? 0)
  const draw = (n: number) => Array.from({length: n}, () => Math.floor(rng() * (o.vocabLimit ?? 256)))
  const shared = Math.min(o.sharedPrefixTokens ?? 0, o.promptTokens - 1)
  const prefixes = Array.from({length: shared > 0 ? Math.max(1, o.numPrefixes ?? 1) : 0}, () => draw(shared))
  const prompts = Array.from({length: o.requests}, (_x, i) => (shared > 0 ? [...prefixes[i % prefixes.length], ...draw(o.promptTokens - shared)] : draw(o.promptTokens)))
  // The cold prefill of each shared prefix, before the clock starts (vllm bench serve's warm-ups).
  for (const prefix of prefixes) await oneRequest(o, model, [...prefix, ...draw(o.promptTokens - shared)])
  const before = await scrapeTransferShare(o.url)
  yield {type: 'start', label, total: o.requests}
  const results: OneResult[] = []
  let next = 0
  let inFlight = 0
  const queue: ServeLoadEvent[] = []
  let wake: (() => void) | undefined
  const push = (ev: ServeLoadEvent) => {
    queue.push(ev)
    wake?.()
  }
  const started = performance.now()
  const workerLoop = async () => {
    while (next < o.requests) {
      const i = next++
      inFlight++
      const r = await oneRequest(o, model, prompts[i])
      inFlight--
      results.push(r)
      push({type: 'progress', label, completed: results.filter((x) => x.ok).length, failed: results.filter((x) => !x.ok).length, inFlight, total: o.requests})
    }
  }
  const all = Promise.all(Array.from({length: Math.min(o.concurrency, o.requests)}, workerLoop)).then(() => {
    wake?.()
  })
  let finished = false
  void all.then(() => (finished = true))
  while (!finished || queue.length > 0) {
    if (queue.length === 0) {
      await new Promise<void>((resolve) => {
        wake = resolve
        if (finished || queue.length > 0) resolve()
      })
      wake = undefined
      continue
    }
    yield queue.shift()!
  }
  await all
  const durationS = (performance.now() - started) / 1000
  const after = await scrapeTransferShare(o.url)
  yield {type: 'summary', report: summarize(o, label, results, durationS, before, after)}
}

async function oneRequest(o: {url: string; outputTokens: number; requestTimeoutMs?: number; countTokens?: (text: string) => number; apiKey?: string}, model: string, prompt: number[], signal?: AbortSignal): Promise<OneResult> {
  const t0 = performance.now()
  const fail = (error: string): OneResult => ({ok: false, error, ttftMs: 0, e2eMs: performance.now() - t0, itlMs: [], inputTokens: 0, outputTokens: 0})
  try {
    const timeout = AbortSignal.timeout(o.requestTimeoutMs ?? 300_000)
    const res = await fetch(`${o.url}/v1/completions`, {
      method: 'POST',
      headers: {'content-type': 'application/json', ...bearer(o.apiKey)},
      body: JSON.stringify({
        model,
        prompt,
        max_tokens: o.outputTokens,
        ignore_eos: true,
        temperature: 0,
        stream: true,
        stream_options: {include_usage: true},
        return_token_ids: true,
      }),
      signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
    })
    if (!res.ok || !res.body) return fail(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`)
    const decoder = new TextDecoder()
    let buffered = ''
    let ttftMs = 0
    let last = 0
    let chunks = 0
    let ids = 0
    let text = ''
    let usage: {prompt_tokens?: number; completion_tokens?: number} | undefined
    const itlMs: number[] = []
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, {stream: true})
      let sep: number
      while ((sep = buffered.indexOf('\n\n')) >= 0) {
        const event = buffered.slice(0, sep)
        buffered = buffered.slice(sep + 2)
        if (!event.startsWith('data: ')) continue
        const data = event.slice(6)
        if (data === '[DONE]') continue
        const json = JSON.parse(data) as {error?: {message: string}; usage?: typeof usage; choices?: {token_ids?: number[]; text?: string}[]}
        if (json.error) return fail(json.error.message)
        if (json.usage) usage = json.usage
        const c = json.choices?.[0]
        const n = c?.token_ids?.length ?? 0
        // A chunk carrying token ids or text is output arriving (servers without token ids send text).
        if (n === 0 && !c?.text) continue
        ids += n
        text += c?.text ?? ''
        const now = performance.now()
        if (chunks === 0) ttftMs = now - t0
        else itlMs.push(now - last)
        last = now
        chunks++
      }
    }
    const counted: {tokens: number; from: OutputCount} | undefined =
      usage?.completion_tokens !== undefined
        ? {tokens: usage.completion_tokens, from: 'usage'}
        : ids > 0
          ? {tokens: ids, from: 'token-ids'}
          : o.countTokens && text !== ''
            ? {tokens: o.countTokens(text), from: 'tokenizer'}
            : undefined
    if (counted === undefined || counted.tokens === 0) {
      const why = counted ? `it reports 0 output tokens (${counted.from})` : `no usage chunk, no token ids${chunks > 0 ? ` in ${chunks} text chunks, and no tokenizer to count their text (pass --tokenizer)` : ', no text'}`
      return fail(`the server's answer lets no output token be counted: ${why}`)
    }
    const input = usage?.prompt_tokens !== undefined ? {tokens: usage.prompt_tokens, from: 'usage' as const} : {tokens: prompt.length, from: 'sent-token-ids' as const}
    return {ok: true, ttftMs, e2eMs: performance.now() - t0, itlMs, inputTokens: input.tokens, outputTokens: counted.tokens, outputFrom: counted.from, inputFrom: input.from}
  } catch (error) {
    return fail((error as Error).message)
  }
}

export interface LongPromptLoopOptions {
  readonly url: string
  readonly model?: string
  /** Prompt length of the long request (tokens). */
  readonly promptTokens: number
  readonly outputTokens: number
  readonly seed?: number
  readonly vocabLimit?: number
  readonly countTokens?: (text: string) => number
  readonly apiKey?: string
}

export interface LongPromptLoopResult {
  readonly completed: number
  readonly failed: number
  readonly failureMessages: readonly string[]
}

/**
 * Keeps one long-prompt request in flight until `signal` aborts (a new one starts as soon as the
 * previous ends): the load whose head-of-line blocking `hpd bench serve --long-prompt-tokens`
 * measures. The request in flight at the abort is cancelled, not counted.
 */
export async function runLongPromptLoop(o: LongPromptLoopOptions, signal: AbortSignal): Promise<LongPromptLoopResult> {
  const model = o.model ?? (await discoverModel(o.url, o.apiKey))
  const rng = uniformStream((o.seed ?? 0) + 7919)
  let completed = 0
  const failures: string[] = []
  while (!signal.aborted) {
    const prompt = Array.from({length: o.promptTokens}, () => Math.floor(rng() * (o.vocabLimit ?? 256)))
    const r = await oneRequest({url: o.url, outputTokens: o.outputTokens, countTokens: o.countTokens, apiKey: o.apiKey}, model, prompt, signal)
    if (signal.aborted) break
    if (r.ok) completed++
    else failures.push(r.error ?? 'unknown')
  }
  return {completed, failed: failures.length, failureMessages: [...new Set(failures)].slice(0, 5)}
}

function summarize(
  o: ServeLoadOptions,
  label: string,
  results: readonly OneResult[],
  durationS: number,
  before: TransferScrape | undefined,
  after: TransferScrape | undefined,
): ServeLoadReport {
  const ok = results.filter((r) => r.ok)
  const outTokens = ok.reduce((a, r) => a + r.outputTokens, 0)
  const inTokens = ok.reduce((a, r) => a + r.inputTokens, 0)
  const tpot = ok.filter((r) => r.outputTokens > 1).map((r) => (r.e2eMs - r.ttftMs) / (r.outputTokens - 1))
  const dTtft = after && before ? after.ttftSumS - before.ttftSumS : 0
  const dKv = after && before ? after.kvSumS - before.kvSumS : 0
  const dBytes = after && before ? after.kvBytes - before.kvBytes : Number.NaN
  return {
    label,
    url: o.url,
    concurrency: o.concurrency,
    completed: ok.length,
    failed: results.length - ok.length,
    failureMessages: [...new Set(results.filter((r) => !r.ok).map((r) => r.error ?? 'unknown'))].slice(0, 5),
    durationS,
    totalInputTokens: inTokens,
    totalOutputTokens: outTokens,
    outputTokensCountedBy: [...new Set(ok.flatMap((r) => (r.outputFrom ? [r.outputFrom] : [])))],
    inputTokensCountedBy: [...new Set(ok.flatMap((r) => (r.inputFrom ? [r.inputFrom] : [])))],
    requestThroughputPerS: ok.length / durationS,
    outputTokenThroughputPerS: outTokens / durationS,
    totalTokenThroughputPerS: (inTokens + outTokens) / durationS,
    ttft: stats(ok.map((r) => r.ttftMs)),
    tpot: stats(tpot),
    itl: stats(ok.flatMap((r) => r.itlMs)),
    e2e: stats(ok.map((r) => r.e2eMs)),
    kvTransferShareOfTtft: dTtft > 0 ? dKv / dTtft : undefined,
    kvTransferBytesPerRequest: Number.isFinite(dBytes) && ok.length > 0 ? dBytes / ok.length : undefined,
    ...(o.sharedPrefixTokens ? {sharedPrefix: {tokens: Math.min(o.sharedPrefixTokens, o.promptTokens - 1), prefixes: Math.max(1, o.numPrefixes ?? 1)}} : {}),
  }
}

function stats(ms: readonly number[]): LatencyStats {
  if (ms.length === 0) return {meanMs: 0, medianMs: 0, p90Ms: 0, p99Ms: 0}
  const [p50, p90, p99] = percentiles(ms, [50, 90, 99]) as number[]
  return {meanMs: ms.reduce((a, b) => a + b, 0) / ms.length, medianMs: p50, p90Ms: p90, p99Ms: p99}
}

interface TransferScrape {
  readonly ttftSumS: number
  readonly kvSumS: number
  readonly kvBytes: number
}

/** Reads the TTFT and handshake+transfer sums from an hpd server's /metrics (undefined elsewhere). */
async function scrapeTransferShare(url: string): Promise<TransferScrape | undefined> {
  try {
    const text = await (await fetch(`${url}/metrics`, {signal: AbortSignal.timeout(2000)})).text()
    const num = (name: string) => Number(new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm').exec(text)?.[1] ?? 'NaN')
    // hpd_disagg_ttft_seconds_total since the metrics moved to prom-client; the older name before.
    const ttft = Number.isFinite(num('hpd_disagg_ttft_seconds_total')) ? num('hpd_disagg_ttft_seconds_total') : num('hpd_disagg_time_to_first_token_seconds_sum')
    const kv = num('hpd_kv_transfer_seconds_sum')
    const bytes = num('hpd_kv_transfer_bytes_total')
    return Number.isFinite(ttft) && Number.isFinite(kv) ? {ttftSumS: ttft, kvSumS: kv, kvBytes: Number.isFinite(bytes) ? bytes : 0} : undefined
  } catch {
    return undefined
  }
}

function bearer(apiKey: string | undefined): Record<string, string> {
  return apiKey ? {authorization: `Bearer ${apiKey}`} : {}
}

/** The served model, from GET /v1/models; a server that is not there or not OpenAI-compatible is a typed error (exit 4), not a defect. */
async function discoverModel(url: string, apiKey?: string): Promise<string> {
  let res: Response
  try {
    res = await fetch(`${url}/v1/models`, {headers: bearer(apiKey), signal: AbortSignal.timeout(5000)})
  } catch (error) {
    const cause = (error as {cause?: {code?: string}}).cause?.code ?? (error as Error).name
    throw new EnvironmentError('HPD_BENCH_SERVER_UNREACHABLE', `${url} did not answer GET /v1/models (${cause})`, {hint: 'Start the server, or check --url (scheme, host and port).', details: {url}})
  }
  const text = await res.text().catch(() => '')
  const quoted = JSON.stringify(text.slice(0, 120))
  if (res.status === 401 || res.status === 403) {
    throw new EnvironmentError('HPD_BENCH_SERVER_REFUSED', `${url}/v1/models answered ${res.status}: the server wants an API key`, {hint: 'Pass --api-key-file F (or HPD_API_KEY) with the key the server was started with.', details: {url, status: res.status}})
  }
  let body: {data?: {id?: unknown}[]} | undefined
  try {
    body = JSON.parse(text) as {data?: {id?: unknown}[]}
  } catch {
    body = undefined
  }
  const id = body?.data?.[0]?.id
  if (!res.ok || typeof id !== 'string') {
    throw new EnvironmentError('HPD_BENCH_SERVER_REFUSED', `${url}/v1/models answered ${res.status} without an OpenAI model list (${quoted})`, {hint: 'Point --url at an OpenAI-compatible server (the base URL, without /v1), or pass --model.', details: {url, status: res.status}})
  }
  return id
}

