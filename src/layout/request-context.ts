import {checkRequestInputs} from './bounds.js'
import {checkBlockIds, defaultBlockIds, type GroupBlockIds} from './block-ids.js'
import {cdiv} from './kernel-blocks.js'
import type {LayoutPlan} from './types.js'

/** What every read of one request shares: token count, block ids per group on both sides, kernel block counts. */
export interface RequestContext {
  /** Transferred tokens (the caller applied `transferredTokens`). */
  readonly tokens: number
  readonly pIds: GroupBlockIds
  readonly dIds: GroupBlockIds
  readonly pNum: number
  readonly dNum: number
  readonly kernelBlocksRead: number
  readonly vllmKernelBlocks: number
}

export function requestContext(plan: LayoutPlan, options: RequestReadsOptions): RequestContext {
  const {prefill, decode} = plan
  const tokens = options.transferredTokens
  checkRequestInputs(plan, tokens)
  const pIds = options.prefillBlockIds ?? defaultBlockIds(prefill, tokens)
  const dIds = options.decodeBlockIds ?? defaultBlockIds(decode, tokens)
  const pNum = options.prefillNumLogicalBlocks ?? maxId(pIds) + 1
  const dNum = options.decodeNumLogicalBlocks ?? maxId(dIds) + 1
  checkBlockIds(prefill, 'prefill', pIds, tokens, pNum)
  checkBlockIds(decode, 'decode', dIds, tokens, dNum)
  return {
    tokens,
    pIds,
    dIds,
    pNum,
    dNum,
    kernelBlocksRead: cdiv(tokens, decode.kernelBlockSize),
    vllmKernelBlocks: Math.min(cdiv(tokens, decode.logicalBlockSize) * decode.blocksPerLogical, cdiv(tokens, prefill.logicalBlockSize) * prefill.blocksPerLogical),
  }
}


export interface RequestReadsOptions {
  /**
   * Tokens whose cache goes over the wire: `transferredTokens(N)` of an N-token prompt (the N−1
   * rule lives there, transferred-tokens.ts; the planner never rederives it).
   */
  readonly transferredTokens: number
  /** Per group, the prefill side's logical block ids; default: sequential from 0 in group order. */
  readonly prefillBlockIds?: GroupBlockIds
  readonly decodeBlockIds?: GroupBlockIds
  /** Logical blocks per shared tensor on each side; default: the largest block id + 1. */
  readonly prefillNumLogicalBlocks?: number
  readonly decodeNumLogicalBlocks?: number
  /** Also build vLLM's descriptor-id pairs (§3.3) for every rank pair (costs time on long prompts). */
  readonly descriptorIds?: boolean
}

function maxId(ids: GroupBlockIds): number {
  let m = -1
  for (const list of ids) for (const id of list) if (id > m) m = id
  return m
}
