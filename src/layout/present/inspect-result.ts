import type {ModelSpec} from '../../model/index.js'
import {checkDescriptorTables} from '../bounds.js'
import {localDescriptorView, pairDescriptorViews} from '../descriptor-ids.js'
import {planLayout as planLayoutImpl} from '../plan-layout.js'
import {planRequestReads, type RequestReadPlan, type RequestReadSummary, summarizeRequestReads} from '../request-reads.js'
import {checkPromptTokens, transferredTokens} from '../transferred-tokens.js'
import type {AttentionRunShape, CachePart, EngineLayout, LayoutPlan, PageRead, PlanLayoutOptions, VllmPitfall, VllmVersionJudgement} from '../types.js'

/** `hpd inspect-layout --json` result. Field names are a contract: scripts rely on them. */
export interface InspectLayoutResult {
  readonly model: {
    readonly name: string
    readonly family: string
    readonly architecture: string
    readonly dtype: string
    readonly numLayers: number
    /** One character per layer: M mamba2, m mamba1, G gdn, * attention, H attention+state, - MLP/MoE. */
    readonly pattern: string
    readonly source: ModelSpec['source']
  }
  /** Set when the decode side runs another model config (`--decode-model`) that maps onto the prefill's. */
  readonly decodeModel?: {readonly name: string; readonly architecture: string; readonly source: ModelSpec['source']}
  readonly prefill: EngineSummary
  readonly decode: EngineSummary
  readonly transfer: TransferSummary
  readonly compatibilityHash: string
  /** The vLLM release the pitfalls were judged against (`--vllm-version`). */
  readonly vllmVersion: VllmVersionJudgement
  /** Pitfalls that apply at `vllmVersion.judgedAgainst`, each with the releases it applies to and its fix. */
  readonly vllmPitfalls: readonly VllmPitfall[]
  readonly descriptors?: DescriptorTables
  /** Set when `--format svg --output FILE` wrote the picture there. */
  readonly svgPath?: string
  /** The picture itself, with `--format svg --json` and no `--output`. */
  readonly svg?: string
}

export interface EngineSummary {
  readonly tp: number
  readonly attentionBackend: string
  readonly supportedKernelBlockSizes: readonly string[]
  readonly dtypes: EngineLayout['dtypes']
  readonly convLayout: string
  readonly kvLayout: string
  readonly logicalBlockSize: number
  readonly blockSizeReason: string
  readonly kernelBlockSize: number
  readonly blocksPerLogical: number
  readonly vllmRatioEstimate: number | null
  readonly pageBytes: number
  readonly kernelPageBytes: number
  readonly kvHalfBytes: number
  readonly mambaPageBytes: number
  readonly paddingBytes: number
  readonly paddingPercent: number
  readonly numTensors: number
  readonly groups: readonly {readonly index: number; readonly kind: string; readonly layers: readonly (number | null)[]}[]
  readonly ranks: readonly RankSummary[]
}

export interface RankSummary {
  readonly rank: number
  readonly kvHeads: number
  readonly globalKvHeads: readonly number[]
  readonly convBytes: number
  readonly xBytes: number
  readonly bBytes: number
  readonly cBytes: number
  readonly ssmBytes: number
  readonly convShape: readonly number[]
  readonly ssmShape: readonly number[]
  readonly bcReplicated: boolean
  /** Where each part sits: fa parts within one kernel page, ssm parts within one logical page. */
  readonly pageMap: readonly {readonly view: string; readonly part: CachePart | 'padding'; readonly offsetBytes: number; readonly lengthBytes: number}[]
}

export interface TransferSummary {
  readonly promptTokens: number
  readonly transferredTokens: number
  readonly tpRatio: number
  /**
   * How attention reads are cut: both kernel blocks, the tokens one read covers (the kernel block
   * when they agree, else their gcd), and whether a read spans a range of heads or one head.
   */
  readonly attention: AttentionRunShape
  /** Mamba/GDN state: always one page per state group per request, whatever the block sizes. */
  readonly statePagesPerGroup: 1
  /**
   * The decode side's prefix-cache hit (`--cached-tokens`): tokens it holds already, whose
   * attention reads are skipped (the state is always read: the prefill side's final state).
   */
  readonly cachedTokens: number
  /** What the hit saves against a cold decode side: FA kernel blocks per layer [0, n), reads and bytes. */
  readonly skipped: {readonly kernelBlocksPerFaLayer: number; readonly reads: number; readonly bytes: number}
  readonly kernelBlocksRead: number
  readonly vllmKernelBlocks: number
  readonly vllmDescriptorPairs: number
  readonly hpdReads: number
  readonly coalescedRuns: number
  readonly bytesPerDecodeRank: readonly number[]
  readonly notificationsPerPrefillRank: readonly number[]
  readonly pairs: readonly {
    readonly decodeRank: number
    readonly prefillRank: number
    readonly readsFa: boolean
    readonly bytes: number
    readonly reads: number
    readonly runs: number
    readonly vllmDescriptorPairs: number
  }[]
  /** Page-level reads: offsets within one kernel page (fa) or one logical page (ssm). */
  readonly pageReads: readonly PageRead[]
}

