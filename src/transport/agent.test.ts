// In-process checks of the TS wrapper: argument validation before the native call, typed native
// errors, local copy, pattern and digest kernels. Cross-process transfers are proven in
// test/e2e/transfer-agent.test.ts.
import {afterEach, describe, expect, it} from 'vitest'

import {UsageError} from '../errors.js'
import {TransferAgent} from './agent.js'
import {TransportError} from './errors.js'
import {digestRanges, fillPattern, verifyPattern} from './verify.js'

const agents: TransferAgent[] = []
afterEach(() => {
  for (const a of agents.splice(0)) a.close()
})
function agent(name = 'unit'): TransferAgent {
  const a = TransferAgent.create({name, transport: 'shm'})
  agents.push(a)
  return a
}

const key = {engine: 1, request: 2, rank: 0, tensor: 3, block: 4, part: 1}

describe('TransferAgent (in-process)', () => {
  it('validates arguments before crossing into native code', async () => {
    expect(() => TransferAgent.create({name: ''})).toThrow(UsageError)
    expect(() => TransferAgent.create({name: 'x', transport: 'rdma' as never})).toThrow(/one of auto\|shm\|tcp for transport/)
    expect(() => TransferAgent.create({name: 'x', tcpSegmentBytes: 100})).toThrow(/tcpSegmentBytes/)
    const a = agent()
    expect(() => a.allocRegion(-1)).toThrow(/expected a positive integer for sizeBytes, got -1 \(number\)/)
    const r = a.allocRegion(8192)
    expect(() => a.prepareLocal([{region: r.id, offsetBytes: 1.5, sizeBytes: 1}])).toThrow(/descs\[0\]\.offsetBytes/)
    const list = a.prepareLocal([{region: r.id, offsetBytes: 0, sizeBytes: 4096}])
    await expect(a.copy(list, [1], list, [0])).rejects.toThrow(/dstIndices\[0\]/)
  })

  it('grants: arguments checked here, ranges checked against the regions natively, ids unguessable and single-use on revoke', () => {
    const a = agent()
    const r = a.allocRegion(64 * 1024)
    expect(() => a.grant([])).toThrow(/a non-empty array of \{region, offsetBytes, sizeBytes\} for ranges/)
    expect(() => a.grant([{region: r, offsetBytes: 0, sizeBytes: 0}])).toThrow(/ranges\[0\]\.sizeBytes/)
    expect(() => a.grant([{region: r, offsetBytes: -1, sizeBytes: 8}])).toThrow(/ranges\[0\]\.offsetBytes/)
    expect(() => a.grant([{region: r, offsetBytes: 60 * 1024, sizeBytes: 8192}])).toThrow(
      expect.objectContaining({code: 'HPD_NATIVE_OUT_OF_RANGE', message: expect.stringMatching(/grant range 0 \[61440, \+8192\) is past the end of region \d+ \(65536 bytes\)/)}),
    )
    expect(() => a.grant([{region: 999, offsetBytes: 0, sizeBytes: 8}])).toThrow(expect.objectContaining({code: 'HPD_NATIVE_INVALID_ARGUMENT'}))
    const ids = new Set(Array.from({length: 64}, () => a.grant([{region: r, offsetBytes: 0, sizeBytes: 4096}]).id))
    expect(ids.size).toBe(64)
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/u)
    const [first] = ids
    expect(a.revokeGrant(first)).toBe(true)
    expect(a.revokeGrant({id: first})).toBe(false)
    expect(a.revokeGrant('0'.repeat(32))).toBe(false)
    expect(() => a.revokeGrant('not-a-grant')).toThrow(/a grant \(or its id: 32 lowercase hex characters\) for grant, got a string of 11 characters/)
  })

  it('maps native failures to typed errors with stable codes', () => {
    const a = agent()
    const r = a.allocRegion(4096)
    let error: unknown
    try {
      a.prepareLocal([{region: r.id, offsetBytes: 4000, sizeBytes: 200}])
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(TransportError)
    expect(error).toMatchObject({code: 'HPD_NATIVE_OUT_OF_RANGE', exitCode: 5, operation: 'prepare'})
    expect(() => a.connect(new Uint8Array(40))).toThrow(/hpd magic/)
    const blob = a.metadata()
    expect(() => a.connect(blob.subarray(0, blob.length - 3))).toThrow(/truncated at byte/)
  })

  it('copies with merging, and close() detaches region buffers and rejects later calls', async () => {
    const a = agent()
    const src = a.allocRegion(1 << 20)
    const dst = a.allocRegion(1 << 20)
    new Uint8Array(src.buffer).fill(0x5a)
    const blocks = Array.from({length: 16}, (_, i) => ({offsetBytes: i * 65536, sizeBytes: 65536}))
    const s = a.prepareLocal(blocks.map((b) => ({...b, region: src.id})))
    const d = a.prepareLocal(blocks.map((b) => ({...b, region: dst.id})))
    const idx = blocks.map((_, i) => i)
    const result = await a.copy(d, idx, s, idx)
    expect(result).toMatchObject({bytes: 1 << 20, descriptors: 16, runs: 1})
    expect(new Uint8Array(dst.buffer)[123_456]).toBe(0x5a)
    a.close()
    expect(dst.buffer.byteLength).toBe(0)
    expect(() => a.allocRegion(4096)).toThrow(TransportError)
  })

  it('pattern verification finds the first wrong byte, including a shifted or stale range', async () => {
    const buf = new ArrayBuffer(1000)
    await fillPattern(buf, [{offsetBytes: 3, sizeBytes: 900, key, partOffsetBytes: 5}])
    expect(await verifyPattern(buf, [{offsetBytes: 3, sizeBytes: 900, key, partOffsetBytes: 5}])).toBeNull()
    // A slice of the same part checked at its own part offset passes; shifted by 8 bytes it fails.
    expect(await verifyPattern(buf, [{offsetBytes: 103, sizeBytes: 64, key, partOffsetBytes: 105}])).toBeNull()
    expect(await verifyPattern(buf, [{offsetBytes: 103, sizeBytes: 64, key, partOffsetBytes: 113}])).not.toBeNull()
    expect(await verifyPattern(buf, [{offsetBytes: 3, sizeBytes: 900, key: {...key, request: 1}, partOffsetBytes: 5}])).toMatchObject({part: 0, byteOffset: 0})
    new Uint8Array(buf)[500] ^= 0xff
    expect(await verifyPattern(buf, [{offsetBytes: 3, sizeBytes: 900, key, partOffsetBytes: 5}])).toMatchObject({part: 0, byteOffset: 497})
  })

  it('digests differ when one byte differs', async () => {
    const buf = new ArrayBuffer(4096)
    await fillPattern(buf, [{offsetBytes: 0, sizeBytes: 4096, key, partOffsetBytes: 0}])
    const ranges = [
      {offsetBytes: 0, sizeBytes: 2048},
      {offsetBytes: 2048, sizeBytes: 2048},
    ]
    const before = await digestRanges(buf, ranges)
    expect(before[0]).not.toBe(before[1])
    new Uint8Array(buf)[3000] ^= 1
    const after = await digestRanges(buf, ranges)
    expect(after[0]).toBe(before[0])
    expect(after[1]).not.toBe(before[1])
  })
})
