/**
 * /metrics of a real `hpd serve`: the router's and each worker's pass `promtool check metrics`
 * (Debian's prometheus package; skipped with the reason where it is absent) but for its lint on the
 * colon of the `vllm:` names, and the workers expose the names load-aware schedulers read from
 * vLLM engines, with values that add up.
 */
import {spawnSync} from 'node:child_process'

import OpenAI from 'openai'
import {afterAll, describe, expect, it} from 'vitest'

import {startServe, until, type ServeProcess} from './serve-harness.js'

const PROMTOOL = '/usr/bin/promtool'
const promtoolMissing = spawnSync(PROMTOOL, ['--version']).status === 0 ? undefined : `${PROMTOOL} is not installed (Debian: apt install prometheus; scripts/setup.sh does)`

let s: ServeProcess | undefined
afterAll(async () => {
  await s?.stop()
})

function value(text: string, name: string, labels = ''): number {
  const escaped = `${name}${labels}`.replace(/[{}"]/g, (c) => `\\${c}`)
  return Number(new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
}

describe('metrics', () => {
  it('workers expose vLLM scheduler metrics; every /metrics passes promtool', async () => {
    s = await startServe([])
    await until(() => (s!.controlUrls.size >= 2 ? true : undefined), 10_000, 'worker control URLs')
    const c = new OpenAI({baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 30_000})
    for (let i = 0; i < 5; i++) await c.completions.create({model: 'tiny-hybrid', prompt: `measured request ${i}`, max_tokens: 6, temperature: 0, ignore_eos: true} as never)

    const decode = await (await fetch(`${s.controlUrls.get('decode-0')}/metrics`)).text()
    const prefill = await (await fetch(`${s.controlUrls.get('prefill-0')}/metrics`)).text()
    const router = await (await fetch(`${s.url}/metrics`)).text()
    expect(value(decode, 'vllm:request_success_total', '{finished_reason="length"}')).toBe(5)
    expect(value(decode, 'vllm:generation_tokens_total')).toBe(30)
    expect(value(decode, 'vllm:time_to_first_token_seconds_count')).toBe(5)
    expect(value(decode, 'vllm:num_requests_running')).toBe(0)
    expect(value(decode, 'vllm:num_requests_waiting')).toBe(0)
    expect(value(decode, 'vllm:kv_cache_usage_perc')).toBe(0)
    expect(value(decode, 'hpd_kv_transfer_bytes_total')).toBeGreaterThan(0)
    expect(value(prefill, 'vllm:prompt_tokens_total')).toBeGreaterThan(5)
    expect(value(router, 'hpd_requests_total', '{outcome="ok"}')).toBe(5)
    // Public, like vLLM's: no token needed, and nothing in it a stranger could use.
    expect(decode).not.toMatch(/controlUrl|agentMetadata|grant/)

    if (promtoolMissing) {
      console.warn(`promtool check skipped: ${promtoolMissing}`)
      return
    }
    // promtool lints every colon in a name ("colons are for recording rules"), so it flags the
    // vllm:* names themselves; those names are the contract schedulers read (vLLM's own /metrics
    // draws the same lint). Allowed: exactly that lint on vllm:* names. Anything else fails.
    for (const [who, text] of [['router', router], ['decode worker', decode], ['prefill worker', prefill]]) {
      const check = spawnSync(PROMTOOL, ['check', 'metrics'], {input: text, encoding: 'utf8'})
      const problems = `${check.stdout}${check.stderr}`
        .split('\n')
        .filter((l) => l.trim() !== '' && !/^vllm:[a-z0-9_]+ metric names should not contain ':'$/.test(l.trim()))
      expect(problems, `${who}: promtool exit ${check.status}`).toEqual([])
      if (who === 'router') expect(check.status).toBe(0)
    }
  }, 60_000)
})
