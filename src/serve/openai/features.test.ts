import type {AddressInfo} from 'node:net'

import OpenAI from 'openai'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {BackendRequest, GenerationBackend} from '../backend.js'
import {ServeMetrics} from '../metrics.js'
import type {WorkerStreamEvent} from '../protocol.js'
import {createRouter} from '../router.js'
import {byteTokenizer} from '../../testing/byte-tokenizer.js'

/**
 * The OpenAI surface of the router over a scripted backend that honours n and logprobs the way the
 * workers do (index per continuation, 'finish' per continuation, then 'done'): choices, batched
 * prompts, echo, best_of, logprobs shapes, per-choice stop handling, the utility routes. The real
 * workers are exercised in test/e2e/serve-conformance.test.ts.
 */
const bytes = byteTokenizer({bos: 256})

/** Continuation j of every request says `c<j> hello world` (its logprob per token: −(j + 1)/10). */
class ChoiceBackend implements GenerationBackend {
  seen: BackendRequest[] = []
  readiness() {
    return {ready: true}
  }
  async *generate(req: BackendRequest): AsyncIterable<WorkerStreamEvent> {
    this.seen.push(req)
    const n = req.sampling.n ?? 1
    const texts = Array.from({length: n}, (_, j) => [...Buffer.from(`c${j} hello world`)].slice(0, req.sampling.maxTokens))
    const longest = Math.max(...texts.map((t) => t.length))
    for (let i = 0; i < longest; i++) {
      for (let j = 0; j < n; j++) {
        const t = texts[j][i]
        if (t === undefined) continue
        const lp = -(j + 1) / 10
        yield {
          type: 'token',
          tokenId: t,
          ...(n > 1 ? {index: j} : {}),
          ...(req.sampling.logprobs !== undefined ? {logprob: lp, top: [{tokenId: t, logprob: lp}, {tokenId: 120, logprob: -5}].slice(0, req.sampling.logprobs)} : {}),
        }
        if (req.sampling.stopTokenIds?.includes(t)) texts[j].length = i + 1
      }
    }
    if (n > 1) for (let j = 0; j < n; j++) yield {type: 'finish', index: j, finishReason: texts[j].length >= req.sampling.maxTokens ? 'length' : 'stop', numOutputTokens: texts[j].length}
    yield {type: 'done', finishReason: texts[0].length >= req.sampling.maxTokens ? 'length' : 'stop', numOutputTokens: texts.reduce((a, t) => a + t.length, 0)}
  }
}

const backend = new ChoiceBackend()
const server = createRouter({backend, tokenizer: bytes, modelName: 'tiny-hybrid', servedModelNames: ['tiny-hybrid', 'alias'], maxModelLen: 64, vocabSize: 384, metrics: new ServeMetrics()})
let base = ''
let client: OpenAI

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  client = new OpenAI({baseURL: `${base}/v1`, apiKey: 'none', maxRetries: 0, timeout: 5000})
})
afterAll(() => new Promise<void>((r) => server.close(() => r())))

// Response bodies are checked field by field below; their type is whatever JSON.parse gives.
type Json = Record<string, any>
async function post(path: string, body: unknown): Promise<{status: number; json: Json}> {
  const res = await fetch(`${base}${path}`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body)})
  return {status: res.status, json: (await res.json()) as Json}
}
async function sse(path: string, body: unknown): Promise<Json[]> {
  const res = await fetch(`${base}${path}`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({...body as object, stream: true})})
  const text = await res.text()
  return text
    .split('\n\n')
    .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
    .map((l) => JSON.parse(l.slice(6)) as Json)
}

