import {Subscriber} from 'zeromq'
import {decode} from '@msgpack/msgpack'
import {describe, expect, it} from 'vitest'

import {HybridEngine} from '../../engine/engine.js'
import {tinyModel} from '../../engine/test-models.js'
import {PrefixIndex} from '../routing/prefix-index.js'
import {decodeBatch, encodeBatch, type WireBatch} from './format.js'
import {kvEventCurveKeys, z85} from './curve.js'
import {KvEventPublisher} from './publisher.js'
import {KvEventSubscription} from './subscriber.js'

function prompt(n: number, salt: number): number[] {
  return Array.from({length: n}, (_x, i) => (i * 37 + 11 + salt * 101) % 256)
}

describe('KV events: vLLM KVEventBatch over ZeroMQ', () => {
  it('round-trips a batch; 64-bit hashes stay exact; garbage is refused', () => {
    const batch: WireBatch = {
      ts: 12.5,
      data_parallel_rank: 0,
      events: [
        {type: 'BlockStored', block_hashes: [2n ** 64n - 3n, 5n], parent_block_hash: null, token_ids: [1, 2], block_size: 1, lora_id: null, medium: null, lora_name: null, group_idx: 2, kv_cache_spec_kind: 'mamba'},
        {type: 'BlockRemoved', block_hashes: [7n], medium: null, group_idx: 0},
        {type: 'AllBlocksCleared'},
      ],
    }
    expect(decodeBatch(encodeBatch(batch))).toEqual(batch)
    expect(decodeBatch(Uint8Array.of(1, 2, 3))).toBeNull()
    expect(decodeBatch(encodeBatch({ts: 1, data_parallel_rank: 0, events: [{type: 'Bogus'} as never]}))).toBeNull()
  })

  it('a worker engine publishes, a subscriber (vLLM field names) and the router index see what its cache holds', async () => {
    const m = tinyModel('tiny-hybrid')
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 32, prefixCaching: true})
    const publisher = await KvEventPublisher.bind('tcp://127.0.0.1:*')
    engine.onCacheEvent((e) => publisher.publish(e))
    // A plain ZeroMQ subscriber, decoding with a generic MessagePack decoder: what a Python consumer sees.
    const raw = new Subscriber({linger: 0})
    raw.connect(publisher.endpoint)
    raw.subscribe('')
    const index = new PrefixIndex()
    let batches = 0
    const sub = new KvEventSubscription(publisher.endpoint, '', {
      onBatch: (b) => {
        batches++
        index.apply('w', b)
      },
    })
    await new Promise((r) => setTimeout(r, 300)) // PUB/SUB: the subscription must be in place first
    try {
      const B = engine.layout.logicalBlockSize
      const p = prompt(3 * B + 9, 1)
      engine.prefill('a', p)
      engine.free('a')
      const [topic, seq, payload] = await raw.receive()
      expect(topic.toString()).toBe('')
      expect(seq.readBigUInt64BE(0)).toBe(0n)
      const first = decode(payload, {useBigInt64: true}) as {ts: number; events: Record<string, unknown>[]; data_parallel_rank: number}
      expect(first.data_parallel_rank).toBe(0)
      const stored = first.events.filter((e) => e.type === 'BlockStored')
      expect(stored.some((e) => e.kv_cache_spec_kind === 'full_attention' && e.group_idx === 0 && e.block_size === B)).toBe(true)
      expect(stored.some((e) => e.kv_cache_spec_kind === 'mamba')).toBe(true)
      for (const e of stored) for (const k of ['block_hashes', 'parent_block_hash', 'token_ids', 'block_size', 'lora_id', 'medium', 'lora_name', 'group_idx', 'kv_cache_spec_kind']) expect(e).toHaveProperty(k)
      const deadline = Date.now() + 5000
      while (batches === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      // The router's view answers what the engine's own lookup does.
      const follow = [...p.slice(0, 2 * B + 30), ...prompt(20, 2)]
      expect(index.match('w', follow)).toEqual({attentionTokens: 2 * B, usableTokens: 2 * B})
      engine.prefill('b', follow)
      expect(engine.cachedTokens('b')).toBe(2 * B)
      expect(index.match('w', prompt(200, 3))).toEqual({attentionTokens: 0, usableTokens: 0})
    } finally {
      sub.close()
      raw.close()
      await publisher.close()
      engine.close()
    }
  })

  it('encrypted by default: a subscriber with the cluster token’s key gets the batches; a plain one or another token’s gets nothing', async () => {
    // RFC 32's test vector for Z85.
    expect(z85(Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]))).toBe('HelloWorld')
    const keys = kvEventCurveKeys('cluster-token-a')
    expect(kvEventCurveKeys('cluster-token-a')).toEqual(keys)
    expect(kvEventCurveKeys('cluster-token-b').publicKey).not.toBe(keys.publicKey)
    const publisher = await KvEventPublisher.bind('tcp://127.0.0.1:*', '', keys)
    const seen = {member: 0, stranger: 0, wrongToken: 0}
    const member = new KvEventSubscription(publisher.endpoint, '', {onBatch: () => seen.member++}, keys.publicKey)
    const wrongToken = new KvEventSubscription(publisher.endpoint, '', {onBatch: () => seen.wrongToken++}, kvEventCurveKeys('cluster-token-b').publicKey)
    const stranger = new Subscriber({linger: 0, receiveTimeout: 1500})
    stranger.connect(publisher.endpoint)
    stranger.subscribe('')
    const strangerGot = stranger.receive().then(
      () => true,
      () => false,
    )
    await new Promise((r) => setTimeout(r, 300))
    try {
      for (let i = 0; i < 20 && seen.member === 0; i++) {
        publisher.publish({type: 'cleared'})
        await new Promise((r) => setTimeout(r, 50))
      }
      expect(seen.member).toBeGreaterThan(0)
      expect(await strangerGot).toBe(false)
      expect(seen.wrongToken).toBe(0)
    } finally {
      member.close()
      wrongToken.close()
      stranger.close()
      await publisher.close()
    }
  })
})
