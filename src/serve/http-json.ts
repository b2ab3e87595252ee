/**
 * The control-plane client (router → workers, decode worker → prefill worker, supervisor →
 * workers) and the worker-side JSON answer helpers. Every call carries the cluster token and a
 * bound; nothing here waits unboundedly. Failures are ServeErrors whose code says what happened,
 * so callers can fail over (refused), retry (a keep-alive connection reset), or give up (timeout).
 */
import type {ServerResponse} from 'node:http'

import {AUTH_HEADER, PROOF_HEADER, proofMatches, signCall} from './auth.js'
import {ServeError} from './backend.js'

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {'content-type': 'application/json', 'content-length': Buffer.byteLength(text)})
  res.end(text)
}

/** A worker-side failure as the JSON body the caller turns back into a ServeError. */
export function sendServeError(res: ServerResponse, error: unknown): void {
  const e = error instanceof ServeError ? error : new ServeError(500, 'worker_error', String((error as Error)?.message ?? error))
  sendJson(res, e.status, {error: {code: e.code, message: e.message, ...(e.param ? {param: e.param} : {})}})
}

export interface CallOptions {
  /** Bound on the whole call (JSON) or on the response headers (streams). */
  readonly timeoutMs: number
  readonly signal?: AbortSignal
  /**
   * Retry once on a fresh connection when a reused keep-alive connection was reset before any
   * answer (the peer closed it as idle as we sent: common right after a stalled peer resumes).
   * Only for calls that are safe to repeat.
   */
  readonly retryOnReset?: boolean
  /** Extra request headers (e.g. X-Request-Id). */
  readonly headers?: Record<string, string>
}

/** Codes of connection-level failures (the peer never answered). */
export const UNREACHABLE = 'worker_unreachable'
export const RESET = 'worker_connection_reset'
export const TIMEOUT = 'worker_timeout'

export class ControlClient {
  /**
   * `token`: the cluster token every call is signed with, and every answer must prove (auth.ts);
   * undefined: unsigned calls, for tests of refusal.
   */
  constructor(private readonly token: string | undefined) {}

  /** POST (body given) or GET a JSON call; the answer parsed, or a ServeError. */
  async call<T>(url: string, body: unknown, o: CallOptions): Promise<T> {
    const res = await this.open(url, body, o)
    const text = await withTimeout(res.text(), o.timeoutMs, url)
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new ServeError(502, 'worker_bad_response', `${url} answered ${res.status} with a non-JSON body`)
    }
    if (!res.ok) {
      const err = (json as {error?: {code?: string; message?: string; param?: unknown}}).error
      const param = typeof err?.param === 'string' ? err.param.slice(0, 200) : undefined
      throw new ServeError(res.status, err?.code ?? 'worker_error', err?.message ?? `${url} answered ${res.status}`, param)
    }
    return json as T
  }

  /**
   * Sends the request and resolves with the response once its headers arrived (bounded by
   * timeoutMs); the body is the caller's to read, with bounds of its own (see ndjsonLines).
   */
  async open(url: string, body: unknown, o: CallOptions): Promise<Response> {
    try {
      return await this.fetchOnce(url, body, o)
    } catch (error) {
      if (o.retryOnReset && error instanceof ServeError && error.code === RESET && !o.signal?.aborted) return this.fetchOnce(url, body, o)
      throw error
    }
  }

  private async fetchOnce(url: string, body: unknown, o: CallOptions): Promise<Response> {
    const method = body === undefined ? 'GET' : 'POST'
    const headers: Record<string, string> = {...o.headers}
    let nonce: string | undefined
    if (this.token !== undefined) {
      const u = new URL(url)
      const signed = signCall(this.token, method, `${u.pathname}${u.search}`)
      headers[AUTH_HEADER] = signed.header
      nonce = signed.nonce
    }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const local = new AbortController()
    const timer = setTimeout(() => local.abort(new ServeError(504, TIMEOUT, `${url} did not answer within ${o.timeoutMs} ms`)), o.timeoutMs)
    const onAbort = () => local.abort(o.signal!.reason)
    if (o.signal?.aborted) onAbort()
    else o.signal?.addEventListener('abort', onAbort, {once: true})
    try {
      // The caller's signal stays linked to the body after the headers: aborting it closes the
      // connection, which is how a worker learns that its stream's reader went away.
      const res = await fetch(url, {method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: local.signal})
      // An answer that does not prove the cluster token came from a stranger: use nothing of it.
      if (this.token !== undefined && res.status !== 401 && !proofMatches(this.token, nonce!, res.headers.get(PROOF_HEADER))) {
        await res.body?.cancel().catch(() => undefined)
        throw new ServeError(502, 'peer_not_authenticated', `${url} answered without proving the cluster token: it is not a worker of this cluster`)
      }
      return res
    } catch (error) {
      o.signal?.removeEventListener('abort', onAbort)
      if (error instanceof ServeError) throw error
      if (local.signal.aborted) {
        const reason = local.signal.reason as unknown
        throw reason instanceof Error ? reason : new ServeError(499, 'aborted', 'request aborted')
      }
      throw classify(url, error)
    } finally {
      clearTimeout(timer)
    }
  }
}

function classify(url: string, error: unknown): ServeError {
  const cause = (error as {cause?: {code?: string; message?: string}}).cause
  const code = cause?.code ?? ''
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ENOTFOUND') {
    return new ServeError(503, UNREACHABLE, `${url} is unreachable (${code})`)
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return new ServeError(503, RESET, `${url} closed the connection before answering (${code})`)
  }
  return new ServeError(503, UNREACHABLE, `${url} is unreachable (${code || cause?.message || (error as Error).message})`)
}

async function withTimeout<T>(p: Promise<T>, ms: number, url: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ServeError(504, TIMEOUT, `${url} did not finish its answer within ${ms} ms`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

/** Parses an NDJSON response body line by line. */
export async function* ndjsonLines<T>(body: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  const decoder = new TextDecoder()
  let buffered = ''
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, {stream: true})
    let nl: number
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim()
      buffered = buffered.slice(nl + 1)
      if (line) yield JSON.parse(line) as T
    }
  }
  const rest = buffered.trim()
  if (rest) yield JSON.parse(rest) as T
}
