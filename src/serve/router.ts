/**
 * The OpenAI-compatible front door (node:http): validates bodies, tokenizes, hands token ids to a
 * GenerationBackend, turns the token stream back into text (SSE or one JSON body), and records
 * latency metrics. Every request is bounded by `requestTimeoutMs`; a client that goes away
 * cancels its request on the workers.
 */
import {randomUUID} from 'node:crypto'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'

import {ServeError, type GenerationBackend, type ServeTokenizer} from './backend.js'
import type {ServeMetrics} from './metrics.js'
import {InvalidRequest, parseChatBody, parseCompletionBody, type ParsedRequest} from './openai/request.js'
import {
  chatBody,
  chatChunk,
  completionBody,
  completionChunk,
  errorBody,
  SSE_DONE,
  streamError,
  usageChunk,
  usageOf,
  type ResponseIdentity,
} from './openai/response.js'
import type {FinishReason, SamplingParams} from './protocol.js'
import {StopMatcher} from './stop-matcher.js'

export interface RouterOptions {
  readonly backend: GenerationBackend
  readonly tokenizer: ServeTokenizer
  /** The id clients pass as `model` (also listed by GET /v1/models). */
  readonly modelName: string
  readonly maxModelLen: number
  readonly vocabSize: number
  readonly metrics: ServeMetrics
  /** Whole-request bound, first byte to last; the request fails with 504 (or a stream error) past it. */
  readonly requestTimeoutMs?: number
  readonly maxBodyBytes?: number
  /** Default output length for chat requests without max_tokens (completions default to 16 as OpenAI's). */
  readonly defaultChatMaxTokens?: number
  readonly log?: (event: RouterLogEvent) => void
}

export interface RouterLogEvent {
  readonly event: 'request-done' | 'request-failed'
  readonly requestId: string
  readonly status: number
  readonly promptTokens: number
  readonly outputTokens: number
  readonly ttftMs?: number
  readonly e2eMs: number
  readonly message?: string
}

export function createRouter(options: RouterOptions): Server {
  const server = createServer((req, res) => {
    handle(options, req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, 500, String((error as Error)?.message ?? error), 'server_error', null, 'internal_error')
      else res.end()
    })
  })
  // A stuck client must not hold a socket forever; streaming responses write well within this.
  server.requestTimeout = 0
  server.headersTimeout = 10_000
  server.keepAliveTimeout = 5_000
  return server
}

async function handle(o: RouterOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]
  const route = `${req.method} ${path}`
  switch (route) {
    case 'GET /health': {
      const r = o.backend.readiness()
      sendJson(res, r.ready ? 200 : 503, r.ready ? {status: 'ok'} : {status: 'unavailable', reason: r.reason})
      return
    }
    case 'GET /metrics': {
      res.writeHead(200, {'content-type': 'text/plain; version=0.0.4; charset=utf-8'})
      res.end(o.metrics.renderPrometheus())
      return
    }
    case 'GET /v1/models': {
      sendJson(res, 200, {
        object: 'list',
        data: [{id: o.modelName, object: 'model', created: Math.floor(o.metrics.startedAtMs / 1000), owned_by: 'hpd', max_model_len: o.maxModelLen}],
      })
      return
    }
    case 'POST /v1/completions':
    case 'POST /v1/chat/completions': {
      await handleGeneration(o, req, res, path === '/v1/completions' ? 'completion' : 'chat')
      return
    }
    default: {
      const known = ['/health', '/metrics', '/v1/models', '/v1/completions', '/v1/chat/completions'].includes(path)
      if (known) sendError(res, 405, `method ${req.method} is not allowed on ${path}`, 'invalid_request_error', null, 'method_not_allowed')
      else sendError(res, 404, `no route for ${req.method} ${path}`, 'invalid_request_error', null, 'not_found')
    }
  }
}