export interface DescriptorTables {
  readonly prefillNumLogicalBlocks: number
  readonly decodeNumLogicalBlocks: number
  readonly pairs: readonly {
    readonly decodeRank: number
    readonly prefillRank: number
    readonly numFaDescs: {readonly local: number; readonly remote: number}
    /** The request's descriptor ids, local[i] ↔ remote[i] (vLLM §3.3). */
    readonly localIds: readonly number[]
    readonly remoteIds: readonly number[]
    /** [id, tensorIndex, offsetBytes, lengthBytes] rows of the local (decode) and remote (prefill) lists. */
    readonly local: readonly (readonly number[])[]
    readonly remote: readonly (readonly number[])[]
  }[]
}

export function buildInspectResult(plan: LayoutPlan, promptTokens: number, reads: RequestReadSummary, descriptorReads?: RequestReadPlan, cold: RequestReadSummary = reads): InspectLayoutResult {
  const m = plan.model
  return {
    model: {name: m.name, family: m.family, architecture: m.architecture, dtype: m.dtype, numLayers: m.layers.length, pattern: pattern(m), source: m.source},
    ...(plan.decodeModel === m ? {} : {decodeModel: {name: plan.decodeModel.name, architecture: plan.decodeModel.architecture, source: plan.decodeModel.source}}),
    prefill: engineSummary(plan.prefill),
    decode: engineSummary(plan.decode),
    transfer: {
      promptTokens,
      transferredTokens: reads.transferredTokens,
      tpRatio: plan.mapping.tpRatio,
      attention: plan.mapping.attention,
      statePagesPerGroup: plan.mapping.statePagesPerGroup,
      cachedTokens: reads.cachedTokens,
      skipped: {kernelBlocksPerFaLayer: cold.kernelBlocksRead - reads.kernelBlocksRead, reads: cold.reads - reads.reads, bytes: sum(cold.bytesPerDecodeRank) - sum(reads.bytesPerDecodeRank)},
      kernelBlocksRead: reads.kernelBlocksRead,
      vllmKernelBlocks: reads.vllmKernelBlocks,
      vllmDescriptorPairs: reads.vllmDescriptorPairs,
      hpdReads: reads.reads,
      coalescedRuns: reads.coalescedRuns,
      bytesPerDecodeRank: reads.bytesPerDecodeRank,
      notificationsPerPrefillRank: reads.notificationsPerPrefillRank,
      pairs: reads.pairs.map((p) => ({
        decodeRank: p.decodeRank,
        prefillRank: p.prefillRank,
        readsFa: plan.mapping.pairs.find((q) => q.decodeRank === p.decodeRank && q.prefillRank === p.prefillRank)?.readsFa ?? false,
        bytes: p.bytes,
        reads: p.reads,
        runs: p.runs,
        vllmDescriptorPairs: p.vllmDescriptorPairs,
      })),
      pageReads: plan.mapping.pairs.flatMap((p) => p.pageReads),
    },
    compatibilityHash: plan.compatibilityHash,
    vllmVersion: plan.vllmVersion,
    vllmPitfalls: plan.vllmPitfalls,
    ...(descriptorReads ? {descriptors: descriptorTables(plan, descriptorReads)} : {}),
  }
}

function pattern(m: ModelSpec): string {
  return m.layers
    .map((l) => {
      const attn = l.kinds.includes('attention')
      const state = l.kinds.find((k) => k === 'mamba2' || k === 'mamba1' || k === 'gdn')
      if (attn && state) return 'H'
      if (attn) return '*'
      if (state === 'mamba2') return 'M'
      if (state === 'mamba1') return 'm'
      if (state === 'gdn') return 'G'
      return '-'
    })
    .join('')
}

