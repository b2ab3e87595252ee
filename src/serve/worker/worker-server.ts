/**
 * A worker's one HTTP server, three kinds of route:
 * - public, as a vLLM engine serves them: the OpenAI routes (POST /v1/completions,
 *   /v1/chat/completions, GET /v1/models, /tokenize, …) with vLLM's `kv_transfer_params`
 *   contract (local-backend.ts), GET /health and GET /metrics (the names schedulers read). An API
 *   key guards /v1/* when set; a call signed with the cluster token (hpd's router) gets the proof;
 * - internal, hpd to hpd, every call signed with the cluster token (routes in ../protocol.ts
 *   INTERNAL): the transfer handshake, lease beats and release, the peer directory, health and
 *   stats for the router's pool;
 * Every body is bounded (http-hygiene.ts) and validated (the public API's schema, or
 * protocol-schema.ts) before the engine sees it. Every worker can serve every leg: its role is
 * what it registers as, and where routers send which leg.
 */
import type {IncomingMessage, Server, ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'

import {AUTH_HEADER, bearerMatches, CallVerifier, PROOF_HEADER} from '../auth.js'
import {ServeError} from '../backend.js'
import {closeAfterAnswer, closesConnection, createHardenedServer, HttpRefusal, readJsonBody, WORKER_HYGIENE} from '../http-hygiene.js'
import {ControlClient, sendJson, sendServeError} from '../http-json.js'
import {ServeMetrics} from '../metrics.js'
import {INTERNAL, type WorkerHealth, type WorkerRole, type WorkerStats} from '../protocol.js'
import {parseDigestsRequest, parseLeaseRequest, parsePeers} from '../protocol-schema.js'
import {openAiHandler} from '../router.js'
import {BlockGate} from './block-gate.js'
import {DecodeRole} from './decode-role.js'
import type {WorkerEngine} from './engine-port.js'
import {LeakWatch} from './leak-watch.js'
import {LocalBackend, type KvLoadFailurePolicy} from './local-backend.js'
import {PeerDirectory} from './peer-directory.js'
import {PrefillRole} from './prefill-role.js'
import {WorkerMetrics} from './worker-metrics.js'

export interface WorkerServerOptions {
  readonly role: WorkerRole
  readonly engine: WorkerEngine
  readonly engineEpoch: string
  /** Names clients pass as `model` (a response carries the one its request used). */
  readonly modelNames: readonly string[]
  readonly host: string
  /** 0: any free port. */
  readonly port?: number
  /** `host:port` others reach this server at (the control URL handed out), when not host:port. */
  readonly advertise?: string
  /**
   * The cluster token every internal call must be signed with (auth.ts). Undefined only with
   * `hpd worker --insecure`: every call is then accepted unsigned.
   */
  readonly clusterToken: string | undefined
  /** When set, the public /v1/* routes take `Authorization: Bearer <apiKey>` from unsigned callers. */
  readonly apiKey?: string
  /**
   * Who may call the public OpenAI routes: 'signed' (default): calls signed with the cluster token
   * (hpd's router), or carrying the API key when one is set; 'open': anyone, as a plain vLLM server
   * (for proxies that send neither, on a network you trust).
   */
  readonly publicAccess?: 'signed' | 'open'
  /** What a decode leg whose pull fails does: fail the request (default) or compute it here. */
  readonly kvLoadFailurePolicy?: KvLoadFailurePolicy
  /** This worker's KV-event publisher, announced in /v1/internal/stats for routers to subscribe. */
  readonly kvEvents?: {readonly endpoint: string; readonly topic: string; readonly encryption: 'curve' | 'none'}
  readonly leaseMs: number
  /** Longest a prefill lease may be held, extensions included. */
  readonly maxLeaseMs: number
  readonly maxBatch: number
  readonly handshakeTimeoutMs: number
  readonly transferTimeoutMs: number
  /** Bound on one request on the public routes. */
  readonly requestTimeoutMs?: number
  readonly pauseBeforeReadMs?: number
  /** Decode side: verify every transfer (DecodeRoleOptions.verifyTransfers). */
  readonly verifyTransfers?: boolean
  readonly log: (event: string, fields: Record<string, unknown>) => void
}

export interface RunningWorker {
  readonly server: Server
  readonly controlUrl: string
  readonly peers: PeerDirectory
  close(): Promise<void>
}

export async function startWorkerServer(o: WorkerServerOptions): Promise<RunningWorker> {
  let controlUrl = ''
  const peers = new PeerDirectory()
  const client = new ControlClient(o.clusterToken)
  // One admission queue for the pool, whichever leg a request is (a worker may serve every leg).
  const gate = new BlockGate(o.engine.kvGeometry().capacityBlocks)
  const allocRetryMs = 20
  const prefill = new PrefillRole({engine: o.engine, engineEpoch: o.engineEpoch, controlUrl: () => controlUrl, leaseMs: o.leaseMs, maxLeaseMs: o.maxLeaseMs, gate, allocRetryMs, log: o.log})
  const decode = new DecodeRole({
    engine: o.engine,
    client,
    peers,
    maxBatch: o.maxBatch,
    handshakeTimeoutMs: o.handshakeTimeoutMs,
    transferTimeoutMs: o.transferTimeoutMs,
    gate,
    allocRetryMs,
    pauseBeforeReadMs: o.pauseBeforeReadMs,
    verifyTransfers: o.verifyTransfers,
    log: o.log,
  })
  const running = () => prefill.inFlight + prefill.leases.held + decode.inFlight + decode.batcher.size
  const metrics = new WorkerMetrics({
    running: () => prefill.inFlight + decode.batcher.size,
    waiting: () => prefill.waiting + Math.max(0, decode.inFlight - decode.batcher.size),
    kvUsage: () => {
      const kv = o.engine.kvUsage()
      return kv.totalBlocks > 0 ? kv.usedBlocks / kv.totalBlocks : 0
    },
    leasesExpired: () => prefill.leases.expired,
    transferBytes: () => decode.transferBytes,
    transferSeconds: () => decode.transferMs / 1000,
    prefixCache: () => o.engine.prefixCacheStats?.(),
  })
  const leaks = new LeakWatch(() => o.engine.kvUsage().usedBlocks, running)
  const refusals = new RefusalLog(o.log)
  const verifier = o.clusterToken === undefined ? undefined : new CallVerifier(o.clusterToken)

  const backend = new LocalBackend({prefill, decode, failurePolicy: o.kvLoadFailurePolicy ?? 'fail', metrics, kvGeometry: () => o.engine.kvGeometry(), problem: () => leaks.problem(), log: o.log})
  const publicRoutes = openAiHandler({
    backend,
    tokenizer: o.engine.tokenizer,
    modelName: o.modelNames[0],
    servedModelNames: o.modelNames,
    maxModelLen: o.engine.limits.maxModelLen,
    vocabSize: o.engine.limits.vocabSize,
    // The OpenAI layer's own counters; what schedulers read is `metrics` above.
    metrics: new ServeMetrics(),
    requestTimeoutMs: o.requestTimeoutMs,
    // The key is checked above (signed calls need none).
    acceptKvTransferParams: true,
    verifier,
    hygiene: WORKER_HYGIENE,
    log: (e) => {
      if (e.event !== 'request-done') o.log(e.event, {requestId: e.requestId, status: e.status, code: e.code, message: e.message})
    },
  })

  const stats = (): WorkerStats => {
    const kv = o.engine.kvUsage()
    const problem = leaks.problem()
    return {
      role: o.role,
      engineId: o.engine.engineId,
      ok: problem === undefined,
      ...(problem ? {problem} : {}),
      inFlight: prefill.inFlight + decode.inFlight,
      kvBlocksUsed: kv.usedBlocks,
      kvBlocksTotal: kv.totalBlocks,
      kvGeometry: o.engine.kvGeometry(),
      kvBlocksCommitted: gate.committedBlocks,
      kvQueued: gate.waiting,
      leasesHeld: prefill.leases.held,
      leasesExpired: prefill.leases.expired,
      leasesReleased: prefill.leases.released,
      transferBytes: decode.transferBytes,
      transferMs: decode.transferMs,
      handshakes: decode.links.handshakes,
      decodeBatchMax: decode.batcher.maxBatchSeen,
      refusedUnauthenticated: refusals.count,
      ...(o.verifyTransfers ? {verifiedTransfers: decode.verifiedTransfers, verifyMs: decode.verifyMs} : {}),
      ...(o.kvEvents ? {kvEvents: o.kvEvents} : {}),
    }
  }
  const body = (req: IncomingMessage) => readJsonBody(req, {maxBytes: 1024 * 1024, timeoutMs: WORKER_HYGIENE.bodyTimeoutMs, maxDepth: 8})

  const internal = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (path === INTERNAL.health) {
      const problem = leaks.problem()
      const h: WorkerHealth = {
        ok: problem === undefined,
        ...(problem ? {problem} : {}),
        role: o.role,
        engineId: o.engine.engineId,
        engineEpoch: o.engineEpoch,
        tpSize: o.engine.tpSize,
        compatibilityHash: o.engine.compatibilityHash,
      }
      return sendJson(res, 200, h)
    }
    if (path === INTERNAL.stats) return sendJson(res, 200, stats())
    if (path === INTERNAL.metadata) return sendJson(res, 200, prefill.handshake())
    if (path === INTERNAL.leaseExtend) {
      const l = parseLeaseRequest(await body(req))
      return sendJson(res, 200, prefill.extend(l.requestId, l.grant, l.blockIds || l.promptDigest ? {blockIds: l.blockIds, promptDigest: l.promptDigest} : undefined, l.claim))
    }
    if (path === INTERNAL.digests) {
      const r = parseDigestsRequest(await body(req))
      return sendJson(res, 200, await prefill.digests(r.requestId, r.decodeTp, r.grant, r.cachedTokens))
    }
    if (path === INTERNAL.leaseRelease) {
      const l = parseLeaseRequest(await body(req))
      return sendJson(res, 200, prefill.release(l.requestId, l.grant, l.claim, l.abandon === true))
    }
    if (path === INTERNAL.peers && req.method === 'POST') {
      peers.replace(parsePeers(await body(req)).peers)
      return sendJson(res, 200, {peers: peers.size})
    }
    req.resume()
    throw new ServeError(404, 'no_route', `no internal route ${path.slice(0, 200)}`)
  }

  const server = createHardenedServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    // Schedulers and probes read these without the cluster token (as vLLM serves them): counts
    // and gauges only, no addresses, keys or ids.
    if (req.method === 'GET' && (path === '/metrics' || path === '/health')) {
      req.resume()
      if (path === '/health') {
        const problem = leaks.problem()
        return sendJson(res, problem ? 503 : 200, problem ? {status: 'unhealthy', reason: problem} : {status: 'ok'})
      }
      void metrics.render().then((text) => {
        res.writeHead(200, {'content-type': metrics.registry.contentType})
        res.end(text)
      })
      return
    }
    if (!path.startsWith('/v1/internal/')) {
      // The prefill leg holds blocks and the decode leg makes this worker read: strangers may not
      // call them unless the operator opened the routes (the router's calls are signed).
      // A signature is checked by the OpenAI handler (401 when bad); without a token there is none to check.
      const signed = verifier !== undefined && req.headers[AUTH_HEADER] !== undefined
      const keyed = o.apiKey !== undefined && bearerMatches(req.headers.authorization, o.apiKey)
      // Without a cluster token (--insecure) nothing is signed: the routes are open, unless an API
      // key was given (then it is required: a key the operator set is never silently ignored).
      const access = o.clusterToken === undefined && o.apiKey === undefined ? 'open' : (o.publicAccess ?? 'signed')
      if (!signed && !keyed && access === 'signed' && !unguarded(path)) {
        req.resume()
        refusals.note(req, path, o.apiKey ? 'no API key' : 'unsigned')
        sendJson(res, 401, {error: {message: o.apiKey ? 'a valid API key is required: send `Authorization: Bearer <key>`' : 'this worker serves calls signed with its cluster token only (start it with --open-api or --api-key-file for other clients)', type: 'authentication_error', param: null, code: 'unauthorized'}})
        return
      }
      return publicRoutes(req, res)
    }
    if (verifier) {
      const verdict = verifier.verify(req.headers[AUTH_HEADER], req.method ?? 'GET', req.url ?? '/')
      if (!verdict.ok) {
        req.resume()
        refusals.note(req, path, verdict.why)
        sendJson(res, 401, {error: {code: 'unauthorized', message: 'this endpoint needs a call signed with the cluster token'}})
        return
      }
      res.setHeader(PROOF_HEADER, verdict.proof)
    }
    void internal(req, res, path).catch((error: unknown) => {
      if (res.headersSent) return void res.end()
      if (error instanceof HttpRefusal) {
        if (closesConnection(error)) closeAfterAnswer(req, res)
        return sendJson(res, error.status, {error: {code: error.code, message: error.message}})
      }
      sendServeError(res, error)
    })
  }, WORKER_HYGIENE)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(o.port ?? 0, o.host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  controlUrl = o.advertise ? `http://${o.advertise}` : `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`
  return {
    server,
    controlUrl,
    peers,
    close: async () => {
      prefill.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Public routes that hold nothing and read nothing: probes and metadata, open to all. */
const UNGUARDED = new Set(['/v1/models', '/version'])
const unguarded = (path: string) => UNGUARDED.has(path) || path.startsWith('/v1/models/')

/** Logs refused unauthenticated calls at most once a second, with how many were refused meanwhile. */
class RefusalLog {
  count = 0
  private lastLogMs = 0
  private unlogged = 0

  constructor(private readonly log: (event: string, fields: Record<string, unknown>) => void) {}

  note(req: IncomingMessage, path: string, why: string): void {
    this.count++
    this.unlogged++
    const now = Date.now()
    if (now - this.lastLogMs < 1000) return
    this.lastLogMs = now
    this.log('unauthenticated', {from: req.socket.remoteAddress, path: path.slice(0, 100), why, refused: this.unlogged})
    this.unlogged = 0
  }
}
