import type {Region, TransferAgent} from '../transport/index.js'
import type {CacheAllocation, CacheAllocator} from './cache.js'

/** A cache allocation that is a transfer-agent region (its id is what descriptors name). */
export interface RegionAllocation extends CacheAllocation {
  readonly region: Region
  readonly rank: number
  readonly tensorIndex: number
}

/**
 * Cache memory from the transfer agents, one agent per TP rank (each rank owns its regions, as
 * if on its own GPU): every shared tensor is one UCX-allocated region a same-host peer can map
 * and read one-sidedly. UCX allocates it zeroed-or-not: it is zeroed here, because state pages are
 * zeroed per request but K/V pages are never read before written. `release()` frees the region
 * (free only after readers are done: freeing is not revocation, see src/transport/README.md).
 * `allocations` lists what was handed out, in order, for building descriptor lists.
 */
export function transferAgentAllocator(agents: readonly TransferAgent[]): CacheAllocator & {readonly allocations: readonly RegionAllocation[]} {
  const allocations: RegionAllocation[] = []
  return {
    allocations,
    allocate({rank, tensorIndex, sizeBytes}) {
      const agent = agents[rank]
      if (!agent) throw new RangeError(`no transfer agent for TP rank ${rank} (have ${agents.length})`)
      const region = agent.allocRegion(sizeBytes)
      new Uint8Array(region.buffer).fill(0)
      let released = false
      const allocation: RegionAllocation = {
        region,
        rank,
        tensorIndex,
        buffer: region.buffer,
        release() {
          if (released) return
          released = true
          agent.freeRegion(region)
        },
      }
      allocations.push(allocation)
      return allocation
    },
  }
}
