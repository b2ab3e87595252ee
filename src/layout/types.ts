import type {Dtype, DtypeChoice, ModelSpec} from '../model/index.js'

/** Attention kernel backends whose block-size rules hpd reproduces (vLLM's names, plus hpd's `cpu`). */
export type AttentionBackend = 'flash-attn' | 'flashinfer' | 'triton' | 'cpu'
export const ATTENTION_BACKENDS: readonly AttentionBackend[] = ['flash-attn', 'flashinfer', 'triton', 'cpu']

/** Conv state layout: DS = (channels, d_conv−1) so x, B, C are each contiguous; SD = (d_conv−1, channels). */
export type ConvLayout = 'DS' | 'SD'

/**
 * How K/V sit in a shared tensor. `blocks-first` (every hybrid model, vLLM HND re-strided): each
 * kernel block is `[K | V]`. `kv-first` (pure attention models, the non-hybrid path): the tensor is
 * `[K of every block | V of every block]`, each half `[block][kvHead][token][headDim]`.
 */
export type KvLayout = 'blocks-first' | 'kv-first'

/** The byte ranges a read can name. x/B/C are the conv sub-projections (GDN: x=Q, B=K, C=V; Mamba1: x only). */
export type CachePart = 'K' | 'V' | 'x' | 'B' | 'C' | 'ssm'
export type CacheView = 'fa' | 'ssm'

export interface LayoutOptions {
  readonly model: ModelSpec
  /** `--block-size`: the requested logical block size in tokens (hybrids grow it, see README). */
  readonly blockSize?: number
  /** `auto` = model dtype; under the `cpu` backend the CPU engine's fp32 (`CPU_ENGINE_LAYOUT`, every `auto` below too). */
  readonly kvCacheDtype?: DtypeChoice
  /** Conv state dtype; `auto` = the model's `mamba_cache_dtype`, else model dtype (`cpu` backend: fp32). */
  readonly mambaConvDtype?: DtypeChoice
  /** SSM state dtype; `auto` = the model's/family's default (fp32 for Nemotron-H), else the conv dtype (`cpu` backend: fp32). */
  readonly mambaSsmDtype?: DtypeChoice
  /** Default `flash-attn` (what vLLM's reference numbers assume). */
  readonly attentionBackend?: AttentionBackend
  /** Default `DS` (what the 3-descriptor conv read requires). */
  readonly convLayout?: ConvLayout
  /**
   * The kernel block in tokens, instead of the backend's choice (vLLM select_common_block_size).
   * Must divide the logical block size. P and D may differ (see `PlanLayoutOptions.decode`).
   */
  readonly kernelBlockSize?: number
}

export interface EngineLayoutOptions extends LayoutOptions {
  readonly tp: number
}

/**
 * What the decode side sets differently from the prefill side (everything else is shared). A pair
 * whose bytes cannot correspond (KV dtype, head_dim, conv layout, layer sets, ...) is refused by
 * `checkPairMappable` with a precise code; block sizes of any kind may differ.
 */
export type DecodeSideOptions = Partial<Omit<LayoutOptions, 'model'>> & {readonly model?: ModelSpec}

export interface PlanLayoutOptions extends LayoutOptions {
  readonly prefillTp: number
  readonly decodeTp: number
  /** Decode-side overrides; `model` here is the decode engine's model (default: `model`). */
  readonly decode?: DecodeSideOptions
  /** The vLLM release the pitfalls are judged against ("0.20", "0.27", ...); default: the newest known. */
  readonly vllmVersion?: string
}

export interface ResolvedDtypes {
  readonly kv: Dtype
  readonly conv: Dtype
  readonly ssm: Dtype
}

/** One HMA KV-cache group. Slot s of every group lives in shared tensor s. */
export interface CacheGroup {
  readonly index: number
  readonly kind: 'attention' | 'state'
  /** [slot] → model layer index, or null for an HMA padding slot (nothing stored, never read). */
  readonly layers: readonly (number | null)[]
}

/** Where one model layer keeps its cache(s): Falcon-H1 layers have two entries. */
export interface LayerPlacement {
  readonly layer: number
  readonly caches: readonly {readonly kind: 'attention' | 'state'; readonly group: number; readonly tensorIndex: number}[]
}

/**
 * One part of a page on one rank, in units (kv heads, channels or SSM heads) that TP shards.
 * Byte of unit u (0-based local) in row t: offsetBytes + t·rowStrideBytes + u·unitBytes; units of a
 * row are contiguous. Offsets are within a kernel page `[K | V]` (fa view) or a logical page (ssm view).
 */
