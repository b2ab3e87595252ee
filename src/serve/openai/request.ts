/**
 * Validation of OpenAI-compatible request bodies into one typed shape. Each field is checked by
 * its rule in params.ts (type, range, honoured / ignored / neutral-only); unknown fields are
 * refused, and so are combinations hpd cannot serve as asked. Every refusal names the offending
 * field (`param`) the way the OpenAI API does.
 */
import type {z} from 'zod'

import {MAX_N, ruleFor, type Endpoint, type FieldRule} from './params.js'

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant'
  readonly content: string
}

/** One prompt as the client sent it: text to tokenize, token ids, or chat messages. */
export type PromptInput = {readonly text: string} | {readonly tokenIds: readonly number[]} | {readonly messages: readonly ChatMessage[]}

export interface ParsedRequest {
  readonly kind: 'completion' | 'chat'
  readonly model: string
  /** One per prompt: completions may batch several (`prompt: [..]`); chat has one. */
  readonly prompts: readonly PromptInput[]
  readonly maxTokens: number | undefined
  /** The field max_tokens limits came from (its errors name it): chat's max_completion_tokens wins. */
  readonly maxTokensParam: 'max_tokens' | 'max_completion_tokens'
  readonly temperature: number
  readonly topP: number
  /** 0 = no cut. */
  readonly topK: number
  readonly minP: number
  readonly seed: number | undefined
  readonly presencePenalty: number
  readonly frequencyPenalty: number
  readonly repetitionPenalty: number
  readonly logitBias: Readonly<Record<string, number>> | undefined
  readonly minTokens: number
  readonly stop: readonly string[]
  readonly stopTokenIds: readonly number[]
  readonly includeStopStrInOutput: boolean
  readonly ignoreEos: boolean
  /** Choices per prompt. */
  readonly n: number
  /** Candidates generated per prompt, of which the n with the highest cumulative logprob are returned (>= n). */
  readonly bestOf: number
  /** Top log-probabilities per output token (0: the sampled token's only); undefined: no logprobs. */
  readonly logprobs: number | undefined
  /** Completions: the prompt text starts each choice's text. */
  readonly echo: boolean
  readonly stream: boolean
  readonly includeUsage: boolean
  /** vLLM extension: echo prompt and output token ids in the response. */
  readonly returnTokenIds: boolean
  /** vLLM's disaggregation contract, as sent (parsed by kv-contract.ts at admission). */
  readonly kvTransferParams: unknown
}

export class InvalidRequest extends Error {
  constructor(
    message: string,
    readonly param: string | null,
    readonly code: string,
    readonly status = 400,
  ) {
    super(message)
  }
}

type Body = Record<string, unknown>

export function parseCompletionBody(body: unknown): ParsedRequest {
  const b = checkFields(body, 'completions')
  const c = common(b, b.max_tokens, 'max_tokens')
  const logprobs = (b.logprobs as number | null | undefined) ?? undefined
  const echo = b.echo === true
  if (echo && logprobs !== undefined) {
    throw new InvalidRequest("'echo' together with 'logprobs' is not supported: hpd does not compute prompt log-probabilities; drop one of them", 'echo', 'unsupported_value')
  }
  const bestOf = (b.best_of as number | null | undefined) ?? c.n
  if (bestOf < c.n) throw new InvalidRequest(`'best_of' (${bestOf}) must be at least 'n' (${c.n})`, 'best_of', 'invalid_value')
  if (bestOf > c.n && c.stream) throw new InvalidRequest("'best_of' greater than 'n' cannot be streamed (the best choices are known only at the end); drop 'stream' or set best_of = n", 'best_of', 'invalid_value')
  const prompts = completionPrompts(b.prompt)
  if (prompts.length * bestOf > MAX_N) {
    throw new InvalidRequest(`the request asks for ${prompts.length} prompts × ${bestOf} choices; at most ${MAX_N} choices per request`, bestOf > 1 ? (b.best_of != null ? 'best_of' : 'n') : 'prompt', 'invalid_value')
  }
  return {...c, kind: 'completion', prompts, bestOf, logprobs, echo}
}