describe('choices: n, batched prompts, best_of, echo', () => {
  it('n = 3 returns three choices, one backend request with n = 3; usage counts every token', async () => {
    const r = await client.completions.create({model: 'tiny-hybrid', prompt: 'hi', max_tokens: 20, n: 3, seed: 1})
    expect(r.choices.map((c) => [c.index, c.text])).toEqual([
      [0, 'c0 hello world'],
      [1, 'c1 hello world'],
      [2, 'c2 hello world'],
    ])
    expect(backend.seen.at(-1)!.sampling).toMatchObject({n: 3, seed: 1})
    expect(r.usage).toEqual({prompt_tokens: 3, completion_tokens: 42, total_tokens: 45, prompt_tokens_details: {cached_tokens: 0}})
  })

  it('streams n choices by index, each with its own finish_reason', async () => {
    const chunks = await sse('/v1/chat/completions', {model: 'tiny-hybrid', messages: [{role: 'user', content: 'x'}], n: 2, max_tokens: 20})
    const text = [0, 1].map((i) => chunks.flatMap((c) => c.choices.filter((x: Json) => x.index === i).map((x: Json) => x.delta.content ?? '')).join(''))
    expect(text).toEqual(['c0 hello world', 'c1 hello world'])
    expect(chunks.filter((c) => c.choices[0]?.finish_reason === 'stop').map((c) => c.choices[0].index).sort()).toEqual([0, 1])
  })

  it('batched prompts: one backend request per prompt, choices i·n + j, usage over all prompts', async () => {
    const before = backend.seen.length
    const r = await post('/v1/completions', {model: 'tiny-hybrid', prompt: ['ab', 'cde'], n: 2, max_tokens: 3, return_token_ids: true})
    expect(backend.seen.length - before).toBe(2)
    expect(r.json.choices.map((c: Json) => [c.index, c.text, c.prompt_token_ids])).toEqual([
      [0, 'c0 ', [256, 97, 98]],
      [1, 'c1 ', [256, 97, 98]],
      [2, 'c0 ', [256, 99, 100, 101]],
      [3, 'c1 ', [256, 99, 100, 101]],
    ])
    expect(r.json.usage).toEqual({prompt_tokens: 7, completion_tokens: 12, total_tokens: 19, prompt_tokens_details: {cached_tokens: 0}})
    const ids = await post('/v1/completions', {model: 'tiny-hybrid', prompt: [[1, 2], [3]], max_tokens: 1})
    expect(ids.json.choices).toHaveLength(2)
    expect(await post('/v1/completions', {model: 'tiny-hybrid', prompt: ['ab', [5]]})).toMatchObject({status: 400, json: {error: {param: 'prompt'}}})
  })

  it('best_of > n keeps the n of highest cumulative logprob (logprobs hidden unless asked)', async () => {
    const r = await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'hi', best_of: 3, n: 2, max_tokens: 4})
    expect(backend.seen.at(-1)!.sampling).toMatchObject({n: 3, logprobs: 0})
    expect(r.json.choices.map((c: Json) => [c.index, c.text, c.logprobs])).toEqual([
      [0, 'c0 h', null],
      [1, 'c1 h', null],
    ])
    expect(await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'hi', best_of: 3, n: 2, stream: true})).toMatchObject({status: 400, json: {error: {param: 'best_of'}}})
    expect(await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'hi', best_of: 1, n: 2})).toMatchObject({status: 400, json: {error: {param: 'best_of'}}})
  })

  it('echo puts the prompt text first (token-id prompts decoded), streaming and not', async () => {
    const r = await post('/v1/completions', {model: 'tiny-hybrid', prompt: [104, 105], echo: true, max_tokens: 2})
    expect(r.json.choices[0].text).toBe('hic0')
    const chunks = await sse('/v1/completions', {model: 'tiny-hybrid', prompt: 'yo', echo: true, max_tokens: 2})
    expect(chunks.map((c) => c.choices[0].text).join('')).toBe('yoc0')
    expect(await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'x', echo: true, logprobs: 1})).toMatchObject({status: 400, json: {error: {param: 'echo', code: 'unsupported_value'}}})
  })
})

