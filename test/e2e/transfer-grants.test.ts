// Served-read grants between two real processes over real UCX (TCP, so reads are served): the
// owner (this process) grants ranges of its region, the reader (transfer-agent-peer.ts, its own
// process) reads with or without the grant. A refused read must write nothing into the reader's
// destination, which the reader fills with 0x5a first and inspects after.
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {fillPattern, type Region, type TransferAgent} from '../../src/transport/index.js'
import {ask, cleanUpAfterEach, makeAgent, nextMessage, startPeer} from './transfer-agent-harness.js'

cleanUpAfterEach()

const KIB = 1024
const MIB = 1024 * KIB

interface ReadOnce {
  bytes?: number
  mismatch?: unknown
  error?: {code: string; message: string}
  untouched?: boolean
  chunks?: ('untouched' | 'delivered' | 'other')[]
}

async function patterned(owner: TransferAgent, sizeBytes: number): Promise<Region> {
  const region = owner.allocRegion(sizeBytes)
  await fillPattern(region.buffer, [{offsetBytes: 0, sizeBytes, key: {engine: 9, request: 1, rank: 0, tensor: region.id, block: 0, part: 0}, partOffsetBytes: 0}])
  return region
}

/** An owner here with one patterned region, and a reader process that reads it on command. */
async function ownerAndReader(regionBytes: number, ownerOptions: {servedReadsRequireGrant?: boolean} = {}) {
  const owner = makeAgent('grant-owner', {transport: 'tcp', ...ownerOptions})
  const region = await patterned(owner, regionBytes)
  const {child} = await startPeer({PEER_NAME: 'grant-reader', PEER_TRANSPORT: 'tcp', PEER_REGION_BYTES: String(regionBytes)})
  const metadata = Buffer.from(owner.metadata()).toString('base64')
  const read = async (offsetBytes: number, sizeBytes: number, grant?: string): Promise<ReadOnce> => {
    const {reply: _, ...result} = await ask<ReadOnce & {reply: string}>(child, {op: 'read-once', metadata, region: region.id, offsetBytes, sizeBytes, grant, timeoutMs: 10_000}, 30_000)
    return result
  }
  return {owner, region, child, metadata, read}
}

