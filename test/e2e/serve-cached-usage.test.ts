/**
 * usage.prompt_tokens_details.cached_tokens on every response (issue 14 review), as vLLM reports
 * prompt-token details: the prompt tokens served from a prefix cache instead of computed — the
 * prefill worker's hit when disaggregated, the colocated worker's own otherwise — streamed
 * (include_usage) and not, completions and chat, and equal to what the computing worker's
 * `vllm:prefix_cache_hits_total{kind="mamba"}` (where computation resumed) counted for it.
 */
import OpenAI from 'openai'
import {afterAll, describe, expect, it} from 'vitest'

import {startServe, type ServeProcess} from './serve-harness.js'

const running: ServeProcess[] = []
afterAll(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

async function resumedTokens(controlUrl: string): Promise<number> {
  const text = await (await fetch(`${controlUrl}/metrics`)).text()
  return Number(/^vllm:prefix_cache_hits_total\{kind="mamba"\} ([0-9.e+]+)$/m.exec(text)?.[1] ?? Number.NaN)
}

const PROMPT = `A system prompt that every turn repeats: ${'the state of a hybrid model is checkpointed at block boundaries; '.repeat(6)}`

describe.each([
  ['colocated', ['--colocated'], 'colocated-0'],
  ['disaggregated', [], 'prefill-0'],
] as const)('%s', (_mode, args, computing) => {
  it('reports the prefix-cache hit of every response in usage, streamed and not, as the computing worker counted it', async () => {
    const s = await startServe(['--model', 'tiny-hybrid', ...args])
    running.push(s)
    const client = new OpenAI({baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60_000})
    const worker = s.controlUrls.get(computing)!
    const cold = await client.completions.create({model: 'tiny-hybrid', prompt: PROMPT, max_tokens: 4, temperature: 0})
    expect(cold.usage?.prompt_tokens_details?.cached_tokens).toBe(0)

    const before = await resumedTokens(worker)
    const warm = await client.completions.create({model: 'tiny-hybrid', prompt: PROMPT, max_tokens: 4, temperature: 0})
    const cached = warm.usage!.prompt_tokens_details!.cached_tokens!
    // A whole number of 80-token blocks, short of the last prompt token (it is computed for its logits).
    expect(cached).toBeGreaterThan(0)
    expect(cached % 80).toBe(0)
    expect(cached).toBeLessThan(warm.usage!.prompt_tokens)
    expect((await resumedTokens(worker)) - before).toBe(cached)

    // Streamed with include_usage: the usage chunk carries it too.
    const stream = await client.completions.create({model: 'tiny-hybrid', prompt: PROMPT, max_tokens: 4, temperature: 0, stream: true, stream_options: {include_usage: true}})
    let streamed: number | undefined
    for await (const chunk of stream) if (chunk.usage) streamed = chunk.usage.prompt_tokens_details?.cached_tokens
    expect(streamed).toBe(cached)

    // Chat: a second turn repeating the conversation so far is served from the cache for its shared part.
    const messages = [{role: 'system' as const, content: PROMPT}, {role: 'user' as const, content: 'first question'}]
    const turn1 = await client.chat.completions.create({model: 'tiny-hybrid', messages, max_tokens: 4})
    const turn2 = await client.chat.completions.create({model: 'tiny-hybrid', messages: [...messages, {role: 'assistant', content: turn1.choices[0].message.content ?? ''}, {role: 'user', content: 'second question'}], max_tokens: 4})
    expect(turn2.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(0)

    // Batched prompts: each prompt's hit, summed.
    const batch = await client.completions.create({model: 'tiny-hybrid', prompt: [PROMPT, PROMPT], max_tokens: 2, temperature: 0})
    expect(batch.usage!.prompt_tokens_details!.cached_tokens).toBe(2 * cached)
  })
})
