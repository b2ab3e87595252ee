import {render} from 'ink-testing-library'
import {describe, expect, it} from 'vitest'

import type {BenchEvent, TransferCaseResult} from '../bench/transfer/types.js'
import {resultText} from './bench-transfer-format.js'
import {foldBenchEvent, initialBenchTransferState} from './bench-transfer-state.js'
import {BenchTransferView} from './BenchTransferView.js'

const done: TransferCaseResult = {
  promptTokens: 4096,
  requests: 8,
  bytesPerRequest: 169_246_720,
  faBytesPerRequest: 67_108_864,
  ssmBytesPerRequest: 102_137_856,
  readsPerRequest: 2144,
  runsPerRequest: 28,
  plannedRunsPerRequest: 28,
  rankPairs: 1,
  gbPerSecond: 9.5,
  p50Ms: 17.8,
  p99Ms: 19.1,
  memcpyGbPerSecond: 10,
  ratioToMemcpy: 0.95,
  bestGbPerSecond: 10,
  bestMemcpyGbPerSecond: 10.2,
  ratioBestToMemcpy: 0.98,
  warmupMs: 120,
  prepareMs: 2,
  verify: 'full',
  verifiedBytes: 9 * 169_246_720,
}

describe('BenchTransferView', () => {
  it('keeps finished cases above the live row', () => {
    const events: BenchEvent[] = [
      {type: 'setup', registrationMs: 40, firstHandshakeMs: 3, processes: 2},
      {type: 'case-start', index: 0, promptTokens: 4096, requests: 8},
      {type: 'case-done', index: 0, result: done},
      {type: 'case-start', index: 1, promptTokens: 32768, requests: 8},
      {type: 'progress', index: 1, done: 3, requests: 8, latencyMs: 140.25},
    ]
    const state = events.reduce(foldBenchEvent, initialBenchTransferState)
    const {lastFrame} = render(<BenchTransferView state={state} />)
    const frame = lastFrame() ?? ''
    expect(frame).toContain('✔ prompt 4096: 161.4 MiB/request (FA 64.0 MiB, SSM 97.4 MiB), 2144 reads → 28 runs, 9.50 GB/s')
    expect(frame).toContain('memcpy 10.00 GB/s (0.95x)')
    expect(frame).toContain('prompt 32768: request 3/8 · last 140.25 ms')
    expect(frame.indexOf('prompt 4096')).toBeLessThan(frame.indexOf('prompt 32768'))
  })

  it('prints the final table with one row per case', () => {
    const attention = {prefillKernelBlockSize: 16, decodeKernelBlockSize: 16, tokensPerRead: 16, readUnit: 'head-range', headTokenBytes: 256} as const
    const text = resultText({model: 'nemotron-h-8b', prefillTp: 1, decodeTp: 1, kvCacheDtype: 'bf16', mambaCacheDtype: 'bf16', mambaSsmDtype: 'fp32', attention, transport: 'auto', tcpSegmentBytes: 262_144, readProtocol: 'get', verify: 'full', registrationMs: 40, firstHandshakeMs: 3, path: 'case', cases: [done]})
    const lines = text.trim().split('\n')
    expect(lines[0]).toMatch(/^nemotron-h-8b: prefill TP 1 → decode TP 1, transport auto .*, reads GET, verify full/)
    expect(lines[1]).toBe('caches: KV bf16, conv bf16, SSM fp32; path case (lists prepared once per case)')
    expect(lines[2]).toMatch(/prompt +bytes\/req .* ratio/)
    expect(lines[3]).toMatch(/4096 +161\.4 MiB .* 0\.95x/)
  })
})
