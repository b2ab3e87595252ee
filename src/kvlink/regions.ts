import type {Region, TransferAgent} from '../transport/index.js'
import {LINK_FORMAT, type LinkInfo} from './handshake.js'

/**
 * One engine's shared tensors, as transfer-agent regions: [rank][tensorIndex] → region, each
 * rank's regions in one agent (serve: every rank in the worker's one agent; bench --path case:
 * one agent per rank, as if each rank were on its own GPU). The table does not own the regions
 * or the agents: whoever allocated them frees them.
 */
export class RegionTable {
  private readonly regions: Region[][]

  /** `rankAgent[rank]`: index into `agents` of the agent holding that rank's tensors. */
  constructor(
    readonly agents: readonly TransferAgent[],
    private readonly rankAgent: readonly number[],
    readonly numTensors: number,
  ) {
    this.regions = rankAgent.map(() => [])
  }

  /** Every rank in one agent (a serve worker). */
  static oneAgent(agent: TransferAgent, tp: number, numTensors: number): RegionTable {
    return new RegionTable([agent], Array.from({length: tp}, () => 0), numTensors)
  }

  /** One agent per rank. */
  static agentPerRank(agents: readonly TransferAgent[], numTensors: number): RegionTable {
    return new RegionTable(agents, agents.map((_, rank) => rank), numTensors)
  }

  get tp(): number {
    return this.rankAgent.length
  }

  set(rank: number, tensorIndex: number, region: Region): void {
    this.regions[rank][tensorIndex] = region
  }

  region(rank: number, tensorIndex: number): Region {
    const r = this.regions[rank]?.[tensorIndex]
    if (!r) throw new RangeError(`no region for rank ${rank} tensor ${tensorIndex}`)
    return r
  }

  agentIndexOf(rank: number): number {
    return this.rankAgent[rank]
  }

  agentOf(rank: number): TransferAgent {
    return this.agents[this.rankAgent[rank]]
  }

  /** Ranks whose tensors live in agent `agentIndex`. */
  ranksOf(agentIndex: number): number[] {
    return this.rankAgent.flatMap((a, rank) => (a === agentIndex ? [rank] : []))
  }

  /** The handshake payload for this engine. */
  info(numLogicalBlocks: number): LinkInfo {
    return {
      format: LINK_FORMAT,
      agents: this.agents.map((a) => Buffer.from(a.metadata()).toString('base64')),
      ranks: this.regions.map((tensors, rank) => ({agent: this.rankAgent[rank], regionIds: Array.from({length: this.numTensors}, (_, t) => tensors[t].id)})),
      numLogicalBlocks,
    }
  }
}
