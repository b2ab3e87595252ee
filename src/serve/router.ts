/**
 * The OpenAI-compatible front door (node:http, hardened: http-hygiene.ts). A generation request
 * goes admit (openai/admit.ts: fields, model, tokens, limits) → generateText (generation.ts: the
 * backend's tokens as text events) → a responder (SSE or one JSON body), with metrics observing
 * the same events. Every request is bounded by `requestTimeoutMs`; a client that goes away
 * cancels its request on the workers.
 */
import {randomBytes, randomUUID} from 'node:crypto'
import type {IncomingMessage, Server, ServerResponse} from 'node:http'

import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {packageRoot} from '../native/load-addon.js'
import {errorEvent, RETRY_AFTER_S, ServeError, type GenerationBackend, type ServeTokenizer} from './backend.js'
import {choicesPerPrompt, generateText} from './generation.js'
import {closeAfterAnswer, closesConnection, createHardenedServer, HttpRefusal, readJsonBody, ROUTER_HYGIENE, type HygieneOptions} from './http-hygiene.js'
import type {ServeMetrics} from './metrics.js'
import {admit, capacityRefusal, demandsOf, type AdmittedRequest, type RequestKind} from './openai/admit.js'
import {InvalidRequest} from './openai/request.js'
import {jsonResponder, sendError, sendJson, sseResponder} from './openai/responders.js'
import type {ResponseIdentity} from './openai/response.js'
import {handleUtilityRoute, UTILITY_PATHS, type UtilityContext} from './openai/utility-routes.js'
import {AUTH_HEADER, bearerMatches, PROOF_HEADER, type CallVerifier} from './auth.js'

export interface RouterOptions {
  readonly backend: GenerationBackend
  readonly tokenizer: ServeTokenizer
  /** The id clients pass as `model` (also listed by GET /v1/models). */
  readonly modelName: string
  /** vLLM --served-model-name: the names clients may pass (a response carries the one its request used); default [modelName]. */
  readonly servedModelNames?: readonly string[]
  readonly maxModelLen: number
  readonly vocabSize: number
  readonly metrics: ServeMetrics
  /** Whole-request bound, first byte to last; the request fails with 504 (or a stream error) past it. */
  readonly requestTimeoutMs?: number
  readonly maxBodyBytes?: number
  /**
   * Default output length for chat requests without max_tokens (256; completions default to 16 as
   * OpenAI's). Not vLLM's "the rest of the context": requests are admitted against their full
   * length, so that default would reserve a whole context of KV blocks for every chat request.
   */
  readonly defaultChatMaxTokens?: number
  /** When set, /v1/* requires `Authorization: Bearer <apiKey>` (as vLLM's --api-key). */
  readonly apiKey?: string
  /** Workers: take vLLM's `kv_transfer_params` (the router refuses it from clients). */
  readonly acceptKvTransferParams?: boolean
  /**
   * Workers: a call signed with the cluster token (hpd's router) gets the proof of it in its
   * answer; a call signed wrongly is refused (401). Unsigned calls (other proxies) are served.
   */
  readonly verifier?: CallVerifier
  readonly hygiene?: HygieneOptions
  readonly log?: (event: RouterLogEvent) => void
}

export interface RouterLogEvent {
  readonly event: 'request-done' | 'request-failed' | 'request-refused'
  readonly requestId: string
  readonly status: number
  readonly promptTokens: number
  readonly outputTokens: number
  readonly ttftMs?: number
  readonly e2eMs: number
  readonly code?: string
  readonly message?: string
}

/** X-Request-Id values taken as given (vLLM's proxy and llm-d send one per request). */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export function createRouter(options: RouterOptions): Server {
  return createHardenedServer(openAiHandler(options), options.hygiene ?? ROUTER_HYGIENE)
}

/** The OpenAI routes as a request handler (the router's server, and each worker's public side). */
export function openAiHandler(options: RouterOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(options, req, res).catch((error: unknown) => {
      // Only a defect gets here (every expected failure is answered where it happens).
      options.log?.({event: 'request-failed', requestId: '-', status: 500, promptTokens: 0, outputTokens: 0, e2eMs: 0, code: 'internal_error', message: String((error as Error)?.message ?? error)})
      if (!res.headersSent) sendError(res, 500, 'internal error; the server log has the details', null, 'internal_error')
      else res.end()
    })
  }
}