describe('logprobs', () => {
  it('completions: tokens, token_logprobs, top_logprobs (top k plus the sampled token), text_offset; the count reaches the workers', async () => {
    const r = await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'hi', max_tokens: 3, logprobs: 2})
    expect(backend.seen.at(-1)!.sampling.logprobs).toBe(2)
    expect(r.json.choices[0].logprobs).toEqual({
      tokens: ['c', '0', ' '],
      token_logprobs: [-0.1, -0.1, -0.1],
      top_logprobs: [
        {c: -0.1, x: -5},
        {'0': -0.1, x: -5},
        {' ': -0.1, x: -5},
      ],
      text_offset: [0, 1, 2],
    })
  })

  it('chat: logprobs true + top_logprobs, streaming and not; top_logprobs without logprobs is refused', async () => {
    const r = await client.chat.completions.create({model: 'tiny-hybrid', messages: [{role: 'user', content: 'x'}], max_tokens: 2, logprobs: true, top_logprobs: 1})
    expect(r.choices[0].logprobs!.content).toEqual([
      {token: 'c', logprob: -0.1, bytes: [99], top_logprobs: [{token: 'c', logprob: -0.1, bytes: [99]}]},
      {token: '0', logprob: -0.1, bytes: [48], top_logprobs: [{token: '0', logprob: -0.1, bytes: [48]}]},
    ])
    const chunks = await sse('/v1/chat/completions', {model: 'tiny-hybrid', messages: [{role: 'user', content: 'x'}], max_tokens: 2, logprobs: true})
    expect(chunks.flatMap((c) => c.choices[0]?.logprobs?.content ?? []).map((e: Json) => [e.token, e.top_logprobs])).toEqual([
      ['c', []],
      ['0', []],
    ])
    expect(await post('/v1/chat/completions', {model: 'tiny-hybrid', messages: [{role: 'user', content: 'x'}], top_logprobs: 2})).toMatchObject({status: 400, json: {error: {param: 'top_logprobs'}}})
  })
})

describe('stops', () => {
  it('a stop string ends its own choice only; include_stop_str_in_output keeps it', async () => {
    const r = await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'hi', n: 2, stop: ['1 h'], max_tokens: 20})
    expect(r.json.choices.map((c: Json) => [c.text, c.finish_reason])).toEqual([
      ['c0 hello world', 'stop'],
      ['c', 'stop'],
    ])
    const inc = await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'hi', stop: 'llo', include_stop_str_in_output: true, max_tokens: 20})
    expect(inc.json.choices[0].text).toBe('c0 hello')
  })

  it('stop_token_ids: the stop token is in token_ids, its text only with include_stop_str_in_output', async () => {
    const stopAt = 'e'.charCodeAt(0)
    const r = await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'hi', stop_token_ids: [stopAt], max_tokens: 20, return_token_ids: true})
    expect(r.json.choices[0]).toMatchObject({text: 'c0 h', finish_reason: 'stop'})
    expect(r.json.choices[0].token_ids.at(-1)).toBe(stopAt)
    const inc = await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'hi', stop_token_ids: [stopAt], include_stop_str_in_output: true, max_tokens: 20})
    expect(inc.json.choices[0].text).toBe('c0 he')
  })

  it('stop strings are not matched before min_tokens tokens were generated', async () => {
    const r = await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'hi', stop: 'c0', min_tokens: 3, max_tokens: 20})
    expect(r.json.choices[0].text).toBe('c0 hello world')
  })
})

