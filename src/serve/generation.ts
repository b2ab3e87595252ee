/**
 * One admitted request as a stream of text events: token ids from the backend, detokenized
 * incrementally per choice, with stop sequences applied. The responders (SSE or one JSON body)
 * and the metrics both consume this stream; neither knows about workers or tokenizers.
 *
 * Choices: each prompt is one backend request with n continuations (best_of when larger); choice
 * `p · perPrompt + j` is continuation j of prompt p. Prompts run concurrently, one prefill each.
 */
import {ServeError, type GenerationBackend, type ServeTokenizer} from './backend.js'
import type {AdmittedRequest} from './openai/admit.js'
import type {ParsedRequest} from './openai/request.js'
import type {FinishReason, SamplingParams, WorkerStreamEvent} from './protocol.js'
import {StopMatcher} from './stop-matcher.js'

export interface TokenLogprobs {
  readonly logprob: number
  readonly top: readonly {readonly tokenId: number; readonly logprob: number}[]
}

export type TextEvent =
  /** Handshake + KV transfer of a disaggregated request finished (before its first token). */
  | {readonly type: 'transfer'; readonly ms: number; readonly bytes: number}
  /** New text of a choice (may be empty while a stop sequence is held back) and the token that produced it. */
  | {readonly type: 'text'; readonly choice: number; readonly text: string; readonly tokenId: number | undefined; readonly logprobs?: TokenLogprobs}
  /** A choice ended; `cumulativeLogprob` sums its tokens' logprobs when they were computed. */
  | {readonly type: 'choice-end'; readonly choice: number; readonly finish: FinishReason; readonly outputTokenIds: readonly number[]; readonly cumulativeLogprob: number}
  /** The prefill leg's answer (workers only): the kv_transfer_params the response carries. */
  | {readonly type: 'kv-params'; readonly params: Record<string, unknown> | null}
  /** Prompt `prompt`'s tokens served from a prefix cache (usage.prompt_tokens_details.cached_tokens); the latest per prompt counts. */
  | {readonly type: 'cached'; readonly prompt: number; readonly tokens: number}
  /** Every choice ended. */
  | {readonly type: 'end'}

/** Choices each prompt produces (best_of when larger than n: the responder keeps the best n). */
export function choicesPerPrompt(request: AdmittedRequest): number {
  return request.parsed.bestOf
}

/**
 * Runs the request on the backend. Throws ServeError for a failure (before or during the stream);
 * a stop sequence ends its choice with finish 'stop', and once every choice of a prompt ended
 * the rest of that prompt's work is cancelled on the workers.
 */
export async function* generateText(
  backend: GenerationBackend,
  tokenizer: ServeTokenizer,
  requestId: string,
  request: AdmittedRequest,
  signal: AbortSignal,
): AsyncGenerator<TextEvent> {
  const perPrompt = choicesPerPrompt(request)
  // One failure ends every prompt's work: this controller cancels them all.
  const all = new AbortController()
  const onAbort = () => all.abort(signal.reason)
  if (signal.aborted) onAbort()
  else signal.addEventListener('abort', onAbort, {once: true})
  const streams = request.prompts.map((prompt, p) =>
    promptChoices(backend, tokenizer, request.parsed, {
      requestId: p === 0 ? requestId : `${requestId}-p${p}`,
      promptTokenIds: prompt.tokenIds,
      sampling: request.sampling[p],
      kv: p === 0 ? request.kv : undefined,
      prompt: p,
      firstChoice: p * perPrompt,
      signal: all.signal,
    }),
  )
  try {
    yield* merge(streams)
    yield {type: 'end'}
  } finally {
    signal.removeEventListener('abort', onAbort)
    if (!all.signal.aborted) all.abort(new ServeError(499, 'finished', 'request finished'))
  }
}

interface PromptRun {
  readonly requestId: string
  readonly promptTokenIds: readonly number[]
  readonly sampling: SamplingParams
  readonly kv: AdmittedRequest['kv'] | undefined
  /** The prompt's index in the request. */
  readonly prompt: number
  readonly firstChoice: number
  readonly signal: AbortSignal
}

