/**
 * Entry of a worker process launched by the supervisor (`node dist/serve/worker/main.js
 * --config <json>`, the cluster token in HPD_AUTH_TOKEN). Runs the worker (run-worker.ts) as a
 * child of the child-process kit (src/child): one ready line on stdout, its own failure as the
 * kit's error line, JSON log lines on stderr; it exits on SIGTERM/SIGINT and when its stdin closes
 * (the supervisor died), so a worker never outlives `hpd serve`.
 */
import {runChild} from '../../child/index.js'
import {UsageError} from '../../errors.js'
import {CLUSTER_TOKEN_ENV} from '../auth.js'
import type {WorkerReadyLine} from '../protocol.js'
import {runWorker, type RunningWorkerProcess} from './run-worker.js'
import type {WorkerConfig} from './worker-config.js'

const arg = process.argv.indexOf('--config')
if (arg < 0 || !process.argv[arg + 1]) {
  process.stderr.write('usage: main.js --config <json>\n')
  process.exit(2)
}
const config = JSON.parse(process.argv[arg + 1]) as WorkerConfig

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({t: new Date().toISOString(), worker: config.name, event, ...fields})}\n`)
}

let worker: RunningWorkerProcess | undefined
runChild<WorkerReadyLine>({
  async start() {
    // The cluster token comes through the environment (argv is world-readable through ps).
    const clusterToken = process.env[CLUSTER_TOKEN_ENV]
    if (!clusterToken) throw new UsageError('HPD_WORKER_NO_TOKEN', `${CLUSTER_TOKEN_ENV} is not set: a worker never serves without the cluster token`)
    delete process.env[CLUSTER_TOKEN_ENV]
    worker = await runWorker(config, clusterToken, log)
    log('ready', {controlUrl: worker.controlUrl, tp: config.tp})
    return {role: config.role, controlUrl: worker.controlUrl, engineId: worker.engineId, pid: process.pid}
  },
  async stop(why) {
    log('stopping', {why})
    await worker?.close()
  },
})
