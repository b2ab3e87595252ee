/**
 * How many KV blocks a request can ever hold, and whether a worker's pool can ever hold it: the
 * arithmetic of admission control, shared by the router (over the workers' reported geometry) and
 * each worker (over its own engine).
 *
 * A sequence holds, at full length, one block per `blockTokens` tokens in every attention group
 * (at least one) plus a fixed number of pages (one per Mamba/GDN state group, and one more per
 * state group when the worker keeps a request's latest checkpoint off the checkpoint grid).
 * Requests are admitted against that full length (prompt + max_tokens − 1 tokens: the last sampled
 * token is never fed), so an admitted request never runs out of blocks midway: there is no
 * preemption to fall back on. Prefix-cache sharing only makes the real use smaller.
 */
import {transferredTokens} from '../layout/index.js'

/** A worker's pool as admission sees it (WorkerStats.kvGeometry; the engine computes it). */
export interface KvGeometry {
  /** Blocks requests may be admitted against (the pool, less what transient checkpoint pins need). */
  readonly capacityBlocks: number
  /** Tokens per logical block. */
  readonly blockTokens: number
  /** KV-cache groups whose blocks grow with the sequence (attention). */
  readonly attentionGroups: number
  /** Blocks a sequence holds whatever its length (state pages, a held checkpoint). */
  readonly fixedBlocksPerSequence: number
}

/** Blocks one sequence of `numTokens` cached tokens holds. */
export function sequenceBlocks(g: KvGeometry, numTokens: number): number {
  return g.attentionGroups * Math.max(1, Math.ceil(numTokens / g.blockTokens)) + g.fixedBlocksPerSequence
}

/** One prompt of a request, as admission sizes it. */
export interface PromptDemand {
  readonly promptTokens: number
  readonly maxTokens: number
  /** Continuations generated (best_of when larger than n): each holds its own copy of the cache. */
  readonly n: number
}

/**
 * Which pool a demand is checked against: 'prefill' holds a prompt's transferred tokens (one copy,
 * until the decode side has read them); 'decode' (decode and colocated workers) holds every
 * continuation at full length.
 */
export type KvSide = 'prefill' | 'decode'

/** Blocks a prompt's request holds at most on a worker of `side`. */
export function demandBlocks(g: KvGeometry, d: PromptDemand, side: KvSide): number {
  if (side === 'prefill') {
    const tokens = transferredTokens(d.promptTokens)
    return tokens === 0 ? 0 : sequenceBlocks(g, tokens)
  }
  return d.n * sequenceBlocks(g, d.promptTokens + d.maxTokens - 1)
}

/** Why a request can never be held, and by how much. */
export interface CapacityShortfall {
  /**
   * 'prompt': one prompt alone is larger than a pool; 'max_tokens': a prompt with its output is;
   * 'n': its continuations together are; 'batch': all prompts of the request together are.
   */
  readonly reason: 'prompt' | 'max_tokens' | 'n' | 'batch'
  /** The prompt at fault (its index in the request), absent for 'batch'. */
  readonly prompt?: number
  readonly side: KvSide
  readonly needBlocks: number
  readonly capacityBlocks: number
  /** For 'n': how many continuations of that prompt would fit. */
  readonly fittingN?: number
}

/**
 * Whether the pools of `side` can ever hold the request: each prompt's continuations must fit one
 * pool (they run on one worker), and all prompts together the pools together (the request's
 * prompts run concurrently). Undefined when it fits (or no pool is known).
 */
export function capacityShortfall(pools: readonly KvGeometry[], demands: readonly PromptDemand[], side: KvSide): CapacityShortfall | undefined {
  if (pools.length === 0) return undefined
  const largest = pools.reduce((a, g) => (g.capacityBlocks > a.capacityBlocks ? g : a))
  const cap = largest.capacityBlocks
  for (const [p, d] of demands.entries()) {
    const need = demandBlocks(largest, d, side)
    if (need <= cap) continue
    if (side === 'prefill' || sequenceBlocks(largest, d.promptTokens) > cap) return {reason: 'prompt', prompt: p, side, needBlocks: need, capacityBlocks: cap}
    const one = sequenceBlocks(largest, d.promptTokens + d.maxTokens - 1)
    if (one > cap) return {reason: 'max_tokens', prompt: p, side, needBlocks: one, capacityBlocks: cap}
    return {reason: 'n', prompt: p, side, needBlocks: need, capacityBlocks: cap, fittingN: Math.floor(cap / one)}
  }
  const total = pools.reduce((a, g) => a + g.capacityBlocks, 0)
  // Summed with the largest pool's geometry: workers of one role serve one model and layout.
  const need = demands.reduce((a, d) => a + demandBlocks(largest, d, side), 0)
  return need > total ? {reason: 'batch', side, needBlocks: need, capacityBlocks: total} : undefined
}
