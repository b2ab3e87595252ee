/**
 * Small loopback-HTTP helpers shared by the router and the workers: bounded JSON calls and
 * NDJSON streams. Every call carries a timeout; nothing here waits unboundedly.
 */
import type {IncomingMessage, ServerResponse} from 'node:http'

import {ServeError} from './backend.js'

export async function readBody(req: IncomingMessage, maxBytes = 16 * 1024 * 1024): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > maxBytes) throw new ServeError(413, 'body_too_large', `body exceeds ${maxBytes} bytes`)
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null')
  } catch {
    throw new ServeError(400, 'invalid_json', 'body is not valid JSON')
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {'content-type': 'application/json', 'content-length': Buffer.byteLength(text)})
  res.end(text)
}

/** A worker-side failure as the JSON body the router turns back into a ServeError. */
export function sendServeError(res: ServerResponse, error: unknown): void {
  const e = error instanceof ServeError ? error : new ServeError(500, 'worker_error', String((error as Error)?.message ?? error))
  sendJson(res, e.status, {error: {code: e.code, message: e.message}})
}

/**
 * POST/GET a JSON body to `url` and parse the JSON answer, within `timeoutMs`. A refused
 * connection or timeout becomes ServeError 503/504 whose code says which, so callers can fail over.
 */
export async function callJson<T>(url: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
  const res = await fetchBounded(url, body, timeoutMs, signal)
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new ServeError(502, 'worker_bad_response', `${url} answered ${res.status} with a non-JSON body`)
  }
  if (!res.ok) {
    const err = (json as {error?: {code?: string; message?: string}}).error
    throw new ServeError(res.status, err?.code ?? 'worker_error', err?.message ?? `${url} answered ${res.status}`)
  }
  return json as T
}

export async function fetchBounded(url: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<Response> {
  const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])]
  try {
    return await fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? undefined : {'content-type': 'application/json'},
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.any(signals),
    })
  } catch (error) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new ServeError(499, 'aborted', 'request aborted')
    const e = error as {name?: string; cause?: {code?: string}}
    if (e.name === 'TimeoutError') throw new ServeError(504, 'worker_timeout', `${url} did not answer within ${timeoutMs} ms`)
    throw new ServeError(503, 'worker_unreachable', `${url} is unreachable (${e.cause?.code ?? (error as Error).message})`)
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
