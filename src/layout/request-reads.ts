import type {GroupBlockIds} from './block-ids.js'
import {checkPairReads} from './bounds.js'
import {type RequestContext, requestContext, type RequestReadsOptions} from './request-context.js'
import {countPairRuns} from './run-count.js'
import {orderAndCoalesce, type ReadList, ReadListBuilder} from './read-list.js'
import {faDescriptorIdsFor, ssmRegionsPerTensor} from './descriptor-ids.js'
import {countPairReads, faReadsPerTemplate, type ReadSink, visitPairReads} from './pair-reads.js'
import type {EngineLayout, LayoutPlan, RankPair} from './types.js'

export type {RequestReadsOptions} from './request-context.js'

export interface PairReadPlan {
  readonly decodeRank: number
  readonly prefillRank: number
  /** hpd's reads, one per (tensor, group slot, block, part), ordered by (tensor, local offset). */
  readonly reads: ReadList
  /** The same bytes as maximal contiguous runs. */
  readonly runs: ReadList
  readonly bytes: number
  /** Descriptor pairs vLLM v0.20 issues for this pair (all r kernel blocks per logical block, padding slots included). */
  readonly vllmDescriptorPairs: number
  /** vLLM descriptor ids into the local and remote prepared lists, one-to-one (only with `descriptorIds`). */
  readonly descriptorIds?: {readonly local: Int32Array; readonly remote: Int32Array}
}

/** One rank pair's counts, without the read lists (see `summarizeRequestReads`). */
export interface PairReadCounts {
  readonly decodeRank: number
  readonly prefillRank: number
  readonly reads: number
  readonly runs: number
  readonly bytes: number
  readonly vllmDescriptorPairs: number
}

export interface RequestReadSummary extends Omit<RequestReadPlan, 'pairs'> {
  readonly pairs: readonly PairReadCounts[]
}

export interface RequestReadPlan {
  /** Tokens whose K/V (and resulting state) go over the wire, as the caller gave them (N−1 of the prompt). */
  readonly transferredTokens: number
  /** Leading tokens the decode side holds already (prefix-cache hit): their attention reads are skipped. */
  readonly cachedTokens: number
  /** Decode kernel blocks hpd reads into per FA layer: cdiv(transferredTokens, decode kernel block) − cachedTokens / decode kernel block. */
  readonly kernelBlocksRead: number
  /** Tokens per FA read before coalescing (`TpMapping.attention.tokensPerRead`). */
  readonly tokensPerFaRead: number
  /** Kernel blocks vLLM reads per FA layer: logical blocks × r. */
  readonly vllmKernelBlocks: number
  readonly prefillBlockIds: GroupBlockIds
  readonly decodeBlockIds: GroupBlockIds
  readonly prefillNumLogicalBlocks: number
  readonly decodeNumLogicalBlocks: number
  readonly pairs: readonly PairReadPlan[]
  readonly vllmDescriptorPairs: number
  readonly reads: number
  readonly coalescedRuns: number
  /** [decode rank] → bytes it reads for this request. */
  readonly bytesPerDecodeRank: readonly number[]
  /** [prefill rank] → reads (notifications) it waits for before freeing the request's blocks. */
  readonly notificationsPerPrefillRank: readonly number[]
}

/**
 * The reads that move one request's cache from prefill to decode, for every rank pair, as absolute
 * byte offsets in the shared tensors. FA bytes are matched through token positions, so P and D may
 * differ in logical and in kernel block size (`visitPairReads`). Only kernel blocks holding
 * transferred tokens are read, padding slots and page padding never. Pure.
 */
export function planRequestReads(plan: LayoutPlan, options: RequestReadsOptions): RequestReadPlan {
  const ctx = requestContext(plan, options)
  const pairs = plan.mapping.pairs.map((pair): PairReadPlan => {
    const sink = listPairReads(plan, pair, ctx)
    const {reads, runs} = orderAndCoalesce(sink.build())
    const result = {decodeRank: pair.decodeRank, prefillRank: pair.prefillRank, reads, runs, bytes: sink.bytes, vllmDescriptorPairs: vllmPairs(pair, plan.decode, ctx.vllmKernelBlocks)}
    if (!options.descriptorIds) return result
    return {...result, descriptorIds: faDescriptorIdsFor(pair, plan.prefill, plan.decode, ctx.pIds, ctx.dIds, ctx.pNum, ctx.dNum, ctx.tokens, ctx.firstKernelBlock)}
  })
  return {...totals(plan, ctx, pairs.map((p) => ({...p, reads: p.reads.count, runs: p.runs.count}))), pairs}
}

