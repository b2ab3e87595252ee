import {type PatternMismatch, transportBinding} from '../native/transport-binding.js'
import {isNonNegativeInteger} from './descriptors.js'
import {invalidArgument} from './errors.js'

/**
 * Identity of a pattern part. Every byte of a part depends on all six fields and on its offset
 * inside the part, so a read that lands in the wrong place, from the wrong block, or from an
 * older request fails verification.
 */
export interface PatternKey {
  readonly engine: number
  readonly request: number
  readonly rank: number
  readonly tensor: number
  readonly block: number
  readonly part: number
}

/** A byte range of a buffer holding (a slice of) one pattern part. */
export interface PatternRange {
  /** Where the range sits in the buffer. */
  readonly offsetBytes: number
  readonly sizeBytes: number
  readonly key: PatternKey
  /** Offset of the range's first byte inside its part (non-zero for slices read under hetero TP). */
  readonly partOffsetBytes: number
}

interface PackedRanges {
  offsets: Float64Array
  sizes: Float64Array
  keys: Uint32Array
  partOffsets: Float64Array
}

function pack(buffer: ArrayBuffer, ranges: readonly PatternRange[], withKeys: boolean): PackedRanges {
  if (!(buffer instanceof ArrayBuffer)) throw invalidArgument('buffer', 'an ArrayBuffer', buffer)
  const n = ranges.length
  const offsets = new Float64Array(n)
  const sizes = new Float64Array(n)
  const keys = new Uint32Array(withKeys ? n * 6 : 0)
  const partOffsets = new Float64Array(withKeys ? n : 0)
  for (let i = 0; i < n; i++) {
    const r = ranges[i]
    if (!isNonNegativeInteger(r.offsetBytes)) throw invalidArgument(`ranges[${i}].offsetBytes`, 'a non-negative integer', r.offsetBytes)
    if (!isNonNegativeInteger(r.sizeBytes)) throw invalidArgument(`ranges[${i}].sizeBytes`, 'a non-negative integer', r.sizeBytes)
    if (r.offsetBytes + r.sizeBytes > buffer.byteLength) {
      throw invalidArgument(`ranges[${i}]`, `a range inside the buffer (${buffer.byteLength} bytes)`, `[${r.offsetBytes}, +${r.sizeBytes})`)
    }
    offsets[i] = r.offsetBytes
    sizes[i] = r.sizeBytes
    if (withKeys) {
      const k = r.key
      const words = [k.engine, k.request, k.rank, k.tensor, k.block, k.part]
      for (let j = 0; j < 6; j++) {
        if (!isNonNegativeInteger(words[j]) || words[j] > 0xffffffff) throw invalidArgument(`ranges[${i}].key`, 'six uint32 fields', words[j])
        keys[i * 6 + j] = words[j]
      }
      if (!isNonNegativeInteger(r.partOffsetBytes)) throw invalidArgument(`ranges[${i}].partOffsetBytes`, 'a non-negative integer', r.partOffsetBytes)
      partOffsets[i] = r.partOffsetBytes
    }
  }
  return {offsets, sizes, keys, partOffsets}
}

/** Fills each range with its part's pattern (native, off the JS thread). */
export async function fillPattern(buffer: ArrayBuffer, ranges: readonly PatternRange[]): Promise<void> {
  const p = pack(buffer, ranges, true)
  await transportBinding().patternFill(buffer, p.offsets, p.sizes, p.keys, p.partOffsets)
}

/** The first byte that differs from the pattern (index into `ranges`), or null when all match. */
export async function verifyPattern(buffer: ArrayBuffer, ranges: readonly PatternRange[]): Promise<PatternMismatch | null> {
  const p = pack(buffer, ranges, true)
  return transportBinding().patternVerify(buffer, p.offsets, p.sizes, p.keys, p.partOffsets)
}

/** One 64-bit digest per range (native, off the JS thread). */
export async function digestRanges(buffer: ArrayBuffer, ranges: readonly {offsetBytes: number; sizeBytes: number}[]): Promise<BigUint64Array> {
  const p = pack(buffer, ranges.map((r) => ({...r, key: {engine: 0, request: 0, rank: 0, tensor: 0, block: 0, part: 0}, partOffsetBytes: 0})), false)
  return transportBinding().digest(buffer, p.offsets, p.sizes)
}

export type {PatternMismatch} from '../native/transport-binding.js'
