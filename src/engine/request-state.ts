import type {BlockHash} from './block-hash.js'

/** One request's hold on the engine's cache (HybridEngine's bookkeeping; prefix-requests.ts reads it too). */
export interface RequestState {
  /** Tokens whose K/V and state are in the cache (the next token's position). */
  numTokens: number
  /** [group] logical block ids: attention groups one per block of tokens, state groups one page. */
  readonly blocks: number[][]
  /** [attention group] kernel block table, rebuilt when the group's blocks change. */
  tables: Map<number, Int32Array>
  /**
   * Prefix caching: the request's token ids (a prompt is known ahead of what is computed);
   * undefined once they are not known (a cache adopted without its tokens): nothing is indexed.
   */
  tokens: number[] | undefined
  /** The hash chain of its full blocks (as far as computed). */
  readonly hashes: BlockHash[]
  /** Full blocks already indexed in the attention groups. */
  indexedBlocks: number
  /** Per state group: the checkpoint this request holds (its latest boundary off the every-k grid). */
  readonly held: Map<number, number>
  /** Tokens its allocation found in the prefix cache. */
  cachedTokens: number
}

export function newRequestState(blocks: number[][], tokens: number[] | undefined): RequestState {
  return {numTokens: 0, blocks, tables: new Map(), tokens, hashes: [], indexedBlocks: 0, held: new Map(), cachedTokens: 0}
}
