/**
 * One admitted request as a stream of text events: token ids from the backend, detokenized
 * incrementally, with stop sequences applied. The responders (SSE or one JSON body) and the
 * metrics both consume this stream; neither knows about workers or tokenizers.
 */
import {ServeError, type GenerationBackend, type ServeTokenizer} from './backend.js'
import type {AdmittedRequest} from './openai/admit.js'
import type {FinishReason} from './protocol.js'
import {StopMatcher} from './stop-matcher.js'

export type TextEvent =
  /** Handshake + KV transfer of a disaggregated request finished (before its first token). */
  | {readonly type: 'transfer'; readonly ms: number; readonly bytes: number}
  /** New text (may be empty while a stop sequence is held back) and the token that produced it. */
  | {readonly type: 'text'; readonly text: string; readonly tokenId: number | undefined}
  | {readonly type: 'end'; readonly finish: FinishReason; readonly outputTokenIds: readonly number[]}

/**
 * Runs the request on the backend. Throws ServeError for a failure (before or during the stream);
 * a stop sequence ends the stream with finish 'stop' and cancels the rest on the workers.
 */
export async function* generateText(
  backend: GenerationBackend,
  tokenizer: ServeTokenizer,
  requestId: string,
  request: AdmittedRequest,
  signal: AbortSignal,
): AsyncGenerator<TextEvent> {
  const decoder = tokenizer.createDecoder()
  const stopper = new StopMatcher(request.parsed.stop)
  const outputTokenIds: number[] = []
  // A stop sequence ends the request early: the workers are told through this signal.
  const local = new AbortController()
  const onAbort = () => local.abort(signal.reason)
  if (signal.aborted) onAbort()
  else signal.addEventListener('abort', onAbort, {once: true})
  try {
    for await (const ev of backend.generate({requestId, promptTokenIds: request.promptTokenIds, sampling: request.sampling}, local.signal)) {
      if (ev.type === 'transfer-done') yield {type: 'transfer', ms: ev.handshakeMs + ev.transferMs, bytes: ev.bytes}
      else if (ev.type === 'error') throw new ServeError(ev.status, ev.code, ev.message)
      else if (ev.type === 'token') {
        outputTokenIds.push(ev.tokenId)
        const {emit, stopped} = stopper.push(decoder.push(ev.tokenId))
        yield {type: 'text', text: emit, tokenId: ev.tokenId}
        if (stopped) {
          local.abort(new ServeError(499, 'stopped', 'stop sequence reached'))
          yield {type: 'end', finish: 'stop', outputTokenIds}
          return
        }
      } else if (ev.type === 'done') {
        const tail = stopper.push(decoder.flush())
        const rest = tail.stopped ? tail.emit : tail.emit + stopper.flush()
        if (rest !== '') yield {type: 'text', text: rest, tokenId: undefined}
        yield {type: 'end', finish: tail.stopped ? 'stop' : ev.finishReason, outputTokenIds}
        return
      }
      if (signal.aborted) throw signal.reason
    }
    if (signal.aborted) throw signal.reason
    throw new ServeError(502, 'worker_stream_ended', `the stream of ${requestId} ended without finishing`)
  } finally {
    signal.removeEventListener('abort', onAbort)
    if (!local.signal.aborted) local.abort(new ServeError(499, 'finished', 'request finished'))
  }
}
