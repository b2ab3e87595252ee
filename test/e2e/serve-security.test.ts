/**
 * The control plane of a real `hpd serve` against a local stranger (a process of the same machine
 * without the cluster token): no region keys or worker addresses, no pinned blocks, no request
 * forgery; no prompt in the KV events; secrets never on a command line; the public API behind
 * --api-key-file.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {join} from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'
import {Subscriber} from 'zeromq'

import type {LinkInfo} from '../../src/kvlink/index.js'
import {loadModelSpec} from '../../src/model/index.js'
import {logicalBlockRanges, planEngineLayout} from '../../src/layout/index.js'
import {kvParamsOf, parseKvTransferParams, PREFILL_LEG_PARAMS} from '../../src/serve/kv-contract.js'
import {kvEventCurveKeys} from '../../src/serve/kv-events/curve.js'
import {KvEventSubscription} from '../../src/serve/kv-events/subscriber.js'
import type {HandshakePayload, TransferParams} from '../../src/serve/protocol.js'
import {ENGINE_LAYOUT_OPTIONS} from '../../src/serve/worker/layout-options.js'
import {TransferAgent} from '../../src/transport/index.js'
import {isLoopback, listeners} from './proc-sockets.js'
import {signedHeaders, startServe, tmpDir, until, type ServeProcess, workerMetric} from './serve-harness.js'

const TOKEN = 'security-test-cluster-token-abcdef0123'
const API_KEY = 'security-test-api-key-0123456789'

const running: ServeProcess[] = []
afterAll(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

describe('control-plane security', () => {
  it('gives a local stranger nothing: no metadata, no pinned blocks, no fetched URL; keeps secrets off argv; guards /v1 with the API key', async () => {
    const dir = tmpDir('hpd-security-')
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`, {mode: 0o600})
    writeFileSync(join(dir, 'api-key'), API_KEY, {mode: 0o600})
    const s = await startServe(['--auth-token-file', join(dir, 'token'), '--api-key-file', join(dir, 'api-key')])
    running.push(s)
    await until(() => (s.controlUrls.size >= 2 ? true : undefined), 10_000, 'worker control URLs')
    // The dashboard gauges fill in after the first health poll.
    await until(async () => (Number.isNaN(await workerMetric(s.url, 'hpd_kv_blocks_used', 'prefill-0')) ? undefined : true), 10_000, 'worker gauges in /metrics')
    const prefill = s.controlUrls.get('prefill-0')!
    const decode = s.controlUrls.get('decode-0')!

    // 1. No region keys or worker addresses without the token: 401 and nothing else.
    for (const path of ['metadata', 'health', 'stats']) {
      const res = await fetch(`${prefill}/v1/internal/${path}`)
      expect(res.status).toBe(401)
      const body = await res.text()
      expect(body).not.toMatch(/agentMetadata|regionIds|engineEpoch|transport/)
    }

    // 2. Cannot pin blocks: prefill calls and lease beats are refused before the engine.
    const pins = await Promise.all(
      Array.from({length: 50}, (_, i) =>
        fetch(`${prefill}/v1/completions`, {
          method: 'POST',
          headers: {'content-type': 'application/json', 'x-request-id': `pin-${i}`},
          body: JSON.stringify({model: 'tiny-hybrid', prompt: Array.from({length: 400}, () => 65), max_tokens: 1, kv_transfer_params: PREFILL_LEG_PARAMS}),
        }).then((r) => r.status),
      ),
    )
    expect(new Set(pins)).toEqual(new Set([401]))
    await new Promise((r) => setTimeout(r, 1500))
    expect(await workerMetric(s.url, 'hpd_kv_blocks_used', 'prefill-0')).toBe(0)
    expect(await workerMetric(s.url, 'hpd_leases_held', 'prefill-0')).toBe(0)

    // 3. Cannot make a worker fetch a URL: neither without the token, nor with it and a forged address.
    const trap = createServer()
    let trapped = 0
    trap.on('connection', (c) => {
      trapped++
      c.destroy()
    })
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', () => r()))
    const trapUrl = `http://127.0.0.1:${(trap.address() as {port: number}).port}`
    const transfer: TransferParams = {engineId: 'prefill-0', engineEpoch: 'e', handshakeUrl: trapUrl, requestId: 'forged', blockIds: [[0]], tpSize: 1, compatibilityHash: 'h', numComputedTokens: 2, leaseExpiresAtMs: Date.now() + 60_000, grant: '0'.repeat(32)}
    const decodeLeg = (t: TransferParams) => JSON.stringify({model: 'tiny-hybrid', prompt: [65, 66, 67], max_tokens: 2, kv_transfer_params: kvParamsOf(t)})
    const stranger = await fetch(`${decode}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json'}, body: decodeLeg(transfer)})
    expect(stranger.status).toBe(401)
    const insider = await fetch(`${decode}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json', ...signedHeaders(TOKEN, 'POST', `${decode}/v1/completions`)}, body: decodeLeg(transfer)})
    expect(await insider.text()).toContain('unregistered_peer_url')
    const unknownEngine = await fetch(`${decode}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json', ...signedHeaders(TOKEN, 'POST', `${decode}/v1/completions`)}, body: decodeLeg({...transfer, engineId: 'rogue'})})
    expect(await unknownEngine.text()).toContain('unknown_prefill_engine')
    await new Promise((r) => setTimeout(r, 500))
    expect(trapped).toBe(0)
    trap.close()

    // 4. Refusals are counted and logged (rate-limited), not silent.
    const stats = await fetch(`${prefill}/v1/internal/stats`, {headers: signedHeaders(TOKEN, 'GET', `${prefill}/v1/internal/stats`)}).then((r) => r.json() as Promise<{refusedUnauthenticated: number}>)
    expect(stats.refusedUnauthenticated).toBe(3 + 50)
    expect(s.lines.some((l) => l.includes('unauthenticated'))).toBe(true)

    // 5. No secret on any command line (ps shows argv to every user).
    for (const w of s.workers.values()) {
      const argv = readFileSync(`/proc/${w.pid}/cmdline`, 'utf8')
      expect(argv).not.toContain(TOKEN)
      expect(argv).not.toContain(API_KEY)
    }
    expect(readFileSync(`/proc/${s.proc.pid}/cmdline`, 'utf8')).not.toContain(TOKEN)

    // 6. The public API requires the key when one is set; /health stays open for probes.
    const body = JSON.stringify({model: 'tiny-hybrid', prompt: 'hello', max_tokens: 2})
    const anonymous = await fetch(`${s.url}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json'}, body})
    expect(anonymous.status).toBe(401)
    expect(((await anonymous.json()) as {error: {code: string}}).error.code).toBe('invalid_api_key')
    const keyed = await fetch(`${s.url}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json', authorization: `Bearer ${API_KEY}`}, body})
    expect(keyed.status).toBe(200)
    expect((await fetch(`${s.url}/health`)).status).toBe(200)
  }, 90_000)

  it('workers listen on loopback only; over served reads a reader holding the token still reads only the blocks leased to its request', async () => {
    const dir = tmpDir('hpd-security-')
    writeFileSync(join(dir, 'token'), TOKEN, {mode: 0o600})
    const s = await startServe(['--transport', 'tcp', '--auth-token-file', join(dir, 'token')])
    running.push(s)
    await until(() => (s.controlUrls.size >= 2 ? true : undefined), 10_000, 'worker control URLs')

    // UCX's TCP listeners (main and bulk worker of each agent) and the control servers: loopback only.
    for (const [name, w] of s.workers) {
      const open = listeners(w.pid!)
      expect(open.length, name).toBeGreaterThanOrEqual(3)
      expect(open.filter((l) => !isLoopback(l.address)), name).toEqual([])
    }

    // KV events carry prompts' token ids: encrypted with the cluster token's keys. A stranger that
    // finds the publisher's port gets nothing; a member (the router's way) gets the batches.
    const prefill = s.controlUrls.get('prefill-0')!
    const stats = (await (await fetch(`${prefill}/v1/internal/stats`, {headers: signedHeaders(TOKEN, 'GET', `${prefill}/v1/internal/stats`)})).json()) as {kvEvents?: {endpoint: string; encryption: string}}
    expect(stats.kvEvents?.encryption).toBe('curve')
    const strangerSub = new Subscriber({linger: 0, receiveTimeout: 3000})
    strangerSub.connect(stats.kvEvents!.endpoint)
    strangerSub.subscribe('')
    let memberBatches = 0
    const member = new KvEventSubscription(stats.kvEvents!.endpoint, '', {onBatch: () => memberBatches++}, kvEventCurveKeys(TOKEN).publicKey)
    const strangerGot = strangerSub.receive().then(
      () => true,
      () => false,
    )
    await new Promise((r) => setTimeout(r, 300))
    try {
      const secret = 'my bank PIN is 4921, do not tell anyone. '.repeat(8)
      expect((await fetch(`${s.url}/v1/completions`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({model: 'tiny-hybrid', prompt: secret, max_tokens: 2})})).status).toBe(200)
      expect(await strangerGot).toBe(false)
      await until(() => (memberBatches > 0 ? true : undefined), 5000, 'a member subscriber to get the batches')
    } finally {
      strangerSub.close()
      member.close()
    }

    // An insider: it signs with the token, gets the metadata and a request prefilled for it.
    const handshake = (await (await fetch(`${prefill}/v1/internal/metadata`, {headers: signedHeaders(TOKEN, 'GET', `${prefill}/v1/internal/metadata`)})).json()) as HandshakePayload
    const info = handshake.transport as LinkInfo
    // Different prompts: with prefix caching two requests of one prompt share its blocks (each grant covers them).
    const prefillOnce = async (requestId: string, salt: number): Promise<TransferParams> => {
      const res = await fetch(`${prefill}/v1/completions`, {
        method: 'POST',
        headers: {'content-type': 'application/json', 'x-request-id': requestId, ...signedHeaders(TOKEN, 'POST', `${prefill}/v1/completions`)},
        body: JSON.stringify({model: 'tiny-hybrid', prompt: Array.from({length: 200}, (_, i) => 65 + ((i + salt) % 26)), max_tokens: 1, kv_transfer_params: PREFILL_LEG_PARAMS}),
      })
      const leg = parseKvTransferParams(((await res.json()) as {kv_transfer_params: unknown}).kv_transfer_params)
      if (leg.leg !== 'decode') throw new Error('the prefill leg answered no transfer')
      return leg.transfer
    }
    const mine = await prefillOnce('sec-mine', 0)
    const theirs = await prefillOnce('sec-theirs', 1)
    expect(mine.grant).toMatch(/^[0-9a-f]{32}$/)

    const layout = planEngineLayout({model: loadModelSpec('tiny-hybrid'), tp: 1, ...ENGINE_LAYOUT_OPTIONS})
    const reader = TransferAgent.create({name: 'insider', transport: 'tcp'})
    try {
      const dst = reader.allocRegion(layout.pageBytes)
      const peer = reader.connect(new Uint8Array(Buffer.from(info.agents[info.ranks[0].agent], 'base64')))
      expect(peer.readProtocol).toBe('served')
      const readBlock = async (block: number, grant: string | undefined) => {
        const [range] = logicalBlockRanges(layout, block, info.numLogicalBlocks)
        const local = reader.prepareLocal([{region: dst.id, offsetBytes: 0, sizeBytes: range.sizeBytes}])
        const remote = reader.prepareRemote(peer, [{region: info.ranks[0].regionIds[0], offsetBytes: range.offsetBytes, sizeBytes: range.sizeBytes}])
        try {
          return await reader.read(local, [0], remote, [0], {timeoutMs: 5000, grant}).then(
            (r) => ({ok: true as const, bytes: r.bytes}),
            (e: {code?: string}) => ({ok: false as const, code: e.code}),
          )
        } finally {
          reader.releaseList(local)
          reader.releaseList(remote)
        }
      }
      const myBlock = mine.blockIds[0][0]
      const theirBlock = theirs.blockIds[0][0]
      expect(await readBlock(myBlock, mine.grant)).toEqual({ok: true, bytes: layout.pageBytes})
      expect(await readBlock(theirBlock, mine.grant)).toEqual({ok: false, code: 'HPD_NATIVE_PERMISSION_DENIED'})
      expect(await readBlock(myBlock, undefined)).toEqual({ok: false, code: 'HPD_NATIVE_PERMISSION_DENIED'})
      // The lease ends (the decode side said it read them): the grant dies with it.
      await fetch(`${prefill}/v1/internal/lease/release`, {
        method: 'POST',
        headers: {'content-type': 'application/json', ...signedHeaders(TOKEN, 'POST', `${prefill}/v1/internal/lease/release`)},
        body: JSON.stringify({requestId: mine.requestId, grant: mine.grant}),
      })
      expect(await readBlock(myBlock, mine.grant)).toEqual({ok: false, code: 'HPD_NATIVE_PERMISSION_DENIED'})
    } finally {
      reader.close()
    }
  }, 90_000)
})
