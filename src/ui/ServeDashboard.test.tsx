import {render} from 'ink-testing-library'
import {describe, expect, it} from 'vitest'

import type {ServeSnapshot} from '../serve/serve.js'
import {ServeDashboard} from './ServeDashboard.js'

const snapshot: ServeSnapshot = {
  url: 'http://127.0.0.1:8000',
  model: 'tiny-hybrid',
  mode: 'disaggregated',
  uptimeS: 12.4,
  inFlight: 3,
  requestsOk: 40,
  requestsFailed: 1,
  outputTokensPerS: 123.45,
  ttftMs: {p50: 12.3, p90: 20, p99: 150},
  itlMs: {p50: 4, p90: 5, p99: 9},
  e2eMs: {p50: 100, p90: 200, p99: 300},
  transferGBps: 1.5,
  workers: [
    {name: 'prefill-0', role: 'prefill', state: 'ready', pid: 101, restarts: 0, budgetExhausted: 0, inFlight: 1, kvBlocksUsed: 4, kvBlocksTotal: 64, leasesHeld: 2, leasesExpired: 0, transferBytes: 0, transferMs: 0},
    {name: 'decode-0', role: 'decode', state: 'dead', pid: 102, restarts: 1, budgetExhausted: 0, inFlight: 2, kvBlocksUsed: 8, kvBlocksTotal: 64, leasesHeld: 0, leasesExpired: 0, transferBytes: 10, transferMs: 1},
  ],
}

describe('ServeDashboard', () => {
  it('shows workers, in-flight, percentiles, tokens/s, KV usage, GB/s and leases', () => {
    const {lastFrame} = render(<ServeDashboard snapshot={snapshot} />)
    const frame = lastFrame() ?? ''
    expect(frame).toContain('tiny-hybrid · disaggregated · http://127.0.0.1:8000')
    expect(frame).toContain('in flight 3 · done 40 · failed 1 · 123.5 tok/s · transfer 1.50 GB/s')
    expect(frame).toContain('TTFT p50 12.3 ms  p90 20.0 ms  p99 150 ms')
    expect(frame).toMatch(/prefill-0 +ready +101 +1 +4\/64 +2 +0/)
    expect(frame).toMatch(/decode-0 +dead +102 +2 +8\/64 +– +1/)
  })
})
