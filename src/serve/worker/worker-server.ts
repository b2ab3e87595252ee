/**
 * A worker's control server (loopback HTTP): health and stats for every role; handshake,
 * prefill and lease calls on prefill workers; the NDJSON token stream on decode and colocated
 * workers. Routes are listed in ../protocol.ts (INTERNAL).
 */
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'

import {ServeError} from '../backend.js'
import {readBody, sendJson, sendServeError} from '../http-json.js'
import {INTERNAL, type GenerateRequest, type WorkerHealth, type WorkerRole, type WorkerStats} from '../protocol.js'
import {DecodeRole} from './decode-role.js'
import type {WorkerEngine} from './engine-port.js'
import {PrefillRole} from './prefill-role.js'

export interface WorkerServerOptions {
  readonly role: WorkerRole
  readonly engine: WorkerEngine
  readonly engineEpoch: string
  readonly host: string
  readonly leaseMs: number
  readonly maxBatch: number
  readonly handshakeTimeoutMs: number
  readonly transferTimeoutMs: number
  readonly pauseBeforeReadMs?: number
  readonly log: (event: string, fields: Record<string, unknown>) => void
}

export interface RunningWorker {
  readonly server: Server
  readonly controlUrl: string
  close(): Promise<void>
}

export async function startWorkerServer(o: WorkerServerOptions): Promise<RunningWorker> {
  let controlUrl = ''
  const prefill =
    o.role === 'prefill' ? new PrefillRole({engine: o.engine, engineEpoch: o.engineEpoch, controlUrl: () => controlUrl, leaseMs: o.leaseMs, log: o.log}) : undefined
  const decode =
    o.role === 'prefill'
      ? undefined
      : new DecodeRole({
          engine: o.engine,
          maxBatch: o.maxBatch,
          handshakeTimeoutMs: o.handshakeTimeoutMs,
          transferTimeoutMs: o.transferTimeoutMs,
          allocRetryMs: 20,
          pauseBeforeReadMs: o.pauseBeforeReadMs,
          log: o.log,
        })

  const stats = (): WorkerStats => {
    const kv = o.engine.kvUsage()
    return {
      role: o.role,
      engineId: o.engine.engineId,
      inFlight: (prefill?.inFlight ?? 0) + (decode?.inFlight ?? 0),
      kvBlocksUsed: kv.usedBlocks,
      kvBlocksTotal: kv.totalBlocks,
      leasesHeld: prefill?.leases.held ?? 0,
      leasesExpired: prefill?.leases.expired ?? 0,
      leasesReleased: prefill?.leases.released ?? 0,
      transferBytes: decode?.transferBytes ?? 0,
      transferMs: decode?.transferMs ?? 0,
      handshakes: decode?.peers.handshakes ?? 0,
      decodeBatchMax: decode?.batcher.maxBatchSeen ?? 0,
    }
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    void (async () => {
      try {
        if (path === INTERNAL.health) {
          const h: WorkerHealth = {
            ok: true,
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
          if (path === INTERNAL.prefill) return sendJson(res, 200, await prefill.prefill(await readBody(req)))
          if (path === INTERNAL.leaseExtend) return sendJson(res, 200, prefill.extend(await readBody(req)))
          if (path === INTERNAL.leaseRelease) return sendJson(res, 200, prefill.release(await readBody(req)))
        }
        if (decode && path === INTERNAL.generate) {
          const body = (await readBody(req)) as GenerateRequest
          const abort = new AbortController()
          res.on('close', () => {
            if (!res.writableFinished) abort.abort(new ServeError(499, 'router_closed', 'the router closed the stream'))
          })
          res.writeHead(200, {'content-type': 'application/x-ndjson'})
          await decode.generate(body, (ev) => res.write(`${JSON.stringify(ev)}\n`), abort.signal)
          res.end()
          return
        }
        throw new ServeError(404, 'no_route', `${o.role} worker has no route ${path}`)
      } catch (error) {
        if (!res.headersSent) sendServeError(res, error)
        else res.end()
      }
    })()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, o.host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  controlUrl = `http://${o.host}:${port}`
  return {
    server,
    controlUrl,
    close: async () => {
      prefill?.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
