/**
 * Issue 15's P/D identity for the hybrid families: greedy outputs of disaggregated serving at
 * 1→1, 1→2 and 2→1 are token-identical to --colocated, for each family's tiny preset
 * (Granite-4.0-H, Falcon-H1, Qwen3-Next, Nemotron-H MoE) and for directories in the published
 * checkpoint layout (bf16 shards + index, tokenizer.json, chat template; Qwen3.5's multimodal
 * wrapper). Falcon-H1 at 1→2 (mamba_n_groups 1: B/C replicated on the decode ranks) is the case
 * vLLM's heterogeneous-TP transfer corrupts (#55208); hpd reads the replicated group whole.
 * Real processes, real UCX transfers, the official openai client.
 */
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import OpenAI from 'openai'
import {afterAll, describe, expect, it} from 'vitest'

import {publishedConfig, writePublishedCheckpoint} from '../../src/testing/published-checkpoint.js'
import {startServe, type ServeProcess} from './serve-harness.js'

const PROMPTS = [
  'Hello',
  // Long enough to span several 16-token kernel blocks and a 64-token scan chunk.
  'In a hybrid model, Mamba and delta-rule layers carry a fixed-size state while attention layers keep a growing key/value cache; both must move from prefill to decode.',
]
const MAX_TOKENS = 8

async function collect(s: ServeProcess, model: string): Promise<string[]> {
  const client = new OpenAI({baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60_000})
  const extra = {return_token_ids: true} as Record<string, unknown>
  const out: string[] = []
  for (const prompt of PROMPTS) {
    const whole = (await client.completions.create({model, prompt, max_tokens: MAX_TOKENS, temperature: 0, ...extra})) as unknown as {choices: {token_ids: number[]}[]}
    out.push(`cmpl ${whole.choices[0].token_ids.join(',')}`)
    const stream = await client.chat.completions.create({model, messages: [{role: 'user', content: prompt}], max_tokens: MAX_TOKENS, temperature: 0, stream: true, ...extra})
    const ids: number[] = []
    for await (const chunk of stream) ids.push(...(((chunk.choices[0] as unknown as {token_ids?: number[]})?.token_ids) ?? []))
    out.push(`chat-stream ${ids.join(',')}`)
  }
  return out
}

const running: ServeProcess[] = []
const root = mkdtempSync(join(tmpdir(), 'hpd-serve-families-'))
afterAll(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
  rmSync(root, {recursive: true, force: true})
})

async function outputsOf(model: string, args: string[]): Promise<string[]> {
  const s = await startServe(['--model', model, ...args])
  running.push(s)
  try {
    return await collect(s, model.includes('/') ? model.split('/').at(-1)! : model)
  } finally {
    await s.stop()
    running.splice(running.indexOf(s), 1)
  }
}

const ALL: [string, string[]][] = [
  ['1→1', ['--prefill-tp', '1', '--decode-tp', '1']],
  ['1→2', ['--prefill-tp', '1', '--decode-tp', '2']],
  ['2→1', ['--prefill-tp', '2', '--decode-tp', '1']],
]

describe.each(['tiny-granite-h', 'tiny-falcon-h1', 'tiny-qwen3-next', 'tiny-nemotron-h-moe'])('%s: disaggregated == colocated (greedy)', (model) => {
  let colocated: string[]
  it('colocated baseline produces output', async () => {
    colocated = await outputsOf(model, ['--colocated'])
    expect(colocated).toHaveLength(PROMPTS.length * 2)
    for (const line of colocated) expect(line.split(' ')[1].split(',')).toHaveLength(MAX_TOKENS)
  })
  it.each(ALL)('%s is token-identical', async (_name, args) => {
    expect(await outputsOf(model, args)).toEqual(colocated)
  })
})

describe.each([
  ['Qwen3.5 (multimodal wrapper, split GDN projections, tied)', 'tiny-qwen3-next', 'qwen3.5'],
  ['Granite-4.0-H', 'tiny-granite-h', 'as-is'],
] as const)('a %s directory in the published layout', (_name, preset, variant) => {
  const dir = join(root, `${preset}-${variant}`)
  let colocated: string[]
  it('colocated baseline produces output through its tokenizer.json and chat template', async () => {
    writePublishedCheckpoint(dir, publishedConfig(preset, variant))
    colocated = await outputsOf(dir, ['--colocated'])
    expect(colocated).toHaveLength(PROMPTS.length * 2)
  })
  it('1→2 is token-identical', async () => {
    expect(await outputsOf(dir, ['--prefill-tp', '1', '--decode-tp', '2'])).toEqual(colocated)
  })
})
