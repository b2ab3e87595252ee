/**
 * A disaggregation proxy written from vLLM's contract alone (as vLLM's
 * toy_proxy_server / llm-d's sidecar behave), knowing nothing of hpd: round robin over prefill and
 * decode workers; the prefill leg gets the body with `kv_transfer_params: {do_remote_decode: true,
 * …}`, `stream: false`, `max_tokens: 1` and no `stream_options`; the decode leg gets the original
 * body plus the prefill answer's `kv_transfer_params`; both carry the same `X-Request-Id`; the
 * decode answer is streamed back as it comes.
 */
import {randomUUID} from 'node:crypto'
import {createServer, type IncomingMessage, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'

export interface Proxy {
  readonly url: string
  /** Every leg sent, in order (for assertions on what crossed). */
  readonly legs: {kind: 'prefill' | 'decode'; to: string; requestId: string; body: Record<string, unknown>}[]
  close(): Promise<void>
}

async function bodyOf(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
}

export async function startProxy(prefill: readonly string[], decode: readonly string[], headers: Record<string, string> = {}): Promise<Proxy> {
  let p = 0
  let d = 0
  const legs: Proxy['legs'] = []
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '/'
      if (req.method !== 'POST' || (path !== '/v1/completions' && path !== '/v1/chat/completions')) {
        res.writeHead(404).end()
        return
      }
      const original = await bodyOf(req)
      const requestId = (req.headers['x-request-id'] as string | undefined) ?? randomUUID()
      const prefillBody: Record<string, unknown> = {
        ...original,
        kv_transfer_params: {do_remote_decode: true, do_remote_prefill: false, remote_engine_id: null, remote_block_ids: null, remote_host: null, remote_port: null},
        stream: false,
        max_tokens: 1,
      }
      if ('max_completion_tokens' in prefillBody) prefillBody.max_completion_tokens = 1
      delete prefillBody.stream_options
      const prefillUrl = prefill[p++ % prefill.length]
      legs.push({kind: 'prefill', to: prefillUrl, requestId, body: prefillBody})
      const pre = await fetch(`${prefillUrl}${path}`, {method: 'POST', headers: {'content-type': 'application/json', 'x-request-id': requestId, ...headers}, body: JSON.stringify(prefillBody)})
      const preJson = (await pre.json()) as Record<string, unknown>
      if (!pre.ok) {
        res.writeHead(pre.status, {'content-type': 'application/json'}).end(JSON.stringify(preJson))
        return
      }
      const decodeBody = {...original, kv_transfer_params: preJson.kv_transfer_params}
      const decodeUrl = decode[d++ % decode.length]
      legs.push({kind: 'decode', to: decodeUrl, requestId, body: decodeBody})
      const out = await fetch(`${decodeUrl}${path}`, {method: 'POST', headers: {'content-type': 'application/json', 'x-request-id': requestId, ...headers}, body: JSON.stringify(decodeBody)})
      res.writeHead(out.status, {'content-type': out.headers.get('content-type') ?? 'application/json'})
      for await (const chunk of out.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk)
      res.end()
    })().catch((error: Error) => {
      if (!res.headersSent) res.writeHead(502, {'content-type': 'application/json'}).end(JSON.stringify({error: {message: `proxy: ${error.message}`}}))
      else res.end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    legs,
    close: () => new Promise((r) => server.close(() => r())),
  }
}
