/** The public surface of the layout engine. Pure: no I/O, no native code. See README.md. */
export * from './types.js'
export {planLayout} from './plan-layout.js'
export {planEngineLayout, resolveDtypes, tensorSizeBytes} from './engine-layout.js'
export {CPU_ENGINE_LAYOUT} from './cpu-engine.js'
export {attentionRunShape, planTpMapping} from './tp-mapping.js'
export {checkPairMappable} from './pair-compat.js'
export {judgeVllmVersion, NEWEST_VLLM, OLDEST_VLLM, VLLM_RELEASES} from './vllm-versions.js'
export {planRequestReads, summarizeRequestReads, type PairReadCounts, type PairReadPlan, type RequestReadPlan, type RequestReadSummary, type RequestReadsOptions} from './request-reads.js'
export {checkPromptTokens, MAX_PROMPT_TOKENS, MIN_TRANSFER_PROMPT_TOKENS, transferredTokens} from './transferred-tokens.js'
export {blocksNeeded, defaultBlockIds, type GroupBlockIds} from './block-ids.js'
export {CACHE_PARTS, coalesce, readAt, type Read, type ReadList} from './read-list.js'
export {faByteOffset, kernelBlockId, logicalBlockRanges, ssmByteOffset} from './offsets.js'
export {
  blockDescriptorIds,
  type DescriptorView,
  expandToKernelBlocks,
  faDescriptorId,
  localDescriptorView,
  pairDescriptorViews,
  ssmDescriptorId,
  ssmRegionsPerTensor,
} from './descriptor-ids.js'
export {compatibilityFields, compatibilityHash, LAYOUT_VERSION} from './compat-hash.js'
export {vllmPitfalls} from './pitfalls.js'
export {kernelSizeRule, selectKernelBlockSize, type KernelSizeRule} from './kernel-blocks.js'
