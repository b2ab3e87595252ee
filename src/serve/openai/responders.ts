/**
 * The two ways an OpenAI response leaves the router: an SSE stream (chunks as text arrives) or
 * one JSON body at the end. Both take the same calls from the router, in the same order:
 * text()* then end() or fail().
 */
import type {ServerResponse} from 'node:http'

import type {FinishReason} from '../protocol.js'
import type {RequestKind} from './admit.js'
import {chatBody, chatChunk, completionBody, completionChunk, errorBody, SSE_DONE, streamError, usageChunk, usageOf, type ResponseIdentity} from './response.js'

export interface Responder {
  text(delta: string, tokenId: number | undefined): void
  end(finish: FinishReason, promptTokenIds: readonly number[], outputTokenIds: readonly number[]): void
  fail(status: number, code: string, message: string): void
}

export interface ResponderOptions {
  readonly kind: RequestKind
  readonly who: ResponseIdentity
  readonly includeUsage: boolean
  readonly returnTokenIds: boolean
  readonly headers: Record<string, string>
}

export function sseResponder(res: ServerResponse, o: ResponderOptions): Responder {
  let started = false
  const start = () => {
    if (started) return
    started = true
    res.writeHead(200, {'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', ...o.headers})
    if (o.kind === 'chat') res.write(chatChunk(o.who, {role: 'assistant', content: ''}, null))
  }
  const chunk = (delta: string, finish: FinishReason | null, ids?: readonly number[]) =>
    o.kind === 'chat' ? chatChunk(o.who, finish === null ? {content: delta} : {}, finish, ids) : completionChunk(o.who, delta, finish, ids)
  return {
    text(delta, tokenId) {
      if (delta === '' && (tokenId === undefined || !o.returnTokenIds)) return
      start()
      res.write(chunk(delta, null, o.returnTokenIds && tokenId !== undefined ? [tokenId] : undefined))
    },
    end(finish, promptTokenIds, outputTokenIds) {
      start()
      res.write(chunk('', finish))
      if (o.includeUsage) res.write(usageChunk(o.who, o.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', usageOf(promptTokenIds.length, outputTokenIds.length)))
      res.end(SSE_DONE)
    },
    fail(status, code, message) {
      if (res.destroyed) return
      if (started) res.end(streamError(message, status >= 500 ? 'server_error' : 'invalid_request_error', code))
      else sendError(res, status, message, null, code, o.headers)
    },
  }
}

export function jsonResponder(res: ServerResponse, o: ResponderOptions): Responder {
  let text = ''
  return {
    text(delta) {
      text += delta
    },
    end(finish, promptTokenIds, outputTokenIds) {
      const usage = usageOf(promptTokenIds.length, outputTokenIds.length)
      const ids = o.returnTokenIds ? {prompt: promptTokenIds, output: outputTokenIds} : undefined
      sendJson(res, 200, o.kind === 'chat' ? chatBody(o.who, text, finish, usage, ids) : completionBody(o.who, text, finish, usage, ids), o.headers)
    },
    fail(status, code, message) {
      if (!res.destroyed) sendError(res, status, message, null, code, o.headers)
    },
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers})
  res.end(text)
}

export function sendError(res: ServerResponse, status: number, message: string, param: string | null, code: string | null, headers: Record<string, string> = {}): void {
  const type = status === 503 ? 'service_unavailable' : status === 401 ? 'authentication_error' : status >= 500 ? 'server_error' : 'invalid_request_error'
  sendJson(res, status, errorBody(message, type, param, code), headers)
}
