/**
 * `hpd bench serve` view: a progress line per run while it runs, finished runs' reports kept above
 * (Static), and the side-by-side table when two runs finished. Renders state only.
 */
import {Box, Static, Text} from 'ink'

import type {ServeLoadReport} from '../bench/serve-load.js'
import {formatServeReports} from './serve-bench-format.js'

export interface ServeBenchViewState {
  readonly progress?: {label: string; completed: number; failed: number; inFlight: number; total: number}
  readonly finished: readonly ServeLoadReport[]
}

export function ServeBenchView({state}: {readonly state: ServeBenchViewState}) {
  const p = state.progress
  return (
    <Box flexDirection="column">
      <Static items={state.finished.map((r, i) => ({r, i}))}>{({r, i}) => <Text key={i}>{formatServeReports([r])}</Text>}</Static>
      {p ? (
        <Text>
          {p.label}: {bar(p.completed + p.failed, p.total)} {p.completed + p.failed}/{p.total} · in flight {p.inFlight}
          {p.failed > 0 ? <Text color="red"> · failed {p.failed}</Text> : null}
        </Text>
      ) : null}
    </Box>
  )
}

function bar(done: number, total: number, width = 24): string {
  const n = total === 0 ? width : Math.round((done / total) * width)
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}]`
}
