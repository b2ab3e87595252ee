import {UsageError} from '../errors.js'
import {checkBlockIds, defaultBlockIds, type GroupBlockIds} from './block-ids.js'
import {cdiv} from './kernel-blocks.js'
import {CACHE_PARTS, orderAndCoalesce, type ReadList, ReadListBuilder} from './read-list.js'
import {faDescriptorIdsFor, ssmRegionsPerTensor} from './descriptor-ids.js'
import {faByteOffset} from './offsets.js'
import type {EngineLayout, LayoutPlan, RankPair} from './types.js'

export interface RequestReadsOptions {
  /** N: prompt tokens. Hybrids transfer N−1 (P computes h(N−1), D recomputes the last token). */
  readonly promptTokens: number
  /** Per group, the prefill side's logical block ids; default: sequential from 0 in group order. */
  readonly prefillBlockIds?: GroupBlockIds
  readonly decodeBlockIds?: GroupBlockIds
  /** Logical blocks per shared tensor on each side; default: the largest block id + 1. */
  readonly prefillNumLogicalBlocks?: number
  readonly decodeNumLogicalBlocks?: number
  /** Also build vLLM's descriptor-id pairs (§3.3) for every rank pair (costs time on long prompts). */
  readonly descriptorIds?: boolean
}

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

