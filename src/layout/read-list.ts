import type {CachePart, CacheView} from './types.js'

export const CACHE_PARTS: readonly CachePart[] = ['K', 'V', 'x', 'B', 'C', 'ssm']

/**
 * One request's reads between one (decode rank, prefill rank) pair, as parallel typed arrays (a
 * 128k-token prompt gives ~10^5 reads per pair; objects would dominate the run time). Offsets are
 * absolute byte offsets inside shared tensor `tensorIndex` of the local (decode) and remote
 * (prefill) rank. Use `readAt` for one read as an object.
 */
export interface ReadList {
  readonly count: number
  readonly tensorIndex: Int32Array
  /** KV-cache group; -1 in a coalesced run (which may span groups of one tensor). */
  readonly group: Int32Array
  /** Model layer index; -1 in a coalesced run. */
  readonly layer: Int32Array
  /** Index into CACHE_PARTS; 255 in a coalesced run. */
  readonly partIndex: Uint8Array
  readonly remoteOffsetBytes: Float64Array
  readonly localOffsetBytes: Float64Array
  readonly lengthBytes: Float64Array
}

export interface Read {
  readonly view: CacheView
  readonly part: CachePart
  readonly tensorIndex: number
  readonly group: number
  readonly layer: number
  /** Slot of the layer inside its group; slot s lives in tensor s, so it equals tensorIndex. */
  readonly layerSlot: number
  readonly remoteOffsetBytes: number
  readonly localOffsetBytes: number
  readonly lengthBytes: number
}

export function readAt(list: ReadList, i: number): Read {
  const part = CACHE_PARTS[list.partIndex[i]]
  return {
    view: part === 'K' || part === 'V' ? 'fa' : 'ssm',
    part,
    tensorIndex: list.tensorIndex[i],
    group: list.group[i],
    layer: list.layer[i],
    layerSlot: list.tensorIndex[i],
    remoteOffsetBytes: list.remoteOffsetBytes[i],
    localOffsetBytes: list.localOffsetBytes[i],
    lengthBytes: list.lengthBytes[i],
  }
}

/** Growable builder for a ReadList. */
export class ReadListBuilder {
  private capacity: number
  count = 0
  tensorIndex: Int32Array
  group: Int32Array
  layer: Int32Array
  partIndex: Uint8Array
  remoteOffsetBytes: Float64Array
  localOffsetBytes: Float64Array
  lengthBytes: Float64Array

  constructor(capacity = 64) {
    this.capacity = Math.max(1, capacity)
    this.tensorIndex = new Int32Array(this.capacity)
    this.group = new Int32Array(this.capacity)
    this.layer = new Int32Array(this.capacity)
    this.partIndex = new Uint8Array(this.capacity)
    this.remoteOffsetBytes = new Float64Array(this.capacity)
    this.localOffsetBytes = new Float64Array(this.capacity)
    this.lengthBytes = new Float64Array(this.capacity)
  }

  push(tensorIndex: number, group: number, layer: number, partIndex: number, remoteOffsetBytes: number, localOffsetBytes: number, lengthBytes: number): void {
    if (this.count === this.capacity) this.grow()
    const i = this.count++
    this.tensorIndex[i] = tensorIndex
    this.group[i] = group
    this.layer[i] = layer
    this.partIndex[i] = partIndex
    this.remoteOffsetBytes[i] = remoteOffsetBytes
    this.localOffsetBytes[i] = localOffsetBytes
    this.lengthBytes[i] = lengthBytes
  }

  build(): ReadList {
    const n = this.count
    return {
      count: n,
      tensorIndex: this.tensorIndex.subarray(0, n),
      group: this.group.subarray(0, n),
      layer: this.layer.subarray(0, n),
      partIndex: this.partIndex.subarray(0, n),
      remoteOffsetBytes: this.remoteOffsetBytes.subarray(0, n),
      localOffsetBytes: this.localOffsetBytes.subarray(0, n),
      lengthBytes: this.lengthBytes.subarray(0, n),
    }
  }

  private grow(): void {
    this.capacity *= 2
    const grow = <T extends Int32Array | Uint8Array | Float64Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(this.capacity)
      b.set(a)
      return b
    }
    this.tensorIndex = grow(this.tensorIndex)
    this.group = grow(this.group)
    this.layer = grow(this.layer)
    this.partIndex = grow(this.partIndex)
    this.remoteOffsetBytes = grow(this.remoteOffsetBytes)
    this.localOffsetBytes = grow(this.localOffsetBytes)
    this.lengthBytes = grow(this.lengthBytes)
  }
}

/** Reads ordered by (tensor, local offset); returns the list itself when already ordered. */
export function sortByLocal(list: ReadList): ReadList {
  let sorted = true
  for (let i = 1; i < list.count && sorted; i++) {
    const dt = list.tensorIndex[i] - list.tensorIndex[i - 1]
    if (dt < 0 || (dt === 0 && list.localOffsetBytes[i] < list.localOffsetBytes[i - 1])) sorted = false
  }
  if (sorted) return list
  const order = Array.from({length: list.count}, (_, i) => i)
  order.sort((a, b) => list.tensorIndex[a] - list.tensorIndex[b] || list.localOffsetBytes[a] - list.localOffsetBytes[b])
  const out = new ReadListBuilder(list.count)
  for (const i of order) out.push(list.tensorIndex[i], list.group[i], list.layer[i], list.partIndex[i], list.remoteOffsetBytes[i], list.localOffsetBytes[i], list.lengthBytes[i])
  return out.build()
}

/**
 * Maximal runs: consecutive reads (in local order) merge when they are in the same tensor and
 * contiguous both locally and remotely. Padding is never read, so it always breaks a run.
 */
export function coalesce(list: ReadList): ReadList {
  return orderAndCoalesce(list).runs
}

/** The reads in (tensor, local offset) order and their runs; one pass when already ordered. */
export function orderAndCoalesce(list: ReadList): {reads: ReadList; runs: ReadList} {
  const runs = coalesceOrdered(list)
  if (runs) return {reads: list, runs}
  const reads = sortByLocal(list)
  return {reads, runs: coalesceOrdered(reads)!}
}

/** Runs of an ordered list, or undefined as soon as the list turns out not to be ordered. */
function coalesceOrdered(list: ReadList): ReadList | undefined {
  const out = new ReadListBuilder(list.count)
  const tensorIndex = list.tensorIndex
  const remoteOffset = list.remoteOffsetBytes
  const localOffset = list.localOffsetBytes
  const lengthBytes = list.lengthBytes
  const runTensor = out.tensorIndex
  const runRemote = out.remoteOffsetBytes
  const runLocal = out.localOffsetBytes
  const runLength = out.lengthBytes
  let k = -1
  let t = -1
  let remoteEnd = -1
  let localEnd = -1
  let lastLocal = -1
  for (let i = 0; i < list.count; i++) {
    const ti = tensorIndex[i]
    const r = remoteOffset[i]
    const l = localOffset[i]
    const n = lengthBytes[i]
    if (ti < t || (ti === t && l < lastLocal)) return undefined
    lastLocal = l
    if (ti === t && l === localEnd && r === remoteEnd) {
      runLength[k] += n
    } else {
      k++
      t = ti
      runTensor[k] = ti
      runRemote[k] = r
      runLocal[k] = l
      runLength[k] = n
    }
    remoteEnd = r + n
    localEnd = l + n
  }
  out.count = k + 1
  out.group.fill(-1)
  out.layer.fill(-1)
  out.partIndex.fill(255)
  return out.build()
}
