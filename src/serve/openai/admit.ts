/**
 * Admission of one OpenAI request: body → fields checked (params.ts) → model → token ids →
 * sampling parameters with every limit applied (context length, vocabulary). Anything refused
 * here is an InvalidRequest naming its field; nothing reaches a worker unchecked.
 */
import type {ServeTokenizer} from '../backend.js'
import type {SamplingParams} from '../protocol.js'
import {InvalidRequest, parseChatBody, parseCompletionBody, type ParsedRequest} from './request.js'

export type RequestKind = 'completion' | 'chat'

export interface AdmissionLimits {
  readonly modelName: string
  readonly maxModelLen: number
  readonly vocabSize: number
  /** Default output length for chat requests without max_tokens (completions default to 16 as OpenAI's). */
  readonly defaultChatMaxTokens: number
}

export interface AdmittedRequest {
  readonly kind: RequestKind
  readonly parsed: ParsedRequest
  readonly promptTokenIds: readonly number[]
  readonly sampling: SamplingParams
}

export function admit(kind: RequestKind, body: unknown, tokenizer: ServeTokenizer, limits: AdmissionLimits): AdmittedRequest {
  const parsed = kind === 'completion' ? parseCompletionBody(body) : parseChatBody(body)
  if (parsed.model !== limits.modelName) {
    throw new InvalidRequest(`The model \`${shorten(parsed.model)}\` does not exist; this server serves \`${limits.modelName}\``, 'model', 'model_not_found', 404)
  }
  const promptTokenIds = tokenize(parsed, tokenizer, limits)
  return {kind, parsed, promptTokenIds, sampling: samplingOf(parsed, promptTokenIds.length, limits)}
}

function tokenize(p: ParsedRequest, tokenizer: ServeTokenizer, limits: AdmissionLimits): number[] {
  let ids: number[]
  if ('tokenIds' in p.prompt) {
    ids = [...p.prompt.tokenIds]
    const bad = ids.find((t) => t >= limits.vocabSize)
    if (bad !== undefined) throw new InvalidRequest(`'prompt' contains token id ${bad}, outside the vocabulary (size ${limits.vocabSize})`, 'prompt', 'invalid_value')
  } else if ('text' in p.prompt) ids = tokenizer.encode(p.prompt.text)
  else ids = tokenizer.encodeChat(p.prompt.messages)
  const param = p.kind === 'chat' ? 'messages' : 'prompt'
  if (ids.length === 0) throw new InvalidRequest(`'${param}' tokenizes to zero tokens`, param, 'invalid_value')
  if (ids.length >= limits.maxModelLen) {
    throw new InvalidRequest(
      `This model's maximum context length is ${limits.maxModelLen} tokens. However, your prompt has ${ids.length} tokens, which leaves no room for output. Shorten the prompt.`,
      param,
      'context_length_exceeded',
    )
  }
  return ids
}

function samplingOf(p: ParsedRequest, promptTokens: number, limits: AdmissionLimits): SamplingParams {
  const room = limits.maxModelLen - promptTokens
  const maxTokens = p.maxTokens ?? Math.min(room, p.kind === 'chat' ? limits.defaultChatMaxTokens : 16)
  if (maxTokens > room) {
    throw new InvalidRequest(
      `This model's maximum context length is ${limits.maxModelLen} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the prompt, ${maxTokens} in the completion). Reduce the prompt or max_tokens.`,
      'max_tokens',
      'context_length_exceeded',
    )
  }
  // A top_k at or past the vocabulary cuts nothing: pass "no cut" rather than a huge count.
  const topK = p.topK >= limits.vocabSize ? 0 : p.topK
  return {temperature: p.temperature, topP: p.topP, topK, seed: p.seed, maxTokens, ignoreEos: p.ignoreEos}
}

function shorten(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s
}