export interface PartGeometry {
  readonly part: CachePart
  readonly view: CacheView
  readonly offsetBytes: number
  readonly lengthBytes: number
  readonly rows: number
  readonly rowStrideBytes: number
  readonly unitBytes: number
  readonly unit: 'kv-head' | 'channel' | 'head'
  readonly unitsLocal: number
  /** First global unit this rank holds; with `replicated` every rank holds [0, unitsLocal). */
  readonly globalUnitStart: number
  readonly replicated: boolean
}

export interface AttentionRankGeometry {
  /** KV heads on this rank. */
  readonly numKvHeads: number
  /** KV heads of the model (num_key_value_heads). */
  readonly modelKvHeads: number
  /** Global KV heads this rank holds (one replicated head when TP > num_key_value_heads). */
  readonly globalKvHeads: readonly number[]
  readonly replicated: boolean
  readonly headDim: number
  readonly dtype: Dtype
  /** One token of one head in K (or V): headDim · dtypeBytes. */
  readonly headTokenBytes: number
  /** 2 · numKvHeads · headDim · dtypeBytes (vLLM attn_1tok). */
  readonly bytesPerToken: number
  /** One kernel block: `[K: numKvHeads × kernelBlock × headDim | V: same]` (HND). */
  readonly kernelPageBytes: number
  readonly kvHalfBytes: number
}

export interface ConvRankGeometry {
  readonly layout: ConvLayout
  readonly dtype: Dtype
  /** Local conv channels, ordered [x | B | C]. */
  readonly channels: number
  /** d_conv − 1 (no speculative tokens). */
  readonly stateLen: number
  /** DS: [channels, stateLen]; SD: [stateLen, channels]. */
  readonly shape: readonly number[]
  readonly bytes: number
  readonly xChannels: number
  readonly bChannels: number
  readonly cChannels: number
  readonly xBytes: number
  readonly bBytes: number
  readonly cBytes: number
  /** n_groups < TP: B and C are replicated on every rank (vLLM extra_groups_for_head_shards). */
  readonly bcReplicated: boolean
}

export interface SsmRankGeometry {
  readonly dtype: Dtype
  /** Mamba2 [heads, headDim, stateSize]; Mamba1 [channels, stateSize]; GDN [valueHeads, valueHeadDim, keyHeadDim]. */
  readonly shape: readonly number[]
  readonly bytes: number
  /** = conv bytes: the SSM state follows the conv state in the page. */
  readonly offsetBytes: number
}

export interface MambaRankGeometry {
  readonly kind: 'mamba2' | 'mamba1' | 'gdn'
  readonly conv: ConvRankGeometry
  readonly ssm: SsmRankGeometry
  /** conv + ssm (vLLM MambaSpec.page_size_bytes unpadded). */
  readonly pageBytes: number
}

export interface RankLayout {
  readonly rank: number
  readonly attention: AttentionRankGeometry
  readonly mamba: MambaRankGeometry | undefined
  /** K, V (fa view) then x, B, C, ssm (ssm view; B/C absent for Mamba1). */
  readonly parts: readonly PartGeometry[]
}

/** One engine (prefill or decode) at one TP size. Every rank has the same sizes; heads differ. */
export interface EngineLayout {
  readonly tp: number
  readonly hybrid: boolean
  readonly attentionBackend: AttentionBackend
  readonly convLayout: ConvLayout
  readonly kvLayout: KvLayout
  readonly dtypes: ResolvedDtypes
  /** The scheduler's (manager's) block size in tokens; block ids count these. */
  readonly logicalBlockSize: number
  /** The block size the attention kernel addresses. */
  readonly kernelBlockSize: number
  /** r = logicalBlockSize / kernelBlockSize (vLLM physical_blocks_per_logical_kv_block). */
  readonly blocksPerLogical: number
  /** Kernel block sizes the backend accepts, as vLLM lists them ("16", "32", "multiple of 16"). */
  readonly supportedKernelBlockSizes: readonly string[]
  /** Logical page: FA page of one logical block = the padded Mamba page. */
  readonly pageBytes: number
  readonly kernelPageBytes: number
  readonly kvHalfBytes: number
  readonly attnBytesPerToken: number
  /** Unpadded conv + SSM bytes per page (0 for pure attention models). */
  readonly mambaPageBytes: number
  /** pageBytes − mambaPageBytes for hybrids (never read), else 0. */
  readonly paddingBytes: number
  /** Shared KV-cache tensors T (= memory registrations); tensor s holds slot s of every group. */
  readonly numTensors: number
  readonly groups: readonly CacheGroup[]
  readonly layers: readonly LayerPlacement[]
  readonly ranks: readonly RankLayout[]
  /** vLLM v0.20's estimate of this engine's ratio as a remote: ceil(mambaPage / kernelPage). */
  readonly vllmRatioEstimate: number | undefined
  /** How the logical block size was derived, in one line. */
  readonly blockSizeReason: string
}

