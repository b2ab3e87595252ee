/**
 * `hpd bench serve`: the load of serve-load.ts against a running server (--url), or against
 * servers it starts itself (--spawn), optionally the same load against a colocated server
 * (--compare-colocated) for a side-by-side report. Spawned servers are always stopped.
 */
import {checkServeLayout, resolveServeModel} from '../serve/serve-model.js'
import {startServe, type RunningServe} from '../serve/serve.js'
import {runServeLoad, type ServeLoadEvent, type ServeLoadReport} from './serve-load.js'

export interface ServeBenchOptions {
  readonly url?: string
  readonly spawn: boolean
  readonly compareColocated: boolean
  readonly model: string
  readonly prefillTp: number
  readonly decodeTp: number
  readonly prefillWorkers: number
  readonly decodeWorkers: number
  readonly concurrency: number
  readonly requests: number
  readonly promptTokens: number
  readonly outputTokens: number
  readonly seed: number
  readonly onServerLog?: (worker: string, line: string) => void
}

export interface ServeBenchResult {
  readonly runs: readonly ServeLoadReport[]
  /** colocated / disaggregated ratios when both ran (throughput > 1: colocated faster). */
  readonly comparison?: {
    readonly outputThroughputRatio: number
    readonly ttftMeanRatio: number
    readonly tpotMeanRatio: number
  }
}

export async function* runServeBench(o: ServeBenchOptions): AsyncGenerator<ServeLoadEvent, ServeBenchResult> {
  const runs: ServeLoadReport[] = []
  const load = (url: string, label: string) =>
    runServeLoad({url, label, concurrency: o.concurrency, requests: o.requests, promptTokens: o.promptTokens, outputTokens: o.outputTokens, seed: o.seed})
  if (o.url && !o.spawn && !o.compareColocated) {
    for await (const ev of load(o.url.replace(/\/+$/u, ''), 'server')) {
      if (ev.type === 'summary') runs.push(ev.report)
      yield ev
    }
    return {runs}
  }
  const modes: ('disaggregated' | 'colocated')[] = o.compareColocated ? ['disaggregated', 'colocated'] : ['disaggregated']
  const model = resolveServeModel(o.model)
  checkServeLayout(model, o.prefillTp, o.decodeTp)
  for (const mode of modes) {
    let server: RunningServe | undefined
    try {
      server = await startServe({
        model,
        prefillTp: o.prefillTp,
        decodeTp: o.decodeTp,
        prefillWorkers: o.prefillWorkers,
        decodeWorkers: o.decodeWorkers,
        host: '127.0.0.1',
        port: 0,
        transport: 'auto',
        colocated: mode === 'colocated',
        localWorkers: true,
        leaseMs: 30_000,
        maxBatch: 64,
        requestTimeoutMs: 300_000,
        prefillTimeoutMs: 300_000,
        transferTimeoutMs: 2000,
        onWorkerLog: o.onServerLog,
      })
      for await (const ev of load(server.url, mode)) {
        if (ev.type === 'summary') runs.push(ev.report)
        yield ev
      }
    } finally {
      await server?.close()
    }
  }
  if (runs.length === 2) {
    const [d, c] = runs
    return {
      runs,
      comparison: {
        outputThroughputRatio: c.outputTokenThroughputPerS / d.outputTokenThroughputPerS,
        ttftMeanRatio: c.ttft.meanMs / d.ttft.meanMs,
        tpotMeanRatio: c.tpot.meanMs / d.tpot.meanMs,
      },
    }
  }
  return {runs}
}