export function parseChatBody(body: unknown): ParsedRequest {
  const b = checkFields(body, 'chat')
  if (b.messages === undefined) throw missing('messages')
  const messages = chatMessages(b.messages as RawMessage[])
  const fromCompletionTokens = b.max_completion_tokens !== undefined && b.max_completion_tokens !== null
  const c = common(b, fromCompletionTokens ? b.max_completion_tokens : b.max_tokens, fromCompletionTokens ? 'max_completion_tokens' : 'max_tokens')
  const top = b.top_logprobs as number | null | undefined
  if (top != null && b.logprobs !== true) throw new InvalidRequest("'top_logprobs' is only allowed when 'logprobs' is true", 'top_logprobs', 'invalid_value')
  return {...c, kind: 'chat', prompts: [{messages}], bestOf: c.n, logprobs: b.logprobs === true ? (top ?? 0) : undefined, echo: false}
}

/** Every own field of the body checked against its rule; unknown fields refused by name. */
function checkFields(body: unknown, endpoint: Endpoint): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequest('the request body must be a JSON object', null, 'invalid_body')
  }
  const b = body as Body
  for (const key of Object.keys(b)) {
    const rule = ruleFor(endpoint, key)
    if (!rule) {
      throw new InvalidRequest(`Unrecognized request argument supplied: ${shortKey(key)}. The README lists the fields POST /v1/${endpoint === 'chat' ? 'chat/completions' : 'completions'} takes.`, shortKey(key), 'unknown_parameter')
    }
    const parsed = rule.schema.safeParse(b[key])
    if (!parsed.success) throw refusal(rule, b[key], parsed.error)
  }
  if (b.model === undefined) throw missing('model')
  return b
}

function refusal(rule: FieldRule, value: unknown, error: z.ZodError): InvalidRequest {
  if (rule.status === 'neutral-only') {
    return new InvalidRequest(`'${rule.name}' is not supported by hpd: it accepts only ${rule.accepts} (${rule.instead}), got ${describe(value)}`, rule.name, 'unsupported_parameter')
  }
  if (rule.name === 'messages') {
    const part = nonTextPart(value)
    if (part) return new InvalidRequest(`'${part.path}' is a${/^[aeiou]/.test(part.type) ? 'n' : ''} '${part.type}' part: ${part.type.startsWith('image') ? 'images are' : `'${part.type}' content is`} not supported by hpd (a text-only model server); send text parts or a string`, part.path, 'unsupported_value')
  }
  const issue = error.issues[0]
  const at = (path: readonly PropertyKey[]) => `${rule.name}${path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}`
  // A key a strict object does not take (stream_options.continuous_usage_stats): named as itself.
  if (issue?.code === 'unrecognized_keys') {
    const key = at([...issue.path, String(issue.keys[0]).slice(0, 64)])
    return new InvalidRequest(`'${key}' is not supported by hpd: '${rule.name}' must be ${rule.accepts}`, key, 'unsupported_parameter')
  }
  const path = issue && issue.path.length > 0 ? at(issue.path) : rule.name
  if (path !== rule.name) {
    return new InvalidRequest(`'${path}' is invalid (${issue.message}); '${rule.name}' must be ${rule.accepts}`, path, issue.code === 'invalid_type' ? 'invalid_type' : 'invalid_value')
  }
  // The wrong JSON type (a number where a boolean goes, a string where a number goes) is invalid_type; a value out of range invalid_value.
  const wrongType = issue?.code === 'invalid_type' || (issue?.code === 'invalid_union' && value !== null && typeof value !== 'number')
  return new InvalidRequest(`'${rule.name}' must be ${rule.accepts}, got ${describe(value)}`, rule.name, wrongType ? 'invalid_type' : 'invalid_value')
}

/** The first chat content part that is not text (an image, audio, a file), with its path. */
function nonTextPart(messages: unknown): {path: string; type: string} | undefined {
  if (!Array.isArray(messages)) return undefined
  for (const [i, m] of messages.entries()) {
    const content = (m as {content?: unknown} | null)?.content
    if (!Array.isArray(content)) continue
    for (const [j, part] of content.entries()) {
      const type = (part as {type?: unknown} | null)?.type
      if (typeof type === 'string' && type !== 'text') return {path: `messages[${i}].content[${j}]`, type: type.replace(/[^\x20-\x7e]/g, '?').slice(0, 32)}
    }
  }
  return undefined
}

type Common = Omit<ParsedRequest, 'kind' | 'prompts' | 'bestOf' | 'logprobs' | 'echo'>

