/**
 * The router's non-generation routes that vLLM's OpenAI server also has: GET /v1/models,
 * GET /v1/models/{id}, POST /tokenize, POST /detokenize, GET /version. Bodies are checked by zod
 * schemas (unknown fields refused by name), as the generation routes' are.
 */
import type {IncomingMessage, ServerResponse} from 'node:http'

import {z} from 'zod'

import type {ServeTokenizer} from '../backend.js'
import {InvalidRequest} from './request.js'
import {sendJson} from './responders.js'

export interface UtilityContext {
  readonly tokenizer: ServeTokenizer
  /** Served names (responses carry the one a request used); the first is the models' `root`. */
  readonly modelNames: readonly string[]
  readonly maxModelLen: number
  readonly vocabSize: number
  readonly createdS: number
  readonly version: string
}

/** Paths this module answers (for 405 on other methods). */
export const UTILITY_PATHS = ['/v1/models', '/tokenize', '/detokenize', '/version'] as const

const textPart = z.object({type: z.literal('text'), text: z.string()}).strict()
/** POST /tokenize takes a prompt or chat messages: which one is decided by the body's keys, so an error names the right field. */
const tokenizePromptBody = z.object({model: z.string().max(1024).optional(), prompt: z.string(), add_special_tokens: z.boolean().optional()}).strict()
const tokenizeChatBody = z
  .object({
    model: z.string().max(1024).optional(),
    messages: z.array(z.object({role: z.enum(['system', 'developer', 'user', 'assistant']), content: z.union([z.string(), z.array(textPart)])}).strict()).min(1),
    // hpd's chat template always ends with the assistant's turn (what generation sends): true is the only value it can honour.
    add_generation_prompt: z.boolean().optional(),
  })
  .strict()
const detokenizeBody = z.object({model: z.string().max(1024).optional(), tokens: z.array(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER))}).strict()

function modelCard(ctx: UtilityContext, id: string) {
  return {id, object: 'model', created: ctx.createdS, owned_by: 'hpd', root: ctx.modelNames[0], parent: null, max_model_len: ctx.maxModelLen}
}

/**
 * Answers `method path` when it is one of the utility routes; false otherwise. `readBody` reads
 * the bounded JSON body (http-hygiene). Throws InvalidRequest for bad bodies.
 */
export async function handleUtilityRoute(
  ctx: UtilityContext,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  path: string,
  readBody: () => Promise<unknown>,
): Promise<boolean> {
  if (method === 'GET' && path === '/v1/models') {
    // A name given twice (--served-model-name a a) is one model.
    sendJson(res, 200, {object: 'list', data: [...new Set(ctx.modelNames)].map((n) => modelCard(ctx, n))})
    return true
  }
  if (method === 'GET' && path.startsWith('/v1/models/')) {
    req.resume()
    let id: string
    try {
      id = decodeURIComponent(path.slice('/v1/models/'.length))
    } catch {
      id = path.slice('/v1/models/'.length)
    }
    if (!ctx.modelNames.includes(id)) throw new InvalidRequest(`The model \`${id.slice(0, 64)}\` does not exist`, 'model', 'model_not_found', 404)
    sendJson(res, 200, modelCard(ctx, id))
    return true
  }
  if (method === 'GET' && path === '/version') {
    req.resume()
    sendJson(res, 200, {version: ctx.version})
    return true
  }
  if (method === 'POST' && path === '/tokenize') {
    const raw = await readBody()
    let tokens: number[]
    if (typeof raw === 'object' && raw !== null && !Array.isArray(raw) && 'messages' in raw) {
      if ('prompt' in raw) throw new InvalidRequest("'/tokenize' takes either 'prompt' or 'messages', not both", 'prompt', 'invalid_value')
      const body = check(tokenizeChatBody, raw)
      checkModel(ctx, body.model)
      if (body.add_generation_prompt === false) {
        throw new InvalidRequest("'add_generation_prompt' false is not supported: hpd's chat template always ends with the assistant's turn (as generation tokenizes chats); drop the field or send true", 'add_generation_prompt', 'unsupported_value')
      }
      tokens = ctx.tokenizer.encodeChat(body.messages.map((m) => ({role: m.role === 'developer' ? 'system' : m.role, content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('')})))
    } else {
      const body = check(tokenizePromptBody, raw)
      checkModel(ctx, body.model)
      tokens = ctx.tokenizer.encode(body.prompt, {addSpecialTokens: body.add_special_tokens ?? true})
    }
    sendJson(res, 200, {count: tokens.length, max_model_len: ctx.maxModelLen, tokens})
    return true
  }
  if (method === 'POST' && path === '/detokenize') {
    const body = check(detokenizeBody, await readBody())
    checkModel(ctx, body.model)
    const bad = body.tokens.findIndex((t) => t >= ctx.vocabSize)
    if (bad >= 0) throw new InvalidRequest(`'tokens[${bad}]' is ${body.tokens[bad]}, outside the vocabulary (size ${ctx.vocabSize})`, `tokens[${bad}]`, 'invalid_value')
    sendJson(res, 200, {prompt: ctx.tokenizer.decode(body.tokens)})
    return true
  }
  return false
}

function checkModel(ctx: UtilityContext, model: string | undefined): void {
  if (model !== undefined && !ctx.modelNames.includes(model)) throw new InvalidRequest(`The model \`${model.slice(0, 64)}\` does not exist`, 'model', 'model_not_found', 404)
}

function check<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidRequest('the request body must be a JSON object', null, 'invalid_body')
  const r = schema.safeParse(body)
  if (r.success) return r.data
  // A union's issue names no path: report the first unknown or wrongly typed field by name.
  const issue = r.error.issues[0]
  const deep = issue.code === 'invalid_union' ? (issue.errors.flat()[0] ?? issue) : issue
  const keys = 'keys' in deep && Array.isArray(deep.keys) ? (deep.keys as string[]) : []
  const path = [...deep.path, ...keys.slice(0, 1)].map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '')
  throw new InvalidRequest(`'${path || 'body'}' is invalid: ${deep.message}`, path || null, keys.length > 0 ? 'unknown_parameter' : 'invalid_value')
}
