/**
 * HTTP hygiene shared by the router and the worker servers: every connection and every request
 * body has a bound, clients cannot hold unbounded connections, JSON bodies have a size and
 * nesting-depth limit, and every refusal (parser errors Node answers itself included) carries a
 * JSON error body, never a bare status line.
 */
import {createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse} from 'node:http'
import type {Socket} from 'node:net'

export interface HygieneOptions {
  /** Time to receive the request headers (slowloris on headers). */
  readonly headersTimeoutMs: number
  /** Time to receive a request body once its headers arrived (slowloris on bodies). */
  readonly bodyTimeoutMs: number
  /** Idle keep-alive connections are closed after this. */
  readonly keepAliveTimeoutMs: number
  /** Open connections in total; past it new ones get a JSON 503 and are closed. */
  readonly maxConnections: number
  /** Open connections from one client address; past it new ones get a JSON 503 and are closed. */
  readonly maxConnectionsPerClient: number
}

export const ROUTER_HYGIENE: HygieneOptions = {
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 4096,
  maxConnectionsPerClient: 512,
}

/**
 * Worker control servers: the peers are the router and other workers, which keep connections
 * alive and idle for long stretches (llm-d's sidecar holds them 90 s), so keep-alive outlasts that.
 */
export const WORKER_HYGIENE: HygieneOptions = {
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  keepAliveTimeoutMs: 125_000,
  maxConnections: 4096,
  maxConnectionsPerClient: 2048,
}

/** A refusal before the request reached its handler (size, depth, timeout, bad JSON). */
export class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** The JSON error body every refusal carries (OpenAI's shape, which hpd's own clients read too). */
export function errorJson(status: number, code: string, message: string): string {
  const type = status === 503 ? 'service_unavailable' : status >= 500 ? 'server_error' : 'invalid_request_error'
  return JSON.stringify({error: {message, type, param: null, code}})
}