/**
 * The counts of `planRequestReads` (reads, runs, bytes, vLLM pairs) without making the lists:
 * `countPairRuns` derives them per stretch of consecutive kernel blocks, so a 128k-token prompt
 * takes milliseconds (~263k reads at TP 8→2). Falls back to the full lists for a pair whose reads do not come in local order.
 */
export function summarizeRequestReads(plan: LayoutPlan, options: RequestReadsOptions): RequestReadSummary {
  const ctx = requestContext(plan, options)
  const pairs = plan.mapping.pairs.map((pair): PairReadCounts => {
    const counted = countPairRuns(pair, plan.mapping, plan.prefill, plan.decode, ctx)
    let {reads, runs} = counted
    if (!counted.ordered) {
      const lists = orderAndCoalesce(listPairReads(plan, pair, ctx).build())
      reads = lists.reads.count
      runs = lists.runs.count
    }
    return {decodeRank: pair.decodeRank, prefillRank: pair.prefillRank, reads, runs, bytes: counted.bytes, vllmDescriptorPairs: vllmPairs(pair, plan.decode, ctx.vllmKernelBlocks)}
  })
  return {...totals(plan, ctx, pairs), pairs}
}

function totals(plan: LayoutPlan, ctx: RequestContext, pairs: readonly PairReadCounts[]): RequestReadSummary {
  const bytesPerDecodeRank = Array.from({length: plan.decode.tp}, () => 0)
  for (const p of pairs) bytesPerDecodeRank[p.decodeRank] += p.bytes
  return {
    transferredTokens: ctx.tokens,
    cachedTokens: ctx.cachedTokens,
    kernelBlocksRead: ctx.kernelBlocksRead,
    tokensPerFaRead: plan.mapping.attention.tokensPerRead,
    vllmKernelBlocks: ctx.vllmKernelBlocks,
    prefillBlockIds: ctx.pIds,
    decodeBlockIds: ctx.dIds,
    prefillNumLogicalBlocks: ctx.pNum,
    decodeNumLogicalBlocks: ctx.dNum,
    pairs,
    vllmDescriptorPairs: pairs.reduce((s, p) => s + p.vllmDescriptorPairs, 0),
    reads: pairs.reduce((s, p) => s + p.reads, 0),
    coalescedRuns: pairs.reduce((s, p) => s + p.runs, 0),
    bytesPerDecodeRank,
    notificationsPerPrefillRank: plan.mapping.notificationsPerPrefillRank,
  }
}


class ListSink extends ReadListBuilder implements ReadSink {
  bytes = 0

  /** `capacity`: the pair's read count (countPairReads), bounded before anything is allocated. */
  constructor(capacity: number) {
    checkPairReads(capacity)
    super(capacity)
  }

  add(tensorIndex: number, group: number, layer: number, partIndex: number, remoteOffsetBytes: number, localOffsetBytes: number, lengthBytes: number): void {
    this.push(tensorIndex, group, layer, partIndex, remoteOffsetBytes, localOffsetBytes, lengthBytes)
    this.bytes += lengthBytes
  }
}

function listPairReads(plan: LayoutPlan, pair: RankPair, ctx: RequestContext): ListSink {
  const sink = new ListSink(countPairReads(pair, plan.decode, faReadsPerTemplate(plan.mapping, ctx.tokens, ctx.cachedTokens)))
  visitPairReads(pair, plan.mapping, plan.prefill, plan.decode, ctx, sink)
  return sink
}

/** vLLM v0.20: 2T FA regions × r kernel blocks per logical block per FA group, plus 4T SSM regions per state group. */
function vllmPairs(pair: RankPair, decode: EngineLayout, vllmKernelBlocks: number): number {
  let n = 0
  for (const g of decode.groups) {
    if (g.kind === 'attention') n += pair.readsFa ? 2 * decode.numTensors * vllmKernelBlocks : 0
    else n += ssmRegionsPerTensor(decode) * decode.numTensors
  }
  return n
}
