/**
 * Seeded malformed-request generators for the serve fuzz test: each case is one HTTP request
 * (method, path, raw body) in a named category. Deterministic for a seed, so a failure names a
 * case that replays.
 */
import {uniformStream} from '../../src/engine/random.js'

export interface FuzzCase {
  readonly category: string
  readonly method: string
  readonly path: string
  /** Raw body bytes (already serialised: invalid JSON is a case too). */
  readonly body: string | Buffer | undefined
  readonly contentType?: string
}

/** The engine's seeded stream: a seed names a case list exactly. */
export const rng = uniformStream

type Rand = () => number
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]

const ODD_NUMBERS = [1e20, 1e308, -1e308, 2 ** 53 + 2, -(2 ** 53) - 2, -1, -0.5, 0.5, 1.5, 2.0000001, 1e-320, -0, 0, 3, 2147483648, 4294967296, 9007199254740993]
const ODD_STRINGS = ['', ' ', 'x'.repeat(9000), '\u0000', '\uFFFD\uD800', '<script>', '../../etc/passwd', 'http://169.254.169.254/', '%00', '𝓗'.repeat(100)]
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf']

function randomJson(r: Rand, depth = 0): unknown {
  const k = r()
  if (depth > 3 || k < 0.25) return pick(r, ODD_NUMBERS)
  if (k < 0.45) return pick(r, ODD_STRINGS)
  if (k < 0.55) return pick(r, [true, false, null])
  if (k < 0.75) return Array.from({length: Math.floor(r() * 4)}, () => randomJson(r, depth + 1))
  const o: Record<string, unknown> = {}
  for (let i = 0; i < Math.floor(r() * 3); i++) o[pick(r, [...PROTO_KEYS, 'a', 'role', 'content', 'type', 'text', 'include_usage'])] = randomJson(r, depth + 1)
  return o
}

function nested(depth: number, leaf: unknown): unknown {
  let v = leaf
  for (let i = 0; i < depth; i++) v = [v]
  return v
}

