/**
 * The `hpd serve` dashboard: workers and their state, requests in flight, latency percentiles,
 * tokens/s, KV-pool usage, transfer GB/s and held leases. Renders a ServeSnapshot; owns nothing.
 */
import {Box, Text} from 'ink'

import type {ServeSnapshot} from '../serve/serve.js'
import {fmtMs, pad} from './serve-format.js'

export function ServeDashboard({snapshot: s}: {readonly snapshot: ServeSnapshot}) {
  const pct = (p: {p50?: number; p90?: number; p99?: number}) => `p50 ${fmtMs(p.p50)}  p90 ${fmtMs(p.p90)}  p99 ${fmtMs(p.p99)}`
  return (
    <Box flexDirection="column">
      <Text>
        <Text bold>hpd serve</Text> {s.model} · {s.mode} · <Text color="cyan">{s.url}</Text> · up {Math.floor(s.uptimeS)} s
      </Text>
      <Text>
        in flight {s.inFlight} · done {s.requestsOk} · failed {s.requestsFailed} · {s.outputTokensPerS.toFixed(1)} tok/s · transfer{' '}
        {s.transferGBps === undefined ? '–' : `${s.transferGBps.toFixed(2)} GB/s`}
      </Text>
      <Text>TTFT {pct(s.ttftMs)}</Text>
      <Text>ITL  {pct(s.itlMs)}</Text>
      <Text>E2E  {pct(s.e2eMs)}</Text>
      <Text> </Text>
      <Text bold>{`${pad('worker', 12)}${pad('state', 10)}${pad('pid', 8)}${pad('in-flight', 10)}${pad('KV blocks', 14)}${pad('leases', 8)}restarts`}</Text>
      {s.workers.map((w) => (
        <Text key={w.name} color={w.state === 'ready' ? undefined : w.state === 'starting' ? 'yellow' : 'red'}>
          {`${pad(w.name, 12)}${pad(w.state, 10)}${pad(String(w.pid ?? '–'), 8)}${pad(String(w.inFlight), 10)}${pad(`${w.kvBlocksUsed}/${w.kvBlocksTotal}`, 14)}${pad(w.role === 'prefill' ? String(w.leasesHeld) : '–', 8)}${w.restarts}`}
        </Text>
      ))}
      <Text dimColor>Ctrl-C stops the server and its workers.</Text>
    </Box>
  )
}