async function handle(o: RouterOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]
  if (o.verifier && req.headers[AUTH_HEADER] !== undefined) {
    const verdict = o.verifier.verify(req.headers[AUTH_HEADER], req.method ?? 'GET', req.url ?? '/')
    if (!verdict.ok) {
      req.resume()
      sendError(res, 401, 'the call is signed, but not with this cluster’s token', null, 'unauthorized')
      return
    }
    res.setHeader(PROOF_HEADER, verdict.proof)
  }
  if (o.apiKey !== undefined && path.startsWith('/v1/') && !bearerMatches(req.headers.authorization, o.apiKey)) {
    req.resume()
    sendError(res, 401, 'a valid API key is required: send `Authorization: Bearer <key>`', null, 'invalid_api_key')
    return
  }
  switch (`${req.method} ${path}`) {
    case 'GET /health': {
      const r = o.backend.readiness()
      sendJson(res, r.ready ? 200 : 503, r.ready ? {status: 'ok', ...(r.reason ? {warning: r.reason} : {})} : {status: 'unavailable', reason: r.reason})
      return
    }
    case 'GET /metrics': {
      const text = await o.metrics.renderPrometheus()
      res.writeHead(200, {'content-type': o.metrics.contentType})
      res.end(text)
      return
    }
    case 'POST /v1/completions':
    case 'POST /v1/chat/completions': {
      await handleGeneration(o, req, res, path === '/v1/completions' ? 'completion' : 'chat')
      return
    }
    default: {
      try {
        if (await handleUtilityRoute(utilityContext(o), req, res, req.method ?? 'GET', path, () => readJsonBody(req, bodyLimits(o)))) return
      } catch (error) {
        if (!(error instanceof InvalidRequest) && !(error instanceof HttpRefusal)) throw error
        if (closesConnection(error)) closeAfterAnswer(req, res)
        sendError(res, error.status, error.message, error instanceof InvalidRequest ? error.param : null, error.code, closesConnection(error) ? {connection: 'close'} : {})
        return
      }
      req.resume()
      const known = ['/health', '/metrics', '/v1/completions', '/v1/chat/completions', ...UTILITY_PATHS].includes(path) || path.startsWith('/v1/models/')
      if (known) sendError(res, 405, `method ${req.method} is not allowed on ${path}`, null, 'method_not_allowed')
      else sendError(res, 404, `no route for ${req.method} ${path.slice(0, 200)}`, null, 'not_found')
    }
  }
}

function modelNames(o: RouterOptions): readonly string[] {
  return [...new Set(o.servedModelNames && o.servedModelNames.length > 0 ? o.servedModelNames : [o.modelName])]
}

function bodyLimits(o: RouterOptions) {
  return {maxBytes: o.maxBodyBytes ?? 4 * 1024 * 1024, timeoutMs: (o.hygiene ?? ROUTER_HYGIENE).bodyTimeoutMs, maxDepth: 32}
}

let hpdVersion: string | undefined
function version(): string {
  try {
    hpdVersion ??= (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as {version: string}).version
  } catch {
    hpdVersion = 'unknown'
  }
  return hpdVersion
}

function utilityContext(o: RouterOptions): UtilityContext {
  return {tokenizer: o.tokenizer, modelNames: modelNames(o), maxModelLen: o.maxModelLen, vocabSize: o.vocabSize, createdS: Math.floor(o.metrics.startedAtMs / 1000), version: version()}
}

