/**
 * `hpd bench serve` against servers that do not help it count (issue 12 review): one that streams
 * text only (no usage chunk, no token ids) is counted with the model's tokenizer; without a
 * tokenizer its requests cannot be counted and the run fails; one that refuses every request
 * fails the benchmark (exit code 6, HPD_BENCH_ALL_FAILED) — never "0 generated tokens" with exit 0.
 * The servers here are small fakes over real HTTP: what is under test is the client's counting.
 */
import {execFile} from 'node:child_process'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {resolveServeModel} from '../serve/serve-model.js'
import {runServeBench, type ServeBenchOptions, type ServeBenchResult} from './serve-bench.js'

const PIECES = ['Hello', ' wor', 'ld, again ']

function fake(kind: 'text-only' | 'all-400'): Promise<{server: Server; url: string}> {
  const server = createServer((req, res) => {
    if (req.url === '/v1/models') {
      res.writeHead(200, {'content-type': 'application/json'}).end(JSON.stringify({object: 'list', data: [{id: 'fake-model', object: 'model'}]}))
      return
    }
    if (req.method !== 'POST' || req.url !== '/v1/completions') {
      res.writeHead(404).end()
      return
    }
    req.resume()
    if (kind === 'all-400') {
      res.writeHead(400, {'content-type': 'application/json'}).end(JSON.stringify({error: {message: 'this server takes nothing', type: 'invalid_request_error', param: null, code: 'nope'}}))
      return
    }
    res.writeHead(200, {'content-type': 'text/event-stream'})
    for (const text of PIECES) res.write(`data: ${JSON.stringify({id: 'x', object: 'text_completion', choices: [{index: 0, text, finish_reason: null}]})}\n\n`)
    res.end('data: [DONE]\n\n')
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`})))
}

const servers: Server[] = []
let textOnly: string
let refusing: string
beforeAll(async () => {
  const a = await fake('text-only')
  const b = await fake('all-400')
  servers.push(a.server, b.server)
  textOnly = a.url
  refusing = b.url
})
afterAll(() => {
  for (const s of servers) s.close()
})

async function bench(o: Partial<ServeBenchOptions>): Promise<ServeBenchResult> {
  const events = runServeBench({spawn: false, compareColocated: false, model: 'tiny-hybrid', prefillTp: 1, decodeTp: 1, prefillWorkers: 1, decodeWorkers: 1, concurrency: 2, requests: 4, promptTokens: 8, outputTokens: 4, seed: 0, ...o})
  for (;;) {
    const r = await events.next()
    if (r.done) return r.value
  }
}

describe('hpd bench serve: counting what servers do not report', () => {
  it('a text-only server: output counted with the model tokenizer, input as the token ids sent', async () => {
    const result = await bench({url: textOnly, tokenizer: 'tiny-hybrid'})
    const perRequest = resolveServeModel('tiny-hybrid').tokenizer.encode(PIECES.join(''), {addSpecialTokens: false}).length
    expect(perRequest).toBeGreaterThan(0)
    expect(result.runs[0]).toMatchObject({completed: 4, failed: 0, totalOutputTokens: 4 * perRequest, totalInputTokens: 4 * 8, outputTokensCountedBy: ['tokenizer'], inputTokensCountedBy: ['sent-token-ids']})
  })

  it('a text-only server and no tokenizer: nothing can be counted, so the benchmark fails (not 0 tokens)', async () => {
    await expect(bench({url: textOnly})).rejects.toMatchObject({code: 'HPD_BENCH_ALL_FAILED', exitCode: 6, message: expect.stringMatching(/pass --tokenizer/)})
  })

  it('a server that refuses everything fails the benchmark with its answer', async () => {
    await expect(bench({url: refusing})).rejects.toMatchObject({code: 'HPD_BENCH_ALL_FAILED', exitCode: 6, message: expect.stringMatching(/HTTP 400.*this server takes nothing/)})
  })

  it('the command exits 6 with the error envelope (--json)', async () => {
    const root = join(import.meta.dirname, '..', '..')
    const run = await promisify(execFile)(process.execPath, [join(root, 'bin', 'run.js'), 'bench', 'serve', '--url', refusing, '--requests', '2', '--concurrency', '1', '--json'], {cwd: root}).then(
      () => ({code: 0, stdout: ''}),
      (e: {code: number; stdout: string}) => e,
    )
    expect(run.code).toBe(6)
    expect(JSON.parse(run.stdout)).toMatchObject({ok: false, error: {code: 'HPD_BENCH_ALL_FAILED'}})
  }, 60_000)

  it('--url servers that are not there, not OpenAI-compatible or want a key: typed errors (exit 4), and the key when given', async () => {
    const gone = createServer()
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', () => r()))
    const goneUrl = `http://127.0.0.1:${(gone.address() as AddressInfo).port}`
    await new Promise((r) => gone.close(r))
    await expect(bench({url: goneUrl})).rejects.toMatchObject({code: 'HPD_BENCH_SERVER_UNREACHABLE', exitCode: 4})

    const html = createServer((_req, res) => res.writeHead(200, {'content-type': 'text/html'}).end('<!DOCTYPE html><p>a file server</p>'))
    const KEY = 'bench-serve-test-key-0123456789'
    const keyed = createServer((req, res) => {
      if (req.headers.authorization !== `Bearer ${KEY}`) {
        res.writeHead(401, {'content-type': 'application/json'}).end(JSON.stringify({error: {message: 'key', type: 'invalid_request_error', param: null, code: 'invalid_api_key'}}))
        return
      }
      if (req.url === '/v1/models') {
        res.writeHead(200, {'content-type': 'application/json'}).end(JSON.stringify({object: 'list', data: [{id: 'fake-model', object: 'model'}]}))
        return
      }
      req.resume()
      res.writeHead(200, {'content-type': 'text/event-stream'})
      res.write(`data: ${JSON.stringify({id: 'x', object: 'text_completion', choices: [{index: 0, text: 'hi', finish_reason: 'length'}], usage: {prompt_tokens: 8, completion_tokens: 4, total_tokens: 12}})}\n\n`)
      res.end('data: [DONE]\n\n')
    })
    servers.push(html, keyed)
    const listen = (srv: Server) => new Promise<string>((r) => srv.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(srv.address() as AddressInfo).port}`)))
    const htmlUrl = await listen(html)
    const keyedUrl = await listen(keyed)
    await expect(bench({url: htmlUrl})).rejects.toMatchObject({code: 'HPD_BENCH_SERVER_REFUSED', exitCode: 4})
    await expect(bench({url: keyedUrl})).rejects.toMatchObject({code: 'HPD_BENCH_SERVER_REFUSED', exitCode: 4, hint: expect.stringMatching(/--api-key-file/)})
    const withKey = await bench({url: keyedUrl, apiKey: KEY})
    expect(withKey.runs[0]).toMatchObject({completed: 4, failed: 0})
  })
})
