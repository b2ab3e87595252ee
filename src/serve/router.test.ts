import type {AddressInfo} from 'node:net'

import OpenAI from 'openai'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ServeError, type BackendRequest, type GenerationBackend} from './backend.js'
import {ServeMetrics} from './metrics.js'
import type {WorkerStreamEvent} from './protocol.js'
import {createRouter} from './router.js'
import {byteTokenizer} from '../testing/byte-tokenizer.js'

// Unit seam: the router is tested against a scripted backend; the real workers are in test/e2e.
const bytes = byteTokenizer()

class ScriptedBackend implements GenerationBackend {
  ready = true
  failAfter: number | undefined
  seen: BackendRequest[] = []
  readiness() {
    return this.ready ? {ready: true} : {ready: false, reason: 'no healthy prefill worker (prefill-0 dead)'}
  }
  async *generate(req: BackendRequest): AsyncIterable<WorkerStreamEvent> {
    this.seen.push(req)
    const reply = [...Buffer.from('héllo world')]
    let n = 0
    for (const t of reply) {
      if (n >= req.sampling.maxTokens) break
      if (this.failAfter !== undefined && n === this.failAfter) {
        yield {type: 'error', code: 'kv_transfer_failed', message: 'prefill engine p0 vanished', status: 502}
        return
      }
      yield {type: 'token', tokenId: t}
      n++
    }
    yield {type: 'done', finishReason: n >= req.sampling.maxTokens ? 'length' : 'stop', numOutputTokens: n}
  }
}

const backend = new ScriptedBackend()
const metrics = new ServeMetrics()
const server = createRouter({backend, tokenizer: bytes, modelName: 'tiny-hybrid', maxModelLen: 64, vocabSize: 384, metrics})
let base = ''
let client: OpenAI

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  client = new OpenAI({baseURL: `${base}/v1`, apiKey: 'none', maxRetries: 0, timeout: 5000})
})
afterAll(() => new Promise<void>((r) => server.close(() => r())))

async function post(path: string, body: unknown) {
  const res = await fetch(`${base}${path}`, {method: 'POST', headers: {'content-type': 'application/json'}, body: typeof body === 'string' ? body : JSON.stringify(body)})
  return {status: res.status, json: (await res.json()) as {error: {message: string; type: string; param: string | null; code: string}}}
}

