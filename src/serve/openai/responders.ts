/**
 * The two ways an OpenAI response leaves the router: an SSE stream (chunks as text arrives) or
 * one JSON body at the end. Both take the same calls from the router, in the same order:
 * (text | choiceEnd)* then end(), or fail() at any point.
 *
 * Choices: `perPrompt` are generated per prompt (best_of); the JSON body keeps, per prompt, the n
 * of highest cumulative logprob (all of them when best_of = n), indexed p · n + rank.
 */
import type {ServerResponse} from 'node:http'

import type {TextEvent, TokenLogprobs} from '../generation.js'
import type {FinishReason} from '../protocol.js'
import type {AdmittedPrompt, RequestKind} from './admit.js'
import {
  chatBody,
  chatChunk,
  chatLogprobs,
  completionBody,
  completionChunk,
  completionLogprobs,
  errorBody,
  SSE_DONE,
  streamError,
  usageChunk,
  usageOf,
  type ChoiceBody,
  type LogprobEntry,
  type ResponseIdentity,
} from './response.js'

type TextPiece = Extract<TextEvent, {type: 'text'}>
type ChoiceEnd = Extract<TextEvent, {type: 'choice-end'}>
type Cached = Extract<TextEvent, {type: 'cached'}>

export interface Responder {
  text(ev: TextPiece): void
  choiceEnd(ev: ChoiceEnd): void
  /** The prefill leg's kv_transfer_params (workers): carried at the top level of the response. */
  kvParams(params: Record<string, unknown> | null): void
  /** A prompt's tokens served from a prefix cache (reported in usage). */
  cached(ev: Cached): void
  /** Every choice ended: usage and the end of the response. */
  end(): void
  /** `headers`: extra response headers when the failure is answered before the stream started (Retry-After). */
  fail(status: number, code: string, message: string, param?: string, headers?: Record<string, string>): void
}

export interface ResponderOptions {
  readonly kind: RequestKind
  readonly who: ResponseIdentity
  readonly includeUsage: boolean
  readonly returnTokenIds: boolean
  readonly headers: Record<string, string>
  readonly prompts: readonly AdmittedPrompt[]
  /** Choices generated per prompt (best_of) and returned per prompt (n). */
  readonly perPrompt: number
  readonly n: number
  /** Completions: each choice's text starts with its prompt. */
  readonly echo: boolean
  /** The text a token id stands for in log-probability entries. */
  readonly tokenText: (tokenId: number) => string
}

/**
 * Usage: every prompt once, every generated token (best_of candidates included, as OpenAI bills
 * them), and the prompt tokens served from a prefix cache (each prompt's latest report).
 */
function usage(o: ResponderOptions, outputTokens: number, cachedPerPrompt: ReadonlyMap<number, number>) {
  return usageOf(
    o.prompts.reduce((a, p) => a + p.tokenIds.length, 0),
    outputTokens,
    [...cachedPerPrompt.values()].reduce((a, b) => a + b, 0),
  )
}

function logprobEntry(o: ResponderOptions, tokenId: number, l: TokenLogprobs): LogprobEntry {
  return {token: o.tokenText(tokenId), logprob: l.logprob, top: l.top.map((t) => ({token: o.tokenText(t.tokenId), logprob: t.logprob}))}
}

