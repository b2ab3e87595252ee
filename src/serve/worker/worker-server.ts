/**
 * A worker's control server: health and stats for every role; handshake, prefill and lease calls
 * on prefill workers; the NDJSON token stream and the peer directory on decode and colocated
 * workers. Routes are listed in ../protocol.ts (INTERNAL). Every route requires the cluster
 * token; every body is bounded (http-hygiene.ts) and validated (protocol-schema.ts) before the
 * engine sees it.
 */
import type {IncomingMessage, Server, ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'

import {HpdError} from '../../errors.js'
import {AUTH_HEADER, CallVerifier, PROOF_HEADER} from '../auth.js'
import {ServeError} from '../backend.js'
import {closeAfterAnswer, closesConnection, createHardenedServer, HttpRefusal, readJsonBody, WORKER_HYGIENE} from '../http-hygiene.js'
import {ControlClient, sendJson, sendServeError} from '../http-json.js'
import {INTERNAL, type WorkerHealth, type WorkerRole, type WorkerStats} from '../protocol.js'
import {parseGenerateRequest, parseLeaseRequest, parsePeers, parsePrefillRequest} from '../protocol-schema.js'
import {DecodeRole} from './decode-role.js'
import type {WorkerEngine} from './engine-port.js'
import {LeakWatch} from './leak-watch.js'
import {WorkerMetrics} from './worker-metrics.js'
import {PeerDirectory} from './peer-directory.js'
import {PrefillRole} from './prefill-role.js'

export interface WorkerServerOptions {
  readonly role: WorkerRole
  readonly engine: WorkerEngine
  readonly engineEpoch: string
  readonly host: string
  /** 0: any free port. */
  readonly port?: number
  /** `host:port` others reach this server at (the control URL handed out), when not host:port. */
  readonly advertise?: string
  /**
   * The cluster token every call must be signed with (auth.ts). Undefined only with
   * `hpd worker --insecure`: every call is then accepted unsigned.
   */
  readonly clusterToken: string | undefined
  readonly leaseMs: number
  /** Longest a prefill lease may be held, extensions included. */
  readonly maxLeaseMs: number
  readonly maxBatch: number
  readonly handshakeTimeoutMs: number
  readonly transferTimeoutMs: number
  readonly pauseBeforeReadMs?: number
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
  const prefill =
    o.role === 'prefill'
      ? new PrefillRole({engine: o.engine, engineEpoch: o.engineEpoch, controlUrl: () => controlUrl, leaseMs: o.leaseMs, maxLeaseMs: o.maxLeaseMs, log: o.log})
      : undefined
  const decode =
    o.role === 'prefill'
      ? undefined
      : new DecodeRole({
          engine: o.engine,
          client,
          peers,
          maxBatch: o.maxBatch,
          handshakeTimeoutMs: o.handshakeTimeoutMs,
          transferTimeoutMs: o.transferTimeoutMs,
          allocRetryMs: 20,
          pauseBeforeReadMs: o.pauseBeforeReadMs,
          log: o.log,
        })
  const running = () => (prefill?.inFlight ?? 0) + (prefill?.leases.held ?? 0) + (decode?.inFlight ?? 0) + (decode?.batcher.size ?? 0)
  const metrics = new WorkerMetrics({
    running: () => (prefill?.inFlight ?? 0) + (decode?.batcher.size ?? 0),
    waiting: () => Math.max(0, (decode?.inFlight ?? 0) - (decode?.batcher.size ?? 0)),
    kvUsage: () => {
      const kv = o.engine.kvUsage()
      return kv.totalBlocks > 0 ? kv.usedBlocks / kv.totalBlocks : 0
    },
    leasesExpired: () => prefill?.leases.expired ?? 0,
    transferBytes: () => decode?.transferBytes ?? 0,
    transferSeconds: () => (decode?.transferMs ?? 0) / 1000,
  })
  const leaks = new LeakWatch(() => o.engine.kvUsage().usedBlocks, running)
  const refusals = new RefusalLog(o.log)

  const stats = (): WorkerStats => {
    const kv = o.engine.kvUsage()
    const problem = leaks.problem()
    return {
      role: o.role,
      engineId: o.engine.engineId,
      ok: problem === undefined,
      ...(problem ? {problem} : {}),
      inFlight: (prefill?.inFlight ?? 0) + (decode?.inFlight ?? 0),
      kvBlocksUsed: kv.usedBlocks,
      kvBlocksTotal: kv.totalBlocks,
      leasesHeld: prefill?.leases.held ?? 0,
      leasesExpired: prefill?.leases.expired ?? 0,
      leasesReleased: prefill?.leases.released ?? 0,
      transferBytes: decode?.transferBytes ?? 0,
      transferMs: decode?.transferMs ?? 0,
      handshakes: decode?.links.handshakes ?? 0,
      decodeBatchMax: decode?.batcher.maxBatchSeen ?? 0,
      refusedUnauthenticated: refusals.count,
    }
  }
  const limits = o.engine.limits
  const body = (req: IncomingMessage) => readJsonBody(req, {maxBytes: 16 * 1024 * 1024, timeoutMs: WORKER_HYGIENE.bodyTimeoutMs, maxDepth: 8})

  const route = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
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
    if (prefill) {
      if (path === INTERNAL.metadata) return sendJson(res, 200, prefill.handshake())
      if (path === INTERNAL.prefill) {
        const request = parsePrefillRequest(await body(req), limits)
        metrics.countPrompt(request.promptTokenIds.length)
        return sendJson(res, 200, await prefill.prefill(request))
      }
      if (path === INTERNAL.leaseExtend) return sendJson(res, 200, prefill.extend(parseLeaseRequest(await body(req)).requestId))
      if (path === INTERNAL.leaseRelease) return sendJson(res, 200, prefill.release(parseLeaseRequest(await body(req)).requestId))
    }
    if (decode && path === INTERNAL.peers && req.method === 'POST') {
      peers.replace(parsePeers(await body(req)).peers)
      return sendJson(res, 200, {peers: peers.size})
    }
    if (decode && path === INTERNAL.generate) {
      const request = parseGenerateRequest(await body(req), limits)
      decode.admit(request.requestId)
      const abort = new AbortController()
      res.on('close', () => {
        if (!res.writableFinished) abort.abort(new ServeError(499, 'router_closed', 'the router closed the stream'))
      })
      res.writeHead(200, {'content-type': 'application/x-ndjson'})
      const observe = metrics.follow(request.promptTokenIds.length)
      await decode.generate(
        request,
        (ev) => {
          observe(ev)
          res.write(`${JSON.stringify(ev)}\n`)
        },
        abort.signal,
      )
      res.end()
      return
    }
    req.resume()
    throw new ServeError(404, 'no_route', `${o.role} worker has no route ${path.slice(0, 200)}`)
  }

  const verifier = o.clusterToken === undefined ? undefined : new CallVerifier(o.clusterToken)
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
    void route(req, res, path).catch((error: unknown) => {
      if (res.headersSent) return void res.end()
      if (error instanceof HttpRefusal) {
        if (closesConnection(error)) closeAfterAnswer(req, res)
        return sendJson(res, error.status, {error: {code: error.code, message: error.message}})
      }
      sendServeError(res, asServeError(error))
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
      prefill?.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Engine errors a caller can act on keep their meaning across the wire. */
function asServeError(error: unknown): unknown {
  if (error instanceof HpdError && error.code === 'HPD_ENGINE_POOL_FULL') return new ServeError(503, 'kv_pool_full', error.message)
  return error
}

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