async function handleGeneration(o: RouterOptions, req: IncomingMessage, res: ServerResponse, kind: 'completion' | 'chat'): Promise<void> {
  const arrivedAtMs = performance.now()
  let parsed: ParsedRequest
  let promptTokenIds: number[]
  let sampling: SamplingParams
  try {
    const body = await readJson(req, o.maxBodyBytes ?? 4 * 1024 * 1024)
    parsed = kind === 'completion' ? parseCompletionBody(body) : parseChatBody(body)
    if (parsed.model !== o.modelName) {
      throw new InvalidRequest(`The model \`${parsed.model}\` does not exist; this server serves \`${o.modelName}\``, 'model', 'model_not_found', 404)
    }
    promptTokenIds = tokenize(o, parsed)
    sampling = samplingOf(o, parsed, promptTokenIds.length)
  } catch (error) {
    if (error instanceof InvalidRequest) {
      o.metrics.requestsRejected++
      sendError(res, error.status, error.message, 'invalid_request_error', error.param, error.code)
      return
    }
    throw error
  }
  const readiness = o.backend.readiness()
  if (!readiness.ready) {
    o.metrics.requestsRejected++
    sendError(res, 503, `no healthy worker can take the request: ${readiness.reason ?? 'workers are not ready'}`, 'service_unavailable', null, 'no_healthy_worker')
    return
  }

  const requestId = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`
  const who: ResponseIdentity = {id: requestId, created: Math.floor(Date.now() / 1000), model: o.modelName}
  const abort = new AbortController()
  const timeoutMs = o.requestTimeoutMs ?? 120_000
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    abort.abort(new ServeError(504, 'request_timeout', `the request did not finish within ${timeoutMs} ms`))
  }, timeoutMs)
  res.on('close', () => {
    if (!res.writableFinished) abort.abort(new ServeError(499, 'client_closed', 'the client closed the connection'))
  })

  o.metrics.inFlight++
  o.metrics.promptTokens += promptTokenIds.length
  const decoder = o.tokenizer.createDecoder()
  const stopper = new StopMatcher(parsed.stop)
  const outputIds: number[] = []
  let text = ''
  let finish: FinishReason = 'length'
  let firstTokenAtMs: number | undefined
  let lastTokenAtMs = 0
  let kvTransferMs: number | undefined
  let streamStarted = false
  const streaming = parsed.stream
  const startStream = () => {
    if (streamStarted) return
    streamStarted = true
    res.writeHead(200, {'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive'})
    if (kind === 'chat') res.write(chatChunk(who, {role: 'assistant', content: ''}, null))
  }
  const emit = (delta: string, ids: readonly number[] | undefined) => {
    if (!streaming || (delta === '' && !ids)) return
    startStream()
    res.write(kind === 'chat' ? chatChunk(who, {content: delta}, null, ids) : completionChunk(who, delta, null, ids))
  }

  try {
    const events = o.backend.generate({requestId, promptTokenIds, sampling}, abort.signal)
    for await (const ev of events) {
      if (ev.type === 'transfer-done') {
        kvTransferMs = ev.handshakeMs + ev.transferMs
        o.metrics.transferBytes += ev.bytes
      }
      else if (ev.type === 'error') throw new ServeError(ev.status, ev.code, ev.message)
      else if (ev.type === 'token') {
        const now = performance.now()
        if (firstTokenAtMs === undefined) firstTokenAtMs = now
        else o.metrics.itl.observe((now - lastTokenAtMs) / 1000)
        lastTokenAtMs = now
        outputIds.push(ev.tokenId)
        const {emit: delta, stopped} = stopper.push(decoder.push(ev.tokenId))
        text += delta
        emit(delta, parsed.returnTokenIds ? [ev.tokenId] : undefined)
        if (stopped) {
          finish = 'stop'
          abort.abort(new ServeError(499, 'stopped', 'stop sequence reached'))
          break
        }
      } else if (ev.type === 'done') {
        finish = ev.finishReason
        const tail = stopper.push(decoder.flush())
        const rest = tail.stopped ? tail.emit : tail.emit + stopper.flush()
        if (tail.stopped) finish = 'stop'
        text += rest
        emit(rest, undefined)
        break
      }
    }
    if (abort.signal.aborted && finish !== 'stop') throw abort.signal.reason
  } catch (error) {
    clearTimeout(timer)
    o.metrics.inFlight--
    o.metrics.requestsFailed++
    const e = error instanceof ServeError ? error : new ServeError(500, 'internal_error', String((error as Error)?.message ?? error))
    const status = timedOut ? 504 : e.status
    o.log?.({event: 'request-failed', requestId, status, promptTokens: promptTokenIds.length, outputTokens: outputIds.length, e2eMs: performance.now() - arrivedAtMs, message: e.message})
    if (res.destroyed) return
    if (streamStarted) {
      res.end(streamError(e.message, status >= 500 ? 'server_error' : 'invalid_request_error', e.code))
    } else {
      sendError(res, status, e.message, status === 503 ? 'service_unavailable' : status >= 500 ? 'server_error' : 'invalid_request_error', null, e.code)
    }
    return
  }
  clearTimeout(timer)
  const e2eMs = performance.now() - arrivedAtMs
  o.metrics.inFlight--
  o.metrics.requestsOk++
  o.metrics.generationTokens += outputIds.length
  o.metrics.e2e.observe(e2eMs / 1000)
  if (firstTokenAtMs !== undefined) o.metrics.ttft.observe((firstTokenAtMs - arrivedAtMs) / 1000)
  if (kvTransferMs !== undefined && firstTokenAtMs !== undefined) {
    o.metrics.kvTransfer.observe(kvTransferMs / 1000)
    o.metrics.kvTransferSeconds += kvTransferMs / 1000
    o.metrics.ttftSecondsDisagg += (firstTokenAtMs - arrivedAtMs) / 1000
  }
  o.log?.({
    event: 'request-done',
    requestId,
    status: 200,
    promptTokens: promptTokenIds.length,
    outputTokens: outputIds.length,
    ttftMs: firstTokenAtMs === undefined ? undefined : firstTokenAtMs - arrivedAtMs,
    e2eMs,
  })
  const usage = usageOf(promptTokenIds.length, outputIds.length)
  if (streaming) {
    startStream()
    res.write(kind === 'chat' ? chatChunk(who, {}, finish) : completionChunk(who, '', finish))
    if (parsed.includeUsage) res.write(usageChunk(who, kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', usage))
    res.end(SSE_DONE)
    return
  }
  const ids = parsed.returnTokenIds ? {prompt: promptTokenIds, output: outputIds} : undefined
  sendJson(res, 200, kind === 'chat' ? chatBody(who, text, finish, usage, ids) : completionBody(who, text, finish, usage, ids))
}

function tokenize(o: RouterOptions, p: ParsedRequest): number[] {
  let ids: number[]
  if ('tokenIds' in p.prompt) {
    ids = [...p.prompt.tokenIds]
    const bad = ids.find((t) => t >= o.vocabSize)
    if (bad !== undefined) throw new InvalidRequest(`'prompt' contains token id ${bad}, outside the vocabulary (size ${o.vocabSize})`, 'prompt', 'invalid_value')
  } else if ('text' in p.prompt) ids = o.tokenizer.encode(p.prompt.text)
  else ids = o.tokenizer.encodeChat(p.prompt.messages)
  const param = p.kind === 'chat' ? 'messages' : 'prompt'
  if (ids.length === 0) throw new InvalidRequest(`'${param}' tokenizes to zero tokens`, param, 'invalid_value')
  if (ids.length >= o.maxModelLen) {
    throw new InvalidRequest(
      `This model's maximum context length is ${o.maxModelLen} tokens. However, your prompt has ${ids.length} tokens, which leaves no room for output. Shorten the prompt.`,
      param,
      'context_length_exceeded',
    )
  }
  return ids
}