export function engineSummary(e: EngineLayout): EngineSummary {
  return {
    tp: e.tp,
    attentionBackend: e.attentionBackend,
    supportedKernelBlockSizes: e.supportedKernelBlockSizes,
    dtypes: e.dtypes,
    convLayout: e.convLayout,
    kvLayout: e.kvLayout,
    logicalBlockSize: e.logicalBlockSize,
    blockSizeReason: e.blockSizeReason,
    kernelBlockSize: e.kernelBlockSize,
    blocksPerLogical: e.blocksPerLogical,
    vllmRatioEstimate: e.vllmRatioEstimate ?? null,
    pageBytes: e.pageBytes,
    kernelPageBytes: e.kernelPageBytes,
    kvHalfBytes: e.kvHalfBytes,
    mambaPageBytes: e.mambaPageBytes,
    paddingBytes: e.paddingBytes,
    paddingPercent: e.mambaPageBytes === 0 ? 0 : Math.round((e.paddingBytes / e.mambaPageBytes) * 1e5) / 1e3,
    numTensors: e.numTensors,
    groups: e.groups.map((g) => ({index: g.index, kind: g.kind, layers: g.layers})),
    ranks: e.ranks.map((r) => {
      const mamba = r.mamba
      const pageMap: RankSummary['pageMap'][number][] = r.parts
        .filter((p) => p.rows === 1 || p.view === 'fa')
        .map((p) => ({view: p.view, part: p.part, offsetBytes: p.offsetBytes, lengthBytes: p.lengthBytes}))
      if (mamba && e.paddingBytes > 0) pageMap.push({view: 'ssm', part: 'padding', offsetBytes: mamba.pageBytes, lengthBytes: e.paddingBytes})
      return {
        rank: r.rank,
        kvHeads: r.attention.numKvHeads,
        globalKvHeads: r.attention.globalKvHeads,
        convBytes: mamba?.conv.bytes ?? 0,
        xBytes: mamba?.conv.xBytes ?? 0,
        bBytes: mamba?.conv.bBytes ?? 0,
        cBytes: mamba?.conv.cBytes ?? 0,
        ssmBytes: mamba?.ssm.bytes ?? 0,
        convShape: mamba?.conv.shape ?? [],
        ssmShape: mamba?.ssm.shape ?? [],
        bcReplicated: mamba?.conv.bcReplicated ?? false,
        pageMap,
      }
    }),
  }
}

function descriptorTables(plan: LayoutPlan, reads: RequestReadPlan): DescriptorTables {
  const pNum = reads.prefillNumLogicalBlocks
  const dNum = reads.decodeNumLogicalBlocks
  const rows = (v: ReturnType<typeof localDescriptorView>): number[][] =>
    Array.from({length: v.count}, (_, i) => [i, v.tensorIndex[i], v.offsetBytes[i], v.lengthBytes[i]])
  return {
    prefillNumLogicalBlocks: pNum,
    decodeNumLogicalBlocks: dNum,
    pairs: plan.mapping.pairs.map((pair) => {
      const views = pairDescriptorViews(pair, plan.prefill, plan.decode, pNum, dNum)
      const ids = reads.pairs.find((p) => p.decodeRank === pair.decodeRank && p.prefillRank === pair.prefillRank)?.descriptorIds
      return {
        decodeRank: pair.decodeRank,
        prefillRank: pair.prefillRank,
        numFaDescs: {local: views.local.numFaDescs, remote: views.remote.numFaDescs},
        localIds: ids ? Array.from(ids.local) : [],
        remoteIds: ids ? Array.from(ids.remote) : [],
        local: rows(views.local),
        remote: rows(views.remote),
      }
    }),
  }
}

/** Everything `inspect-layout` shows, from a model and the layout options. Pure. */
export function inspectLayout(options: PlanLayoutOptions & {readonly promptTokens: number; readonly cachedTokens?: number; readonly descriptors?: boolean}): InspectLayoutResult {
  const {promptTokens, cachedTokens = 0, descriptors = false, ...layout} = options
  checkPromptTokens(promptTokens)
  const plan = planLayoutImpl(layout)
  const tokens = transferredTokens(promptTokens)
  // The counts stream (no lists kept); the full lists are built only when descriptor ids are asked for.
  const reads = summarizeRequestReads(plan, {transferredTokens: tokens, cachedTokens})
  const cold = cachedTokens === 0 ? reads : summarizeRequestReads(plan, {transferredTokens: tokens})
  if (descriptors) {
    checkDescriptorTables(plan, tokens)
    const full = planRequestReads(plan, {transferredTokens: tokens, cachedTokens, descriptorIds: true})
    return buildInspectResult(plan, promptTokens, reads, full, cold)
  }
  return buildInspectResult(plan, promptTokens, reads, undefined, cold)
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0)
}
