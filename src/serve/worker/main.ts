/**
 * Entry of a worker process launched by the supervisor (`node dist/serve/worker/main.js
 * --config <json>`, the cluster token in HPD_AUTH_TOKEN). Runs the worker (run-worker.ts), prints
 * one ready line on stdout, logs JSON lines on stderr. It exits on SIGTERM/SIGINT and when its
 * stdin closes (the supervisor died), so a worker never outlives `hpd serve`.
 */
import {CLUSTER_TOKEN_ENV} from '../auth.js'
import type {WorkerReadyLine} from '../protocol.js'
import {runWorker} from './run-worker.js'
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

let closing = false
async function main(): Promise<void> {
  // The cluster token comes through the environment (argv is world-readable through ps).
  const clusterToken = process.env[CLUSTER_TOKEN_ENV]
  if (!clusterToken) throw Object.assign(new Error(`${CLUSTER_TOKEN_ENV} is not set: a worker never serves without the cluster token`), {code: 'HPD_WORKER_NO_TOKEN'})
  delete process.env[CLUSTER_TOKEN_ENV]
  const worker = await runWorker(config, clusterToken, log)
  const shutdown = async (why: string) => {
    if (closing) return
    closing = true
    log('stopping', {why})
    // Bounded: whatever is still open after 2 s is dropped with the process.
    setTimeout(() => process.exit(0), 2000).unref()
    await worker.close().catch(() => undefined)
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
  process.stdin.on('end', () => void shutdown('supervisor gone'))
  process.stdin.on('error', () => void shutdown('supervisor gone'))
  process.stdin.resume()
  const ready: WorkerReadyLine = {hpdWorkerReady: true, role: config.role, controlUrl: worker.controlUrl, engineId: worker.engineId, pid: process.pid}
  process.stdout.write(`${JSON.stringify(ready)}\n`)
  log('ready', {controlUrl: worker.controlUrl, tp: config.tp})
}

main().catch((error: unknown) => {
  const e = error as {code?: string; message?: string; hint?: string}
  log('failed', {code: e.code ?? 'HPD_SERVE_WORKER_START', message: e.message ?? String(error), hint: e.hint})
  process.exit(1)
})
