import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {capacityShortfall, demandBlocks, sequenceBlocks, type KvGeometry} from '../kv-capacity.js'
import {BlockGate} from './block-gate.js'

const never = new AbortController().signal

describe('BlockGate: FCFS admission into the KV pool', () => {
  it('admits at once what fits, queues the rest in arrival order, and a large head is not overtaken', async () => {
    const gate = new BlockGate(10)
    const order: string[] = []
    const a = await gate.acquire(6, never)
    const big = gate.acquire(8, never).then((r) => (order.push('big'), r))
    const small = gate.acquire(2, never).then((r) => (order.push('small'), r))
    await new Promise((r) => setTimeout(r, 5))
    // 2 blocks are free and `small` needs 2, but `big` came first: nobody passes it.
    expect(order).toEqual([])
    expect(gate.waiting).toBe(2)
    a()
    const releaseBig = await big
    const releaseSmall = await small
    expect(order).toEqual(['big', 'small'])
    expect(gate.committedBlocks).toBe(10)
    releaseBig()
    releaseBig() // idempotent
    releaseSmall()
    expect(gate.committedBlocks).toBe(0)
  })

  it('refuses at once what the pool could never hold, and an aborted wait leaves the queue (the next one moves up)', async () => {
    const gate = new BlockGate(10)
    await expect(gate.acquire(11, never)).rejects.toMatchObject({status: 400, code: 'kv_capacity_exceeded'})
    const held = await gate.acquire(9, never)
    const abort = new AbortController()
    const head = gate.acquire(5, abort.signal)
    const next = gate.acquire(1, never)
    abort.abort(new Error('client gone'))
    await expect(head).rejects.toThrow('client gone')
    // With the aborted head gone, 1 block fits beside the 9 held.
    ;(await next)()
    expect(gate.waiting).toBe(0)
    held()
    expect(gate.committedBlocks).toBe(0)
  })

  it('never commits more than its capacity, and every request is admitted once the others release (random workloads)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({min: 1, max: 20}), fc.array(fc.integer({min: 1, max: 20}), {minLength: 1, maxLength: 30}), async (capacity, sizes) => {
        const gate = new BlockGate(capacity)
        let peak = 0
        const done = await Promise.all(
          sizes.map(async (blocks) => {
            try {
              const release = await gate.acquire(blocks, never)
              peak = Math.max(peak, gate.committedBlocks)
              await new Promise((r) => setTimeout(r, 0))
              release()
              return 'ok'
            } catch {
              return blocks > capacity ? 'refused' : 'wrong'
            }
          }),
        )
        expect(done).not.toContain('wrong')
        expect(peak).toBeLessThanOrEqual(capacity)
        expect(gate.committedBlocks).toBe(0)
      }),
      {numRuns: 60},
    )
  })
})

describe('kv-capacity: what a request can ever hold', () => {
  // tiny-hybrid's engine: 80-token blocks, one attention group, two state groups, 615 blocks (2 kept for checkpoint pins).
  const hybrid: KvGeometry = {capacityBlocks: 613, blockTokens: 80, attentionGroups: 1, fixedBlocksPerSequence: 2}

  it('counts attention blocks per token and fixed pages per sequence', () => {
    expect(sequenceBlocks(hybrid, 1)).toBe(3)
    expect(sequenceBlocks(hybrid, 80)).toBe(3)
    expect(sequenceBlocks(hybrid, 81)).toBe(4)
    // A prefill worker holds the transferred N−1 tokens once; a decode worker every continuation at prompt + max_tokens − 1.
    expect(demandBlocks(hybrid, {promptTokens: 161, maxTokens: 4, n: 3}, 'prefill')).toBe(sequenceBlocks(hybrid, 160))
    expect(demandBlocks(hybrid, {promptTokens: 161, maxTokens: 4, n: 3}, 'decode')).toBe(3 * sequenceBlocks(hybrid, 164))
    expect(demandBlocks(hybrid, {promptTokens: 1, maxTokens: 4, n: 1}, 'prefill')).toBe(0)
  })

  it('names what to lower: the prompt, max_tokens, n, or the number of prompts', () => {
    const pools = [hybrid]
    expect(capacityShortfall(pools, [{promptTokens: 2001, maxTokens: 4, n: 1}], 'decode')).toBeUndefined()
    expect(capacityShortfall(pools, [{promptTokens: 2001, maxTokens: 4, n: 128}], 'decode')).toMatchObject({reason: 'n', prompt: 0, fittingN: 21})
    expect(capacityShortfall(pools, [{promptTokens: 60_000, maxTokens: 4, n: 1}], 'decode')).toMatchObject({reason: 'prompt'})
    expect(capacityShortfall(pools, [{promptTokens: 100, maxTokens: 60_000, n: 1}], 'decode')).toMatchObject({reason: 'max_tokens'})
    const forty = Array.from({length: 40}, () => ({promptTokens: 2001, maxTokens: 4, n: 1}))
    expect(capacityShortfall(pools, forty, 'decode')).toMatchObject({reason: 'batch', needBlocks: 40 * 28, capacityBlocks: 613})
    // Two workers: each prompt must fit one of them, all prompts both together.
    expect(capacityShortfall([hybrid, hybrid], forty, 'decode')).toBeUndefined()
    expect(capacityShortfall([], forty, 'decode')).toBeUndefined()
  })
})
