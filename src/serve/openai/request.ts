/**
 * Validation of OpenAI-compatible request bodies into one typed shape. Each field is checked by
 * its rule in params.ts (type, range, honoured / ignored / neutral-only); unknown fields are
 * refused. Every refusal names the offending field (`param`) the way the OpenAI API does.
 */
import type {z} from 'zod'

import {ruleFor, type Endpoint, type FieldRule} from './params.js'

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant'
  readonly content: string
}

export interface ParsedRequest {
  readonly kind: 'completion' | 'chat'
  readonly model: string
  /** Either text to tokenize or token ids given directly (completions only). */
  readonly prompt: {readonly text: string} | {readonly tokenIds: readonly number[]} | {readonly messages: readonly ChatMessage[]}
  readonly maxTokens: number | undefined
  readonly temperature: number
  readonly topP: number
  /** 0 = no cut. */
  readonly topK: number
  readonly seed: number | undefined
  readonly stream: boolean
  readonly includeUsage: boolean
  readonly stop: readonly string[]
  readonly ignoreEos: boolean
  /** vLLM extension: echo prompt and output token ids in the response. */
  readonly returnTokenIds: boolean
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
  return {...common(b, b.max_tokens), kind: 'completion', prompt: completionPrompt(b.prompt)}
}

export function parseChatBody(body: unknown): ParsedRequest {
  const b = checkFields(body, 'chat')
  if (b.messages === undefined) throw missing('messages')
  const messages = (b.messages as {role: string; content: string | {text: string}[]}[]).map(
    (m): ChatMessage => ({role: m.role === 'developer' ? 'system' : (m.role as ChatMessage['role']), content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('')}),
  )
  const max = b.max_completion_tokens ?? b.max_tokens
  return {...common(b, max), kind: 'chat', prompt: {messages}}
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
    return new InvalidRequest(`'${rule.name}' is not implemented by hpd: it accepts only ${rule.accepts} (${rule.instead}), got ${describe(value)}`, rule.name, 'unsupported_parameter')
  }
  const issue = error.issues[0]
  const path = issue && issue.path.length > 0 ? `${rule.name}${issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}` : rule.name
  if (path !== rule.name) {
    return new InvalidRequest(`'${path}' is invalid (${issue.message}); '${rule.name}' must be ${rule.accepts}`, path, 'invalid_value')
  }
  return new InvalidRequest(`'${rule.name}' must be ${rule.accepts}, got ${describe(value)}`, rule.name, typeof value === typeof 0 || value === null ? 'invalid_value' : 'invalid_type')
}

function common(b: Body, maxTokens: unknown): Omit<ParsedRequest, 'kind' | 'prompt'> {
  const stream = b.stream === true
  const opts = b.stream_options as {include_usage?: boolean | null} | null | undefined
  if (opts != null && !stream) throw new InvalidRequest("'stream_options' is only allowed when 'stream' is true", 'stream_options', 'invalid_value')
  const topK = (b.top_k as number | null | undefined) ?? 0
  return {
    model: b.model as string,
    maxTokens: (maxTokens as number | null | undefined) ?? undefined,
    temperature: (b.temperature as number | null | undefined) ?? 1,
    topP: (b.top_p as number | null | undefined) ?? 1,
    topK: topK === -1 ? 0 : topK,
    seed: (b.seed as number | null | undefined) ?? undefined,
    stream,
    includeUsage: opts?.include_usage === true,
    stop: parseStop(b.stop as string | string[] | null | undefined),
    ignoreEos: b.ignore_eos === true,
    returnTokenIds: b.return_token_ids === true,
  }
}

function completionPrompt(prompt: unknown): ParsedRequest['prompt'] {
  if (prompt === undefined) throw missing('prompt')
  if (typeof prompt === 'string') return {text: prompt}
  const list = prompt as unknown[]
  if (typeof list[0] === 'number') return {tokenIds: list as number[]}
  if (list.length > 1) throw new InvalidRequest('batched prompts are not supported: send one prompt per request', 'prompt', 'unsupported_value')
  return typeof list[0] === 'string' ? {text: list[0]} : {tokenIds: list[0] as number[]}
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
