/**
 * 256 streamed requests at concurrency 32 against a real disaggregated `hpd serve`, driven by the
 * real `hpd bench serve --url ... --json` command: every request completes, none is lost. KV
 * transfers go over UCX TCP here (the other serve tests use the default, shared memory).
 */
import {execFile} from 'node:child_process'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {afterAll, expect, it} from 'vitest'

import {CACHE_DIR, ROOT, startServe, until, type ServeProcess} from './serve-harness.js'

let server: ServeProcess | undefined
afterAll(async () => {
  await server?.stop()
})

it('serves 256 requests at concurrency 32 with none lost', async () => {
  // Over TCP (UCX tuned segments) rather than shared memory, so both transports see real traffic in the suite.
  server = await startServe(['--decode-workers', '2', '--transport', 'tcp'])
  const {stdout} = await promisify(execFile)(
    process.execPath,
    [join(ROOT, 'bin', 'run.js'), 'bench', 'serve', '--url', server.url, '--concurrency', '32', '--requests', '256', '--prompt-tokens', '12', '--output-tokens', '3', '--json'],
    {cwd: ROOT, env: {...process.env, HPD_CACHE_DIR: CACHE_DIR}, timeout: 240_000, maxBuffer: 16 * 1024 * 1024},
  )
  const envelope = JSON.parse(stdout) as {ok: boolean; result: {runs: {completed: number; failed: number; totalOutputTokens: number; failureMessages: string[]; kvTransferShareOfTtft?: number}[]}}
  expect(envelope.ok).toBe(true)
  const [run] = envelope.result.runs
  expect(run.failureMessages).toEqual([])
  expect(run).toMatchObject({completed: 256, failed: 0, totalOutputTokens: 256 * 3})
  expect(run.kvTransferShareOfTtft).toBeGreaterThan(0)
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  expect(metrics).toMatch(/^hpd_requests_total\{outcome="ok"\} 256$/m)
  expect(metrics).toMatch(/^hpd_requests_total\{outcome="error"\} 0$/m)
  // Every prefill lease ended by the decode side's transfer-agent notification, none by expiry.
  await until(
    async () => {
      const m = await (await fetch(`${server!.url}/metrics`)).text()
      return /^hpd_leases_held\{worker="prefill-0",role="prefill"\} 0$/m.test(m) && /^hpd_kv_blocks_used\{worker="prefill-0",role="prefill"\} 0$/m.test(m) ? m : undefined
    },
    5000,
    'prefill leases to be released',
  ).then((m) => expect(m).toMatch(/^hpd_leases_expired_total\{worker="prefill-0",role="prefill"\} 0$/m))
})
