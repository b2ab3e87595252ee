/**
 * Issue 12's conformance test: every request field of both endpoints, driven with the official
 * `openai` client against a real disaggregated `hpd serve` (1 prefill + 1 decode worker, real UCX
 * transfers), either changes the output as specified — checked against the engine's own logits,
 * computed here in-process over the same prompt and the generated history — or is refused with a
 * 400 naming it. A field of params.ts without a case here fails the coverage test.
 */
import OpenAI, {APIError} from 'openai'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {HybridEngine} from '../../src/engine/engine.js'
import {loadModel, type LoadedModel} from '../../src/engine/load-model.js'
import {FIELD_RULES} from '../../src/serve/openai/params.js'
import {CACHE_DIR, startServe, type ServeProcess} from './serve-harness.js'

process.env.HPD_CACHE_DIR = CACHE_DIR
const MODEL = 'tiny-hybrid'
const EOS = 257
const PROMPT = 'The state of a Mamba layer'

let server: ServeProcess
let client: OpenAI
let model: LoadedModel

beforeAll(async () => {
  server = await startServe(['--model', MODEL, '--served-model-name', MODEL, '--served-model-name', 'hybrid-alias'])
  client = new OpenAI({baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60_000})
  model = loadModel(MODEL)
}, 120_000)
afterAll(async () => {
  await server?.stop()
})

type Body = Record<string, unknown>
interface Choice {
  text: string
  finish_reason: string
  token_ids: number[]
  prompt_token_ids: number[]
  logprobs: {tokens: string[]; token_logprobs: number[]; top_logprobs: Record<string, number>[]} | null
  index: number
}
interface Completion {
  choices: Choice[]
  usage: {prompt_tokens: number; completion_tokens: number}
  model: string
}

async function complete(extra: Body): Promise<Completion> {
  return (await client.completions.create({model: MODEL, prompt: PROMPT, max_tokens: 8, temperature: 0, return_token_ids: true, ...extra} as never)) as unknown as Completion
}

async function refused(call: Promise<unknown>, param: string): Promise<APIError> {
  const error = (await call.then(
    () => undefined,
    (e: unknown) => e,
  )) as APIError
  expect(error, `expected a 400 naming ${param}`).toBeInstanceOf(APIError)
  expect({status: error.status, param: error.param}).toEqual({status: 400, param})
  return error
}

/** The engine's raw next-token logits after `prompt` followed by each token of `output` (one row per output position). */
function engineLogits(prompt: readonly number[], output: readonly number[]): Float32Array[] {
  const engine = new HybridEngine({spec: model.spec, weights: model.weights, numBlocks: 16})
  try {
    const rows = [Float32Array.from(engine.prefill('ref', prompt)!)]
    for (const t of output.slice(0, -1)) rows.push(Float32Array.from(engine.decodeStep([{requestId: 'ref', tokenId: t}])[0]))
    return rows
  } finally {
    engine.close()
  }
}

const argmax = (l: ArrayLike<number>) => Array.prototype.reduce.call(l, (b: number, v: number, i: number) => (v > l[b] ? i : b), 0) as number
const logSoftmax = (l: Float32Array) => {
  const max = Math.max(...l)
  const lse = max + Math.log(l.reduce((a, v) => a + Math.exp(v - max), 0))
  return Array.from(l, (v) => v - lse)
}

/** vLLM's penalties over the history (repetition over prompt + output; frequency and presence over output). */
function penalised(raw: Float32Array, prompt: readonly number[], output: readonly number[], o: {presence?: number; frequency?: number; repetition?: number}): Float64Array {
  const l = Float64Array.from(raw)
  const rep = o.repetition ?? 1
  for (const t of new Set([...prompt, ...output])) l[t] = l[t] > 0 ? l[t] / rep : l[t] * rep
  const counts = new Map<number, number>()
  for (const t of output) counts.set(t, (counts.get(t) ?? 0) + 1)
  for (const [t, c] of counts) l[t] -= (o.frequency ?? 0) * c + (o.presence ?? 0)
  return l
}

