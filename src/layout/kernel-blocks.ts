import type {AttentionBackend} from './types.js'

/** What a backend's `get_supported_kernel_block_sizes` returns: a list of ints or MultipleOf(n). */
export type KernelSizeRule = {readonly kind: 'list'; readonly sizes: readonly number[]} | {readonly kind: 'multiple-of'; readonly base: number}

/**
 * vLLM v0.20's tables (§2.5): FlashAttention takes MultipleOf(16) but only [16, 32, 64] for a hybrid
 * model with an fp32 Mamba state (NaN propagation, flash-attention #1974); FlashInfer [16, 32, 64];
 * Triton MultipleOf(16). hpd's own CPU kernel takes [16, 32, 64] so bridging is exercised on tiny models.
 */
export function kernelSizeRule(backend: AttentionBackend, context: {readonly hybrid: boolean; readonly fp32State: boolean}): KernelSizeRule {
  switch (backend) {
    case 'flash-attn':
      return context.hybrid && context.fp32State ? {kind: 'list', sizes: [16, 32, 64]} : {kind: 'multiple-of', base: 16}
    case 'flashinfer':
    case 'cpu':
      return {kind: 'list', sizes: [16, 32, 64]}
    case 'triton':
      return {kind: 'multiple-of', base: 16}
  }
}

export function describeRule(rule: KernelSizeRule): string[] {
  return rule.kind === 'list' ? rule.sizes.map(String) : [`multiple of ${rule.base}`]
}

/** The smallest block the backend can address (vLLM: min of each rule's base). */
export function ruleBase(rule: KernelSizeRule): number {
  return rule.kind === 'list' ? Math.min(...rule.sizes) : rule.base
}

/**
 * vLLM `select_common_block_size`: the logical size itself when the backend supports it, otherwise
 * the largest listed size dividing it; undefined when none does.
 */
export function selectKernelBlockSize(logicalBlockSize: number, rule: KernelSizeRule): number | undefined {
  if (rule.kind === 'multiple-of') return logicalBlockSize % rule.base === 0 ? logicalBlockSize : undefined
  if (rule.sizes.includes(logicalBlockSize)) return logicalBlockSize
  const dividing = rule.sizes.filter((s) => logicalBlockSize % s === 0)
  return dividing.length === 0 ? undefined : Math.max(...dividing)
}

export function cdiv(a: number, b: number): number {
  return Math.ceil(a / b)
}
