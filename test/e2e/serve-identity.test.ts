/**
 * Greedy outputs of disaggregated serving (1→1, 1→2, 2→1, and 1→2 over TCP) are token-identical
 * to --colocated for the same prompts, streaming and not, completions and chat, on both tiny hybrids
 * (n_groups 4 and n_groups 1), and 1→2 for the plain transformer (tiny-llama). Real processes, real
 * UCX transfers, the official openai client.
 */
import OpenAI from 'openai'
import {afterAll, describe, expect, it} from 'vitest'

import {startServe, type ServeProcess} from './serve-harness.js'

const PROMPTS = [
  'Hello',
  // Long enough to span several 16-token kernel blocks.
  'In a hybrid model, Mamba layers carry a fixed-size state while attention layers keep a growing key/value cache; both must move from prefill to decode.',
]
const MAX_TOKENS = 8

type Outputs = string[]

async function collect(s: ServeProcess, model: string): Promise<Outputs> {
  const client = new OpenAI({baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60_000})
  const extra = {return_token_ids: true} as Record<string, unknown>
  const out: Outputs = []
  for (const prompt of PROMPTS) {
    const whole = (await client.completions.create({model, prompt, max_tokens: MAX_TOKENS, temperature: 0, ...extra})) as unknown as {
      choices: {token_ids: number[]}[]
    }
    out.push(`cmpl ${whole.choices[0].token_ids.join(',')}`)
    const stream = await client.completions.create({model, prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true, ...extra})
    const ids: number[] = []
    for await (const chunk of stream) ids.push(...(((chunk.choices[0] as unknown as {token_ids?: number[]})?.token_ids) ?? []))
    out.push(`cmpl-stream ${ids.join(',')}`)
    const messages = [{role: 'user' as const, content: prompt}]
    const chat = (await client.chat.completions.create({model, messages, max_tokens: MAX_TOKENS, temperature: 0, ...extra})) as unknown as {
      choices: {token_ids: number[]; message: {content: string}}[]
    }
    out.push(`chat ${chat.choices[0].token_ids.join(',')}`)
    const chatStream = await client.chat.completions.create({model, messages, max_tokens: MAX_TOKENS, temperature: 0, stream: true, ...extra})
    const chatIds: number[] = []
    let text = ''
    for await (const chunk of chatStream) {
      chatIds.push(...(((chunk.choices[0] as unknown as {token_ids?: number[]})?.token_ids) ?? []))
      text += chunk.choices[0]?.delta.content ?? ''
    }
    out.push(`chat-stream ${chatIds.join(',')}`)
    expect(text).toBe(chat.choices[0].message.content)
  }
  return out
}

const running: ServeProcess[] = []
afterAll(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

async function outputsOf(model: string, args: string[]): Promise<Outputs> {
  const s = await startServe(['--model', model, ...args])
  running.push(s)
  try {
    return await collect(s, model)
  } finally {
    await s.stop()
    running.splice(running.indexOf(s), 1)
  }
}

const HYBRID_CASES: [string, string[]][] = [
  ['1→1', ['--prefill-tp', '1', '--decode-tp', '1']],
  ['1→2', ['--prefill-tp', '1', '--decode-tp', '2']],
  ['2→1', ['--prefill-tp', '2', '--decode-tp', '1']],
  // Over TCP the decode workers' reads are served reads (the prefill side sends into receives
  // posted on the decode cache).
  ['1→2 over TCP', ['--prefill-tp', '1', '--decode-tp', '2', '--transport', 'tcp']],
]
// A plain transformer: FA blocks only, no SSM state to move.
const LLAMA_CASES: [string, string[]][] = [['1→2', ['--prefill-tp', '1', '--decode-tp', '2']]]

describe.each([
  ['tiny-hybrid', HYBRID_CASES],
  ['tiny-hybrid-g1', HYBRID_CASES],
  ['tiny-llama', LLAMA_CASES],
] as const)('%s: disaggregated == colocated (greedy)', (model, cases) => {
  let colocated: Outputs
  it('colocated baseline produces output', async () => {
    colocated = await outputsOf(model, ['--colocated'])
    expect(colocated).toHaveLength(PROMPTS.length * 4)
    for (const line of colocated) expect(line.split(' ')[1].split(',')).toHaveLength(MAX_TOKENS)
  })
  it.each(cases)('%s is token-identical', async (_name, args) => {
    expect(await outputsOf(model, args)).toEqual(colocated)
  })
})