/** Per field: how this test exercises it (names only; the cases below do the work). */
const COVERED = new Set<string>()
const cover = (...names: string[]) => names.forEach((n) => COVERED.add(n))

describe('sampling fields change the output as vLLM defines them', () => {
  it('temperature 0 (greedy) picks the argmax of the engine logits at every step; max_tokens bounds the output', async () => {
    cover('model', 'prompt', 'max_tokens', 'temperature', 'return_token_ids')
    const r = await complete({})
    const c = r.choices[0]
    expect(c.token_ids).toHaveLength(8)
    expect(c.finish_reason).toBe('length')
    engineLogits(c.prompt_token_ids, c.token_ids).forEach((row, i) => expect(c.token_ids[i]).toBe(argmax(row)))
  })

  it('presence, frequency and repetition penalties: each greedy token is the argmax of the penalised logits over the generated history', async () => {
    cover('presence_penalty', 'frequency_penalty', 'repetition_penalty')
    const o = {presence: 1.2, frequency: 0.8, repetition: 1.6}
    const plain = await complete({max_tokens: 16})
    const r = await complete({max_tokens: 16, presence_penalty: o.presence, frequency_penalty: o.frequency, repetition_penalty: o.repetition})
    const c = r.choices[0]
    expect(c.token_ids).not.toEqual(plain.choices[0].token_ids)
    engineLogits(c.prompt_token_ids, c.token_ids).forEach((row, i) => expect(c.token_ids[i]).toBe(argmax(penalised(row, c.prompt_token_ids, c.token_ids.slice(0, i), o))))
  })

  it('logit_bias +100 forces its token; −100 bans the greedy choice', async () => {
    cover('logit_bias')
    const forced = 'Z'.charCodeAt(0)
    const r = await complete({temperature: 1, seed: 3, logit_bias: {[forced]: 100}, max_tokens: 4})
    expect(r.choices[0].token_ids).toEqual([forced, forced, forced, forced])
    const greedy = (await complete({max_tokens: 1})).choices[0].token_ids[0]
    const banned = await complete({max_tokens: 1, logit_bias: {[greedy]: -100}})
    expect(banned.choices[0].token_ids[0]).not.toBe(greedy)
  })

  it('min_tokens keeps EOS out for that many tokens; ignore_eos keeps generating past it', async () => {
    cover('min_tokens', 'ignore_eos')
    const eosFirst = await complete({logit_bias: {[EOS]: 100}})
    // vLLM: EOS is an output token (counted in completion_tokens, in token_ids), its text empty.
    expect(eosFirst.choices[0]).toMatchObject({text: '', finish_reason: 'stop', token_ids: [EOS]})
    expect(eosFirst.usage.completion_tokens).toBe(1)
    const min5 = await complete({logit_bias: {[EOS]: 100}, min_tokens: 5})
    expect(min5.choices[0].token_ids).toHaveLength(6)
    expect(min5.choices[0].token_ids.slice(0, 5)).not.toContain(EOS)
    expect(min5.choices[0].token_ids[5]).toBe(EOS)
    expect(min5.usage.completion_tokens).toBe(6)
    expect(min5.choices[0].finish_reason).toBe('stop')
    const ignoring = await complete({logit_bias: {[EOS]: 100}, ignore_eos: true, max_tokens: 6})
    expect(ignoring.choices[0].token_ids).toEqual(Array(6).fill(EOS))
    expect(ignoring.choices[0].finish_reason).toBe('length')
  })

  it('stop_token_ids end the output at that token (kept in token_ids; its text only with include_stop_str_in_output)', async () => {
    cover('stop_token_ids', 'include_stop_str_in_output')
    const base = (await complete({})).choices[0]
    const stopAt = base.token_ids[3]
    const first = base.token_ids.indexOf(stopAt)
    const r = (await complete({stop_token_ids: [stopAt]})).choices[0]
    expect(r.token_ids).toEqual(base.token_ids.slice(0, first + 1))
    expect(r.finish_reason).toBe('stop')
    expect(r.text).toBe(model.tokenizer.decode(base.token_ids.slice(0, first)))
    const kept = (await complete({stop_token_ids: [stopAt], include_stop_str_in_output: true})).choices[0]
    expect(kept.text).toBe(model.tokenizer.decode(base.token_ids.slice(0, first + 1)))
  })

  it('stop strings end the text before them (or after, with include_stop_str_in_output)', async () => {
    cover('stop')
    const text = (await complete({max_tokens: 12})).choices[0].text
    const stop = text.slice(4, 6)
    const cut = text.indexOf(stop)
    expect((await complete({max_tokens: 12, stop})).choices[0]).toMatchObject({text: text.slice(0, cut), finish_reason: 'stop'})
    expect((await complete({max_tokens: 12, stop: [stop], include_stop_str_in_output: true})).choices[0].text).toBe(text.slice(0, cut + stop.length))
  })

  it('seed makes sampling reproducible; top_k 1, top_p → 0 and min_p 1 all reduce sampling to greedy', async () => {
    cover('seed', 'top_k', 'top_p', 'min_p')
    const greedy = (await complete({max_tokens: 12})).choices[0].token_ids
    const a = await complete({temperature: 1.5, seed: 11, max_tokens: 12})
    const b = await complete({temperature: 1.5, seed: 11, max_tokens: 12})
    const c = await complete({temperature: 1.5, seed: 12, max_tokens: 12})
    expect(a.choices[0].token_ids).toEqual(b.choices[0].token_ids)
    expect(c.choices[0].token_ids).not.toEqual(a.choices[0].token_ids)
    expect(a.choices[0].token_ids).not.toEqual(greedy)
    for (const cut of [{top_k: 1}, {top_p: 1e-6}, {min_p: 1}]) expect((await complete({temperature: 1.5, seed: 11, max_tokens: 12, ...cut})).choices[0].token_ids, JSON.stringify(cut)).toEqual(greedy)
    // a mild cut keeps sampling random but inside what it allows
    expect((await complete({temperature: 1.5, seed: 11, max_tokens: 12, top_k: 3, min_p: 0.05})).choices[0].token_ids).toHaveLength(12)
  })

  it('logprobs (completions) are the log-softmax of the engine logits of the same step, with the top k', async () => {
    cover('logprobs')
    const r = (await complete({logprobs: 3})).choices[0]
    const rows = engineLogits(r.prompt_token_ids, r.token_ids)
    r.token_ids.forEach((t, i) => {
      const lp = logSoftmax(rows[i])
      expect(r.logprobs!.token_logprobs[i]).toBeCloseTo(lp[t], 3)
      const top = Object.values(r.logprobs!.top_logprobs[i]).sort((x, y) => y - x)
      expect(top[0]).toBeCloseTo(Math.max(...lp), 3)
    })
    expect(r.logprobs!.tokens).toEqual(r.token_ids.map((t) => model.tokenizer.decode([t])))
  })

  it('chat: logprobs true with top_logprobs k gives k alternatives per token; max_completion_tokens bounds the output', async () => {
    cover('messages', 'max_completion_tokens', 'top_logprobs')
    const r = await client.chat.completions.create({model: MODEL, messages: [{role: 'user', content: 'hi'}], max_completion_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3})
    expect(r.choices[0].finish_reason).toBe('length')
    expect(r.choices[0].logprobs!.content).toHaveLength(5)
    for (const e of r.choices[0].logprobs!.content!) {
      expect(e.top_logprobs).toHaveLength(3)
      expect(e.logprob).toBeLessThanOrEqual(0)
    }
    await refused(client.chat.completions.create({model: MODEL, messages: [{role: 'user', content: 'x'.repeat(50)}], max_completion_tokens: 8190}), 'max_completion_tokens')
  })
})