async function handleGeneration(o: RouterOptions, req: IncomingMessage, res: ServerResponse, kind: RequestKind): Promise<void> {
  const arrivedAtMs = performance.now()
  const clientId = req.headers['x-request-id']
  const requestId = requestIdFor(kind, typeof clientId === 'string' && REQUEST_ID.test(clientId) ? clientId : undefined)
  const headers: Record<string, string> = {'x-request-id': typeof clientId === 'string' && REQUEST_ID.test(clientId) ? clientId : requestId}
  let admitted: AdmittedRequest
  try {
    const body = await readJsonBody(req, bodyLimits(o))
    admitted = admit(kind, body, o.tokenizer, {
      modelNames: modelNames(o),
      maxModelLen: o.maxModelLen,
      vocabSize: o.vocabSize,
      defaultChatMaxTokens: o.defaultChatMaxTokens ?? 256,
      acceptKvTransferParams: o.acceptKvTransferParams ?? false,
    })
    // A request no pool could ever hold would wait forever (or fail midway): refused now, by field.
    const shortfall = o.backend.capacityShortfall?.(demandsOf(admitted), admitted.kv.leg)
    if (shortfall) throw capacityRefusal(admitted, shortfall)
  } catch (error) {
    if (!(error instanceof InvalidRequest) && !(error instanceof HttpRefusal)) throw error
    o.metrics.requestsRejected++
    const param = error instanceof InvalidRequest ? error.param : null
    o.log?.({event: 'request-refused', requestId, status: error.status, promptTokens: 0, outputTokens: 0, e2eMs: performance.now() - arrivedAtMs, code: error.code, message: error.message})
    if (closesConnection(error)) closeAfterAnswer(req, res)
    sendError(res, error.status, error.message, param, error.code, closesConnection(error) ? {...headers, connection: 'close'} : headers)
    return
  }
  const readiness = o.backend.readiness()
  if (!readiness.ready) {
    o.metrics.requestsRejected++
    sendError(res, 503, `no healthy worker can take the request: ${readiness.reason ?? 'workers are not ready'}`, null, 'no_healthy_worker', {...headers, 'retry-after': String(RETRY_AFTER_S)})
    return
  }
  if (req.headers[EVENTS_HEADER] === 'events') {
    await streamEvents(o, res, requestId, admitted, headers)
    return
  }

  const who: ResponseIdentity = {id: requestId, created: Math.floor(Date.now() / 1000), model: admitted.model}
  const p = admitted.parsed
  const responderOptions = {
    kind,
    who,
    includeUsage: p.includeUsage,
    returnTokenIds: p.returnTokenIds,
    headers,
    prompts: admitted.prompts,
    perPrompt: choicesPerPrompt(admitted),
    n: p.n,
    echo: p.echo,
    tokenText: (id: number) => o.tokenizer.decode([id]),
  }
  const respond = p.stream ? sseResponder(res, responderOptions) : jsonResponder(res, responderOptions, p.logprobs !== undefined)
  const abort = new AbortController()
  const timeoutMs = o.requestTimeoutMs ?? 120_000
  const timer = setTimeout(() => abort.abort(new ServeError(504, 'request_timeout', `the request did not finish within ${timeoutMs} ms`)), timeoutMs)
  res.on('close', () => {
    if (!res.writableFinished) abort.abort(new ServeError(499, 'client_closed', 'the client closed the connection'))
  })

  const m = o.metrics
  m.inFlight++
  m.promptTokens += admitted.promptTokens
  let firstTokenAtMs: number | undefined
  let lastTokenAtMs = 0
  let transferMs: number | undefined
  let outputTokens = 0
  try {
    for await (const ev of generateText(o.backend, o.tokenizer, requestId, admitted, abort.signal)) {
      if (ev.type === 'transfer') {
        transferMs = ev.ms
        m.transferBytes += ev.bytes
      } else if (ev.type === 'text') {
        if (ev.tokenId !== undefined) {
          const now = performance.now()
          if (firstTokenAtMs === undefined) firstTokenAtMs = now
          else m.itl.observe((now - lastTokenAtMs) / 1000)
          lastTokenAtMs = now
          outputTokens++
        }
        respond.text(ev)
      } else if (ev.type === 'choice-end') {
        respond.choiceEnd(ev)
      } else if (ev.type === 'kv-params') {
        respond.kvParams(ev.params)
      } else if (ev.type === 'cached') {
        respond.cached(ev)
      } else {
        clearTimeout(timer)
        m.inFlight--
        m.requestsOk++
        m.generationTokens += outputTokens
        const e2eMs = performance.now() - arrivedAtMs
        m.e2e.observe(e2eMs / 1000)
        if (firstTokenAtMs !== undefined) m.ttft.observe((firstTokenAtMs - arrivedAtMs) / 1000)
        if (transferMs !== undefined && firstTokenAtMs !== undefined) {
          m.kvTransfer.observe(transferMs / 1000)
          m.kvTransferSeconds += transferMs / 1000
          m.ttftSecondsDisagg += (firstTokenAtMs - arrivedAtMs) / 1000
        }
        const ttftMs = firstTokenAtMs === undefined ? undefined : firstTokenAtMs - arrivedAtMs
        o.log?.({event: 'request-done', requestId, status: 200, promptTokens: admitted.promptTokens, outputTokens, ttftMs, e2eMs})
        respond.end()
        return
      }
    }
  } catch (error) {
    clearTimeout(timer)
    m.inFlight--
    m.requestsFailed++
    const e = error instanceof ServeError ? error : new ServeError(500, 'internal_error', String((error as Error)?.message ?? error))
    o.log?.({event: 'request-failed', requestId, status: e.status, promptTokens: admitted.promptTokens, outputTokens, e2eMs: performance.now() - arrivedAtMs, code: e.code, message: e.message})
    // 503: the workers are busy or restarting, not the request at fault: a client may retry.
    respond.fail(e.status, e.code, e.message, e.param, e.status === 503 ? {'retry-after': String(RETRY_AFTER_S)} : {})
  }
}