describe('sampling fields reach the workers; refusals name their field', () => {
  it('every honoured sampling field is carried in SamplingParams (neutral values left out)', async () => {
    await post('/v1/chat/completions', {
      model: 'alias',
      messages: [{role: 'user', content: 'x'}],
      max_completion_tokens: 9,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      repetition_penalty: 1.3,
      logit_bias: {'65': 10},
      min_p: 0.1,
      min_tokens: 2,
      stop_token_ids: [7],
      top_k: -1,
    })
    expect(backend.seen.at(-1)!.sampling).toEqual({
      temperature: 1,
      topP: 1,
      topK: 0,
      seed: undefined,
      maxTokens: 9,
      ignoreEos: false,
      minP: 0.1,
      presencePenalty: 0.5,
      frequencyPenalty: -0.5,
      repetitionPenalty: 1.3,
      logitBias: {'65': 10},
      minTokens: 2,
      stopTokenIds: [7],
    })
    await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'x', presence_penalty: 0, repetition_penalty: 1, logit_bias: {}, min_p: 0, n: 1})
    expect(Object.keys(backend.seen.at(-1)!.sampling).sort()).toEqual(['ignoreEos', 'maxTokens', 'seed', 'temperature', 'topK', 'topP'])
  })

  it.each([
    [{presence_penalty: 2.5}, 'presence_penalty', 'invalid_value'],
    [{frequency_penalty: -3}, 'frequency_penalty', 'invalid_value'],
    [{repetition_penalty: 0}, 'repetition_penalty', 'invalid_value'],
    [{logit_bias: {'5': 101}}, 'logit_bias.5', 'invalid_value'],
    [{logit_bias: {abc: 1}}, 'logit_bias.abc', 'invalid_value'],
    [{logit_bias: {'999': 1}}, 'logit_bias', 'invalid_value'],
    [{min_p: 1.5}, 'min_p', 'invalid_value'],
    [{min_tokens: 5, max_tokens: 3}, 'min_tokens', 'invalid_value'],
    [{stop_token_ids: [1000]}, 'stop_token_ids[0]', 'invalid_value'],
    [{n: 0}, 'n', 'invalid_value'],
    [{n: 129}, 'n', 'invalid_value'],
    [{logprobs: 21}, 'logprobs', 'invalid_value'],
    [{suffix: 'tail'}, 'suffix', 'unsupported_parameter'],
    [{stream_options: {include_usage: true}}, 'stream_options', 'invalid_value'],
    [{stream: true, stream_options: {include_usage: true, continuous_usage_stats: true}}, 'stream_options.continuous_usage_stats', 'unsupported_parameter'],
    [{ignore_eos: 1}, 'ignore_eos', 'invalid_type'],
    [{echo: 'yes'}, 'echo', 'invalid_type'],
    [{max_tokens: '5'}, 'max_tokens', 'invalid_type'],
    [{temperature: 3}, 'temperature', 'invalid_value'],
    [{frobnicate: 1}, 'frobnicate', 'unknown_parameter'],
  ])('completions %j → 400 naming %s', async (extra, param, code) => {
    expect(await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'x', ...extra})).toMatchObject({status: 400, json: {error: {param, code}}})
  })

  it.each([
    [{tools: [{type: 'function', function: {name: 'f'}}]}, 'tools', 'unsupported_parameter'],
    [{tool_choice: 'auto'}, 'tool_choice', 'unsupported_parameter'],
    [{response_format: {type: 'json_object'}}, 'response_format', 'unsupported_parameter'],
    [{response_format: {type: 'json_schema', json_schema: {name: 'x', schema: {}}}}, 'response_format', 'unsupported_parameter'],
    [{messages: [{role: 'user', content: 'x'}, {role: 'tool', content: 'r', tool_call_id: 'c'}]}, 'messages[1].tool_call_id', 'unsupported_parameter'],
    [{messages: [{role: 'assistant', content: null, tool_calls: [{id: 'c', type: 'function', function: {name: 'f', arguments: '{}'}}]}]}, 'messages[0].tool_calls', 'unsupported_parameter'],
    [{messages: [{role: 'tool', content: 'r'}]}, 'messages[0].role', 'unsupported_parameter'],
    [{max_completion_tokens: 100}, 'max_completion_tokens', 'context_length_exceeded'],
    [{logprobs: 3}, 'logprobs', 'invalid_type'],
    [{messages: [{role: 'user', content: [{type: 'text', text: 'what is this?'}, {type: 'image_url', image_url: {url: 'https://example.com/a.png'}}]}]}, 'messages[0].content[1]', 'unsupported_value'],
    [{messages: [{role: 'user', content: 'x', bogus: 1}]}, 'messages[0].bogus', 'unsupported_parameter'],
  ])('chat %j → 400 naming %s', async (extra, param, code) => {
    const r = await post('/v1/chat/completions', {model: 'tiny-hybrid', messages: [{role: 'user', content: 'x'}], ...extra})
    expect(r).toMatchObject({status: 400, json: {error: {param, code}}})
    if (code === 'unsupported_parameter' && param.startsWith('messages') && param !== 'messages[0].bogus') expect(r.json.error.message).toContain('tool calling is not supported')
    if (param === 'messages[0].content[1]') expect(r.json.error.message).toContain('images are not supported')
  })

  it('a chat message name is accepted and ignored (the template has no place for it)', async () => {
    const named = await post('/v1/chat/completions', {model: 'tiny-hybrid', messages: [{role: 'user', content: 'x', name: 'alice'}], max_tokens: 3})
    const plain = await post('/v1/chat/completions', {model: 'tiny-hybrid', messages: [{role: 'user', content: 'x'}], max_tokens: 3})
    expect(named.status).toBe(200)
    expect(named.json.choices[0].message).toEqual(plain.json.choices[0].message)
  })
})

