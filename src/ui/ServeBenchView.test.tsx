import {render} from 'ink-testing-library'
import {describe, expect, it} from 'vitest'

import type {ServeLoadReport} from '../bench/serve-load.js'
import {formatServeReports} from './serve-bench-format.js'
import {ServeBenchView} from './ServeBenchView.js'

const lat = (m: number) => ({meanMs: m, medianMs: m, p90Ms: m * 2, p99Ms: m * 3})
const report = (label: string, share?: number): ServeLoadReport => ({
  label,
  url: 'http://127.0.0.1:1',
  concurrency: 8,
  completed: 64,
  failed: 0,
  failureMessages: [],
  durationS: 9.1,
  totalInputTokens: 8192,
  totalOutputTokens: 2048,
  outputTokensCountedBy: ['usage'],
  inputTokensCountedBy: ['usage'],
  requestThroughputPerS: 7.03,
  outputTokenThroughputPerS: 225.09,
  totalTokenThroughputPerS: 1125.46,
  ttft: lat(539.42),
  tpot: lat(18.66),
  itl: lat(18.64),
  e2e: lat(1117.85),
  kvTransferShareOfTtft: share,
  kvTransferBytesPerRequest: undefined,
})

describe('serve bench views', () => {
  it('prints runs side by side as vllm bench serve names the rows', () => {
    const text = formatServeReports([report('disaggregated', 0.138), report('colocated')])
    expect(text).toMatch(/^ +disaggregated +colocated/m)
    expect(text).toMatch(/^Output token throughput \(tok\/s\) +225\.09 +225\.09/m)
    expect(text).toMatch(/^Mean TTFT \(ms\) +539\.42/m)
    expect(text).toMatch(/^Handshake\+transfer share of TTFT +13\.8% +–/m)
  })

  it('shows live progress below finished runs', () => {
    const {lastFrame} = render(
      <ServeBenchView state={{finished: [report('disaggregated')], progress: {label: 'colocated', completed: 30, failed: 2, inFlight: 8, total: 64}}} />,
    )
    const frame = lastFrame() ?? ''
    expect(frame).toContain('Successful requests')
    expect(frame).toMatch(/colocated: \[#+\.+\] 32\/64 · in flight 8 · failed 2/)
  })
})
