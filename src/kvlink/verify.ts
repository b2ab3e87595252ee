import {CACHE_PARTS, type PairReadPlan, type ReadList, type RequestReadPlan} from '../layout/index.js'
import {digestRanges} from '../transport/index.js'
import {digestMismatch, protocolError} from './errors.js'
import type {RegionTable} from './regions.js'

/**
 * Verified transfers: both sides digest the bytes of every planned read of a request (the native
 * digest kernel, off the JS thread) and the reader compares. The reads of a pair are put in one
 * canonical order, by (tensor, remote offset, length), because the owner plans them without the
 * reader's block ids: which remote bytes a pair reads does not depend on where they land, but the
 * plan's order (by local offset) does.
 */

/** One pair's digests, one per planned read, in canonical order. */
export interface PairDigests {
  readonly decodeRank: number
  readonly prefillRank: number
  readonly digests: BigUint64Array
}

/** Indices of `reads` sorted by (tensor, remote offset, length). */
export function canonicalOrder(reads: ReadList): Uint32Array {
  const order = Array.from({length: reads.count}, (_, i) => i)
  order.sort((a, b) => reads.tensorIndex[a] - reads.tensorIndex[b] || reads.remoteOffsetBytes[a] - reads.remoteOffsetBytes[b] || reads.lengthBytes[a] - reads.lengthBytes[b])
  return Uint32Array.from(order)
}

/**
 * Digests of a pair's reads, in canonical order, over this side's tensors: the decode side's
 * local offsets (`side` 'local'), or the prefill side's remote offsets ('remote').
 */
export async function digestPairReads(regions: RegionTable, rank: number, reads: ReadList, side: 'local' | 'remote'): Promise<BigUint64Array> {
  const order = canonicalOrder(reads)
  const offsets = side === 'local' ? reads.localOffsetBytes : reads.remoteOffsetBytes
  const out = new BigUint64Array(reads.count)
  const byTensor = new Map<number, number[]>() // tensor → positions in canonical order
  order.forEach((i, pos) => {
    const t = reads.tensorIndex[i]
    const list = byTensor.get(t) ?? []
    list.push(pos)
    byTensor.set(t, list)
  })
  await Promise.all(
    [...byTensor].map(async ([t, positions]) => {
      const d = await digestRanges(
        regions.region(rank, t).buffer,
        positions.map((pos) => ({offsetBytes: offsets[order[pos]], sizeBytes: reads.lengthBytes[order[pos]]})),
      )
      positions.forEach((pos, j) => (out[pos] = d[j]))
    }),
  )
  return out
}

/** The reader's digests of every pair it read (decode rank → its local tensors). */
export function readerDigests(regions: RegionTable, reads: RequestReadPlan): Promise<PairDigests[]> {
  return Promise.all(reads.pairs.map(async (p) => ({decodeRank: p.decodeRank, prefillRank: p.prefillRank, digests: await digestPairReads(regions, p.decodeRank, p.reads, 'local')})))
}

/** The owner's digests of the same reads (prefill rank → its tensors), from its own plan of them. */
export function ownerDigests(regions: RegionTable, reads: RequestReadPlan): Promise<PairDigests[]> {
  return Promise.all(reads.pairs.map(async (p) => ({decodeRank: p.decodeRank, prefillRank: p.prefillRank, digests: await digestPairReads(regions, p.prefillRank, p.reads, 'remote')})))
}

/**
 * Throws HPD_KVLINK_DIGEST_MISMATCH (exit 6) naming the request, the pair and the first read whose
 * digests differ (tensor, layer, part, remote offset, length); HPD_KVLINK_PROTOCOL when the owner
 * answered for other pairs or another number of reads.
 */
export function compareDigests(requestId: string, reads: RequestReadPlan, ours: readonly PairDigests[], theirs: readonly PairDigests[]): void {
  for (const mine of ours) {
    const other = theirs.find((t) => t.decodeRank === mine.decodeRank && t.prefillRank === mine.prefillRank)
    if (!other || other.digests.length !== mine.digests.length) {
      throw protocolError(`the owner's digests of request ${requestId} do not cover pair ${mine.decodeRank} ← ${mine.prefillRank} (${mine.digests.length} reads)`, {requestId})
    }
    for (let pos = 0; pos < mine.digests.length; pos++) {
      if (mine.digests[pos] === other.digests[pos]) continue
      const pair = reads.pairs.find((p) => p.decodeRank === mine.decodeRank && p.prefillRank === mine.prefillRank)!
      throw mismatchAt(requestId, pair, canonicalOrder(pair.reads)[pos])
    }
  }
}

function mismatchAt(requestId: string, pair: PairReadPlan, i: number) {
  const r = pair.reads
  const part = CACHE_PARTS[r.partIndex[i]]
  const details = {
    requestId,
    decodeRank: pair.decodeRank,
    prefillRank: pair.prefillRank,
    read: i,
    tensor: r.tensorIndex[i],
    layer: r.layer[i],
    part,
    remoteOffsetBytes: r.remoteOffsetBytes[i],
    localOffsetBytes: r.localOffsetBytes[i],
    lengthBytes: r.lengthBytes[i],
  }
  return digestMismatch(
    `decode rank ${pair.decodeRank} ← prefill rank ${pair.prefillRank}: tensor ${details.tensor} layer ${details.layer} part ${part} (${details.lengthBytes} bytes at prefill offset ${details.remoteOffsetBytes}): the digest of the bytes read differs from the prefill side's`,
    details,
  )
}

/** Digests on the wire: base64 of the little-endian u64s. */
export function encodeDigests(d: readonly PairDigests[]): {decodeRank: number; prefillRank: number; digests: string}[] {
  return d.map((p) => ({decodeRank: p.decodeRank, prefillRank: p.prefillRank, digests: Buffer.from(p.digests.buffer, p.digests.byteOffset, p.digests.byteLength).toString('base64')}))
}

export function decodeDigests(raw: unknown): PairDigests[] {
  if (!Array.isArray(raw)) throw protocolError('digests: expected an array of pairs')
  return raw.map((p: {decodeRank?: unknown; prefillRank?: unknown; digests?: unknown}, i) => {
    if (typeof p !== 'object' || p === null || !Number.isInteger(p.decodeRank) || !Number.isInteger(p.prefillRank) || typeof p.digests !== 'string') throw protocolError(`digests[${i}]: expected {decodeRank, prefillRank, digests}`)
    const bytes = Buffer.from(p.digests, 'base64')
    if (bytes.length % 8 !== 0) throw protocolError(`digests[${i}]: ${bytes.length} bytes is not a whole number of u64 digests`)
    const copy = new Uint8Array(bytes) // aligned, owned
    return {decodeRank: p.decodeRank as number, prefillRank: p.prefillRank as number, digests: new BigUint64Array(copy.buffer, 0, bytes.length / 8)}
  })
}
