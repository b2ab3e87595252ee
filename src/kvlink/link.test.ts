import {afterEach, describe, expect, it} from 'vitest'

import {blocksNeeded, type GroupBlockIds, planLayout, tensorSizeBytes} from '../layout/index.js'
import {loadModelSpec} from '../model/index.js'
import {thrown} from '../testing/thrown.js'
import {TransferAgent} from '../transport/index.js'
import {compareDigests, decodeDigests, encodeDigests, LinkOwner, LinkReader, parseLinkInfo, readerDigests, RegionTable} from './index.js'

/**
 * Owner and reader of the KV link over two real agents in one process (shared memory GETs): the
 * cross-process paths (serve, bench transfer, both transports) are proven in test/e2e. Here: the
 * bytes each plan names arrive, per-pair lists stop preparing once the pool was seen, "read done"
 * frees only when every reader reported, and a damaged byte fails the digest check.
 */
const agents: TransferAgent[] = []
afterEach(() => {
  for (const a of agents.splice(0)) a.close()
})

const plan = planLayout({model: loadModelSpec('tiny-hybrid'), prefillTp: 2, decodeTp: 1, attentionBackend: 'cpu'})
const POOL = 24

function engine(name: string, side: 'prefill' | 'decode'): RegionTable {
  const layout = plan[side]
  const agent = TransferAgent.create({name, transport: 'shm'})
  agents.push(agent)
  const regions = RegionTable.oneAgent(agent, layout.tp, layout.numTensors)
  for (let rank = 0; rank < layout.tp; rank++) {
    for (let t = 0; t < layout.numTensors; t++) {
      const r = agent.allocRegion(tensorSizeBytes(layout, POOL))
      const bytes = new Uint8Array(r.buffer)
      for (let i = 0; i < bytes.length; i += 97) bytes[i] = (i * 31 + rank * 7 + t) & 0xff
      regions.set(rank, t, r)
    }
  }
  return regions
}

function ids(side: 'prefill' | 'decode', tokens: number, first: number): GroupBlockIds {
  let next = first
  // Every other block, from `first`: scattered like a used pool's.
  return blocksNeeded(plan[side], tokens).map((n) => Array.from({length: n}, () => (next += 2) % POOL))
}

function link(lists: 'request' | 'pair') {
  const ownerRegions = engine('owner', 'prefill')
  const readerRegions = engine('reader', 'decode')
  const done: string[] = []
  const owner = new LinkOwner({regions: ownerRegions, layout: plan.prefill, numLogicalBlocks: POOL, onReadDone: (id) => done.push(id)})
  const reader = new LinkReader({regions: readerRegions, numLogicalBlocks: POOL, lists})
  const remote = reader.connect(parseLinkInfo(JSON.parse(JSON.stringify(owner.handshake())), {tp: 2, numTensors: plan.prefill.numTensors}), plan)
  return {ownerRegions, readerRegions, owner, remote, done}
}

describe('the KV link in one process', () => {
  it.each(['request', 'pair'] as const)('moves exactly the planned bytes (lists per %s); per-pair lists stop preparing once the blocks were seen', async (lists) => {
    const {ownerRegions, readerRegions, owner, remote} = link(lists)
    const seen: number[] = []
    for (const [i, first] of [1, 5, 1, 5, 1].entries()) {
      const tokens = 40
      const remoteBlockIds = ids('prefill', tokens, first)
      const grants = owner.hold(`r${i}`, {blockIds: remoteBlockIds, transferredTokens: tokens})
      const {reads, result} = await remote.pull({transferredTokens: tokens, localBlockIds: ids('decode', tokens, first + 1), remoteBlockIds}, {grants, timeoutMs: 5000})
      expect(result.bytes).toBe(reads.pairs.reduce((s, p) => s + p.bytes, 0))
      for (const pair of reads.pairs) {
        for (let k = 0; k < pair.reads.count; k++) {
          const n = pair.reads.lengthBytes[k]
          const got = new Uint8Array(readerRegions.region(pair.decodeRank, pair.reads.tensorIndex[k]).buffer, pair.reads.localOffsetBytes[k], n)
          const want = new Uint8Array(ownerRegions.region(pair.prefillRank, pair.reads.tensorIndex[k]).buffer, pair.reads.remoteOffsetBytes[k], n)
          expect(Buffer.compare(got, want)).toBe(0)
        }
      }
      owner.end(`r${i}`)
      seen.push(remote.cachedPrepares)
    }
    // Request lists prepare nothing cached; pair lists grow on new blocks only (requests 3 and 5 reuse 1's and 2's).
    if (lists === 'request') expect(seen).toEqual([0, 0, 0, 0, 0])
    else {
      expect(seen[0]).toBeGreaterThan(0)
      expect([seen[2] - seen[1], seen[3] - seen[2], seen[4] - seen[3]]).toEqual([0, 0, 0])
    }
  })

  it('frees on "read done" once every reader reported, revoking the grants first', async () => {
    const {owner, remote, done} = link('request')
    owner.hold('cmpl:1', {blockIds: ids('prefill', 30, 0), transferredTokens: 30})
    await remote.readDone('cmpl:1', undefined, {timeoutMs: 2000})
    const deadline = Date.now() + 2000
    while (done.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    expect(done).toEqual(['cmpl:1'])
    expect(owner.holds('cmpl:1')).toBe(false)
  })

  it('verifies: both sides\' digests agree, and one damaged byte is named (HPD_KVLINK_DIGEST_MISMATCH)', async () => {
    const {readerRegions, owner, remote} = link('request')
    const tokens = 100
    const remoteBlockIds = ids('prefill', tokens, 3)
    const grants = owner.hold('v1', {blockIds: remoteBlockIds, transferredTokens: tokens})
    const {reads} = await remote.pull({transferredTokens: tokens, localBlockIds: ids('decode', tokens, 0), remoteBlockIds}, {grants, timeoutMs: 5000})
    const theirs = decodeDigests(JSON.parse(JSON.stringify(encodeDigests(await owner.digests('v1', plan)))))
    compareDigests('v1', reads, await readerDigests(readerRegions, reads), theirs)
    const pair = reads.pairs[1]
    new Uint8Array(readerRegions.region(pair.decodeRank, pair.reads.tensorIndex[3]).buffer)[pair.reads.localOffsetBytes[3] + 1] ^= 1
    const ours = await readerDigests(readerRegions, reads)
    const e = thrown(() => compareDigests('v1', reads, ours, theirs))
    expect(e.code).toBe('HPD_KVLINK_DIGEST_MISMATCH')
    expect(e.exitCode).toBe(6)
    expect(e.details).toMatchObject({requestId: 'v1', decodeRank: pair.decodeRank, prefillRank: pair.prefillRank, read: 3, tensor: pair.reads.tensorIndex[3]})
    // The owner answers only for requests it holds.
    owner.end('v1')
    await expect(owner.digests('v1', plan)).rejects.toMatchObject({code: 'HPD_KVLINK_UNKNOWN_REQUEST'})
  })
})