/** The n choices of one prompt: one backend request. */
async function* promptChoices(backend: GenerationBackend, tokenizer: ServeTokenizer, parsed: ParsedRequest, run: PromptRun): AsyncGenerator<TextEvent> {
  const n = run.sampling.n ?? 1
  const choices = Array.from({length: n}, () => new ChoiceText(tokenizer, parsed))
  let open = n
  // Ends this prompt's worker request early once every choice stopped on a stop string.
  const local = new AbortController()
  const onAbort = () => local.abort(run.signal.reason)
  if (run.signal.aborted) onAbort()
  else run.signal.addEventListener('abort', onAbort, {once: true})
  const end = function* (j: number, finish: FinishReason): Generator<TextEvent> {
    const c = choices[j]
    if (c.ended) return
    const tail = c.finish()
    if (tail.text !== '') yield {type: 'text', choice: run.firstChoice + j, text: tail.text, tokenId: undefined}
    open--
    yield {type: 'choice-end', choice: run.firstChoice + j, finish: tail.stopped ? 'stop' : finish, outputTokenIds: c.outputTokenIds, cumulativeLogprob: c.cumulativeLogprob}
  }
  try {
    const stream = backend.generate({requestId: run.requestId, promptTokenIds: run.promptTokenIds, sampling: run.sampling, ...(run.kv && run.kv.leg !== 'none' ? {kv: run.kv} : {})}, local.signal)
    for await (const ev of stream as AsyncIterable<WorkerStreamEvent>) {
      if (ev.type === 'transfer-done') yield {type: 'transfer', ms: ev.handshakeMs + ev.transferMs, bytes: ev.bytes}
      else if (ev.type === 'kv-params') yield {type: 'kv-params', params: ev.params}
      else if (ev.type === 'prefilled') yield {type: 'cached', prompt: run.prompt, tokens: ev.cachedTokens}
      else if (ev.type === 'error') throw new ServeError(ev.status, ev.code, ev.message, ev.param)
      else if (ev.type === 'token') {
        const j = ev.index ?? 0
        const c = choices[j]
        // A choice that stopped on a stop string ignores what its continuation still produces.
        if (!c || c.ended) continue
        const stopToken = run.sampling.stopTokenIds?.includes(ev.tokenId) ?? false
        const {emit, stopped} = c.push(ev.tokenId, stopToken, ev.logprob)
        const logprobs = ev.logprob === undefined ? undefined : {logprob: ev.logprob, top: ev.top ?? []}
        yield {type: 'text', choice: run.firstChoice + j, text: emit, tokenId: ev.tokenId, ...(logprobs ? {logprobs} : {})}
        if (stopped) {
          c.ended = true
          open--
          yield {type: 'choice-end', choice: run.firstChoice + j, finish: 'stop', outputTokenIds: c.outputTokenIds, cumulativeLogprob: c.cumulativeLogprob}
          if (open === 0) {
            local.abort(new ServeError(499, 'stopped', 'stop sequence reached'))
            return
          }
        }
      } else if (ev.type === 'finish') yield* end(ev.index, ev.finishReason)
      else if (ev.type === 'done') {
        for (let j = 0; j < n; j++) yield* end(j, ev.finishReason)
        return
      }
      if (run.signal.aborted) throw run.signal.reason
    }
    if (run.signal.aborted) throw run.signal.reason
    throw new ServeError(502, 'worker_stream_ended', `the stream of ${run.requestId} ended without finishing`)
  } finally {
    run.signal.removeEventListener('abort', onAbort)
    if (!local.signal.aborted) local.abort(new ServeError(499, 'finished', 'request finished'))
  }
}

/** One choice's text: incremental detokenizer + stop strings (armed once min_tokens were generated). */
class ChoiceText {
  private readonly decoder: ReturnType<ServeTokenizer['createDecoder']>
  private readonly stopper: StopMatcher
  readonly outputTokenIds: number[] = []
  cumulativeLogprob = 0
  ended = false

  constructor(
    tokenizer: ServeTokenizer,
    private readonly p: ParsedRequest,
  ) {
    this.decoder = tokenizer.createDecoder()
    this.stopper = new StopMatcher(p.stop, p.includeStopStrInOutput)
  }

  push(tokenId: number, stopToken: boolean, logprob: number | undefined): {emit: string; stopped: boolean} {
    this.outputTokenIds.push(tokenId)
    if (logprob !== undefined) this.cumulativeLogprob += logprob
    // vLLM: a stop token id ends the output; its text is kept only with include_stop_str_in_output
    // (otherwise the text is that of the tokens before it, made final: never the stop token's bytes).
    const text = stopToken && !this.p.includeStopStrInOutput ? this.decoder.flush() : this.decoder.push(tokenId)
    // vLLM checks stop strings only once min_tokens tokens were generated.
    return this.stopper.push(text, this.outputTokenIds.length >= this.p.minTokens)
  }

  finish(): {text: string; stopped: boolean} {
    this.ended = true
    const tail = this.stopper.push(this.decoder.flush(), this.outputTokenIds.length >= this.p.minTokens)
    return tail.stopped ? {text: tail.emit, stopped: true} : {text: tail.emit + this.stopper.flush(), stopped: false}
  }
}

/**
 * Events of several generators as they come. A failure of one aborts nothing by itself: the
 * caller's finally aborts the shared signal, which ends the others' pending reads. On the way out
 * (a failure, or the consumer stopping) every stream not finished is closed, so its own cleanup
 * (a prefill lease released, a worker stream closed) runs even when it was parked at a yield.
 */
async function* merge<T>(streams: readonly AsyncGenerator<T>[]): AsyncGenerator<T> {
  if (streams.length === 1) {
    yield* streams[0]
    return
  }
  const pending = new Map<number, Promise<{i: number; r: IteratorResult<T>}>>()
  const pull = (i: number) => {
    const p = streams[i].next().then((r) => ({i, r}))
    // A read still pending when the request fails rejects after nobody listens: keep it quiet.
    p.catch(() => undefined)
    pending.set(i, p)
  }
  streams.forEach((_s, i) => pull(i))
  try {
    while (pending.size > 0) {
      const {i, r} = await Promise.race(pending.values())
      if (r.done) {
        pending.delete(i)
        continue
      }
      pull(i)
      yield r.value
    }
  } finally {
    // return() waits for a running step of the stream, then runs its finally blocks.
    for (const i of pending.keys()) streams[i].return(undefined).catch(() => undefined)
  }
}
