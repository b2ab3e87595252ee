/**
 * `hpd bench transfer --etcd URL --cluster NAME --role prefill|decode`: the two sides on two hosts,
 * as nixlbench runs across nodes. They meet through etcd: the prefill side listens on a control
 * socket (--listen) and puts its address under /hpd/<cluster>/bench/prefill with a kept-alive
 * lease; the decode side (this process's orchestrator plus its decode worker) finds it there,
 * connects, and drives the same messages a local run sends over IPC, as NDJSON. Both ends prove
 * the cluster token to each other (HMAC over fresh nonces, compared in constant time) before
 * anything else, so the agents' metadata goes to a member only. The run's result (or its error)
 * goes back to the prefill side at the end, which reports it too.
 */
import {createHmac, randomBytes, timingSafeEqual} from 'node:crypto'
import {createConnection, createServer, type Server, type Socket} from 'node:net'
import {createInterface} from 'node:readline'

import type {Etcd3, Lease} from 'etcd3'

import {asErrorJson, errorFromJson, errorToJson} from '../../child/index.js'
import {checkReachable, etcdClient} from '../../cluster/etcd.js'
import {EnvironmentError, HpdError, NativeError, UsageError} from '../../errors.js'
import type {WorkerEndpoint} from './endpoint.js'
import type {FromWorker, ToWorker, WorkerReady} from './protocol.js'
import type {BenchCluster, BenchEvent, BenchTransferOptions, BenchTransferResult} from './types.js'
import {WorkerSession} from './worker-session.js'

export function prefillKey(cluster: string): string {
  return `/hpd/${cluster}/bench/prefill`
}

/** What the prefill side publishes in etcd. */
interface PrefillRecord {
  readonly address: string
  readonly port: number
  readonly host: string
  readonly pid: number
}

/** Lines on the socket: the handshake, then ToWorker / FromWorker, then the run's end. */
type Line =
  | {readonly hello: string} // server nonce
  | {readonly proof: string | null; readonly nonce: string} // client proof (null: insecure) + client nonce
  | {readonly welcome: {readonly proof: string | null; readonly ready: WorkerReady; readonly options: Record<string, unknown>}}
  | {readonly refused: string}
  | {readonly to: ToWorker & {readonly result?: BenchTransferResult}}
  | {readonly from: FromWorker}

const LEASE_TTL_S = 5
/** Bound on one handshake line (a slow or silent peer is dropped). */
const HANDSHAKE_MS = 10_000
/** Longest line accepted: a digest answer of a long prompt is the largest message. */
const MAX_LINE_BYTES = 64 << 20

function proofOf(token: string | undefined, label: string, nonce: string): string | null {
  return token === undefined ? null : createHmac('sha256', token).update(`hpd-bench-v1 ${label}\n${nonce}`).digest('base64url')
}

function proofOk(expected: string | null, got: unknown): boolean {
  if (expected === null) return true
  if (typeof got !== 'string') return false
  const a = Buffer.from(expected)
  const b = Buffer.from(got)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** The options both sides must agree on (the rest is each side's own business). */
function sharedOptions(o: BenchTransferOptions): Record<string, unknown> {
  return {
    model: o.model,
    prefillTp: o.prefillTp,
    decodeTp: o.decodeTp,
    promptTokens: o.promptTokens,
    requests: o.requests,
    transport: o.transport,
    tcpSegmentBytes: o.tcpSegmentBytes,
    verify: o.verify,
    attentionBackend: o.attentionBackend,
    kvCacheDtype: o.kvCacheDtype,
    mambaConvDtype: o.mambaConvDtype ?? 'auto',
    mambaSsmDtype: o.mambaSsmDtype ?? 'auto',
    blockSize: o.blockSize ?? null,
    path: o.path,
    lists: o.lists,
    seed: o.seed,
  }
}

function mismatch(ours: Record<string, unknown>, theirs: Record<string, unknown>): string[] {
  return Object.keys(ours).filter((k) => JSON.stringify(ours[k]) !== JSON.stringify(theirs[k]))
}

/** NDJSON over a socket, lines bounded. */
class LineSocket {
  private readonly listeners = new Set<(line: Line) => void>()
  private ended: ((why: string) => void)[] = []
  closed = false

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 1000)
    const rl = createInterface({input: socket, crlfDelay: Number.POSITIVE_INFINITY})
    // The socket's own 'error' (below) ends the channel; readline re-emits it and must not throw.
    rl.on('error', () => undefined)
    rl.on('line', (text) => {
      if (text.length > MAX_LINE_BYTES) return this.destroy('a line over the size bound')
      let line: Line
      try {
        line = JSON.parse(text) as Line
      } catch {
        return this.destroy('a line that is not JSON')
      }
      for (const l of this.listeners) l(line)
    })
    const end = (why: string) => {
      if (this.closed) return
      this.closed = true
      for (const e of this.ended) e(why)
    }
    socket.on('close', () => end('the connection closed'))
    socket.on('error', (error) => end(error.message))
  }

  send(line: Line): void {
    if (!this.closed) this.socket.write(`${JSON.stringify(line)}\n`)
  }

  on(listener: (line: Line) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  onEnd(listener: (why: string) => void): void {
    this.ended.push(listener)
  }

  /** The next line that `pick` accepts, within `ms`. */
  next<T>(pick: (line: Line) => T | undefined, ms: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(() => reject(new Error(`no ${what} within ${ms} ms`))), ms)
      const off = this.on((line) => {
        const v = pick(line)
        if (v !== undefined) done(() => resolve(v))
      })
      this.onEnd((why) => done(() => reject(new Error(`${why} before ${what}`))))
      let settled = false
      function done(f: () => void) {
        if (settled) return
        settled = true
        clearTimeout(timer)
        off()
        f()
      }
    })
  }

  destroy(why: string): void {
    this.socket.destroy(new Error(why))
  }
}