export function sseResponder(res: ServerResponse, o: ResponderOptions): Responder {
  let started = false
  let kvTransferParams: Record<string, unknown> | null | undefined
  let outputTokens = 0
  const cached = new Map<number, number>()
  const choices = o.prompts.length * o.perPrompt
  // Text offsets of completions logprobs, per choice (echo puts the prompt first).
  const offsets = Array.from({length: choices}, (_, c) => (o.echo ? o.prompts[Math.floor(c / o.perPrompt)].text.length : 0))
  const start = () => {
    if (started) return
    started = true
    res.writeHead(200, {'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', ...o.headers})
    for (let c = 0; c < choices; c++) {
      if (o.kind === 'chat') res.write(chatChunk(o.who, c, {role: 'assistant', content: ''}, null))
      else if (o.echo) res.write(completionChunk(o.who, c, o.prompts[Math.floor(c / o.perPrompt)].text, null))
    }
  }
  return {
    text(ev) {
      if (ev.text === '' && ev.logprobs === undefined && (ev.tokenId === undefined || !o.returnTokenIds)) return
      start()
      const tokenIds = o.returnTokenIds && ev.tokenId !== undefined ? [ev.tokenId] : undefined
      const entry = ev.logprobs && ev.tokenId !== undefined ? logprobEntry(o, ev.tokenId, ev.logprobs) : undefined
      if (o.kind === 'chat') {
        res.write(chatChunk(o.who, ev.choice, {content: ev.text}, null, {tokenIds, logprobs: entry ? chatLogprobs([entry]) : undefined}))
      } else {
        const logprobs = entry ? completionLogprobs([entry], offsets[ev.choice]) : undefined
        if (entry) offsets[ev.choice] += entry.token.length
        res.write(completionChunk(o.who, ev.choice, ev.text, null, {tokenIds, logprobs}))
      }
    },
    choiceEnd(ev) {
      start()
      outputTokens += ev.outputTokenIds.length
      res.write(o.kind === 'chat' ? chatChunk(o.who, ev.choice, {}, ev.finish) : completionChunk(o.who, ev.choice, '', ev.finish))
    },
    kvParams(params) {
      kvTransferParams = params
    },
    cached(ev) {
      cached.set(ev.prompt, ev.tokens)
    },
    end() {
      start()
      // A streamed prefill leg carries its kv_transfer_params on a closing chunk of no choices.
      if (kvTransferParams !== undefined) res.write(`data: ${JSON.stringify({id: o.who.id, object: o.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: o.who.created, model: o.who.model, choices: [], kv_transfer_params: kvTransferParams})}\n\n`)
      if (o.includeUsage) res.write(usageChunk(o.who, o.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', usage(o, outputTokens, cached)))
      res.end(SSE_DONE)
    },
    fail(status, code, message, param, headers = {}) {
      if (res.destroyed) return
      if (started) res.end(streamError(message, status >= 500 ? 'server_error' : 'invalid_request_error', code))
      else sendError(res, status, message, param ?? null, code, {...o.headers, ...headers})
    },
  }
}

interface Collected {
  text: string
  logprobs: LogprobEntry[]
  finish: FinishReason
  outputTokenIds: readonly number[]
  cumulativeLogprob: number
}

export function jsonResponder(res: ServerResponse, o: ResponderOptions, wantLogprobs: boolean): Responder {
  let kvTransferParams: Record<string, unknown> | null | undefined
  const cached = new Map<number, number>()
  const collected: Collected[] = Array.from({length: o.prompts.length * o.perPrompt}, () => ({text: '', logprobs: [], finish: 'abort', outputTokenIds: [], cumulativeLogprob: 0}))
  return {
    text(ev) {
      const c = collected[ev.choice]
      c.text += ev.text
      if (wantLogprobs && ev.logprobs && ev.tokenId !== undefined) c.logprobs.push(logprobEntry(o, ev.tokenId, ev.logprobs))
    },
    choiceEnd(ev) {
      const c = collected[ev.choice]
      c.finish = ev.finish
      c.outputTokenIds = ev.outputTokenIds
      c.cumulativeLogprob = ev.cumulativeLogprob
    },
    kvParams(params) {
      kvTransferParams = params
    },
    cached(ev) {
      cached.set(ev.prompt, ev.tokens)
    },
    end() {
      const bodies: ChoiceBody[] = []
      o.prompts.forEach((prompt, p) => {
        const candidates = collected.slice(p * o.perPrompt, (p + 1) * o.perPrompt).map((c, j) => ({c, j}))
        // best_of: the n of highest cumulative logprob (stable: ties keep generation order).
        const kept = o.perPrompt > o.n ? [...candidates].sort((a, b) => b.c.cumulativeLogprob - a.c.cumulativeLogprob || a.j - b.j).slice(0, o.n) : candidates
        kept.forEach(({c}, rank) => {
          const echo = o.echo ? prompt.text : ''
          bodies.push({
            index: p * o.n + rank,
            text: echo + c.text,
            finish: c.finish,
            logprobs: wantLogprobs ? c.logprobs : undefined,
            textOffset: echo.length,
            tokenIds: o.returnTokenIds ? {prompt: prompt.tokenIds, output: c.outputTokenIds} : undefined,
          })
        })
      })
      const u = usage(
        o,
        collected.reduce((a, c) => a + c.outputTokenIds.length, 0),
        cached,
      )
      const body = o.kind === 'chat' ? chatBody(o.who, bodies, u, o.returnTokenIds ? o.prompts[0].tokenIds : undefined) : completionBody(o.who, bodies, u)
      sendJson(res, 200, kvTransferParams === undefined ? body : {...(body as object), kv_transfer_params: kvTransferParams}, o.headers)
    },
    fail(status, code, message, param, headers = {}) {
      if (!res.destroyed) sendError(res, status, message, param ?? null, code, {...o.headers, ...headers})
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
