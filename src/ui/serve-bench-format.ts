/** Plain-text tables of serve benchmark reports (one column per run), as `vllm bench serve` prints them. */
import type {ServeLoadReport} from '../bench/serve-load.js'
import {pad} from './serve-format.js'

export function formatServeReports(runs: readonly ServeLoadReport[]): string {
  const rows: [string, (r: ServeLoadReport) => string][] = [
    ['Successful requests', (r) => String(r.completed)],
    ['Failed requests', (r) => String(r.failed)],
    ['Concurrency', (r) => String(r.concurrency)],
    ['Benchmark duration (s)', (r) => r.durationS.toFixed(2)],
    ['Total input tokens', (r) => String(r.totalInputTokens)],
    ['Total generated tokens', (r) => String(r.totalOutputTokens)],
    ['Generated tokens counted by', (r) => r.outputTokensCountedBy.join('+') || '–'],
    ['Input tokens counted by', (r) => r.inputTokensCountedBy.join('+') || '–'],
    ['Request throughput (req/s)', (r) => r.requestThroughputPerS.toFixed(2)],
    ['Output token throughput (tok/s)', (r) => r.outputTokenThroughputPerS.toFixed(2)],
    ['Total token throughput (tok/s)', (r) => r.totalTokenThroughputPerS.toFixed(2)],
    ['Mean TTFT (ms)', (r) => r.ttft.meanMs.toFixed(2)],
    ['Median TTFT (ms)', (r) => r.ttft.medianMs.toFixed(2)],
    ['P99 TTFT (ms)', (r) => r.ttft.p99Ms.toFixed(2)],
    ['Mean TPOT (ms)', (r) => r.tpot.meanMs.toFixed(2)],
    ['Median TPOT (ms)', (r) => r.tpot.medianMs.toFixed(2)],
    ['P99 TPOT (ms)', (r) => r.tpot.p99Ms.toFixed(2)],
    ['Mean ITL (ms)', (r) => r.itl.meanMs.toFixed(2)],
    ['Median ITL (ms)', (r) => r.itl.medianMs.toFixed(2)],
    ['P99 ITL (ms)', (r) => r.itl.p99Ms.toFixed(2)],
    ['Mean E2EL (ms)', (r) => r.e2e.meanMs.toFixed(2)],
    ['Median E2EL (ms)', (r) => r.e2e.medianMs.toFixed(2)],
    ['P99 E2EL (ms)', (r) => r.e2e.p99Ms.toFixed(2)],
    ['Handshake+transfer share of TTFT', (r) => (r.kvTransferShareOfTtft === undefined ? '–' : `${(r.kvTransferShareOfTtft * 100).toFixed(1)}%`)],
    ['KV bytes pulled per request', (r) => (r.kvTransferBytesPerRequest === undefined ? '–' : `${(r.kvTransferBytesPerRequest / 1024).toFixed(0)} KiB`)],
  ]
  const labelWidth = 36
  const colWidth = 16
  const lines = [`${pad('', labelWidth)}${runs.map((r) => pad(r.label, colWidth)).join('')}`]
  for (const [name, f] of rows) lines.push(`${pad(name, labelWidth)}${runs.map((r) => pad(f(r), colWidth)).join('')}`)
  for (const r of runs) for (const m of r.failureMessages) lines.push(`${r.label} failure: ${m}`)
  return lines.join('\n')
}
