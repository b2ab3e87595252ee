import {UsageError} from '../errors.js'
import type {Dtype, DtypeChoice, ModelSpec} from '../model/index.js'
import {checkEngineInputs} from './bounds.js'
import {CPU_ENGINE_LAYOUT} from './cpu-engine.js'
import {planGroups} from './groups.js'
import {cdiv, describeRule, type KernelSizeRule, kernelSizeRule, ruleBase, selectKernelBlockSize} from './kernel-blocks.js'
import {attnBytesPerToken, checkTpDivides, mambaGeometry, rankLayout} from './rank-geometry.js'
import type {AttentionBackend, EngineLayout, EngineLayoutOptions, ResolvedDtypes} from './types.js'

/** The block size a backend prefers when the user passes none (vLLM get_preferred_block_size(16)). */
const DEFAULT_BLOCK_SIZE = 16

/**
 * The cache layout of one engine (all its TP ranks): block sizes, page sizes, groups, shared tensors,
 * per-rank geometry. Pure. Throws UsageError for bad options and ModelConfigError when the model
 * cannot be split over `tp`.
 */
export function planEngineLayout(options: EngineLayoutOptions): EngineLayout {
  const {model, tp} = options
  checkEngineInputs(options)
  checkTpDivides(model, tp)
  const backend = options.attentionBackend ?? 'flash-attn'
  const convLayout = options.convLayout ?? 'DS'
  const dtypes = resolveDtypes(model, {...options, attentionBackend: backend})
  const hybrid = model.isHybrid
  const rule = engineKernelRule({attentionBackend: backend, hybrid, dtypes})
  const requested = options.blockSize
  const perToken = attnBytesPerToken(model, tp, dtypes)
  const mambaPageBytes = hybrid ? mambaGeometry(model, tp, 0, dtypes, convLayout).geometry.pageBytes : 0
  const {logicalBlockSize, blockSizeReason} = alignedBlockSize({requested, hybrid, mambaPageBytes, attnBytesPerToken: perToken, rule})
  const kernelBlockSize = options.kernelBlockSize ?? selectKernelBlockSize(logicalBlockSize, rule)
  if (options.kernelBlockSize !== undefined && (!Number.isInteger(options.kernelBlockSize) || options.kernelBlockSize < 1 || logicalBlockSize % options.kernelBlockSize !== 0)) {
    throw new UsageError('HPD_LAYOUT_BAD_KERNEL_BLOCK', `kernel block ${options.kernelBlockSize} tokens does not divide the logical block size ${logicalBlockSize} (TP ${tp})`, {
      hint: `Pass a kernel block size that divides ${logicalBlockSize}, or leave it to the attention backend.`,
      details: {kernelBlockSize: options.kernelBlockSize, logicalBlockSize, tp},
    })
  }
  if (kernelBlockSize === undefined) {
    throw new UsageError('HPD_LAYOUT_NO_KERNEL_BLOCK', `no kernel block size of ${backend} (${describeRule(rule).join(', ')}) divides the logical block size ${logicalBlockSize}`, {
      hint: 'Pass a --block-size that is a multiple of 16, or choose another --attention-backend.',
      details: {logicalBlockSize, backend},
    })
  }
  const {groups, numTensors, layers} = planGroups(model)
  const pageBytes = logicalBlockSize * perToken
  const kernelPageBytes = kernelBlockSize * perToken
  return {
    tp,
    hybrid,
    attentionBackend: backend,
    convLayout,
    kvLayout: hybrid ? 'blocks-first' : 'kv-first',
    dtypes,
    logicalBlockSize,
    kernelBlockSize,
    blocksPerLogical: logicalBlockSize / kernelBlockSize,
    supportedKernelBlockSizes: describeRule(rule),
    pageBytes,
    kernelPageBytes,
    kvHalfBytes: kernelPageBytes / 2,
    attnBytesPerToken: perToken,
    mambaPageBytes,
    paddingBytes: hybrid ? pageBytes - mambaPageBytes : 0,
    numTensors,
    groups,
    layers,
    ranks: Array.from({length: tp}, (_, rank) => rankLayout(model, tp, rank, dtypes, kernelBlockSize, convLayout)),
    vllmRatioEstimate: hybrid ? cdiv(mambaPageBytes, kernelPageBytes) : undefined,
    blockSizeReason,
  }
}

