/**
 * Validation of OpenAI-compatible request bodies into one typed shape. Every refusal names the
 * offending field (`param`) the way the OpenAI API does, so clients can show it.
 */
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
  const b = asObject(body)
  const prompt = parsePrompt(b.prompt)
  if (b.echo === true) throw new InvalidRequest('echo=true is not supported', 'echo', 'unsupported_value')
  return {...common(b, 'max_tokens'), kind: 'completion', prompt}
}

export function parseChatBody(body: unknown): ParsedRequest {
  const b = asObject(body)
  if (b.messages === undefined) throw missing('messages')
  if (!Array.isArray(b.messages)) throw invalidType('messages', 'an array of messages', b.messages)
  if (b.messages.length === 0) throw new InvalidRequest("'messages' must contain at least one message", 'messages', 'invalid_value')
  const messages = b.messages.map((m, i) => parseMessage(m, i))
  const maxKey = b.max_completion_tokens === undefined ? 'max_tokens' : 'max_completion_tokens'
  return {...common(b, maxKey), kind: 'chat', prompt: {messages}}
}

function common(b: Body, maxTokensKey: string): Omit<ParsedRequest, 'kind' | 'prompt'> {
  if (b.model === undefined) throw missing('model')
  if (typeof b.model !== 'string') throw invalidType('model', 'a string', b.model)
  const n = optionalInt(b, 'n', 1, 1)
  if (n !== 1) throw new InvalidRequest(`'n' must be 1, got ${n}`, 'n', 'unsupported_value')
  if (b.logprobs !== undefined && b.logprobs !== null && b.logprobs !== false) {
    throw new InvalidRequest("'logprobs' is not supported", 'logprobs', 'unsupported_value')
  }
  const stream = optionalBool(b, 'stream', false)
  const streamOptions = b.stream_options
  let includeUsage = false
  if (streamOptions !== undefined && streamOptions !== null) {
    if (typeof streamOptions !== 'object' || Array.isArray(streamOptions)) throw invalidType('stream_options', 'an object', streamOptions)
    includeUsage = optionalBool(streamOptions as Body, 'include_usage', false, 'stream_options.include_usage')
  }
  return {
    model: b.model,
    maxTokens: b[maxTokensKey] === null ? undefined : optionalInt(b, maxTokensKey, undefined, 1),
    temperature: optionalNumber(b, 'temperature', 1, 0, 2),
    topP: optionalNumber(b, 'top_p', 1, Number.MIN_VALUE, 1),
    topK: optionalTopK(b),
    seed: b.seed === null ? undefined : optionalInt(b, 'seed', undefined, undefined),
    stream,
    includeUsage,
    stop: parseStop(b.stop),
    ignoreEos: optionalBool(b, 'ignore_eos', false),
    returnTokenIds: optionalBool(b, 'return_token_ids', false),
  }
}

function parsePrompt(prompt: unknown): ParsedRequest['prompt'] {
  if (prompt === undefined) throw missing('prompt')
  if (typeof prompt === 'string') return {text: prompt}
  if (Array.isArray(prompt)) {
    if (prompt.length === 0) throw new InvalidRequest("'prompt' must not be empty", 'prompt', 'invalid_value')
    if (prompt.every((p) => typeof p === 'string')) {
      if (prompt.length > 1) throw new InvalidRequest('batched prompts are not supported: send one prompt per request', 'prompt', 'unsupported_value')
      return {text: prompt[0] as string}
    }
    if (prompt.every((p) => Number.isInteger(p) && (p as number) >= 0)) return {tokenIds: prompt as number[]}
    if (prompt.length === 1 && Array.isArray(prompt[0])) return parsePrompt(prompt[0])
  }
  throw invalidType('prompt', 'a string or an array of token ids', prompt)
}

function parseMessage(m: unknown, i: number): ChatMessage {
  const at = `messages[${i}]`
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw invalidType(at, 'an object', m)
  const msg = m as Body
  if (msg.role !== 'system' && msg.role !== 'user' && msg.role !== 'assistant' && msg.role !== 'developer') {
    throw new InvalidRequest(`'${at}.role' must be one of system, user, assistant; got ${describe(msg.role)}`, `${at}.role`, 'invalid_value')
  }
  const role = msg.role === 'developer' ? 'system' : msg.role
  if (typeof msg.content === 'string') return {role, content: msg.content}
  if (Array.isArray(msg.content)) {
    const parts = msg.content.map((part, j) => {
      const p = part as Body
      if (typeof p !== 'object' || p === null || p.type !== 'text' || typeof p.text !== 'string') {
        throw new InvalidRequest(`'${at}.content[${j}]' must be a text part ({"type":"text","text":...}); only text is supported`, `${at}.content[${j}]`, 'invalid_value')
      }
      return p.text
    })
    return {role, content: parts.join('')}
  }
  if (msg.content === undefined) throw missing(`${at}.content`)
  throw invalidType(`${at}.content`, 'a string or an array of text parts', msg.content)
}

function parseStop(stop: unknown): readonly string[] {
  if (stop === undefined || stop === null) return []
  if (typeof stop === 'string') return stop.length > 0 ? [stop] : []
  if (Array.isArray(stop) && stop.every((s) => typeof s === 'string')) {
    if (stop.length > 4) throw new InvalidRequest(`'stop' accepts at most 4 sequences, got ${stop.length}`, 'stop', 'invalid_value')
    return stop.filter((s) => s.length > 0)
  }
  throw invalidType('stop', 'a string or an array of strings', stop)
}

function optionalTopK(b: Body): number {
  if (b.top_k === undefined || b.top_k === null) return 0
  const k = b.top_k
  if (!Number.isInteger(k)) throw invalidType('top_k', 'an integer', k)
  if ((k as number) === -1 || (k as number) === 0) return 0
  if ((k as number) < 1) throw new InvalidRequest(`'top_k' must be -1, 0 or a positive integer, got ${k}`, 'top_k', 'invalid_value')
  return k as number
}

function optionalInt(b: Body, key: string, fallback: number | undefined, min: number | undefined): number | undefined {
  const v = b[key]
  if (v === undefined) return fallback
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalidType(key, 'an integer', v)
  if (min !== undefined && v < min) throw new InvalidRequest(`'${key}' must be >= ${min}, got ${v}`, key, 'invalid_value')
  return v
}

function optionalNumber(b: Body, key: string, fallback: number, min: number, max: number): number {
  const v = b[key]
  if (v === undefined || v === null) return fallback
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidType(key, 'a number', v)
  if (v < min || v > max) throw new InvalidRequest(`'${key}' must be between ${min === Number.MIN_VALUE ? 0 : min} and ${max}, got ${v}`, key, 'invalid_value')
  return v
}

function optionalBool(b: Body, key: string, fallback: boolean, param = key): boolean {
  const v = b[key]
  if (v === undefined || v === null) return fallback
  if (typeof v !== 'boolean') throw invalidType(param, 'a boolean', v)
  return v
}

function asObject(body: unknown): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequest('the request body must be a JSON object', null, 'invalid_body')
  }
  return body as Body
}

function missing(param: string): InvalidRequest {
  return new InvalidRequest(`'${param}' is a required property`, param, 'missing_required_parameter')
}

function invalidType(param: string, expected: string, got: unknown): InvalidRequest {
  return new InvalidRequest(`'${param}' must be ${expected}, got ${describe(got)}`, param, 'invalid_type')
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${String(v)}`
}
