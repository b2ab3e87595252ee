import type {ReadList} from '../layout/index.js'
import type {Descriptor, Peer, PreparedList, TransferAgent} from '../transport/index.js'

/**
 * Plan → prepared descriptor lists, for one (decode rank, prefill rank) pair of one remote engine.
 * Two ways, both moving exactly the plan's bytes (`hpd bench transfer --path serve --lists ...`
 * measures them against each other):
 *
 * - `request`: a local and a remote list made for the request from its reads (or coalesced runs),
 *   released after the read. Costs a prepare per request; needs nothing kept between requests.
 * - `pair`: NIXL's way. Each side's descriptors are kept per engine pair, one per planned read
 *   (tensor, offset, length), in lists that grow as the request stream touches new blocks and are
 *   re-prepared only then; a request selects indices. In steady state (every pool block seen)
 *   nothing is prepared per request, only looked up.
 *
 * The agent merges pairs adjacent on both sides into one GET either way, so both issue the same
 * runs.
 */
export type ListStrategy = 'request' | 'pair'
export const LIST_STRATEGIES: readonly ListStrategy[] = ['request', 'pair']

/** A pair's lists for one read: selected indices into prepared lists, and who releases them. */
export interface PairSelection {
  readonly local: PreparedList
  readonly localIndices: Uint32Array
  readonly remote: PreparedList
  readonly remoteIndices: Uint32Array
  /** Called once the read settled (per-request lists are released; cached ones unpinned). */
  readonly done: () => void
}

/** Where a pair's descriptors point: region ids by tensor index on each side. */
export interface PairRegions {
  readonly agent: TransferAgent
  readonly peer: Peer
  readonly localRegion: (tensorIndex: number) => number
  readonly remoteRegion: (tensorIndex: number) => number
}

/** Shortens one descriptor (bench --inject-fault short): the read of index `index` stops `bytes` early. */
export interface Shorten {
  readonly index: number
  readonly bytes: number
}

/** Per-request lists over `list` (reads or coalesced runs); `done` releases them. */
export function requestLists(p: PairRegions, list: ReadList, shorten?: Shorten): PairSelection {
  const local: Descriptor[] = new Array(list.count)
  const remote: Descriptor[] = new Array(list.count)
  for (let i = 0; i < list.count; i++) {
    const t = list.tensorIndex[i]
    const sizeBytes = shorten?.index === i ? list.lengthBytes[i] - shorten.bytes : list.lengthBytes[i]
    local[i] = {region: p.localRegion(t), offsetBytes: list.localOffsetBytes[i], sizeBytes}
    remote[i] = {region: p.remoteRegion(t), offsetBytes: list.remoteOffsetBytes[i], sizeBytes}
  }
  const localList = p.agent.prepareLocal(local)
  let remoteList: PreparedList
  try {
    remoteList = p.agent.prepareRemote(p.peer, remote)
  } catch (error) {
    p.agent.releaseList(localList)
    throw error
  }
  const indices = Uint32Array.from({length: list.count}, (_, i) => i)
  let released = false
  return {
    local: localList,
    localIndices: indices,
    remote: remoteList,
    remoteIndices: indices,
    done: () => {
      if (released) return
      released = true
      release(p.agent, localList)
      release(p.agent, remoteList)
    },
  }
}

/** One side's growing descriptor set: (tensor, offset) → index, and its current prepared list. */
class GrowingList {
  private readonly index = new Map<number, number>()
  private readonly lengths: number[] = []
  readonly descs: Descriptor[] = []
  private current: {list: PreparedList; pins: number; superseded: boolean} | undefined
  prepares = 0

  constructor(
    private readonly numTensors: number,
    private readonly prepare: (descs: readonly Descriptor[]) => PreparedList,
    private readonly release: (list: PreparedList) => void,
  ) {}

  /** Indices of `offsets` (adding unseen descriptors); undefined when a key cannot be kept (then fall back). */
  lookup(tensorIndex: Int32Array, offsets: Float64Array, lengths: Float64Array, count: number, region: (t: number) => number): {indices: Uint32Array; grew: boolean} | undefined {
    const out = new Uint32Array(count)
    let grew = false
    for (let i = 0; i < count; i++) {
      // offset·T + tensor is exact below 2^53; a larger key (a multi-PiB tensor) is not cached.
      const key = offsets[i] * this.numTensors + tensorIndex[i]
      if (!Number.isSafeInteger(key)) return undefined
      let at = this.index.get(key)
      if (at === undefined) {
        at = this.descs.length
        this.index.set(key, at)
        this.lengths.push(lengths[i])
        this.descs.push({region: region(tensorIndex[i]), offsetBytes: offsets[i], sizeBytes: lengths[i]})
        grew = true
      } else if (this.lengths[at] !== lengths[i]) {
        // The same start with another length: not a block template this cache can serve.
        return undefined
      }
      out[i] = at
    }
    return {indices: out, grew}
  }

  /** The prepared list covering every descriptor so far, pinned until `unpin`. */
  pin(grew: boolean): {list: PreparedList; unpin: () => void} {
    if (grew || !this.current) {
      const old = this.current
      this.current = {list: this.prepare(this.descs), pins: 0, superseded: false}
      this.prepares++
      if (old) {
        old.superseded = true
        if (old.pins === 0) this.release(old.list)
      }
    }
    const entry = this.current
    entry.pins++
    let unpinned = false
    return {
      list: entry.list,
      unpin: () => {
        if (unpinned) return
        unpinned = true
        entry.pins--
        // A list replaced while reads used it is released by the last of them.
        if (entry.superseded && entry.pins === 0) this.release(entry.list)
      },
    }
  }

  close(): void {
    if (this.current && this.current.pins === 0) this.release(this.current.list)
    this.current = undefined
  }
}

/**
 * NIXL-style lists of one engine pair (see the top of this file). Reads in flight keep the lists
 * they were posted on: a list replaced meanwhile is released when the last of them settles.
 */
export class PairListCache {
  private readonly local: GrowingList
  private readonly remote: GrowingList
  /** Requests this cache could not serve (then per-request lists were used). */
  fallbacks = 0

  constructor(private readonly p: PairRegions, numTensors: number) {
    this.local = new GrowingList(numTensors, (d) => p.agent.prepareLocal(d), (l) => release(p.agent, l))
    this.remote = new GrowingList(numTensors, (d) => p.agent.prepareRemote(p.peer, d), (l) => release(p.agent, l))
  }

  get prepares(): number {
    return this.local.prepares + this.remote.prepares
  }

  /** Selects the request's reads; per-request lists when the cache cannot hold them. */
  select(reads: ReadList): PairSelection {
    const l = this.local.lookup(reads.tensorIndex, reads.localOffsetBytes, reads.lengthBytes, reads.count, this.p.localRegion)
    const r = l && this.remote.lookup(reads.tensorIndex, reads.remoteOffsetBytes, reads.lengthBytes, reads.count, this.p.remoteRegion)
    if (!l || !r) {
      this.fallbacks++
      return requestLists(this.p, reads)
    }
    const local = this.local.pin(l.grew)
    const remote = this.remote.pin(r.grew)
    return {local: local.list, localIndices: l.indices, remote: remote.list, remoteIndices: r.indices, done: () => (local.unpin(), remote.unpin())}
  }

  close(): void {
    this.local.close()
    this.remote.close()
  }
}

/** Releasing a list of a closed agent (or of a dropped peer) has nothing left to free. */
function release(agent: TransferAgent, list: PreparedList): void {
  if (agent.closed) return
  try {
    agent.releaseList(list)
  } catch {
    // the list went with its peer (disconnect releases remote lists)
  }
}
