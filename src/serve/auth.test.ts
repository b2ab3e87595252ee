import {createServer} from 'node:http'
import type {AddressInfo} from 'node:net'

import {describe, expect, it} from 'vitest'

import {AUTH_HEADER, CallVerifier, proofMatches, signCall} from './auth.js'
import {ControlClient} from './http-json.js'

const TOKEN = 'unit-test-cluster-token-0123456789'

describe('signed control calls', () => {
  it('verifies a signed call, and its proof verifies on the caller', () => {
    const v = new CallVerifier(TOKEN)
    const {header, nonce} = signCall(TOKEN, 'POST', '/v1/internal/prefill')
    const verdict = v.verify(header, 'POST', '/v1/internal/prefill')
    expect(verdict.ok).toBe(true)
    if (verdict.ok) expect(proofMatches(TOKEN, nonce, verdict.proof)).toBe(true)
    expect(header).not.toContain(TOKEN)
  })

  it('refuses another token, another method or path, a tampered or malformed header, and a stale clock', () => {
    const now = 1_800_000_000_000
    const v = new CallVerifier(TOKEN, 300_000, () => now)
    const good = signCall(TOKEN, 'GET', '/v1/internal/metadata', now).header
    expect(v.verify(signCall('another-token-entirely-000000', 'GET', '/v1/internal/metadata', now).header, 'GET', '/v1/internal/metadata')).toEqual({ok: false, why: 'bad signature'})
    expect(v.verify(good, 'POST', '/v1/internal/metadata')).toEqual({ok: false, why: 'bad signature'})
    expect(v.verify(good, 'GET', '/v1/internal/prefill')).toEqual({ok: false, why: 'bad signature'})
    expect(v.verify(`${good.slice(0, -2)}xx`, 'GET', '/v1/internal/metadata')).toEqual({ok: false, why: 'bad signature'})
    expect(v.verify('Bearer x', 'GET', '/')).toEqual({ok: false, why: 'malformed signature'})
    expect(v.verify(undefined, 'GET', '/')).toEqual({ok: false, why: 'unsigned'})
    expect(v.verify(signCall(TOKEN, 'GET', '/x', now - 301_000).header, 'GET', '/x')).toEqual({ok: false, why: 'signature outside the clock window'})
  })

  it('the client refuses an answer from a server that cannot prove the token', async () => {
    const impostor = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({protocolVersion: 1, transport: 'give me your reads'}))
    })
    const seen: string[] = []
    impostor.on('request', (req) => seen.push(String(req.headers[AUTH_HEADER])))
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', () => r()))
    try {
      const url = `http://127.0.0.1:${(impostor.address() as AddressInfo).port}/v1/internal/metadata`
      await expect(new ControlClient(TOKEN).call(url, undefined, {timeoutMs: 2000})).rejects.toMatchObject({code: 'peer_not_authenticated'})
      expect(seen).toHaveLength(1)
      expect(seen[0]).not.toContain(TOKEN)
    } finally {
      impostor.close()
    }
  })
})
