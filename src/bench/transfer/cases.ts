import {blocksNeeded, type EngineLayout, planLayout, planRequestReads, type LayoutPlan, type RequestReadPlan, tensorSizeBytes, transferredTokens} from '../../layout/index.js'
import {loadModelSpec} from '../../model/index.js'
import type {BenchTransferOptions} from './types.js'

/** The layout engine's plans for every case; both workers compute the same (pure, deterministic). */
export interface BenchPlan {
  readonly plan: LayoutPlan
  /** [case] → the request's reads over contiguous block ids (--path case reads exactly these). */
  readonly requests: readonly RequestReadPlan[]
  /** [case] → prompt tokens (N; the plans transfer N−1). */
  readonly promptTokens: readonly number[]
  /** Logical blocks per shared tensor on each side: --path serve's pool, or enough for the largest case. */
  readonly prefillBlocks: number
  readonly decodeBlocks: number
  /** Size of each shared tensor on one prefill / decode rank. */
  readonly prefillTensorBytes: number
  readonly decodeTensorBytes: number
}

/**
 * The serve path's pool: POOL_FACTOR times the largest request, so requests land on scattered
 * blocks of a pool that is mostly free (a server's steady state), and at least 16 blocks.
 */
const POOL_FACTOR = 3

function poolBlocks(engine: EngineLayout, tokens: readonly number[]): number {
  const largest = Math.max(...tokens.map((t) => blocksNeeded(engine, t).reduce((a, b) => a + b, 0)))
  return Math.max(16, POOL_FACTOR * largest)
}

/**
 * Unmeasured requests before each case's measured ones: endpoint wire-up, segment attach, first
 * touches. The serve path's pool hands blocks out first in, first out, so its first POOL_FACTOR
 * requests touch every block once, as a running server long has; the case path reuses one set.
 */
export function warmupRequests(options: BenchTransferOptions): number {
  return options.path === 'serve' ? POOL_FACTOR : 1
}

export function planBench(options: BenchTransferOptions): BenchPlan {
  const model = loadModelSpec(options.model)
  const plan = planLayout({
    model,
    prefillTp: options.prefillTp,
    decodeTp: options.decodeTp,
    attentionBackend: options.attentionBackend,
    kvCacheDtype: options.kvCacheDtype,
    mambaConvDtype: options.mambaConvDtype,
    mambaSsmDtype: options.mambaSsmDtype,
    blockSize: options.blockSize,
  })
  const tokens = options.promptTokens.map(transferredTokens)
  const sequential = tokens.map((t) => planRequestReads(plan, {transferredTokens: t}))
  // One block count per side for every case and request: kv-first tensors (attention-only models)
  // place a block's bytes by it, so the owner's grants and digests, the fill and the reads must
  // all use the same one. --path serve: the pool; --path case: enough for the largest case.
  const prefillBlocks = options.path === 'serve' ? poolBlocks(plan.prefill, tokens) : Math.max(...sequential.map((r) => r.prefillNumLogicalBlocks))
  const decodeBlocks = options.path === 'serve' ? poolBlocks(plan.decode, tokens) : Math.max(...sequential.map((r) => r.decodeNumLogicalBlocks))
  const requests = tokens.map((t) => planRequestReads(plan, {transferredTokens: t, prefillNumLogicalBlocks: prefillBlocks, decodeNumLogicalBlocks: decodeBlocks}))
  return {
    plan,
    requests,
    promptTokens: options.promptTokens,
    prefillBlocks,
    decodeBlocks,
    prefillTensorBytes: tensorSizeBytes(plan.prefill, prefillBlocks),
    decodeTensorBytes: tensorSizeBytes(plan.decode, decodeBlocks),
  }
}

/** Where injected faults strike: the middle read of the last rank pair that reads anything, in case 0, request 0. */
export function faultTarget(req: RequestReadPlan): {pairIndex: number; readIndex: number} {
  let pairIndex = req.pairs.length - 1
  while (pairIndex > 0 && req.pairs[pairIndex].reads.count === 0) pairIndex--
  return {pairIndex, readIndex: Math.floor(req.pairs[pairIndex].reads.count / 2)}
}

/** The pattern request id that "stale" data carries: the previous request's. */
export function previousRequest(request: number): number {
  return request === 0 ? 0xffffffff : request - 1
}

/** The KV link's request id of (case, request). */
export function linkRequestId(caseIndex: number, request: number): string {
  return `c${caseIndex}r${request}`
}