/**
 * One read of a page-level template: offsets within one kernel page (fa) or one logical page (ssm).
 * An fa read covers `TpMapping.attention.tokensPerRead` tokens starting at the page's first token:
 * a run of whole heads when both sides' kernel blocks agree (tokensPerRead = the kernel block), one
 * head otherwise (tokensPerRead = gcd of the kernel blocks); the request planner shifts it by
 * (token position mod kernel block) · headTokenBytes on each side.
 */
export interface PageRead {
  readonly decodeRank: number
  readonly prefillRank: number
  readonly view: CacheView
  readonly part: CachePart
  readonly remoteOffsetBytes: number
  readonly localOffsetBytes: number
  readonly lengthBytes: number
}

export interface RankPair {
  readonly decodeRank: number
  readonly prefillRank: number
  /** Page-level reads, fa view first (K, V), then ssm (x, B, C, ssm). Empty parts are omitted. */
  readonly pageReads: readonly PageRead[]
  readonly readsFa: boolean
  readonly readsSsm: boolean
}

/**
 * How attention bytes are cut when the two sides' kernel blocks differ. In a kernel page each head's
 * K (and V) holds `kernelBlock` consecutive tokens, so `gcd(prefill, decode)` consecutive tokens of
 * one head are contiguous on both sides: that is one read; reads that touch on both sides are merged
 * by the coalescer. Equal kernel blocks give whole-head-range reads of one kernel block each.
 */
export interface AttentionRunShape {
  readonly prefillKernelBlockSize: number
  readonly decodeKernelBlockSize: number
  /** Tokens one fa read covers: the kernel block when both agree, else gcd(prefill, decode). */
  readonly tokensPerRead: number
  /** 'head-range': one read per contiguous range of heads; 'head': one read per head. */
  readonly readUnit: 'head-range' | 'head'
  /** headDim · dtypeBytes: where a token sits inside one head's K (or V). */
  readonly headTokenBytes: number
}

export interface TpMapping {
  /** vLLM tp_ratio: D/P when D ≥ P, else −(P/D). */
  readonly tpRatio: number
  readonly attention: AttentionRunShape
  /**
   * Mamba/GDN state: one page per state group per request on each side, whatever the block sizes
   * (a state group's block holds one whole state), so kernel and logical block sizes never change
   * its reads. Always 1.
   */
  readonly statePagesPerGroup: 1
  /** Every (decode rank, prefill rank) pair that reads anything, decode rank major. */
  readonly pairs: readonly RankPair[]
  /**
   * [prefill rank] → notifications it waits for before freeing a request's blocks: the number of
   * decode ranks that read from it. 0 = no decode rank reads it (a pure-attention rank holding only
   * duplicate KV heads): it can free the request's blocks as soon as prefill ends.
   */
  readonly notificationsPerPrefillRank: readonly number[]
}

export interface VllmPitfall {
  readonly code: string
  readonly message: string
  readonly fix: string
  /** The vLLM release this pitfall was judged against (`LayoutPlan.vllmVersion.judgedAgainst`). */
  readonly vllmVersion: string
  /** The releases it applies to, e.g. ">=0.20 <0.22" or ">=0.20" (still open). */
  readonly appliesTo: string
  /** The change that fixed it and the first release carrying it; null while no release has the fix. */
  readonly fixedIn: {readonly version: string; readonly change: string} | null
  /** vLLM issues/PRs about it. */
  readonly refs: readonly string[]
}

export interface VllmVersionJudgement {
  /** What was asked for (`--vllm-version`), or the default. */
  readonly requested: string
  /** The release of hpd's pitfall table it was judged against (the newest known when `requested` is newer). */
  readonly judgedAgainst: string
  readonly newestKnown: string
}

export interface LayoutPlan {
  /** The prefill engine's model (the decode engine's is `decodeModel`, usually the same). */
  readonly model: ModelSpec
  readonly decodeModel: ModelSpec
  readonly prefill: EngineLayout
  readonly decode: EngineLayout
  readonly mapping: TpMapping
  /** sha256 (hex) over everything P and D must agree on; see compat-hash.ts. */
  readonly compatibilityHash: string
  readonly vllmVersion: VllmVersionJudgement
  /** The pitfalls that apply at `vllmVersion.judgedAgainst`. */
  readonly vllmPitfalls: readonly VllmPitfall[]
}
