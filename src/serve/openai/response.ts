/**
 * OpenAI response bodies and SSE chunks, shaped exactly as api.openai.com streams them
 * (`data: {...}\n\n` lines ending with `data: [DONE]\n\n`), so the official clients parse them.
 * Log-probabilities: completions use the legacy {tokens, token_logprobs, top_logprobs,
 * text_offset} object, chat the {content: [{token, logprob, bytes, top_logprobs}]} list.
 */
import type {FinishReason} from '../protocol.js'

export interface Usage {
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly total_tokens: number
  /**
   * Prompt tokens served from a prefix cache instead of computed (OpenAI's and vLLM's
   * prompt_tokens_details): the prefill worker's hit when disaggregated, the worker's own otherwise.
   */
  readonly prompt_tokens_details: {readonly cached_tokens: number}
}

export function usageOf(promptTokens: number, completionTokens: number, cachedTokens = 0): Usage {
  return {prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens, prompt_tokens_details: {cached_tokens: cachedTokens}}
}

export interface ResponseIdentity {
  readonly id: string
  readonly created: number
  readonly model: string
}

type ApiFinish = 'stop' | 'length' | null

export function apiFinish(reason: FinishReason | null): ApiFinish {
  return reason === null ? null : reason === 'length' ? 'length' : 'stop'
}

/** One output token's log-probabilities, with the texts the API shows. */
export interface LogprobEntry {
  readonly token: string
  readonly logprob: number
  readonly top: readonly {readonly token: string; readonly logprob: number}[]
}

export interface CompletionLogprobs {
  readonly tokens: string[]
  readonly token_logprobs: number[]
  readonly top_logprobs: Record<string, number>[]
  readonly text_offset: number[]
}

/** The legacy completions logprobs of `entries`, the first token starting at text offset `offset0`. */
export function completionLogprobs(entries: readonly LogprobEntry[], offset0: number): CompletionLogprobs {
  const out: CompletionLogprobs = {tokens: [], token_logprobs: [], top_logprobs: [], text_offset: []}
  let offset = offset0
  for (const e of entries) {
    out.tokens.push(e.token)
    out.token_logprobs.push(e.logprob)
    // vLLM: the top entries plus the sampled token itself.
    const top: Record<string, number> = {}
    for (const t of e.top) if (!(t.token in top)) top[t.token] = t.logprob
    if (!(e.token in top)) top[e.token] = e.logprob
    out.top_logprobs.push(top)
    out.text_offset.push(offset)
    offset += e.token.length
  }
  return out
}

export interface ChatLogprobs {
  readonly content: {token: string; logprob: number; bytes: number[]; top_logprobs: {token: string; logprob: number; bytes: number[]}[]}[]
}

export function chatLogprobs(entries: readonly LogprobEntry[]): ChatLogprobs {
  const bytes = (s: string) => [...Buffer.from(s, 'utf8')]
  return {
    content: entries.map((e) => ({token: e.token, logprob: e.logprob, bytes: bytes(e.token), top_logprobs: e.top.map((t) => ({token: t.token, logprob: t.logprob, bytes: bytes(t.token)}))})),
  }
}

export interface ChoiceBody {
  readonly index: number
  readonly text: string
  readonly finish: FinishReason
  readonly logprobs: readonly LogprobEntry[] | undefined
  /** Where the generated text starts (echo puts the prompt first): the logprobs' text offsets start here. */
  readonly textOffset: number
  readonly tokenIds?: {readonly prompt: readonly number[]; readonly output: readonly number[]}
}

export function completionBody(who: ResponseIdentity, choices: readonly ChoiceBody[], usage: Usage): unknown {
  return {
    id: who.id,
    object: 'text_completion',
    created: who.created,
    model: who.model,
    choices: choices.map((c) => ({
      index: c.index,
      text: c.text,
      logprobs: c.logprobs ? completionLogprobs(c.logprobs, c.textOffset) : null,
      finish_reason: apiFinish(c.finish),
      ...(c.tokenIds ? {token_ids: c.tokenIds.output, prompt_token_ids: c.tokenIds.prompt} : {}),
    })),
    usage,
  }
}

export function chatBody(who: ResponseIdentity, choices: readonly ChoiceBody[], usage: Usage, promptTokenIds?: readonly number[]): unknown {
  return {
    id: who.id,
    object: 'chat.completion',
    created: who.created,
    model: who.model,
    choices: choices.map((c) => ({
      index: c.index,
      message: {role: 'assistant', content: c.text},
      logprobs: c.logprobs ? chatLogprobs(c.logprobs) : null,
      finish_reason: apiFinish(c.finish),
      ...(c.tokenIds ? {token_ids: c.tokenIds.output} : {}),
    })),
    ...(promptTokenIds ? {prompt_token_ids: promptTokenIds} : {}),
    usage,
  }
}

/** One SSE event for a completion delta (text may be empty on the closing chunk). */
export function completionChunk(
  who: ResponseIdentity,
  index: number,
  text: string,
  finish: FinishReason | null,
  extra: {logprobs?: CompletionLogprobs; tokenIds?: readonly number[]} = {},
): string {
  return sse({
    id: who.id,
    object: 'text_completion',
    created: who.created,
    model: who.model,
    choices: [{index, text, logprobs: extra.logprobs ?? null, finish_reason: apiFinish(finish), ...(extra.tokenIds ? {token_ids: extra.tokenIds} : {})}],
  })
}

export function chatChunk(
  who: ResponseIdentity,
  index: number,
  delta: {role?: 'assistant'; content?: string},
  finish: FinishReason | null,
  extra: {logprobs?: ChatLogprobs; tokenIds?: readonly number[]} = {},
): string {
  return sse({
    id: who.id,
    object: 'chat.completion.chunk',
    created: who.created,
    model: who.model,
    choices: [{index, delta, logprobs: extra.logprobs ?? null, finish_reason: apiFinish(finish), ...(extra.tokenIds ? {token_ids: extra.tokenIds} : {})}],
  })
}

/** The usage-only chunk sent before [DONE] when stream_options.include_usage is set. */
export function usageChunk(who: ResponseIdentity, object: 'text_completion' | 'chat.completion.chunk', usage: Usage): string {
  return sse({id: who.id, object, created: who.created, model: who.model, choices: [], usage})
}

export function errorBody(message: string, type: string, param: string | null, code: string | null): unknown {
  return {error: {message, type, param, code}}
}

/** An error in the middle of a stream: OpenAI clients surface `data: {"error": ...}` as an APIError. */
export function streamError(message: string, type: string, code: string): string {
  return sse({error: {message, type, param: null, code}})
}

export const SSE_DONE = 'data: [DONE]\n\n'

function sse(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`
}