function peerGone(side: string, why: string): NativeError {
  return new NativeError('HPD_BENCH_PEER_GONE', `the ${side} side went away: ${why}`, {hint: 'Check that side\'s output; both sides must run until the end of the run.', details: {side}})
}

/** The decode side's view of a prefill side on another host: found in etcd, reached over the socket. */
export async function remotePrefill(options: BenchTransferOptions, c: BenchCluster): Promise<WorkerEndpoint> {
  const record = await findPrefill(c)
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection({host: record.address, port: record.port, localAddress: c.host, timeout: HANDSHAKE_MS}, () => resolve(s))
    s.once('error', (error) => reject(new EnvironmentError('HPD_BENCH_PEER_UNREACHABLE', `the prefill side at ${record.address}:${record.port} (from etcd) cannot be reached: ${error.message}`, {hint: 'Check --listen on the prefill host and that this host can reach it.', details: {address: record.address, port: record.port}})))
    s.once('timeout', () => s.destroy(new Error(`no connection within ${HANDSHAKE_MS} ms`)))
  })
  socket.setTimeout(0)
  const ls = new LineSocket(socket)
  try {
    const nonce = await ls.next((l) => ('hello' in l ? l.hello : undefined), HANDSHAKE_MS, 'greeting')
    const mine = randomBytes(16).toString('base64url')
    ls.send({proof: proofOf(c.token, 'client', nonce), nonce: mine})
    const answer = await ls.next((l) => ('welcome' in l ? l : 'refused' in l ? l : undefined), HANDSHAKE_MS, 'welcome')
    if ('refused' in answer) throw new UsageError('HPD_BENCH_PEER_REFUSED', `the prefill side refused this decode side: ${answer.refused}`, {hint: 'Both sides need the same cluster token (--auth-token-file / HPD_AUTH_TOKEN), or both --insecure.'})
    if (!proofOk(proofOf(c.token, 'server', mine), answer.welcome.proof)) throw new UsageError('HPD_BENCH_PEER_REFUSED', 'the prefill side did not prove the cluster token', {hint: 'Both sides need the same cluster token.'})
    const differ = mismatch(sharedOptions(options), answer.welcome.options)
    if (differ.length > 0) {
      throw new UsageError('HPD_BENCH_OPTIONS_MISMATCH', `the two sides were started with different ${differ.map((k) => `${k} (decode ${JSON.stringify(sharedOptions(options)[k])}, prefill ${JSON.stringify(answer.welcome.options[k])})`).join(', ')}`, {
        hint: 'Run both sides with the same flags (model, TP sizes, prompt tokens, requests, transport, verify, path).',
        details: {fields: differ},
      })
    }
    return socketEndpoint(ls, answer.welcome.ready)
  } catch (error) {
    ls.destroy('handshake failed')
    if (error instanceof HpdError) throw error
    throw peerGone('prefill', (error as Error).message)
  }
}

async function findPrefill(c: BenchCluster): Promise<PrefillRecord> {
  const client = etcdClient({urls: c.urls})
  try {
    await checkReachable(client, {urls: c.urls})
    const deadline = Date.now() + c.waitMs
    for (;;) {
      const value = await client.get(prefillKey(c.cluster)).string()
      if (value) return JSON.parse(value) as PrefillRecord
      if (Date.now() > deadline) {
        throw new EnvironmentError('HPD_BENCH_PEER_NOT_FOUND', `no prefill side registered under ${prefillKey(c.cluster)} in etcd at ${c.urls.join(', ')} within ${c.waitMs} ms`, {
          hint: 'Start `hpd bench transfer … --role prefill` with the same --etcd and --cluster on the other host.',
          details: {cluster: c.cluster},
        })
      }
      await new Promise((r) => setTimeout(r, 250))
    }
  } finally {
    client.close()
  }
}

function socketEndpoint(ls: LineSocket, ready: WorkerReady): WorkerEndpoint {
  let closing = false
  return {
    role: 'prefill',
    ready: Promise.resolve(ready),
    send: (m) => ls.send({to: m}),
    onMessage: (listener) => {
      ls.on((l) => {
        if ('from' in l) listener(l.from)
      })
    },
    onGone: (listener) => ls.onEnd((why) => closing || listener(peerGone('prefill', why))),
    close: async (error, result?: BenchTransferResult) => {
      closing = true
      ls.send({to: {type: 'close', ...(error ? {error: errorToJson(error)} : {}), ...(result ? {result} : {})}})
      await new Promise<void>((resolve) => {
        ls.socket.end(() => resolve())
        setTimeout(resolve, 2000).unref()
      })
      ls.socket.destroy()
    },
  }
}

