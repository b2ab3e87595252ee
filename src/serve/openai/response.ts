/**
 * OpenAI response bodies and SSE chunks, shaped exactly as api.openai.com streams them
 * (`data: {...}\n\n` lines ending with `data: [DONE]\n\n`), so the official clients parse them.
 */
import type {FinishReason} from '../protocol.js'

export interface Usage {
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly total_tokens: number
}

export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return {prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens}
}

export interface ResponseIdentity {
  readonly id: string
  readonly created: number
  readonly model: string
}

type ApiFinish = 'stop' | 'length' | null

function apiFinish(reason: FinishReason | null): ApiFinish {
  return reason === null ? null : reason === 'length' ? 'length' : 'stop'
}

export function completionBody(
  who: ResponseIdentity,
  text: string,
  finish: FinishReason,
  usage: Usage,
  tokenIds?: {prompt: readonly number[]; output: readonly number[]},
): unknown {
  return {
    id: who.id,
    object: 'text_completion',
    created: who.created,
    model: who.model,
    choices: [
      {index: 0, text, logprobs: null, finish_reason: apiFinish(finish), ...(tokenIds ? {token_ids: tokenIds.output, prompt_token_ids: tokenIds.prompt} : {})},
    ],
    usage,
  }
}

export function chatBody(
  who: ResponseIdentity,
  text: string,
  finish: FinishReason,
  usage: Usage,
  tokenIds?: {prompt: readonly number[]; output: readonly number[]},
): unknown {
  return {
    id: who.id,
    object: 'chat.completion',
    created: who.created,
    model: who.model,
    choices: [
      {
        index: 0,
        message: {role: 'assistant', content: text},
        logprobs: null,
        finish_reason: apiFinish(finish),
        ...(tokenIds ? {token_ids: tokenIds.output} : {}),
      },
    ],
    ...(tokenIds ? {prompt_token_ids: tokenIds.prompt} : {}),
    usage,
  }
}

/** One SSE event for a completion delta (text may be empty on the closing chunk). */
export function completionChunk(who: ResponseIdentity, text: string, finish: FinishReason | null, tokenIds?: readonly number[]): string {
  return sse({
    id: who.id,
    object: 'text_completion',
    created: who.created,
    model: who.model,
    choices: [{index: 0, text, logprobs: null, finish_reason: apiFinish(finish), ...(tokenIds ? {token_ids: tokenIds} : {})}],
  })
}

export function chatChunk(
  who: ResponseIdentity,
  delta: {role?: 'assistant'; content?: string},
  finish: FinishReason | null,
  tokenIds?: readonly number[],
): string {
  return sse({
    id: who.id,
    object: 'chat.completion.chunk',
    created: who.created,
    model: who.model,
    choices: [{index: 0, delta, logprobs: null, finish_reason: apiFinish(finish), ...(tokenIds ? {token_ids: tokenIds} : {})}],
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
