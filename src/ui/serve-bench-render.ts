/**
 * Drives `hpd bench serve`'s output from its event stream: Ink progress on a terminal, plain
 * lines otherwise, nothing but the final table on stderr with --json (stdout carries the JSON).
 */
import {render} from 'ink'
import {createElement} from 'react'

import type {ServeLoadEvent, ServeLoadReport} from '../bench/serve-load.js'
import type {ServeBenchResult} from '../bench/serve-bench.js'
import {formatServeReports} from './serve-bench-format.js'
import {ServeBenchView, type ServeBenchViewState} from './ServeBenchView.js'

export async function showServeBench(events: AsyncGenerator<ServeLoadEvent, ServeBenchResult>, json: boolean): Promise<ServeBenchResult> {
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI && !json
  let state: ServeBenchViewState = {finished: []}
  const ink = tty ? render(createElement(ServeBenchView, {state}), {stdout: process.stderr, patchConsole: false}) : undefined
  let lastPlainAt = 0
  let result: ServeBenchResult
  try {
    for (;;) {
      const next = await events.next()
      if (next.done) {
        result = next.value
        break
      }
      const ev = next.value
      if (ev.type === 'start' && !json && !tty) process.stderr.write(`${ev.label}: ${ev.total} requests\n`)
      if (ev.type === 'progress') {
        state = {...state, progress: ev}
        const now = Date.now()
        if (!tty && !json && (now - lastPlainAt > 2000 || ev.completed + ev.failed === ev.total)) {
          lastPlainAt = now
          process.stderr.write(`${ev.label}: ${ev.completed + ev.failed}/${ev.total} done, ${ev.failed} failed\n`)
        }
      }
      if (ev.type === 'summary') state = {progress: undefined, finished: [...state.finished, ev.report]}
      ink?.rerender(createElement(ServeBenchView, {state}))
    }
  } finally {
    ink?.unmount()
  }
  return result
}

/** The final report for stdout (human form). */
export function serveBenchText(result: ServeBenchResult): string {
  return `${formatServeReports(result.runs as ServeLoadReport[])}\n${comparisonLine(result)}${headOfLineLines(result)}${prefixCachingLines(result)}`
}

function prefixCachingLines(r: ServeBenchResult): string {
  const kib = (b: number | undefined) => (b === undefined ? 'n/a' : `${(b / 1024).toFixed(0)} KiB`)
  return (r.prefixCaching ?? [])
    .map(
      (p) =>
        `${p.server}: median TTFT ${p.ttftMedianOffMs.toFixed(1)} ms without prefix caching, ${p.ttftMedianOnMs.toFixed(1)} ms with (${p.ttftMedianRatio.toFixed(2)}x)` +
        (p.server === 'disaggregated' ? `; KV pulled per request ${kib(p.transferBytesPerRequestOff)} without, ${kib(p.transferBytesPerRequestOn)} with (decode-side hit)` : '') +
        '\n',
    )
    .join('')
}

function headOfLineLines(r: ServeBenchResult): string {
  return (r.headOfLine ?? [])
    .map(
      (h) =>
        `${h.server}: median TTFT ${h.idleTtftMedianMs.toFixed(1)} ms idle, ${h.loadedTtftMedianMs.toFixed(1)} ms with a ${h.longPromptTokens}-token prompt in flight (${h.ttftRatio.toFixed(2)}x); ` +
        `long prompts completed ${h.longRequests.completed}, failed ${h.longRequests.failed}; unhealthy transitions ${h.unhealthyTransitions ?? 'unknown'}` +
        `${h.prefixCacheHitTokens ? `; prefix-cache hit tokens idle ${h.prefixCacheHitTokens.idle}, loaded ${h.prefixCacheHitTokens.loaded}` : ''}\n`,
    )
    .join('')
}

function comparisonLine(r: ServeBenchResult): string {
  if (!r.comparison) return ''
  const c = r.comparison
  return `colocated / disaggregated: output throughput ${c.outputThroughputRatio.toFixed(2)}x, mean TTFT ${c.ttftMeanRatio.toFixed(2)}x, mean TPOT ${c.tpotMeanRatio.toFixed(2)}x\n`
}
