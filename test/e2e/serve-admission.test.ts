/**
 * KV-pool admission under load (issue 12 review): a valid request larger than the free pool waits
 * for blocks instead of failing with a 5xx; one that no pool could ever hold is a 400 naming the
 * field to lower; a batched request whose prompt fails cancels its siblings at once (their prefill
 * stopped, their blocks freed, no lease left to expire), and an unrelated request meanwhile is
 * served. Real `hpd serve` processes, real UCX transfers, the official openai client.
 */
import OpenAI from 'openai'
import {afterAll, describe, expect, it} from 'vitest'

import {startServe, until, workerMetric, type ServeProcess} from './serve-harness.js'

const running: ServeProcess[] = []
afterAll(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

async function serve(args: readonly string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  const s = await startServe(['--model', 'tiny-hybrid', ...args], env)
  running.push(s)
  return s
}

function clientOf(s: ServeProcess): OpenAI {
  return new OpenAI({baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120_000})
}

/** A prompt of `n` characters (the tiny models' byte tokenizer: n tokens plus BOS), distinct per salt. */
function text(n: number, salt: number): string {
  return Array.from({length: n}, (_x, i) => String.fromCharCode(97 + ((i * 7 + salt * 13) % 26))).join('')
}

/** Every worker of the server back to no blocks in use and no lease held (the router polls their stats every 5 s). */
async function drained(s: ServeProcess): Promise<void> {
  const names = [...s.workers.keys()]
  await until(
    async () => {
      const used = await Promise.all(names.map((w) => workerMetric(s.url, 'hpd_kv_blocks_used', w)))
      const held = await Promise.all(names.map((w) => workerMetric(s.url, 'hpd_leases_held', w)))
      return used.every((u) => u === 0) && held.every((h) => h === 0 || Number.isNaN(h)) ? true : undefined
    },
    20_000,
    `every worker's blocks to be freed (${names.join(', ')})`,
  )
}

/** An OpenAI client error's status, code and param. */
async function refusal(p: Promise<unknown>): Promise<{status?: number; code?: string; param?: string; message: string}> {
  const e = (await p.then(
    () => undefined,
    (error: unknown) => error,
  )) as {status?: number; code?: string; param?: string; message: string} | undefined
  if (!e) throw new Error('the request was served; a refusal was expected')
  return e
}

// tiny-hybrid: 80-token blocks plus 2 state pages per sequence. A 400-character prompt with 8 output
// tokens holds 6 + 2 = 8 blocks; 60 blocks per worker (58 admissible where checkpoints are kept).
const POOL = ['--kv-blocks', '60']

describe.each([
  ['disaggregated', [...POOL]],
  ['colocated', [...POOL, '--colocated']],
] as const)('%s: admission into a small KV pool', (_mode, args) => {
  it('n large plus concurrent normal requests: all succeed (some wait), and every block is freed after', async () => {
    const s = await serve(args)
    const client = clientOf(s)
    const big = client.completions.create({model: 'tiny-hybrid', prompt: text(400, 1), n: 6, max_tokens: 8, temperature: 0.8, seed: 5})
    const normal = Array.from({length: 6}, (_x, i) => client.completions.create({model: 'tiny-hybrid', prompt: text(400, 10 + i), max_tokens: 8, temperature: 0}))
    const chat = client.chat.completions.create({model: 'tiny-hybrid', messages: [{role: 'user', content: text(300, 30)}], max_tokens: 8, n: 3})
    const [b, c, ...rest] = await Promise.all([big, chat, ...normal])
    expect(b.choices).toHaveLength(6)
    for (const choice of b.choices) expect(choice.finish_reason).toBe('length')
    expect(b.usage?.completion_tokens).toBe(6 * 8)
    expect(c.choices).toHaveLength(3)
    for (const r of rest) expect(r.usage?.completion_tokens).toBe(8)
    await drained(s)
  })

  it('a request no pool could ever hold is a 400 naming n, max_tokens or prompt; nothing runs', async () => {
    const s = await serve(args)
    const client = clientOf(s)
    const tooManyChoices = await refusal(client.completions.create({model: 'tiny-hybrid', prompt: text(400, 2), n: 8, max_tokens: 8}))
    expect(tooManyChoices).toMatchObject({status: 400, code: 'kv_capacity_exceeded', param: 'n'})
    expect(tooManyChoices.message).toMatch(/at most 7 fit/)
    const tooManyPrompts = await refusal(client.completions.create({model: 'tiny-hybrid', prompt: Array.from({length: 10}, (_x, i) => text(400, 40 + i)), max_tokens: 8}))
    expect(tooManyPrompts).toMatchObject({status: 400, code: 'kv_capacity_exceeded', param: 'prompt'})
    const tooLongOutput = await refusal(client.completions.create({model: 'tiny-hybrid', prompt: text(400, 3), max_tokens: 5000}))
    expect(tooLongOutput).toMatchObject({status: 400, code: 'kv_capacity_exceeded', param: 'max_tokens'})
    const chatTooLong = await refusal(client.chat.completions.create({model: 'tiny-hybrid', messages: [{role: 'user', content: text(300, 4)}], max_completion_tokens: 5000}))
    expect(chatTooLong).toMatchObject({status: 400, code: 'kv_capacity_exceeded', param: 'max_completion_tokens'})
    // A batch that fits is served.
    const fits = await client.completions.create({model: 'tiny-hybrid', prompt: [text(400, 5), text(400, 6)], n: 2, max_tokens: 8})
    expect(fits.choices).toHaveLength(4)
    await drained(s)
  })
})

describe('a batched request whose prompt fails', () => {
  it('cancels its sibling prompts at once (prefill stopped, blocks freed, no lease expires); an unrelated request is served meanwhile', async () => {
    // Prompt 1 of the batch fails at its first sampling on the decode worker (the workers' test hook).
    const s = await serve([], {HPD_TEST_FAIL_SAMPLING_FOR: '-p1'})
    const client = clientOf(s)
    const long = (i: number) => text(2000, 100 + i)
    // Prompt 1 is short: it is prefilled, transferred and fails while its long siblings are still prefilling.
    const prompts = [long(0), 'short prompt that fails', ...Array.from({length: 7}, (_x, i) => long(i + 2))]
    const started = performance.now()
    const unrelated = client.completions.create({model: 'tiny-hybrid', prompt: long(50), max_tokens: 4, temperature: 0})
    const failed = await refusal(client.completions.create({model: 'tiny-hybrid', prompt: prompts, max_tokens: 4}))
    expect(failed.status).toBe(500)
    // The siblings' prefill was stopped: the prefill worker is empty within seconds, well before any
    // lease (30 s) could have expired, and none did.
    await drained(s)
    expect(performance.now() - started).toBeLessThan(25_000)
    expect(await workerMetric(s.url, 'hpd_leases_expired_total', 'prefill-0')).toBe(0)
    const served = await unrelated
    expect(served.usage?.completion_tokens).toBe(4)
    expect(s.lines.some((l) => l.includes('lease-expired'))).toBe(false)
  })
})
