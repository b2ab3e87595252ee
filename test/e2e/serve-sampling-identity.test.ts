/**
 * Sampled (seeded) outputs of disaggregated serving at 1→1, 1→2 and 2→1 are token-identical to
 * --colocated for every sampling option of issue 12 — penalties, logit_bias, min_p, min_tokens,
 * stop_token_ids, n, best_of, logprobs — on the tiny hybrid; and at 1→2 on the plain transformer
 * (tiny-llama), whose prefill side does not sample either: both compute N−1 prompt tokens and the
 * decode worker recomputes the last one before sampling. Real processes, real UCX, openai client.
 */
import OpenAI from 'openai'
import {afterAll, describe, expect, it} from 'vitest'

import {startServe, type ServeProcess} from './serve-harness.js'

const PROMPTS = ['Hello', 'A hybrid model keeps a fixed-size Mamba state and a growing attention cache; both move from prefill to decode.']

const OPTIONS: Record<string, unknown>[] = [
  {temperature: 0.9, top_p: 0.9, top_k: 40, seed: 1},
  {temperature: 1.2, min_p: 0.05, seed: 2},
  {temperature: 1, presence_penalty: 1, frequency_penalty: 0.5, repetition_penalty: 1.3, seed: 3},
  {temperature: 0.8, logit_bias: {'32': 5, '101': -5}, seed: 4},
  {temperature: 1, min_tokens: 4, stop_token_ids: [32, 101], logit_bias: {'257': 4}, seed: 5},
  {temperature: 1.1, n: 3, logprobs: 2, seed: 6},
  {temperature: 0.7, best_of: 3, seed: 7},
  {temperature: 0.6, n: 2, seed: 8, stream: true},
]

interface Choice {
  index: number
  token_ids?: number[]
  logprobs?: {token_logprobs: number[]} | null
}

type Outputs = {ids: string[]; logprobs: number[][]}

async function collect(s: ServeProcess, model: string): Promise<Outputs> {
  const client = new OpenAI({baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60_000})
  const ids: string[] = []
  const logprobs: number[][] = []
  for (const prompt of PROMPTS) {
    for (const o of OPTIONS) {
      const body = {model, prompt, max_tokens: 10, return_token_ids: true, ...o}
      const choices = new Map<number, number[]>()
      if (o.stream) {
        const stream = (await client.completions.create(body as never)) as unknown as AsyncIterable<{choices: Choice[]}>
        for await (const chunk of stream) for (const c of chunk.choices) choices.set(c.index, [...(choices.get(c.index) ?? []), ...(c.token_ids ?? [])])
      } else {
        const r = (await client.completions.create(body as never)) as unknown as {choices: Choice[]}
        for (const c of r.choices) {
          choices.set(c.index, c.token_ids ?? [])
          if (c.logprobs) logprobs.push(c.logprobs.token_logprobs)
        }
      }
      ids.push(`${JSON.stringify(o)} ${[...choices.entries()].sort((a, b) => a[0] - b[0]).map(([i, t]) => `${i}:${t.join(',')}`).join(' ')}`)
    }
    const chat = await client.chat.completions.create({model, messages: [{role: 'user', content: prompt}], max_tokens: 8, temperature: 1, seed: 9, frequency_penalty: 1, logprobs: true, top_logprobs: 2, return_token_ids: true} as never)
    ids.push(`chat ${((chat as unknown as {choices: Choice[]}).choices[0].token_ids ?? []).join(',')}`)
  }
  return {ids, logprobs}
}

const running: ServeProcess[] = []
afterAll(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

async function outputsOf(model: string, args: string[]): Promise<Outputs> {
  const s = await startServe(['--model', model, ...args])
  running.push(s)
  try {
    return await collect(s, model).catch((error: Error) => {
      // The server's last log lines say why a request failed (a transport error carries no body).
      throw new Error(`${error.message}\nlast server log lines:\n${s.lines.slice(-12).join('\n')}`, {cause: error})
    })
  } finally {
    await s.stop()
    running.splice(running.indexOf(s), 1)
  }
}

describe.each([
  ['tiny-hybrid', [['1→1', ['--prefill-tp', '1', '--decode-tp', '1']], ['1→2', ['--prefill-tp', '1', '--decode-tp', '2']], ['2→1', ['--prefill-tp', '2', '--decode-tp', '1']]]],
  ['tiny-llama', [['1→2', ['--prefill-tp', '1', '--decode-tp', '2']]]],
] as const)('%s: seeded sampling, disaggregated == colocated', (model, cases) => {
  let colocated: Outputs
  it('colocated baseline', async () => {
    colocated = await outputsOf(model, ['--colocated'])
    expect(colocated.ids).toHaveLength(PROMPTS.length * (OPTIONS.length + 1))
    // the options do change the output: not every line is the same tokens
    expect(new Set(colocated.ids.map((l) => l.split(' ').slice(1).join(' '))).size).toBeGreaterThan(OPTIONS.length)
  })
  it.each(cases)('%s: same tokens for every option; logprobs within 1e-3', async (_name, args) => {
    const got = await outputsOf(model, [...args])
    expect(got.ids).toEqual(colocated.ids)
    got.logprobs.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - colocated.logprobs[i][j])).toBeLessThan(1e-3)))
  })
})
