/**
 * One request never harms another, against a real `hpd serve` (real workers, real UCX):
 * - top_k abuse is refused at the router, alone;
 * - a native failure injected into one request of a decode batch (its sampler fails) fails that
 *   request only: the others finish with exactly the tokens they get on an idle server;
 * - one-token requests whose first sampling fails leak no KV block (420 of them filled a pool
 *   for good before);
 * - a worker crashing past its restart budget is still restarted, after a backoff, and /health,
 *   the log and the metrics say so.
 */
import OpenAI from 'openai'
import {describe, expect, it} from 'vitest'

import {startServe, until, type ServeProcess, servesForFile, workerMetric} from './serve-harness.js'

const serve = servesForFile()

function post(s: ServeProcess, body: unknown, requestId?: string): Promise<Response> {
  return fetch(`${s.url}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json', ...(requestId ? {'x-request-id': requestId} : {})}, body: JSON.stringify(body)})
}

describe('request isolation and healing', () => {
  it('fails only the abusive request of a batch: top_k abuse at the router, an injected native sampler failure in the engine', async () => {
    const s = await serve([], {HPD_TEST_FAIL_SAMPLING_FOR: 'poison'})
    const c = new OpenAI({baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 30_000})
    const prompts = ['alpha beta', 'gamma delta', 'epsilon', 'zeta eta theta', 'iota kappa', 'lambda mu']
    const ask = (prompt: string) => c.completions.create({model: 'tiny-hybrid', prompt, max_tokens: 24, temperature: 0, ignore_eos: true} as never) as unknown as Promise<OpenAI.Completion>
    const reference = await Promise.all(prompts.map((p) => ask(p).then((r) => r.choices[0].text)))

    const abusive = post(s, {model: 'tiny-hybrid', prompt: 'x y', max_tokens: 5, top_k: 100000000000000000000})
    const [abuse, ...normal] = await Promise.all([abusive, ...prompts.map((p) => ask(p))])
    expect(abuse.status).toBe(400)
    expect(((await abuse.json()) as {error: {param: string}}).error.param).toBe('top_k')
    expect(normal.map((r) => r.choices[0].text)).toEqual(reference)

    // The poisoned request joins the decode batch next to six others, then its sampler fails natively.
    const poisoned = post(s, {model: 'tiny-hybrid', prompt: 'poisoned prompt here', max_tokens: 24, temperature: 0, ignore_eos: true, stream: true}, 'poison-1')
    const [bad, ...good] = await Promise.all([poisoned.then(async (r) => ({status: r.status, text: await r.text()})), ...prompts.map((p) => ask(p))])
    expect(bad.text).toMatch(/decode_failed|topK must be an integer/)
    expect(good.map((r) => r.choices[0].text)).toEqual(reference)
    await until(async () => ((await workerMetric(s.url, 'hpd_kv_blocks_used', 'decode-0')) === 0 ? true : undefined), 10_000, 'decode blocks back to 0')
  })

  it('leaks no KV block when one-token prompts fail their first sampling, however many', async () => {
    const s = await serve([], {HPD_TEST_FAIL_SAMPLING_FOR: 'poison'})
    const total = await until(async () => {
      const n = await workerMetric(s.url, 'hpd_kv_blocks_capacity', 'decode-0')
      return n > 0 ? n : undefined
    }, 10_000, 'the pool size in /metrics')
    // Enough requests to fill the pool several times over if each leaked its 3 blocks.
    const count = Math.ceil((total / 3) * 2)
    let failed = 0
    for (let i = 0; i < count; i += 20) {
      const batch = await Promise.all(Array.from({length: Math.min(20, count - i)}, (_, j) => post(s, {model: 'tiny-hybrid', prompt: [65], max_tokens: 4}, `poison-${i + j}`)))
      for (const r of batch) if (r.status !== 200) failed++
      await Promise.all(batch.map((r) => r.text()))
    }
    expect(failed).toBe(count)
    process.stdout.write(`\none-token requests failing their first sampling: ${count} sent (pool ${total} blocks), ${failed} failed alone\n`)
    // The gauge comes from the supervisor's stats poll (every second): wait for a poll after the
    // last request, bounded; a leak keeps it above 0 for good.
    await until(async () => ((await workerMetric(s.url, 'hpd_kv_blocks_used', 'decode-0')) === 0 ? true : undefined), 5000, 'decode-0 to hold no KV block')
    const ok = await post(s, {model: 'tiny-hybrid', prompt: 'still fine', max_tokens: 4})
    expect(ok.status).toBe(200)
    const after = await post(s, {model: 'tiny-hybrid', prompt: [66], max_tokens: 4})
    expect(after.status).toBe(200)
  })

  it('clients that leave during their prefill hold no prefill blocks: the prefill stops and nothing is leased', async () => {
    const s = await serve([])
    const total = await until(async () => {
      const n = await workerMetric(s.url, 'hpd_kv_blocks_capacity', 'prefill-0')
      return n > 0 ? n : undefined
    }, 10_000, 'the pool size in /metrics')
    // Prompts of ~600 tokens, each client gone after 150 ms: enough to fill the prefill pool several
    // times over had each left a lease (30 s) behind.
    const prompt = Array.from({length: 600}, (_, i) => 65 + (i % 26))
    const count = 60
    await Promise.all(
      Array.from({length: count}, async (_, i) => {
        const leave = new AbortController()
        const t = setTimeout(() => leave.abort(), 150)
        await fetch(`${s.url}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({model: 'tiny-hybrid', prompt: [i, ...prompt], max_tokens: 4}), signal: leave.signal}).then((r) => r.text()).catch(() => undefined)
        clearTimeout(t)
      }),
    )
    process.stdout.write(`\nclients leaving during their prefill: ${count} × ${prompt.length + 1} tokens (prefill pool ${total} blocks)\n`)
    // The gauges come from the supervisor's stats poll (every second): let a few polls pass, then
    // well inside the 30 s lease only stopped prefills and unleased blocks read 0 (before the fix,
    // every abandoned prefill finished and held a lease: 60 leases, the pool nearly full, for 30 s).
    await new Promise((r) => setTimeout(r, 3000))
    await until(async () => ((await workerMetric(s.url, 'hpd_kv_blocks_used', 'prefill-0')) === 0 && (await workerMetric(s.url, 'hpd_leases_held', 'prefill-0')) === 0 ? true : undefined), 10_000, 'prefill-0 to hold no KV block and no lease')
    const ok = await post(s, {model: 'tiny-hybrid', prompt: prompt.slice(0, 500), max_tokens: 4})
    expect(ok.status).toBe(200)
  })

  it('restarts a worker that crashes past its restart budget, after a backoff, and says so', async () => {
    const s = await serve([])
    const crashes = 7
    let lastPid = s.workers.get('prefill-0')!.pid!
    let sawBackoffInHealth = false
    const restartMs: number[] = []
    for (let i = 0; i < crashes; i++) {
      process.kill(lastPid, 'SIGKILL')
      const killedAt = performance.now()
      await until(
        async () => {
          // While it waits out a backoff, /health says why.
          const health = await fetch(`${s.url}/health`)
          if (health.status === 503 && (await health.text()).includes('restart budget exhausted')) sawBackoffInHealth = true
          return s.workers.get('prefill-0')?.pid !== lastPid && s.workers.get('prefill-0')?.state === 'ready' ? true : undefined
        },
        30_000,
        `restart ${i + 1}`,
      )
      // Within budget a restart takes the worker's start time; the 6th and 7th wait 1 s and 2 s more.
      restartMs.push(performance.now() - killedAt)
      expect(performance.now() - killedAt).toBeLessThan(20_000)
      lastPid = s.workers.get('prefill-0')!.pid!
    }
    process.stdout.write(`\nkill → ready again, 7 crashes in a row: ${restartMs.map((m) => `${(m / 1000).toFixed(1)} s`).join(', ')}\n`)
    expect(sawBackoffInHealth).toBe(true)
    expect(s.lines.filter((l) => l.includes('restart-budget-exhausted'))).toHaveLength(2)
    expect(await workerMetric(s.url, 'hpd_worker_restart_budget_exhausted_total', 'prefill-0')).toBe(2)
    expect(await workerMetric(s.url, 'hpd_worker_restarts_total', 'prefill-0')).toBe(crashes)
    const ok = await post(s, {model: 'tiny-hybrid', prompt: 'after seven crashes', max_tokens: 3})
    expect(ok.status).toBe(200)
  }, 120_000)
})