describe('router (OpenAI API)', () => {
  it('answers completions, streaming and not, with the same text', async () => {
    const whole = await client.completions.create({model: 'tiny-hybrid', prompt: 'hi', max_tokens: 20, temperature: 0})
    expect(whole.choices[0].text).toBe('héllo world')
    expect(whole.choices[0].finish_reason).toBe('stop')
    expect(whole.usage).toEqual({prompt_tokens: 2, completion_tokens: 12, total_tokens: 14, prompt_tokens_details: {cached_tokens: 0}})
    const stream = await client.completions.create({model: 'tiny-hybrid', prompt: 'hi', max_tokens: 20, stream: true, stream_options: {include_usage: true}})
    let text = ''
    let finish: string | null = null
    let usage
    for await (const chunk of stream) {
      if (chunk.choices[0]) {
        text += chunk.choices[0].text
        finish = chunk.choices[0].finish_reason ?? finish
      }
      if (chunk.usage) usage = chunk.usage
    }
    expect(text).toBe('héllo world')
    expect(finish).toBe('stop')
    expect(usage).toEqual({prompt_tokens: 2, completion_tokens: 12, total_tokens: 14, prompt_tokens_details: {cached_tokens: 0}})
  })

  it('answers chat completions, streaming and not', async () => {
    const whole = await client.chat.completions.create({model: 'tiny-hybrid', messages: [{role: 'user', content: 'hi'}], max_tokens: 5})
    expect(whole.choices[0].message).toEqual({role: 'assistant', content: 'héll'})
    expect(whole.choices[0].finish_reason).toBe('length')
    const stream = await client.chat.completions.create({model: 'tiny-hybrid', messages: [{role: 'user', content: 'hi'}], max_tokens: 5, stream: true})
    const deltas: string[] = []
    let role
    for await (const chunk of stream) {
      role ??= chunk.choices[0]?.delta.role
      deltas.push(chunk.choices[0]?.delta.content ?? '')
    }
    expect(role).toBe('assistant')
    expect(deltas.join('')).toBe('héll')
  })

  it('passes sampling parameters and token ids through; honours stop sequences', async () => {
    const r = await post('/v1/completions', {model: 'tiny-hybrid', prompt: [1, 2, 3], max_tokens: 30, temperature: 0, top_k: 5, seed: 7, stop: ' wor', return_token_ids: true})
    const body = r.json as unknown as {choices: {text: string; finish_reason: string; token_ids: number[]; prompt_token_ids: number[]}[]}
    expect(body.choices[0].text).toBe('héllo')
    expect(body.choices[0].finish_reason).toBe('stop')
    expect(body.choices[0].prompt_token_ids).toEqual([1, 2, 3])
    expect(backend.seen.at(-1)!.sampling).toMatchObject({temperature: 0, topK: 5, seed: 7, maxTokens: 30})
  })

  it('refuses bad bodies with a 400 naming the field', async () => {
    expect(await post('/v1/completions', {prompt: 'x'})).toMatchObject({status: 400, json: {error: {param: 'model', type: 'invalid_request_error', code: 'missing_required_parameter'}}})
    expect(await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'x', max_tokens: 'ten'})).toMatchObject({status: 400, json: {error: {param: 'max_tokens', code: 'invalid_type'}}})
    expect(await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'x', temperature: 9})).toMatchObject({status: 400, json: {error: {param: 'temperature'}}})
    expect(await post('/v1/chat/completions', {model: 'tiny-hybrid', messages: [{role: 'wizard', content: 'x'}]})).toMatchObject({status: 400, json: {error: {param: 'messages[0].role'}}})
    expect(await post('/v1/completions', '{not json')).toMatchObject({status: 400, json: {error: {code: 'invalid_json'}}})
    expect(await post('/v1/completions', {model: 'gpt-4', prompt: 'x'})).toMatchObject({status: 404, json: {error: {param: 'model', code: 'model_not_found'}}})
    expect(await post('/v1/completions', {model: 'tiny-hybrid', prompt: [999]})).toMatchObject({status: 400, json: {error: {param: 'prompt'}}})
  })

  it('refuses an oversized prompt clearly', async () => {
    const r = await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'x'.repeat(100)})
    expect(r.status).toBe(400)
    expect(r.json.error).toMatchObject({param: 'prompt', code: 'context_length_exceeded'})
    expect(r.json.error.message).toContain('maximum context length is 64 tokens')
    const r2 = await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'x'.repeat(40), max_tokens: 40})
    expect(r2.json.error).toMatchObject({param: 'max_tokens', code: 'context_length_exceeded'})
  })

  it('answers 503 with the reason when no worker is healthy', async () => {
    backend.ready = false
    try {
      const r = await post('/v1/completions', {model: 'tiny-hybrid', prompt: 'x'})
      expect(r.status).toBe(503)
      expect(r.json.error.message).toContain('prefill-0 dead')
      const health = await fetch(`${base}/health`)
      expect(health.status).toBe(503)
    } finally {
      backend.ready = true
    }
  })

  it('turns a backend failure into an error the client sees (before and during the stream)', async () => {
    backend.failAfter = 0
    try {
      await expect(client.completions.create({model: 'tiny-hybrid', prompt: 'hi'})).rejects.toMatchObject({status: 502})
      backend.failAfter = 3
      const stream = await client.completions.create({model: 'tiny-hybrid', prompt: 'hi', stream: true})
      await expect(
        (async () => {
          for await (const _ of stream) {
            // drain
          }
        })(),
      ).rejects.toThrow(/vanished/)
    } finally {
      backend.failAfter = undefined
    }
  })

  it('lists the model and exposes Prometheus metrics', async () => {
    const models = await client.models.list()
    expect(models.data.map((m) => m.id)).toEqual(['tiny-hybrid'])
    const text = await (await fetch(`${base}/metrics`)).text()
    expect(text).toMatch(/^hpd_requests_total\{outcome="ok"\} \d+$/m)
    expect(text).toContain('# TYPE hpd_time_to_first_token_seconds histogram')
    expect(metrics.ttft.count).toBeGreaterThan(0)
  })

  it('maps unknown routes to 404 and wrong methods to 405', async () => {
    expect((await fetch(`${base}/v2/x`)).status).toBe(404)
    expect((await fetch(`${base}/v1/completions`)).status).toBe(405)
  })
})

// ServeError is part of the backend contract: thrown before the first event it becomes that status.
describe('ServeError', () => {
  it('carries an HTTP status', () => {
    expect(new ServeError(503, 'no_healthy_worker', 'x').status).toBe(503)
  })
})