describe('served-read grants (the owner serves only what it granted)', () => {
  it('serves a read inside the grant, also across two adjacent granted blocks, and refuses neighbouring bytes without writing any', async () => {
    const {owner, region, read} = await ownerAndReader(4 * MIB)
    const grant = owner.grant([
      {region, offsetBytes: 64 * KIB, sizeBytes: 64 * KIB},
      {region: region.id, offsetBytes: 128 * KIB, sizeBytes: 64 * KIB},
      {region, offsetBytes: 1 * MIB, sizeBytes: 64 * KIB},
    ])
    expect(grant.id).toMatch(/^[0-9a-f]{32}$/u)

    expect(await read(64 * KIB, 128 * KIB, grant.id)).toEqual({bytes: 128 * KIB, mismatch: null})
    expect(await read(1 * MIB, 64 * KIB, grant.id)).toEqual({bytes: 64 * KIB, mismatch: null})

    // The block after the grant, and one straddling its start: same region, neighbouring bytes.
    for (const [offsetBytes, sizeBytes] of [[192 * KIB, 64 * KIB], [60 * KIB, 8 * KIB]]) {
      const refused = await read(offsetBytes, sizeBytes, grant.id)
      expect(refused.error?.code).toBe('HPD_NATIVE_PERMISSION_DENIED')
      expect(refused.error?.message).toContain(`grant-owner' refused: piece 0 (region ${region.id}, bytes [${offsetBytes}, +${sizeBytes})) lies outside the ranges its grant covers`)
      expect(refused.untouched).toBe(true)
    }
    // A refusal is not a failure of the link: the next granted read is served.
    expect(await read(128 * KIB, 64 * KIB, grant.id)).toEqual({bytes: 64 * KIB, mismatch: null})
  })

  it('refuses a read without a grant when the owner requires one (the default), and serves it when the owner does not', async () => {
    const {read} = await ownerAndReader(1 * MIB)
    const refused = await read(0, 64 * KIB)
    expect(refused.error).toMatchObject({code: 'HPD_NATIVE_PERMISSION_DENIED'})
    expect(refused.error?.message).toMatch(/serves reads only with a grant, and this read carries none/)
    expect(refused.untouched).toBe(true)

    const open = await ownerAndReader(1 * MIB, {servedReadsRequireGrant: false})
    expect(await open.read(0, 64 * KIB)).toEqual({bytes: 64 * KIB, mismatch: null})
  })

  it('refuses a revoked grant; revoking twice says the grant was already gone', async () => {
    const {owner, region, read} = await ownerAndReader(1 * MIB)
    const grant = owner.grant([{region, offsetBytes: 0, sizeBytes: 1 * MIB}])
    expect(await read(0, 64 * KIB, grant.id)).toEqual({bytes: 64 * KIB, mismatch: null})
    expect(owner.revokeGrant(grant)).toBe(true)
    const refused = await read(0, 64 * KIB, grant.id)
    expect(refused.error).toMatchObject({code: 'HPD_NATIVE_PERMISSION_DENIED'})
    expect(refused.error?.message).toMatch(/grant this read carries is not live on the owner/)
    expect(refused.untouched).toBe(true)
    expect(owner.revokeGrant(grant.id)).toBe(false)
  })

  it('a grant dies with a region it names: its ranges of the surviving region are refused too', async () => {
    const {owner, region, read} = await ownerAndReader(1 * MIB)
    const doomed = owner.allocRegion(64 * KIB)
    const grant = owner.grant([{region, offsetBytes: 0, sizeBytes: 64 * KIB}, {region: doomed, offsetBytes: 0, sizeBytes: 64 * KIB}])
    expect(await read(0, 64 * KIB, grant.id)).toEqual({bytes: 64 * KIB, mismatch: null})
    owner.freeRegion(doomed)
    const refused = await read(0, 64 * KIB, grant.id)
    expect(refused.error?.code).toBe('HPD_NATIVE_PERMISSION_DENIED')
    expect(refused.untouched).toBe(true)
    expect(owner.revokeGrant(grant)).toBe(false)
  })

  it('revoking during a read lets the pieces already posted land and refuses the rest', async () => {
    const regionBytes = 256 * MIB // 32 pieces of 8 MiB; the owner keeps 8 in flight
    const {owner, region, child, metadata} = await ownerAndReader(regionBytes)
    const grant = owner.grant([{region, offsetBytes: 0, sizeBytes: regionBytes}])
    const firstPiece = nextMessage(child, (m) => m.event === 'first-piece', 30_000)
    const reply = ask<ReadOnce>(child, {op: 'read-once', metadata, region: region.id, offsetBytes: 0, sizeBytes: regionBytes, grant: grant.id, timeoutMs: 20_000, chunkBytes: 8 * MIB, watchFirstPiece: true}, 60_000)
    await firstPiece
    expect(owner.revokeGrant(grant)).toBe(true)
    const result = await reply
    expect(result.error?.code).toBe('HPD_NATIVE_PERMISSION_DENIED')
    const sent = Number(/grant was revoked after (\d+) of 32 pieces were sent/u.exec(result.error!.message)?.[1])
    expect(sent).toBeGreaterThanOrEqual(1)
    expect(sent).toBeLessThan(32)
    expect(result.chunks).toEqual([...Array(sent).fill('delivered'), ...Array(32 - sent).fill('untouched')])
  })

  it('serves exactly the reads inside the union of the granted ranges (random grants and reads)', async () => {
    const window = 256 * KIB
    const unit = 4 * KIB
    const {owner, region, read} = await ownerAndReader(window)
    const range = fc.record({start: fc.integer({min: 0, max: window / unit - 1}), units: fc.integer({min: 1, max: 16})})
    await fc.assert(
      fc.asyncProperty(fc.array(range, {minLength: 1, maxLength: 4}), range, async (granted, wanted) => {
        const ranges = granted.map((g) => ({offsetBytes: g.start * unit, sizeBytes: Math.min(g.units * unit, window - g.start * unit)}))
        const grant = owner.grant(ranges.map((r) => ({region, ...r})))
        try {
          const offsetBytes = wanted.start * unit
          const sizeBytes = Math.min(wanted.units * unit, window - offsetBytes)
          const covered = new Uint8Array(window / unit)
          for (const r of ranges) covered.fill(1, r.offsetBytes / unit, (r.offsetBytes + r.sizeBytes) / unit)
          const inside = covered.subarray(offsetBytes / unit, (offsetBytes + sizeBytes) / unit).every((c) => c === 1)
          const result = await read(offsetBytes, sizeBytes, grant.id)
          if (inside) expect(result).toEqual({bytes: sizeBytes, mismatch: null})
          else expect(result).toMatchObject({error: {code: 'HPD_NATIVE_PERMISSION_DENIED'}, untouched: true})
        } finally {
          owner.revokeGrant(grant)
        }
      }),
      {numRuns: 60, seed: 4242},
    )
  })
})