function samplingOf(o: RouterOptions, p: ParsedRequest, promptTokens: number): SamplingParams {
  const room = o.maxModelLen - promptTokens
  const maxTokens = p.maxTokens ?? Math.min(room, p.kind === 'chat' ? (o.defaultChatMaxTokens ?? 256) : 16)
  if (maxTokens > room) {
    const key = p.kind === 'chat' ? 'max_tokens' : 'max_tokens'
    throw new InvalidRequest(
      `This model's maximum context length is ${o.maxModelLen} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the prompt, ${maxTokens} in the completion). Reduce the prompt or max_tokens.`,
      key,
      'context_length_exceeded',
    )
  }
  return {temperature: p.temperature, topP: p.topP, topK: p.topK, seed: p.seed, maxTokens, ignoreEos: p.ignoreEos}
}

async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > maxBytes) throw new InvalidRequest(`the request body exceeds ${maxBytes} bytes`, null, 'body_too_large', 413)
    chunks.push(chunk as Buffer)
  }
  const raw = Buffer.concat(chunks).toString('utf8')
  if (raw.trim() === '') throw new InvalidRequest('the request body is empty; send a JSON object', null, 'invalid_body')
  try {
    return JSON.parse(raw)
  } catch (error) {
    throw new InvalidRequest(`the request body is not valid JSON: ${(error as Error).message}`, null, 'invalid_json')
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {'content-type': 'application/json', 'content-length': Buffer.byteLength(text)})
  res.end(text)
}

function sendError(res: ServerResponse, status: number, message: string, type: string, param: string | null, code: string | null): void {
  sendJson(res, status, errorBody(message, type, param, code))
}