const STATUS_TEXT: Record<number, string> = {400: 'Bad Request', 405: 'Method Not Allowed', 408: 'Request Timeout', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large', 503: 'Service Unavailable'}

function rawResponse(status: number, code: string, message: string): string {
  const body = errorJson(status, code, message)
  return `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
}

/** A node:http server with the bounds above applied. */
export function createHardenedServer(handler: RequestListener, o: HygieneOptions): Server {
  // Node checks header/request timeouts on this beat (default 30 s: a bound of 10 s became 40 s).
  // Node would answer a request without Host with a bare 400 itself; refuse it here with JSON.
  const server = createServer({connectionsCheckingInterval: 1000, requireHostHeader: false}, (req, res) => {
    if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1 && req.headers.host === undefined) {
      req.resume()
      const body = errorJson(400, 'missing_host', 'an HTTP/1.1 request needs a Host header')
      res.writeHead(400, {'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close'})
      res.end(body)
      return
    }
    handler(req, res)
  })
  server.headersTimeout = o.headersTimeoutMs
  // Backstop only: readJsonBody enforces bodyTimeoutMs with a JSON 408 of its own.
  server.requestTimeout = o.headersTimeoutMs + o.bodyTimeoutMs + 5000
  server.keepAliveTimeout = o.keepAliveTimeoutMs
  server.headersTimeout = Math.min(server.headersTimeout, server.requestTimeout)

  const perClient = new Map<string, number>()
  let open = 0
  server.on('connection', (socket: Socket) => {
    const who = socket.remoteAddress ?? 'unknown'
    const mine = perClient.get(who) ?? 0
    if (open >= o.maxConnections || mine >= o.maxConnectionsPerClient) {
      const which = open >= o.maxConnections ? `${o.maxConnections} connections in total` : `${o.maxConnectionsPerClient} connections from ${who}`
      socket.end(rawResponse(503, 'too_many_connections', `the server already holds ${which}; close idle connections or retry later`))
      socket.destroySoon()
      return
    }
    open++
    perClient.set(who, mine + 1)
    socket.once('close', () => {
      open--
      const left = (perClient.get(who) ?? 1) - 1
      if (left <= 0) perClient.delete(who)
      else perClient.set(who, left)
    })
  })
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // A response already under way (its headers sent) cannot be replaced: drop the connection.
    const inFlight = (socket as Socket & {_httpMessage?: {headersSent?: boolean}})._httpMessage
    if (!socket.writable || inFlight?.headersSent) {
      socket.destroy()
      return
    }
    const [status, code, message] =
      error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', `the request headers did not arrive within ${o.headersTimeoutMs} ms`]
        : error.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'headers_too_large', 'the request headers are too large']
          : [400, 'bad_http', `the request is not valid HTTP/1.1 (${error.code ?? 'parse error'})`]
    socket.end(rawResponse(status, code, message))
    socket.destroySoon()
  })
  // CONNECT bypasses the request handler: answer it too (Node would just close the socket).
  // (Upgrade requests, e.g. curl's `Upgrade: h2c`, reach the handler as plain requests: left so.)
  server.on('connect', (req: {method?: string}, socket: Socket) => {
    socket.end(rawResponse(405, 'method_not_allowed', `method ${req.method ?? 'CONNECT'} is not allowed here: this server speaks JSON over HTTP/1.1`))
    socket.destroySoon()
  })
  return server
}

export interface BodyLimits {
  readonly maxBytes: number
  readonly timeoutMs: number
  /** Deepest nesting of arrays/objects accepted (JSON.parse itself is fine; recursive readers are not). */
  readonly maxDepth: number
}

export const DEFAULT_BODY_LIMITS: BodyLimits = {maxBytes: 4 * 1024 * 1024, timeoutMs: 10_000, maxDepth: 32}

/**
 * Reads and parses a JSON body within the limits. A body that does not finish in time gets a 408
 * (the caller answers it; the connection is closed after the answer, since the rest of the body
 * may still be on its way).
 */
export async function readJsonBody(req: IncomingMessage, limits: BodyLimits = DEFAULT_BODY_LIMITS): Promise<unknown> {
  const raw = await readRaw(req, limits)
  if (raw.trim() === '') throw new HttpRefusal(400, 'invalid_body', 'the request body is empty; send a JSON object')
  const depth = jsonDepth(raw)
  if (depth > limits.maxDepth) throw new HttpRefusal(400, 'json_too_deep', `the request body nests arrays/objects ${depth} deep; at most ${limits.maxDepth} levels are accepted`)
  try {
    return JSON.parse(raw) as unknown
  } catch (error) {
    throw new HttpRefusal(400, 'invalid_json', `the request body is not valid JSON: ${(error as Error).message.slice(0, 200)}`)
  }
}

function readRaw(req: IncomingMessage, limits: BodyLimits): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const fail = (e: HttpRefusal) => {
      cleanup()
      // The rest of the body may still arrive: discard it (the client can then read the answer),
      // and close the connection after the answer (see closeAfterAnswer).
      req.on('error', () => undefined)
      req.resume()
      reject(Object.assign(e, {closeConnection: true}))
    }
    const timer = setTimeout(() => fail(new HttpRefusal(408, 'body_timeout', `the request body did not arrive within ${limits.timeoutMs} ms`)), limits.timeoutMs)
    let tooLarge = false
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (tooLarge) {
        // Keep reading (and dropping) a moderately oversized body, so the client finishes its
        // upload and reads the 413 instead of EPIPE; a huge one is cut off.
        if (size > DRAIN_LIMIT_BYTES) fail(tooLargeRefusal(limits))
        return
      }
      if (size > limits.maxBytes) {
        tooLarge = true
        chunks.length = 0
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      if (tooLarge) reject(tooLargeRefusal(limits))
      else resolve(Buffer.concat(chunks).toString('utf8'))
    }
    const onError = (error: Error) => {
      cleanup()
      reject(new HttpRefusal(400, 'body_error', `the request body could not be read (${error.message})`))
    }
    const cleanup = () => {
      clearTimeout(timer)
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
  })
}

/** Oversized bodies up to this many bytes are read to their end before the 413 (see readRaw). */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024

function tooLargeRefusal(limits: BodyLimits): HttpRefusal {
  return new HttpRefusal(413, 'body_too_large', `the request body exceeds ${limits.maxBytes} bytes`)
}

/** Deepest nesting of arrays/objects in JSON text (strings skipped), in one pass. */
export function jsonDepth(text: string): number {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth)
    else if (c === 0x5d || c === 0x7d) depth--
  }
  return max
}

/** Whether a refusal asked for its connection to be closed after the answer (partial body). */
export function closesConnection(error: unknown): boolean {
  return (error as {closeConnection?: boolean})?.closeConnection === true
}

/**
 * After answering a request whose body was refused midway: the answer carries
 * `connection: close`; the rest of the body is discarded while it keeps coming, for at most
 * `graceMs` (a client still uploading would otherwise get EPIPE instead of the answer), then the
 * connection is dropped (a slow client does not keep it).
 */
export function closeAfterAnswer(req: IncomingMessage, res: ServerResponse, graceMs = 5000): void {
  res.once('finish', () => {
    const socket = req.socket
    const timer = setTimeout(() => socket.destroy(), graceMs)
    timer.unref()
    socket.once('close', () => clearTimeout(timer))
    if (req.complete) socket.destroySoon()
    else req.once('end', () => socket.destroySoon())
  })
}