/**
 * The prefill side across hosts: its worker in this process, a control socket on --listen,
 * registered in etcd until the decode side has connected and the run ended. Yields the same events
 * as a local run, from the result the decode side sends at the end; throws the run's error.
 */
export async function* prefillSide(options: BenchTransferOptions): AsyncGenerator<BenchEvent, BenchTransferResult> {
  const c = options.cluster!
  const client = etcdClient({urls: c.urls})
  let server: Server | undefined
  let lease: Lease | undefined
  let session: WorkerSession | undefined
  try {
    await checkReachable(client, {urls: c.urls})
    const replies: ((m: FromWorker) => void)[] = []
    session = new WorkerSession('prefill', options, (m) => replies.forEach((r) => r(m)))
    const ready = session.init()
    server = createServer()
    const s = server
    await new Promise<void>((resolve, reject) => {
      s.once('error', (error) => reject(new EnvironmentError('HPD_BENCH_LISTEN', `cannot listen on ${c.host}:${c.port}: ${error.message}`, {hint: 'Pick another --listen port, or an address of this host.'})))
      s.listen(c.port, c.host, () => resolve())
    })
    const port = (s.address() as {port: number}).port
    lease = await register(client, c, {address: c.host, port, host: ready.host, pid: process.pid})
    const run = await acceptDecode(s, c, options, ready, session, (r) => replies.push(r))
    yield {type: 'setup', registrationMs: ready.registrationMs, firstHandshakeMs: 0, processes: 2}
    const result = await run
    for (const [index, r] of result.cases.entries()) yield {type: 'case-done', index, result: r}
    yield {type: 'summary', result}
    return result
  } finally {
    await lease?.revoke().catch(() => undefined)
    server?.close()
    session?.close()
    client.close()
  }
}

async function register(client: Etcd3, c: BenchCluster, record: PrefillRecord): Promise<Lease> {
  const lease = client.lease(LEASE_TTL_S, {autoKeepAlive: true})
  await lease.put(prefillKey(c.cluster)).value(JSON.stringify(record))
  return lease
}

/**
 * Waits (bounded by --wait-ms) for a decode side that proves the token and runs the same options;
 * refuses others and keeps waiting. Resolves once connected, with the run's outcome to await.
 */
function acceptDecode(server: Server, c: BenchCluster, options: BenchTransferOptions, ready: WorkerReady, session: WorkerSession, onReply: (r: (m: FromWorker) => void) => void): Promise<Promise<BenchTransferResult>> {
  return new Promise((resolveConnected, rejectConnected) => {
    let taken = false
    const timer = setTimeout(() => {
      if (!taken) rejectConnected(new EnvironmentError('HPD_BENCH_PEER_NOT_FOUND', `no decode side connected within ${c.waitMs} ms`, {hint: 'Start `hpd bench transfer … --role decode` with the same --etcd and --cluster on the other host.', details: {cluster: c.cluster}}))
    }, c.waitMs)
    server.on('connection', (socket) => {
      if (taken) return void socket.destroy()
      const ls = new LineSocket(socket)
      void (async () => {
        const nonce = randomBytes(16).toString('base64url')
        ls.send({hello: nonce})
        const hello = await ls.next((l) => ('proof' in l ? l : undefined), HANDSHAKE_MS, 'proof')
        if (!proofOk(proofOf(c.token, 'client', nonce), hello.proof) || typeof hello.nonce !== 'string') {
          ls.send({refused: 'wrong or missing cluster token'})
          ls.socket.end()
          return
        }
        if (taken) return void ls.destroy('a decode side is already connected')
        taken = true
        clearTimeout(timer)
        ls.send({welcome: {proof: proofOf(c.token, 'server', hello.nonce), ready, options: sharedOptions(options)}})
        resolveConnected(serveDecode(ls, session, onReply))
      })().catch(() => ls.destroy('handshake failed'))
    })
  })
}

/** Answers the decode side's messages until it closes the run; resolves with its result, rejects with its error. */
function serveDecode(ls: LineSocket, session: WorkerSession, onReply: (r: (m: FromWorker) => void) => void): Promise<BenchTransferResult> {
  onReply((m) => ls.send({from: m}))
  return new Promise((resolve, reject) => {
    ls.on((l) => {
      if (!('to' in l)) return
      const m = l.to
      if (m.type === 'close') {
        const e = asErrorJson(m.error)
        if (e) reject(errorFromJson(e, {side: 'decode'}))
        else if (m.result) resolve(m.result)
        else reject(peerGone('decode', 'it ended the run without a result'))
        return
      }
      session.handle(m).then(
        (reply) => reply && ls.send({from: reply}),
        (error: unknown) => ls.send({from: {type: 'error', error: errorToJson(error)}}),
      )
    })
    ls.onEnd((why) => reject(peerGone('decode', why)))
  })
}