describe('utility routes', () => {
  it('a served name given twice is listed once', async () => {
    const twice = createRouter({backend, tokenizer: bytes, modelName: 'tiny-hybrid', servedModelNames: ['a', 'b', 'a'], maxModelLen: 64, vocabSize: 384, metrics: new ServeMetrics()})
    await new Promise<void>((r) => twice.listen(0, '127.0.0.1', () => r()))
    try {
      const res = await fetch(`http://127.0.0.1:${(twice.address() as AddressInfo).port}/v1/models`)
      expect(((await res.json()) as Json).data.map((m: {id: string}) => m.id)).toEqual(['a', 'b'])
    } finally {
      await new Promise<void>((r) => twice.close(() => r()))
    }
  })

  it('GET /v1/models lists every served name; /v1/models/{id} answers each and 404s others', async () => {
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['tiny-hybrid', 'alias'])
    expect(await client.models.retrieve('alias')).toMatchObject({id: 'alias', object: 'model', root: 'tiny-hybrid'})
    const missing = await fetch(`${base}/v1/models/nope`)
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as Json).error.code).toBe('model_not_found')
  })

  it('responses carry the name the request used', async () => {
    expect((await client.completions.create({model: 'alias', prompt: 'x', max_tokens: 1})).model).toBe('alias')
  })

  it('POST /tokenize and /detokenize round-trip; GET /version', async () => {
    expect((await post('/tokenize', {model: 'tiny-hybrid', prompt: 'hi'})).json).toEqual({count: 3, max_model_len: 64, tokens: [256, 104, 105]})
    expect((await post('/tokenize', {prompt: 'hi', add_special_tokens: false})).json.tokens).toEqual([104, 105])
    expect((await post('/tokenize', {messages: [{role: 'user', content: 'a'}]})).json.count).toBeGreaterThan(3)
    expect((await post('/detokenize', {tokens: [104, 105]})).json).toEqual({prompt: 'hi'})
    expect(await post('/detokenize', {tokens: [9999]})).toMatchObject({status: 400, json: {error: {param: 'tokens[0]'}}})
    expect(await post('/tokenize', {prompt: 'x', bogus: 1})).toMatchObject({status: 400, json: {error: {code: 'unknown_parameter'}}})
    expect(await post('/tokenize', {model: 'other', prompt: 'x'})).toMatchObject({status: 404, json: {error: {param: 'model'}}})
    // Chat messages: add_generation_prompt true is what hpd's template does; false is refused by name.
    const chat = [{role: 'user', content: 'a'}]
    expect((await post('/tokenize', {messages: chat, add_generation_prompt: true})).json.tokens).toEqual((await post('/tokenize', {messages: chat})).json.tokens)
    const noPrompt = await post('/tokenize', {messages: chat, add_generation_prompt: false})
    expect(noPrompt).toMatchObject({status: 400, json: {error: {param: 'add_generation_prompt', code: 'unsupported_value'}}})
    expect(noPrompt.json.error.message).toContain('always ends with the assistant')
    expect(await post('/tokenize', {messages: chat, bogus: 1})).toMatchObject({status: 400, json: {error: {param: 'bogus', code: 'unknown_parameter'}}})
    const v = (await (await fetch(`${base}/version`)).json()) as Json
    expect(v.version).toMatch(/^\d+\.\d+\.\d+/)
    expect((await fetch(`${base}/tokenize`)).status).toBe(405)
  })
})