describe('choices', () => {
  it('n: one request, n choices; choice j is what a single request with seed + j gives', async () => {
    cover('n')
    const r = await complete({n: 3, temperature: 1.2, seed: 40, max_tokens: 10})
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2])
    for (let j = 0; j < 3; j++) expect(r.choices[j].token_ids).toEqual((await complete({temperature: 1.2, seed: 40 + j, max_tokens: 10})).choices[0].token_ids)
  })

  it('best_of: the returned choice is the candidate of highest cumulative logprob', async () => {
    cover('best_of')
    const candidates = await complete({n: 4, temperature: 1.5, seed: 7, max_tokens: 6, logprobs: 0})
    const sums = candidates.choices.map((c) => c.logprobs!.token_logprobs.reduce((a, b) => a + b, 0))
    const best = candidates.choices[sums.indexOf(Math.max(...sums))]
    const r = await complete({best_of: 4, n: 1, temperature: 1.5, seed: 7, max_tokens: 6})
    expect(r.choices).toHaveLength(1)
    expect(r.choices[0].token_ids).toEqual(best.token_ids)
    expect(r.choices[0].logprobs).toBeNull()
  })

  it('batched prompts give what each prompt gives alone, choice i·n + j', async () => {
    const prompts = ['first prompt', 'the second one']
    const r = await complete({prompt: prompts, n: 2, max_tokens: 5})
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2, 3])
    for (const [i, p] of prompts.entries()) {
      const alone = (await complete({prompt: p, max_tokens: 5})).choices[0].token_ids
      expect(r.choices[2 * i].token_ids).toEqual(alone)
      expect(r.choices[2 * i + 1].token_ids).toEqual(alone) // greedy: both choices agree
    }
    const ids = model.tokenizer.encode('ids prompt')
    expect((await complete({prompt: [ids, ids], max_tokens: 3})).choices).toHaveLength(2)
  })

  it('echo puts the prompt text before each choice', async () => {
    cover('echo')
    const plain = (await complete({})).choices[0].text
    expect((await complete({echo: true})).choices[0].text).toBe(PROMPT + plain)
  })
})