/**
 * hpd's own decode leg: the same admission and the same backend, answered as the backend's events
 * (NDJSON, lossless: token ids, logprobs by id, per-choice finishes, transfer timings) instead of
 * OpenAI text, for hpd's router, which detokenizes and applies stop strings itself.
 */
async function streamEvents(o: RouterOptions, res: ServerResponse, requestId: string, admitted: AdmittedRequest, headers: Record<string, string>): Promise<void> {
  if (admitted.prompts.length !== 1) {
    sendError(res, 400, `'${EVENTS_HEADER}: events' takes one prompt`, 'prompt', 'unsupported_value', headers)
    return
  }
  const abort = new AbortController()
  res.on('close', () => {
    if (!res.writableFinished) abort.abort(new ServeError(499, 'router_closed', 'the router closed the stream'))
  })
  res.writeHead(200, {'content-type': 'application/x-ndjson', ...headers})
  const m = o.metrics
  m.inFlight++
  m.promptTokens += admitted.promptTokens
  let failed = false
  try {
    const request = {requestId, promptTokenIds: admitted.prompts[0].tokenIds, sampling: admitted.sampling[0], ...(admitted.kv.leg !== 'none' ? {kv: admitted.kv} : {})}
    for await (const ev of o.backend.generate(request, abort.signal)) {
      if (ev.type === 'error') failed = true
      res.write(`${JSON.stringify(ev)}\n`)
      if (ev.type === 'done' || ev.type === 'error') break
    }
  } catch (error) {
    failed = true
    const e = error instanceof ServeError ? error : new ServeError(500, 'internal_error', String((error as Error)?.message ?? error))
    if (!res.destroyed) res.write(`${JSON.stringify(errorEvent(e))}\n`)
  } finally {
    m.inFlight--
    if (failed) m.requestsFailed++
    else m.requestsOk++
    if (!res.destroyed) res.end()
  }
}

/** Asks an hpd worker for its backend's events instead of OpenAI text (hpd's router does). */
export const EVENTS_HEADER = 'x-hpd-response'

/** The id a request carries on the workers: the client's X-Request-Id (plus a suffix: ids must be unique) or a fresh one. */
function requestIdFor(kind: RequestKind, clientId: string | undefined): string {
  const prefix = kind === 'chat' ? 'chatcmpl' : 'cmpl'
  if (!clientId) return `${prefix}-${randomUUID().replaceAll('-', '')}`
  // An id that already carries the prefix (hpd's router sends its own ids on) is not prefixed twice.
  return `${clientId.startsWith(`${prefix}-`) ? '' : `${prefix}-`}${clientId}-${randomBytes(4).toString('hex')}`
}
