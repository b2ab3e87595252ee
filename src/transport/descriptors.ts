import {invalidArgument} from './errors.js'

/** A contiguous range in a region: the unit of prepared descriptor lists. */
export interface Descriptor {
  /** Region id: a local region for local lists, the peer's region id for remote lists. */
  readonly region: number
  readonly offsetBytes: number
  readonly sizeBytes: number
}

/** Descriptors packed as the parallel arrays the native side takes. */
export interface PackedDescriptors {
  readonly regions: Uint32Array
  readonly offsetsBytes: Float64Array
  readonly sizesBytes: Float64Array
}

export function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** Validates and packs; throws UsageError naming the first bad descriptor and field. */
export function packDescriptors(descs: readonly Descriptor[], what: string): PackedDescriptors {
  if (!Array.isArray(descs)) throw invalidArgument(what, 'an array of descriptors', descs)
  const n = descs.length
  const regions = new Uint32Array(n)
  const offsetsBytes = new Float64Array(n)
  const sizesBytes = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    const d = descs[i]
    if (!isNonNegativeInteger(d?.region) || d.region > 0xffffffff) throw invalidArgument(`${what}[${i}].region`, 'a region id', d?.region)
    if (!isNonNegativeInteger(d.offsetBytes)) throw invalidArgument(`${what}[${i}].offsetBytes`, 'a non-negative integer', d.offsetBytes)
    if (!isNonNegativeInteger(d.sizeBytes)) throw invalidArgument(`${what}[${i}].sizeBytes`, 'a non-negative integer', d.sizeBytes)
    regions[i] = d.region
    offsetsBytes[i] = d.offsetBytes
    sizesBytes[i] = d.sizeBytes
  }
  return {regions, offsetsBytes, sizesBytes}
}

/** Validates an index list against a list of `count` descriptors; returns it as a Uint32Array. */
export function toIndices(indices: Uint32Array | readonly number[], count: number, what: string): Uint32Array {
  const out = indices instanceof Uint32Array ? indices : Uint32Array.from(indices as readonly number[])
  if (!(indices instanceof Uint32Array)) {
    const src = indices as readonly number[]
    for (let i = 0; i < src.length; i++) {
      if (!isNonNegativeInteger(src[i])) throw invalidArgument(`${what}[${i}]`, 'a descriptor index', src[i])
    }
  }
  for (let i = 0; i < out.length; i++) {
    if (out[i] >= count) throw invalidArgument(`${what}[${i}]`, `an index below ${count} (the list's length)`, out[i])
  }
  return out
}
