import {UsageError} from '../errors.js'
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
  /** Leading tokens the decode side holds already (its prefix-cache hit): no attention read for them. */
  readonly cachedTokens: number
  /** First decode kernel block read (cachedTokens / decode kernel block). */
  readonly firstKernelBlock: number
  /** Decode kernel blocks read per FA layer: from firstKernelBlock to cdiv(tokens, decode kernel block). */
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
  const cachedTokens = options.cachedTokens ?? 0
  checkCachedTokens(plan, tokens, cachedTokens)
  const firstKernelBlock = cachedTokens / decode.kernelBlockSize
  return {
    tokens,
    pIds,
    dIds,
    pNum,
    dNum,
    cachedTokens,
    firstKernelBlock,
    kernelBlocksRead: cdiv(tokens, decode.kernelBlockSize) - firstKernelBlock,
    // vLLM reads the logical blocks the decode side lacks, all r kernel blocks of each.
    vllmKernelBlocks: Math.min(cdiv(tokens, decode.logicalBlockSize) * decode.blocksPerLogical, cdiv(tokens, prefill.logicalBlockSize) * prefill.blocksPerLogical) - (cachedTokens / decode.logicalBlockSize) * decode.blocksPerLogical,
  }
}

/**
 * The decode side's prefix-cache hit must be whole decode logical blocks (only full blocks are
 * cached) within the transferred tokens: its attention reads are skipped; state is always read.
 */
function checkCachedTokens(plan: LayoutPlan, tokens: number, cachedTokens: number): void {
  const block = plan.decode.logicalBlockSize
  if (!Number.isInteger(cachedTokens) || cachedTokens < 0 || cachedTokens > tokens || cachedTokens % block !== 0) {
    throw new UsageError('HPD_USAGE_BAD_CACHED_TOKENS', `${cachedTokens} cached tokens: need a multiple of the decode logical block (${block} tokens) in [0, ${tokens}] (the transferred tokens)`, {
      hint: `Pass --cached-tokens as whole decode blocks of ${block} tokens, at most N−1 of the prompt.`,
      details: {value: cachedTokens, logicalBlockSize: block, transferredTokens: tokens},
    })
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
  /**
   * Leading tokens whose cache the decode side already holds (its prefix-cache hit, whole decode
   * logical blocks): their attention reads are skipped. Mamba/GDN state is always read (the
   * prefill side's final state; a decode side never resumes from a state of its own). Default 0.
   */
  readonly cachedTokens?: number
  /** Also build vLLM's descriptor-id pairs (§3.3) for every rank pair (costs time on long prompts). */
  readonly descriptorIds?: boolean
}

function maxId(ids: GroupBlockIds): number {
  let m = -1
  for (const list of ids) for (const id of list) if (id > m) m = id
  return m
}
