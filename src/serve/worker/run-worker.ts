/**
 * One worker, running: its engine (cache regions in its transfer agent), its control server,
 * and in a cluster its etcd registration and, on decode workers, the prefill engines learned from
 * etcd. Shared by the supervisor's worker processes (worker/main.ts) and `hpd worker`.
 */
import {randomUUID} from 'node:crypto'

import type {Etcd3} from 'etcd3'

import {ClusterDirectory} from '../../cluster/directory.js'
import {checkReachable, etcdClient} from '../../cluster/etcd.js'
import {Registration} from '../../cluster/registration.js'
import {KvEventPublisher} from '../kv-events/publisher.js'
import {kvEventCurveKeys} from '../kv-events/curve.js'
import {PROTOCOL_VERSION} from '../protocol.js'
import {createWorkerEngine} from './engine-binding.js'
import type {WorkerEngine} from './engine-port.js'
import type {WorkerConfig} from './worker-config.js'
import {startWorkerServer} from './worker-server.js'

export type WorkerLog = (event: string, fields: Record<string, unknown>) => void

export interface RunningWorkerProcess {
  readonly controlUrl: string
  readonly engineId: string
  readonly engineEpoch: string
  close(): Promise<void>
}

export async function runWorker(config: WorkerConfig, clusterToken: string | undefined, log: WorkerLog, apiKey?: string): Promise<RunningWorkerProcess> {
  // etcd first: a worker that cannot register fails before it loads a model.
  let client: Etcd3 | undefined
  if (config.etcd) {
    client = etcdClient({urls: config.etcd.urls})
    await checkReachable(client, {urls: config.etcd.urls}).catch((error: unknown) => {
      client?.close()
      throw error
    })
  }
  const engineEpoch = randomUUID()
  let engine: WorkerEngine | undefined
  const closers: (() => Promise<void> | void)[] = []
  const closeAll = async () => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => undefined)
    client?.close()
  }
  try {
    engine = await createWorkerEngine(config)
    const e = engine
    closers.push(() => e.close())
    // KV events (vLLM's format over ZeroMQ): what prefix-aware routers (hpd's, llm-d's, Dynamo's) read.
    let events: KvEventPublisher | undefined
    let eventsEncryption: 'curve' | 'none' = 'none'
    if (config.kvEventsEndpoint && e.onCacheEvent && e.prefixCacheStats?.()) {
      // They carry every prompt's token ids: encrypted for holders of the cluster token unless asked otherwise.
      const curve = clusterToken && !config.kvEventsPlain ? kvEventCurveKeys(clusterToken) : undefined
      const publisher = await KvEventPublisher.bind(config.kvEventsEndpoint, undefined, curve)
      events = publisher
      closers.push(() => publisher.close())
      e.onCacheEvent((event) => publisher.publish(event))
      log('kv-events', {endpoint: publisher.endpoint, topic: publisher.topic, encryption: curve ? 'curve' : 'none'})
      if (!curve) log('warning', {message: `KV events on ${publisher.endpoint} are not encrypted: whoever can connect reads every prompt's token ids`, hint: clusterToken ? 'Bind them to a network trusted with prompts, or drop --kv-events-plain (hpd\'s router subscribes with the cluster token).' : 'Without a cluster token (--insecure) they cannot be encrypted: bind them to a network trusted with prompts, pass --kv-events-endpoint none, or give the worker a token.'})
      eventsEncryption = curve ? 'curve' : 'none'
    }
    const worker = await startWorkerServer({
      role: config.role,
      engine,
      engineEpoch,
      modelNames: [...new Set([...(config.servedModelNames ?? []), config.modelName])],
      apiKey,
      publicAccess: config.publicAccess,
      kvLoadFailurePolicy: config.kvLoadFailurePolicy,
      host: config.host,
      port: config.port,
      advertise: config.advertise,
      clusterToken,
      leaseMs: config.leaseMs,
      maxLeaseMs: config.maxLeaseMs,
      maxBatch: config.maxBatch,
      handshakeTimeoutMs: config.handshakeTimeoutMs,
      transferTimeoutMs: config.transferTimeoutMs,
      pauseBeforeReadMs: config.pauseBeforeReadMs,
      verifyTransfers: config.verifyTransfers,
      ...(events ? {kvEvents: {endpoint: events.endpoint, topic: events.topic, encryption: eventsEncryption}} : {}),
      log,
    })
    closers.push(() => worker.close())
    if (client && config.etcd) {
      const cluster = config.etcd.cluster
      if (config.role !== 'prefill') {
        // Decode workers contact only prefill engines of this cluster whose caches match theirs.
        const directory = await ClusterDirectory.start({client, cluster, log})
        closers.push(() => directory.close())
        const learn = () => {
          const prefills = directory.records().filter((r) => r.role === 'prefill')
          const fits = (r: (typeof prefills)[number]) => r.compatibilityHash === e.compatibilityHash && r.protocolVersion === PROTOCOL_VERSION
          const entries = prefills.filter(fits).map((r) => ({engineId: r.engineId, controlUrl: r.controlUrl}))
          const misfits = new Map(
            prefills
              .filter((r) => !fits(r))
              .map((r) => [r.engineId, r.protocolVersion !== PROTOCOL_VERSION ? `it speaks protocol ${r.protocolVersion}, this worker ${PROTOCOL_VERSION}` : `its compatibility hash is ${r.compatibilityHash.slice(0, 16)}…, this engine's ${e.compatibilityHash.slice(0, 16)}… (model, dtypes or layout differ)`]),
          )
          worker.peers.replace(entries, misfits)
        }
        directory.on('added', learn)
        directory.on('removed', learn)
        worker.peers.onMiss(() => directory.refresh())
        learn()
      }
      const registration = await Registration.start({
        client,
        cluster,
        record: {
          engineId: e.engineId,
          role: config.role,
          controlUrl: worker.controlUrl,
          tp: config.tp,
          model: config.modelName,
          compatibilityHash: e.compatibilityHash,
          engineEpoch,
          protocolVersion: PROTOCOL_VERSION,
          maxModelLen: config.maxModelLen,
          vocabSize: e.limits.vocabSize,
          registeredAtMs: Date.now(),
        },
        log,
      })
      // Deregister first on close, so the router stops routing here before the server goes.
      closers.push(() => registration.close())
    }
    return {controlUrl: worker.controlUrl, engineId: e.engineId, engineEpoch, close: closeAll}
  } catch (error) {
    await closeAll()
    throw error
  }
}