describe('streaming', () => {
  it('stream + stream_options.include_usage give the same tokens as one body, with usage; stream_options alone is refused', async () => {
    cover('stream', 'stream_options')
    const whole = (await complete({max_tokens: 6, logprobs: 1})).choices[0]
    const stream = await client.completions.create({model: MODEL, prompt: PROMPT, max_tokens: 6, temperature: 0, stream: true, stream_options: {include_usage: true}, logprobs: 1, return_token_ids: true} as never)
    const ids: number[] = []
    const lps: number[] = []
    let usage: {completion_tokens: number} | undefined
    for await (const chunk of stream as unknown as AsyncIterable<{choices: {token_ids?: number[]; logprobs?: {token_logprobs: number[]}}[]; usage?: {completion_tokens: number}}>) {
      ids.push(...(chunk.choices[0]?.token_ids ?? []))
      lps.push(...(chunk.choices[0]?.logprobs?.token_logprobs ?? []))
      usage ??= chunk.usage
    }
    expect(ids).toEqual(whole.token_ids)
    expect(lps).toEqual(whole.logprobs!.token_logprobs)
    expect(usage?.completion_tokens).toBe(6)
    await refused(complete({stream_options: {include_usage: true}}), 'stream_options')
  })
})

describe('kv_transfer_params', () => {
  it('is the workers’ contract: the router runs it itself and refuses it from clients, by name (the worker side: test/e2e/vllm-contract.test.ts)', async () => {
    cover('kv_transfer_params')
    const e = await refused(complete({kv_transfer_params: {do_remote_decode: true, do_remote_prefill: false}}), 'kv_transfer_params')
    expect(e.message).toContain('disaggregation contract')
  })
})

