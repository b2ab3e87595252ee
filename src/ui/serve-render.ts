/**
 * How `hpd serve` shows itself: the Ink dashboard on a terminal (redrawn twice a second), plain
 * prefixed lines otherwise, or one JSON object per line with --json-logs. All on stderr; stdout
 * stays for the command's result.
 */
import {render, type Instance} from 'ink'
import {createElement} from 'react'

import type {RouterLogEvent} from '../serve/router.js'
import type {RunningServe} from '../serve/serve.js'
import type {WorkerState} from '../serve/supervisor.js'
import {ServeDashboard} from './ServeDashboard.js'

export type ServeLogStyle = 'dashboard' | 'plain' | 'json'

export function serveLogStyle(flags: {jsonLogs: boolean; json: boolean}): ServeLogStyle {
  if (flags.jsonLogs || flags.json) return 'json'
  return process.stderr.isTTY && !process.env.CI ? 'dashboard' : 'plain'
}

/** Log sinks to pass to startServe before the dashboard exists. */
export function serveLogSinks(style: ServeLogStyle) {
  const line = (text: string) => process.stderr.write(`${text}\n`)
  const recent: string[] = []
  const keep = (text: string) => {
    recent.push(text)
    if (recent.length > 200) recent.shift()
  }
  return {
    recent,
    onWorkerLog: (worker: string, text: string) => {
      if (style === 'json') line(JSON.stringify({t: new Date().toISOString(), source: worker, ...jsonFields(text)}))
      else if (style === 'plain') line(`[${worker}] ${text}`)
      else keep(`[${worker}] ${text}`)
    },
    onWorkerState: (worker: string, role: string, state: WorkerState, pid: number | undefined) => {
      if (style === 'json') line(JSON.stringify({t: new Date().toISOString(), event: 'worker-state', worker, role, state, pid}))
      else if (style === 'plain') line(`[supervisor] ${worker} (${role}, pid ${pid ?? '–'}) ${state}`)
    },
    onRequestLog: (e: RouterLogEvent) => {
      if (style === 'json') line(JSON.stringify({t: new Date().toISOString(), ...e}))
      else if (style === 'plain') {
        const ttft = e.ttftMs === undefined ? '' : ` ttft ${e.ttftMs.toFixed(1)} ms`
        line(`[router] ${e.requestId} ${e.status} prompt ${e.promptTokens} out ${e.outputTokens}${ttft} e2e ${e.e2eMs.toFixed(1)} ms${e.message ? ` ${e.message}` : ''}`)
      }
    },
  }
}

/**
 * A worker's (or the supervisor's) log line as fields of the JSON log: its own JSON object's fields
 * when it is one (workers and the supervisor log JSON; no double encoding), else `{line}`.
 */
export function jsonFields(text: string): Record<string, unknown> {
  if (text.startsWith('{')) {
    try {
      const parsed = JSON.parse(text) as unknown
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
        const {source: _source, ...fields} = parsed as Record<string, unknown>
        return fields
      }
    } catch {
      // not JSON after all: kept as a line
    }
  }
  return {line: text}
}

/** Starts the live view; returns a function that ends it. */
export function presentServe(running: RunningServe, style: ServeLogStyle): () => void {
  if (style !== 'dashboard') {
    process.stderr.write(
      style === 'json'
        ? `${JSON.stringify({t: new Date().toISOString(), event: 'serving', url: running.url})}\n`
        : `[router] serving on ${running.url} (Ctrl-C or SIGTERM stops it)\n`,
    )
    return () => undefined
  }
  const instance: Instance = render(createElement(ServeDashboard, {snapshot: running.snapshot()}), {stdout: process.stderr, patchConsole: false, exitOnCtrlC: false})
  const timer = setInterval(() => instance.rerender(createElement(ServeDashboard, {snapshot: running.snapshot()})), 500)
  return () => {
    clearInterval(timer)
    instance.rerender(createElement(ServeDashboard, {snapshot: running.snapshot()}))
    instance.unmount()
  }
}