function common(b: Body, maxTokens: unknown, maxTokensParam: ParsedRequest['maxTokensParam']): Common {
  const stream = b.stream === true
  const opts = b.stream_options as {include_usage?: boolean | null} | null | undefined
  if (opts != null && !stream) throw new InvalidRequest("'stream_options' is only allowed when 'stream' is true", 'stream_options', 'invalid_value')
  const topK = (b.top_k as number | null | undefined) ?? 0
  const max = (maxTokens as number | null | undefined) ?? undefined
  const minTokens = (b.min_tokens as number | null | undefined) ?? 0
  if (max !== undefined && minTokens > max) throw new InvalidRequest(`'min_tokens' (${minTokens}) must be at most '${maxTokensParam}' (${max})`, 'min_tokens', 'invalid_value')
  const bias = (b.logit_bias as Record<string, number> | null | undefined) ?? undefined
  return {
    model: b.model as string,
    maxTokens: max,
    maxTokensParam,
    temperature: (b.temperature as number | null | undefined) ?? 1,
    topP: (b.top_p as number | null | undefined) ?? 1,
    topK: topK === -1 ? 0 : topK,
    minP: (b.min_p as number | null | undefined) ?? 0,
    seed: (b.seed as number | null | undefined) ?? undefined,
    presencePenalty: (b.presence_penalty as number | null | undefined) ?? 0,
    frequencyPenalty: (b.frequency_penalty as number | null | undefined) ?? 0,
    repetitionPenalty: (b.repetition_penalty as number | null | undefined) ?? 1,
    logitBias: bias && Object.keys(bias).length > 0 ? bias : undefined,
    minTokens,
    stop: parseStop(b.stop as string | string[] | null | undefined),
    stopTokenIds: (b.stop_token_ids as number[] | null | undefined) ?? [],
    includeStopStrInOutput: b.include_stop_str_in_output === true,
    ignoreEos: b.ignore_eos === true,
    n: (b.n as number | null | undefined) ?? 1,
    stream,
    includeUsage: opts?.include_usage === true,
    returnTokenIds: b.return_token_ids === true,
    kvTransferParams: b.kv_transfer_params,
  }
}

interface RawMessage {
  role: string
  content?: string | {text: string}[] | null
  tool_calls?: unknown
  tool_call_id?: unknown
  function_call?: unknown
}

/** Text messages; tool traffic is refused as such (hpd offers no tools), naming the message. */
function chatMessages(raw: readonly RawMessage[]): ChatMessage[] {
  return raw.map((m, i): ChatMessage => {
    const toolField = (['tool_calls', 'function_call', 'tool_call_id'] as const).find((f) => m[f] !== undefined && m[f] !== null)
    if (m.role === 'tool' || m.role === 'function' || toolField) {
      const param = toolField ? `messages[${i}].${toolField}` : `messages[${i}].role`
      throw new InvalidRequest(`tool calling is not supported by hpd: ${toolField ? `'${toolField}'` : `a '${m.role}' message`} cannot be served (hpd offers no tools; send text messages only)`, param, 'unsupported_parameter')
    }
    if (m.content === undefined || m.content === null) throw new InvalidRequest(`'messages[${i}].content' is a required property`, `messages[${i}].content`, 'missing_required_parameter')
    const content = typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('')
    return {role: m.role === 'developer' ? 'system' : (m.role as ChatMessage['role']), content}
  })
}

function completionPrompts(prompt: unknown): PromptInput[] {
  if (prompt === undefined) throw missing('prompt')
  if (typeof prompt === 'string') return [{text: prompt}]
  const list = prompt as unknown[]
  if (typeof list[0] === 'number') return [{tokenIds: list as number[]}]
  return list.map((p) => (typeof p === 'string' ? {text: p} : {tokenIds: p as number[]}))
}

function parseStop(stop: string | string[] | null | undefined): readonly string[] {
  if (stop === undefined || stop === null) return []
  return (typeof stop === 'string' ? [stop] : stop).filter((s) => s.length > 0)
}

function missing(param: string): InvalidRequest {
  return new InvalidRequest(`'${param}' is a required property`, param, 'missing_required_parameter')
}

/** A field name as a message may quote it: bounded, printable. */
function shortKey(key: string): string {
  const printable = key.replace(/[^\x20-\x7e]/g, '?')
  return printable.length > 64 ? `${printable.slice(0, 64)}…` : printable
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${String(v)}`
}