const COMPLETION_FIELDS = ['model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'top_k', 'seed', 'stream', 'stream_options', 'stop', 'ignore_eos', 'return_token_ids', 'n', 'best_of', 'echo', 'suffix', 'logprobs', 'presence_penalty', 'frequency_penalty', 'repetition_penalty', 'logit_bias', 'min_p', 'min_tokens', 'stop_token_ids', 'include_stop_str_in_output', 'user']
const CHAT_FIELDS = ['model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'top_k', 'seed', 'stream', 'stream_options', 'stop', 'ignore_eos', 'n', 'logprobs', 'top_logprobs', 'tools', 'tool_choice', 'response_format', 'user', 'metadata']

/** A valid body to start a mutation from. */
function base(kind: 'completions' | 'chat', r: Rand): Record<string, unknown> {
  const b: Record<string, unknown> = {model: 'tiny-hybrid', max_tokens: 1 + Math.floor(r() * 4), temperature: 0}
  if (kind === 'completions') b.prompt = pick(r, ['hello', [72, 105], 'x y'])
  else b.messages = [{role: 'user', content: 'hi'}]
  return b
}

/** Public API cases (POST /v1/completions and /v1/chat/completions, plus routes and methods). */
export function publicCases(seed: number, count: number): FuzzCase[] {
  const r = rng(seed)
  const out: FuzzCase[] = []
  const categories = ['type', 'range', 'unknown-field', 'structure', 'syntax', 'http'] as const
  for (let i = 0; i < count; i++) {
    const category = categories[i % categories.length]
    const kind = r() < 0.5 ? 'completions' : 'chat'
    const path = kind === 'chat' ? '/v1/chat/completions' : '/v1/completions'
    const fields = kind === 'chat' ? CHAT_FIELDS : COMPLETION_FIELDS
    const b = base(kind, r)
    switch (category) {
      case 'type':
        b[pick(r, fields)] = randomJson(r)
        out.push({category, method: 'POST', path, body: JSON.stringify(b)})
        break
      case 'range':
        b[pick(r, ['max_tokens', 'temperature', 'top_p', 'top_k', 'seed', 'n', 'presence_penalty', 'min_p', 'max_completion_tokens'])] = pick(r, ODD_NUMBERS)
        out.push({category, method: 'POST', path, body: JSON.stringify(b)})
        break
      case 'unknown-field': {
        const key = pick(r, [...PROTO_KEYS, 'x'.repeat(300), 'kv_transfer_params', 'guided_json', 'ünïcode', ''])
        // JSON.stringify drops __proto__ set by assignment; write it into the text.
        const text = JSON.stringify(b)
        out.push({category, method: 'POST', path, body: `{${JSON.stringify(key)}:${JSON.stringify(randomJson(r))},${text.slice(1)}`})
        break
      }
      case 'structure': {
        const which = Math.floor(r() * 5)
        if (which === 0) out.push({category, method: 'POST', path, body: JSON.stringify(randomJson(r))})
        else if (which === 1) {
          // Written as text: JSON.stringify itself recurses and cannot write 100,000 levels.
          const depth = pick(r, [40, 1000, 10_000, 100_000])
          const leaf = kind === 'chat' ? '{"role":"user","content":"x"}' : '65'
          const key = kind === 'chat' ? 'messages' : 'prompt'
          const rest = JSON.stringify({...b, [key]: 0}).replace(`"${key}":0`, `"${key}":${'['.repeat(depth)}${leaf}${']'.repeat(depth)}`)
          out.push({category, method: 'POST', path, body: rest})
        } else if (which === 2) out.push({category, method: 'POST', path, body: JSON.stringify({...b, [kind === 'chat' ? 'messages' : 'prompt']: Array.from({length: pick(r, [0, 2, 9000])}, () => (kind === 'chat' ? randomJson(r) : 65))})})
        else if (which === 3) out.push({category, method: 'POST', path, body: JSON.stringify({...b, messages: [{role: pick(r, ['tool', 'wizard', 'function', '']), content: randomJson(r)}]})})
        else out.push({category, method: 'POST', path, body: JSON.stringify({...b, prompt: [[1, 2], [3, 4]], messages: [{role: 'user', content: [{type: 'image_url', image_url: 'x'}]}]})})
        break
      }
      case 'syntax': {
        const text = JSON.stringify(b)
        const which = Math.floor(r() * 6)
        const body =
          which === 0 ? text.slice(0, Math.floor(r() * text.length))
          : which === 1 ? `${text}}}`
          : which === 2 ? `\uFEFF${text}`
          : which === 3 ? Buffer.concat([Buffer.from(text.slice(0, -1)), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('}')])
          : which === 4 ? ''
          : text.replace(/"/g, "'")
        out.push({category, method: 'POST', path, body})
        break
      }
      case 'http': {
        const which = Math.floor(r() * 5)
        if (which === 0) out.push({category, method: pick(r, ['GET', 'PUT', 'DELETE', 'PATCH']), path, body: undefined})
        else if (which === 1) out.push({category, method: 'POST', path: pick(r, ['/v1/engines', '/v1/../../etc/passwd', '/v1/completions/x', `/${'a'.repeat(3000)}`, '/v1/internal/prefill']), body: JSON.stringify(b)})
        else if (which === 2) out.push({category, method: 'POST', path, body: JSON.stringify({...b, prompt: 'x'.repeat(5 * 1024 * 1024)})})
        else if (which === 3) out.push({category, method: 'POST', path, body: JSON.stringify(b), contentType: pick(r, ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x'])})
        else out.push({category, method: 'POST', path: `${path}?stream=true&model=${'%'.repeat(10)}`, body: JSON.stringify(b)})
        break
      }
    }
  }
  return out
}

/** KV fields of vLLM's contract, mutated: wrong types, odd values, unknown fields, forged addresses. */
function fuzzedKvParams(r: Rand): unknown {
  const base: Record<string, unknown> = {
    do_remote_prefill: true,
    do_remote_decode: false,
    remote_engine_id: pick(r, ['prefill-0', 'nobody', '../x', 'prefill-0 ', '']),
    remote_request_id: 'cmpl-r',
    remote_block_ids: pick(r, [[[0]], [[-1]], [[1e12]], [], [[0], [1], [2]]]),
    remote_host: pick(r, ['127.0.0.1', '169.254.169.254', 'file:///etc/passwd', '[::1]', 'a b']),
    remote_port: pick(r, [1, 9, 65_536, 0, -1, 8101]),
    tp_size: pick(r, [1, 0, 2000, 1.5]),
    remote_num_tokens: 1,
    hpd_engine_epoch: 'e',
    hpd_compatibility_hash: 'h',
    hpd_lease_expires_at_ms: Date.now() + 60_000,
    hpd_grant: pick(r, ['00', 'not hex', '0'.repeat(32)]),
  }
  const which = Math.floor(r() * 5)
  if (which === 0) base[pick(r, Object.keys(base))] = randomJson(r)
  else if (which === 1) base[pick(r, ['nixl_agent', '__proto__', 'x'.repeat(100)])] = 1
  else if (which === 2) delete base[pick(r, Object.keys(base))]
  else if (which === 3) return randomJson(r)
  else base.do_remote_decode = true
  return base
}

/**
 * Worker routes with malformed bodies: the public OpenAI route with vLLM's kv_transfer_params
 * (both legs) and the internal lease and peer routes.
 */
export function internalCases(seed: number, count: number, routes: {prefill: string[]; decode: string[]}): FuzzCase[] {
  const r = rng(seed)
  const out: FuzzCase[] = []
  for (let i = 0; i < count; i++) {
    const toPrefill = r() < 0.5
    const path = pick(r, toPrefill ? routes.prefill : routes.decode)
    let body: unknown
    if (path.endsWith('/v1/completions')) {
      const b: Record<string, unknown> = {model: 'tiny-hybrid', prompt: [65, 66], max_tokens: 2, kv_transfer_params: fuzzedKvParams(r)}
      const which = Math.floor(r() * 4)
      if (which === 0) b.prompt = pick(r, [[], [-1], [1e9], Array.from({length: 9000}, () => 65), nested(30, 1)])
      else if (which === 1) b[pick(r, ['max_tokens', 'temperature', 'n', 'stream'])] = pick(r, [...ODD_NUMBERS, ...ODD_STRINGS])
      body = b
    } else if (path.endsWith('/peers')) {
      // Never a valid directory (that would re-point the decode worker for the rest of the run).
      const garbage = randomJson(r)
      const notADirectory = Array.isArray(garbage) && garbage.length === 0 ? [null] : garbage
      body = pick(r, [{peers: notADirectory}, {peers: [{engineId: 'x', controlUrl: 'file:///etc/passwd'}]}, {peers: [{engineId: '', controlUrl: 'http://127.0.0.1:1'}]}, {peers: [{engineId: 'x', controlUrl: 'http://a@b'}]}])
    } else if (path.endsWith('/digests')) {
      body = {requestId: pick(r, ['never-leased', 'x'.repeat(400), randomJson(r)]), decodeTp: pick(r, [0, 1, 2, 3, -1, 1.5, 1024, 1e9, 'x', null]), ...(r() < 0.5 ? {cachedTokens: pick(r, [0, 5, -1, 1e12, 'x'])} : {}), ...(r() < 0.5 ? {grant: pick(r, ['00', 'zz', '0'.repeat(32)])} : {})}
    } else body = pick(r, [{requestId: randomJson(r)}, randomJson(r), {requestId: 'x'.repeat(400)}, {requestId: 'never-leased'}])
    const text = JSON.stringify(body) ?? 'null'
    out.push({category: `worker ${path.split('/').slice(3).join('/')}`, method: 'POST', path, body: r() < 0.1 ? text.slice(0, -1) : text})
  }
  return out
}
