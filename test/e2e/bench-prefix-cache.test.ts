/**
 * `hpd bench serve --shared-prefix-tokens S --compare-prefix-caching` as a user runs it: the same
 * prefix-repetition load against a spawned disaggregated server without and with prefix caching,
 * one JSON result with both runs and their comparison. The timing ratio is machine-dependent
 * (scripts/bench-prefix-cache.sh measures it); what is checked here is deterministic: every
 * request served, and the decode side pulls fewer bytes per request once it holds the prefix.
 */
import {execFile} from 'node:child_process'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {expect, it} from 'vitest'

import {CACHE_DIR, ROOT} from './serve-harness.js'

it('compares prefix caching off and on over prompts sharing a prefix', async () => {
  const {stdout} = await promisify(execFile)(
    process.execPath,
    [join(ROOT, 'bin', 'run.js'), 'bench', 'serve', '--compare-prefix-caching', '--prompt-tokens', '600', '--shared-prefix-tokens', '540', '--concurrency', '2', '--requests', '6', '--output-tokens', '3', '--json'],
    {cwd: ROOT, env: {...process.env, HPD_CACHE_DIR: CACHE_DIR}, timeout: 240_000, maxBuffer: 16 * 1024 * 1024},
  )
  const envelope = JSON.parse(stdout) as {
    ok: boolean
    result: {runs: {label: string; completed: number; failed: number; sharedPrefix?: {tokens: number}}[]; prefixCaching: {server: string; ttftMedianRatio: number; transferBytesPerRequestOff: number; transferBytesPerRequestOn: number}[]}
  }
  expect(envelope.ok).toBe(true)
  expect(envelope.result.runs.map((r) => [r.label, r.completed, r.failed, r.sharedPrefix?.tokens])).toEqual([
    ['disagg no-cache', 6, 0, 540],
    ['disagg cache', 6, 0, 540],
  ])
  const [p] = envelope.result.prefixCaching
  expect(p.server).toBe('disaggregated')
  expect(p.ttftMedianRatio).toBeGreaterThan(0)
  // 540 shared tokens = 6 whole 80-token blocks the decode worker holds after the warm-up
  expect(p.transferBytesPerRequestOn).toBeLessThan(p.transferBytesPerRequestOff)
})