/** The kernel block rule an engine's backend applies (vLLM's fp32-state restriction included). */
export function engineKernelRule(e: Pick<EngineLayout, 'attentionBackend' | 'hybrid' | 'dtypes'>): KernelSizeRule {
  return kernelSizeRule(e.attentionBackend, {hybrid: e.hybrid, fp32State: e.dtypes.ssm === 'fp32' || e.dtypes.conv === 'fp32'})
}

/**
 * The logical block size for a requested `--block-size` (default 16, vLLM get_preferred_block_size).
 * Hybrids follow vLLM Platform._align_hybrid_block_size (mamba_cache_mode "none"): the FA block
 * grows, in steps of `align` = max(backend base, requested), until one FA page holds a whole Mamba
 * page; the Mamba page is padded to it.
 */
export function alignedBlockSize(args: {
  readonly requested: number | undefined
  readonly hybrid: boolean
  readonly mambaPageBytes: number
  readonly attnBytesPerToken: number
  readonly rule: KernelSizeRule
}): {logicalBlockSize: number; blockSizeReason: string} {
  const cacheBlock = args.requested ?? DEFAULT_BLOCK_SIZE
  const asGiven = {logicalBlockSize: cacheBlock, blockSizeReason: args.requested === undefined ? `backend default ${DEFAULT_BLOCK_SIZE}` : `--block-size ${args.requested}`}
  if (!args.hybrid) return asGiven
  const align = Math.max(ruleBase(args.rule), cacheBlock)
  const attnBlock = align * cdiv(args.mambaPageBytes, align * args.attnBytesPerToken)
  if (attnBlock <= cacheBlock) return asGiven
  return {logicalBlockSize: attnBlock, blockSizeReason: `${align}·cdiv(mambaPage ${args.mambaPageBytes} B, ${align}·${args.attnBytesPerToken} B/token) = ${attnBlock}`}
}

/**
 * `auto` resolution. Under the `cpu` attention backend (hpd's own engine) every cache dtype is the
 * engine's, fp32 (`CPU_ENGINE_LAYOUT`): the engine caches in fp32 whatever the checkpoint says.
 * Under vLLM's backends: KV → model dtype; conv → config mamba_cache_dtype → model dtype; SSM →
 * config mamba_ssm_cache_dtype / family default → conv.
 */
export function resolveDtypes(
  model: ModelSpec,
  options: {kvCacheDtype?: DtypeChoice; mambaConvDtype?: DtypeChoice; mambaSsmDtype?: DtypeChoice; attentionBackend?: AttentionBackend},
): ResolvedDtypes {
  const engine = options.attentionBackend === CPU_ENGINE_LAYOUT.attentionBackend
  const kv = pick(options.kvCacheDtype, engine ? CPU_ENGINE_LAYOUT.kvCacheDtype : model.dtype)
  const conv = pick(options.mambaConvDtype, engine ? CPU_ENGINE_LAYOUT.mambaConvDtype : pick(model.mambaConvDtype, model.dtype))
  const ssm = pick(options.mambaSsmDtype, engine ? CPU_ENGINE_LAYOUT.mambaSsmDtype : pick(model.mambaSsmDtype, conv))
  for (const [flag, value] of [['mamba-cache-dtype', conv], ['mamba-ssm-dtype', ssm]] as const) {
    if (value === 'fp8' && model.stateMixer) {
      throw new UsageError('HPD_USAGE_BAD_DTYPE', `--${flag} fp8: Mamba state cannot be stored in fp8`, {hint: 'Use fp32, bf16 or fp16 for Mamba state.', details: {flag, value}})
    }
  }
  return {kv, conv, ssm}
}

function pick(choice: DtypeChoice | undefined, fallback: Dtype): Dtype {
  return choice === undefined || choice === 'auto' ? fallback : choice
}

/** Bytes of one shared tensor holding `numLogicalBlocks` logical blocks (vLLM KVCacheTensor.size). */
export function tensorSizeBytes(engine: EngineLayout, numLogicalBlocks: number): number {
  return numLogicalBlocks * engine.pageBytes
}