export interface RequestReadPlan {
  readonly promptTokens: number
  /** Tokens whose K/V (and resulting state) go over the wire: N−1 for hybrids, N otherwise. */
  readonly transferredTokens: number
  /** Kernel blocks hpd reads per FA layer: cdiv(transferredTokens, kernelBlock). */
  readonly kernelBlocksRead: number
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
 * byte offsets in the shared tensors. FA kernel blocks are matched through token positions (the
 * i-th kernel block of the request on both sides), so P and D may differ in logical block size as
 * long as their kernel blocks agree. Only kernel blocks holding transferred tokens are read, padding
 * slots and page padding never. Pure.
 */
export function planRequestReads(plan: LayoutPlan, options: RequestReadsOptions): RequestReadPlan {
  const {prefill, decode, mapping} = plan
  const N = options.promptTokens
  const minTokens = prefill.hybrid ? 2 : 1
  if (!Number.isInteger(N) || N < minTokens) {
    throw new UsageError('HPD_USAGE_BAD_PROMPT_TOKENS', `--prompt-tokens ${N}: need an integer ≥ ${minTokens}${prefill.hybrid ? ' (a hybrid transfers N−1 tokens)' : ''}`, {
      hint: 'Pass the prompt length in tokens.',
      details: {value: N},
    })
  }
  const tokens = prefill.hybrid ? N - 1 : N
  const pIds = options.prefillBlockIds ?? defaultBlockIds(prefill, tokens)
  const dIds = options.decodeBlockIds ?? defaultBlockIds(decode, tokens)
  const pNum = options.prefillNumLogicalBlocks ?? maxId(pIds) + 1
  const dNum = options.decodeNumLogicalBlocks ?? maxId(dIds) + 1
  checkBlockIds(prefill, 'prefill', pIds, tokens, pNum)
  checkBlockIds(decode, 'decode', dIds, tokens, dNum)

  const kernelBlocksRead = cdiv(tokens, decode.kernelBlockSize)
  const vllmKernelBlocks = Math.min(cdiv(tokens, decode.logicalBlockSize) * decode.blocksPerLogical, cdiv(tokens, prefill.logicalBlockSize) * prefill.blocksPerLogical)
  const pairs = mapping.pairs.map((pair) => {
    const {list, bytes} = pairReads(pair, prefill, decode, pIds, dIds, pNum, dNum, kernelBlocksRead)
    const {reads, runs} = orderAndCoalesce(list)
    const vllmDescriptorPairs = vllmPairs(pair, decode, vllmKernelBlocks)
    const result: PairReadPlan = {decodeRank: pair.decodeRank, prefillRank: pair.prefillRank, reads, runs, bytes, vllmDescriptorPairs}
    if (!options.descriptorIds) return result
    return {...result, descriptorIds: faDescriptorIdsFor(pair, prefill, decode, pIds, dIds, pNum, dNum, tokens)}
  })
  const bytesPerDecodeRank = Array.from({length: decode.tp}, () => 0)
  for (const p of pairs) bytesPerDecodeRank[p.decodeRank] += p.bytes
  return {
    promptTokens: N,
    transferredTokens: tokens,
    kernelBlocksRead,
    vllmKernelBlocks,
    prefillBlockIds: pIds,
    decodeBlockIds: dIds,
    prefillNumLogicalBlocks: pNum,
    decodeNumLogicalBlocks: dNum,
    pairs,
    vllmDescriptorPairs: pairs.reduce((s, p) => s + p.vllmDescriptorPairs, 0),
    reads: pairs.reduce((s, p) => s + p.reads.count, 0),
    coalescedRuns: pairs.reduce((s, p) => s + p.runs.count, 0),
    bytesPerDecodeRank,
    notificationsPerPrefillRank: mapping.notificationsPerPrefillRank,
  }
}

function maxId(ids: GroupBlockIds): number {
  let m = -1
  for (const list of ids) for (const id of list) if (id > m) m = id
  return m
}

function pairReads(
  pair: RankPair,
  prefill: EngineLayout,
  decode: EngineLayout,
  pIds: GroupBlockIds,
  dIds: GroupBlockIds,
  pNum: number,
  dNum: number,
  kernelBlocks: number,
): {list: ReadList; bytes: number} {
  const fa = pair.pageReads.filter((r) => r.view === 'fa')
  const ssm = pair.pageReads.filter((r) => r.view === 'ssm')
  // Exact count first: the arrays are filled in place (a 128k-token prompt has ~10^5 reads per pair).
  let count = 0
  for (let s = 0; s < decode.numTensors; s++) {
    for (const g of decode.groups) {
      if (g.layers[s] === null) continue
      count += g.kind === 'attention' ? kernelBlocks * fa.length : ssm.length
    }
  }
  const out = new ReadListBuilder(count)
  const tensorIndex = out.tensorIndex
  const group = out.group
  const layerOf = out.layer
  const partIndex = out.partIndex
  const remote = out.remoteOffsetBytes
  const local = out.localOffsetBytes
  const length = out.lengthBytes
  const rP = prefill.blocksPerLogical
  const rD = decode.blocksPerLogical
  const pNk = pNum * rP
  const dNk = dNum * rD
  const pKernelPage = prefill.kernelPageBytes
  const dKernelPage = decode.kernelPageBytes
  const blocksFirst = decode.kvLayout === 'blocks-first'
  let k = 0
  for (let s = 0; s < decode.numTensors; s++) {
    for (const g of decode.groups) {
      const layer = g.layers[s]
      if (layer === null) continue
      if (g.kind === 'attention') {
        const pl = pIds[g.index]
        const dl = dIds[g.index]
        // blocks-first: block-major (each kernel page [K | V] in turn); kv-first: part-major (all K, then all V).
        const outer = blocksFirst ? kernelBlocks : fa.length
        const inner = blocksFirst ? fa.length : kernelBlocks
        for (let a = 0; a < outer; a++) {
          for (let b = 0; b < inner; b++) {
            const i = blocksFirst ? a : b
            const read = fa[blocksFirst ? b : a]
            const pk = pl[Math.floor(i / rP)] * rP + (i % rP) // kernelBlockId, inlined: this loop runs ~10^5 times
            const dk = dl[Math.floor(i / rD)] * rD + (i % rD)
            tensorIndex[k] = s
            group[k] = g.index
            layerOf[k] = layer
            partIndex[k] = CACHE_PARTS.indexOf(read.part)
            remote[k] = blocksFirst ? pk * pKernelPage + read.remoteOffsetBytes : faByteOffset(prefill, pk, read.remoteOffsetBytes, pNk)
            local[k] = blocksFirst ? dk * dKernelPage + read.localOffsetBytes : faByteOffset(decode, dk, read.localOffsetBytes, dNk)
            length[k] = read.lengthBytes
            k++
          }
        }
      } else {
        const pBase = pIds[g.index][0] * prefill.pageBytes
        const dBase = dIds[g.index][0] * decode.pageBytes
        for (const read of ssm) {
          tensorIndex[k] = s
          group[k] = g.index
          layerOf[k] = layer
          partIndex[k] = CACHE_PARTS.indexOf(read.part)
          remote[k] = pBase + read.remoteOffsetBytes
          local[k] = dBase + read.localOffsetBytes
          length[k] = read.lengthBytes
          k++
        }
      }
    }
  }
  out.count = k
  let bytes = 0
  for (let s = 0; s < decode.numTensors; s++) {
    for (const g of decode.groups) {
      if (g.layers[s] === null) continue
      if (g.kind === 'attention') for (const r of fa) bytes += kernelBlocks * r.lengthBytes
      else for (const r of ssm) bytes += r.lengthBytes
    }
  }
  return {list: out.build(), bytes}
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