describe('fields hpd does not implement are refused by name; harmless ones are accepted', () => {
  it('suffix, tools, tool_choice, functions, function_call, response_format (json_object, json_schema), store: 400 naming each', async () => {
    cover('suffix', 'tools', 'tool_choice', 'functions', 'function_call', 'response_format', 'store')
    await refused(complete({suffix: ' and so on'}), 'suffix')
    const chat = (extra: Body) => client.chat.completions.create({model: MODEL, messages: [{role: 'user', content: 'x'}], max_tokens: 2, ...extra} as never)
    await refused(chat({tools: [{type: 'function', function: {name: 'f', parameters: {}}}]}), 'tools')
    await refused(chat({tool_choice: 'required'}), 'tool_choice')
    await refused(chat({functions: [{name: 'f'}]}), 'functions')
    await refused(chat({function_call: 'auto'}), 'function_call')
    await refused(chat({response_format: {type: 'json_object'}}), 'response_format')
    const e = await refused(chat({response_format: {type: 'json_schema', json_schema: {name: 'x', schema: {type: 'object'}}}}), 'response_format')
    expect(e.message).toContain('constrained decoding')
    await refused(chat({store: true}), 'store')
    const toolMessage = await refused(chat({messages: [{role: 'user', content: 'x'}, {role: 'tool', content: 'r', tool_call_id: 'c1'}]}), 'messages[1].tool_call_id')
    expect(toolMessage.message).toContain('tool calling is not supported')
    // neutral values pass
    expect((await chat({tools: [], tool_choice: 'none', response_format: {type: 'text'}, store: false})).choices).toHaveLength(1)
  })

  it('user, metadata and parallel_tool_calls are accepted and change nothing', async () => {
    cover('user', 'metadata', 'parallel_tool_calls')
    const chat = (extra: Body) => client.chat.completions.create({model: MODEL, messages: [{role: 'user', content: 'x'}], max_tokens: 4, temperature: 0, ...extra} as never) as Promise<{choices: {message: {content: string}}[]}>
    const plain = (await chat({})).choices[0].message.content
    expect((await chat({user: 'u-1', metadata: {team: 'a'}, parallel_tool_calls: false})).choices[0].message.content).toBe(plain)
    expect((await complete({user: 'u-2'})).choices[0].text).toBe((await complete({})).choices[0].text)
  })

  it('types and ranges are checked as OpenAI and vLLM check them', async () => {
    for (const [body, param] of [
      [{presence_penalty: 2.1}, 'presence_penalty'],
      [{frequency_penalty: '1'}, 'frequency_penalty'],
      [{repetition_penalty: -1}, 'repetition_penalty'],
      [{logit_bias: {'5': 150}}, 'logit_bias.5'],
      [{logit_bias: {'100000': 1}}, 'logit_bias'],
      [{min_p: -0.1}, 'min_p'],
      [{min_tokens: 9, max_tokens: 4}, 'min_tokens'],
      [{stop_token_ids: [5000]}, 'stop_token_ids[0]'],
      [{n: 200}, 'n'],
      [{best_of: 2, n: 3}, 'best_of'],
      [{logprobs: 30}, 'logprobs'],
      [{echo: true, logprobs: 1}, 'echo'],
      [{top_k: -2}, 'top_k'],
      [{unknown_field: 1}, 'unknown_field'],
    ] as const) {
      await refused(complete(body), param)
    }
  })

  it('served model names: each is accepted and echoed in the response; another is a 404', async () => {
    expect((await complete({model: 'hybrid-alias', max_tokens: 1})).model).toBe('hybrid-alias')
    expect((await client.models.retrieve('hybrid-alias')).id).toBe('hybrid-alias')
    await expect(complete({model: 'gpt-4o'})).rejects.toMatchObject({status: 404, param: 'model'})
  })
})

describe('coverage', () => {
  it('every field in params.ts has a conformance case here', () => {
    const missing = [...new Set(FIELD_RULES.map((r) => r.name))].filter((n) => !COVERED.has(n))
    expect(missing).toEqual([])
  })
})
