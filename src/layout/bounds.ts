import {UsageError} from '../errors.js'
import {blocksNeeded} from './block-ids.js'
import {ssmRegionsPerTensor} from './descriptor-ids.js'
import {MAX_PROMPT_TOKENS} from './transferred-tokens.js'
import type {EngineLayout, LayoutPlan} from './types.js'

/**
 * The largest inputs and plans the layout engine accepts (documented in the README, "Limits").
 * Model keys are bounded by src/model (CONFIG_LIMITS); these bound what the flags add to them.
 *
 * Why these numbers: with every config key in range, each size below is an exact integer (under
 * 2^53) before it is compared, and the caps keep a plan to what a machine could hold and what
 * hpd can list in memory: a page of at most 64 GiB on one rank, a request of at most 16 TiB of
 * cache on one engine (all its ranks; a 405B-parameter transformer at 10M tokens needs ~5 TiB),
 * at most 4M logical blocks per request and 8M reads in a listed rank pair. A request beyond them is refused with
 * HPD_LAYOUT_SIZE_LIMIT naming the flag to lower, never an out-of-memory abort.
 */
export const LAYOUT_LIMITS = {
  /** --tp / --decode-tp (each rank is a process on a GPU; the largest deployments use 64–128). */
  tp: 1024,
  /** --block-size in tokens (vLLM's hybrid blocks reach a few thousand tokens). */
  blockSize: 1_048_576,
  /** --prompt-tokens (the longest published context is 10M tokens); a request transfers N−1 of them. */
  promptTokens: MAX_PROMPT_TOKENS,
  /** One logical page on one rank. */
  pageBytes: 2 ** 36,
  /** One request's cache on one engine: pages × tensors × ranks. */
  requestBytes: 2 ** 44,
  /** Logical block ids one request holds on one engine (all groups): the lists hpd builds. */
  requestBlocks: 4_194_304,
  /**
   * Reads in one rank pair's list (`planRequestReads`, and `summarizeRequestReads` where it falls
   * back to lists, e.g. --conv-layout SD): ~125 B each at the peak of sorting, so ≤ ~1 GiB.
   * The summary of an ordered pair (the DS default) makes no list and has no such limit.
   */
  pairReads: 8_388_608,
  /**
   * `inspect-layout --descriptors`: rows of the descriptor tables over all pairs (each also brings
   * about one descriptor id). Measured ≤ ~450 MiB of memory and ≤ ~100 MB of JSON at the limit.
   */
  descriptorRows: 1_048_576,
} as const

/** TP size and requested block size, checked where a plan starts (planEngineLayout). */
export function checkEngineInputs(options: {readonly tp: number; readonly blockSize?: number}): void {
  const {tp, blockSize} = options
  if (!Number.isInteger(tp) || tp < 1 || tp > LAYOUT_LIMITS.tp) {
    throw new UsageError('HPD_USAGE_BAD_TP', `TP size ${tp} is not an integer in [1, ${LAYOUT_LIMITS.tp}]`, {
      hint: 'Pass --tp / --decode-tp as 1, 2, 4, ...',
      details: {value: tp, max: LAYOUT_LIMITS.tp},
    })
  }
  if (blockSize !== undefined && (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > LAYOUT_LIMITS.blockSize)) {
    throw new UsageError('HPD_USAGE_BAD_BLOCK_SIZE', `--block-size ${blockSize} is not an integer in [1, ${LAYOUT_LIMITS.blockSize}]`, {
      hint: 'Pass a block size in tokens, e.g. 16 or 128.',
      details: {value: blockSize, max: LAYOUT_LIMITS.blockSize},
    })
  }
}

/** A planned engine whose page exceeds LAYOUT_LIMITS.pageBytes is refused (checked by planLayout). */
export function checkEngineSize(engine: EngineLayout, side: 'prefill' | 'decode'): void {
  if (engine.pageBytes > LAYOUT_LIMITS.pageBytes) {
    throw sizeLimit(`one ${side} page is ${exactOrAbout(engine.pageBytes)} bytes (logical block ${engine.logicalBlockSize} tokens); hpd's limit is ${LAYOUT_LIMITS.pageBytes}`, 'Lower --block-size, or raise --tp to split the page.', {
      side,
      pageBytes: engine.pageBytes,
      maxPageBytes: LAYOUT_LIMITS.pageBytes,
    })
  }
}

/**
 * The transferred-token count (N−1 of an N-token prompt, `transferredTokens`) and the request's
 * size, checked before any per-block list is made (requestContext).
 */
export function checkRequestInputs(plan: LayoutPlan, tokens: number): void {
  const max = LAYOUT_LIMITS.promptTokens - 1
  if (!Number.isInteger(tokens) || tokens < 1 || tokens > max) {
    throw new UsageError('HPD_USAGE_BAD_PROMPT_TOKENS', `${tokens} transferred tokens: need an integer in [1, ${max}] (N−1 of an N-token prompt)`, {
      hint: 'Pass the prompt length in tokens (at least 2).',
      details: {value: tokens, max},
    })
  }
  for (const [side, engine] of [['prefill', plan.prefill], ['decode', plan.decode]] as const) {
    const blocks = blocksNeeded(engine, tokens).reduce((a, b) => a + b, 0)
    if (blocks > LAYOUT_LIMITS.requestBlocks) {
      throw sizeLimit(`${tokens} transferred tokens take ${blocks} ${side} blocks; hpd's limit is ${LAYOUT_LIMITS.requestBlocks}`, 'Lower --prompt-tokens or raise --block-size.', {
        side,
        blocks,
        maxBlocks: LAYOUT_LIMITS.requestBlocks,
      })
    }
    const bytes = blocks * engine.numTensors * engine.pageBytes * engine.tp
    if (bytes > LAYOUT_LIMITS.requestBytes) {
      throw sizeLimit(`${tokens} transferred tokens take ${exactOrAbout(bytes)} bytes of ${side} cache; hpd's limit is ${LAYOUT_LIMITS.requestBytes}`, 'Lower --prompt-tokens.', {
        side,
        bytes,
        maxBytes: LAYOUT_LIMITS.requestBytes,
      })
    }
  }
}

/**
 * `--descriptors` lists every descriptor of both views of every pair: refused (with the numbers)
 * when that exceeds LAYOUT_LIMITS.descriptorRows, before any row is made. The transfer summary
 * without --descriptors has the counts at any size.
 */
export function checkDescriptorTables(plan: LayoutPlan, tokens: number): void {
  checkRequestInputs(plan, tokens)
  const rows = (engine: EngineLayout): number => {
    const numLogicalBlocks = blocksNeeded(engine, tokens).reduce((a, b) => a + b, 0)
    return engine.numTensors * numLogicalBlocks * (2 * engine.blocksPerLogical + ssmRegionsPerTensor(engine))
  }
  const total = plan.mapping.pairs.length * (rows(plan.prefill) + rows(plan.decode))
  if (total > LAYOUT_LIMITS.descriptorRows) {
    throw new UsageError('HPD_USAGE_DESCRIPTORS_TOO_LARGE', `--descriptors would list ${total} descriptor rows for ${tokens} transferred tokens; hpd's limit is ${LAYOUT_LIMITS.descriptorRows}`, {
      hint: 'Lower --prompt-tokens for the tables, or drop --descriptors: the transfer summary has the counts at any length.',
      details: {rows: total, maxRows: LAYOUT_LIMITS.descriptorRows},
    })
  }
}

/** A read list about to be sized for `count` reads (one rank pair). */
export function checkPairReads(count: number): void {
  if (count > LAYOUT_LIMITS.pairReads) {
    throw sizeLimit(`one rank pair of this request would list ${count} reads; hpd's limit is ${LAYOUT_LIMITS.pairReads}`, 'Lower --prompt-tokens, raise --block-size, or use --conv-layout DS (its summary needs no lists).', {
      reads: count,
      maxReads: LAYOUT_LIMITS.pairReads,
    })
  }
}

/** A count as text: exact while it is a safe integer, else "about 2.306e+18" (a double is not exact there). */
export function exactOrAbout(n: number): string {
  return Number.isSafeInteger(n) ? String(n) : `about ${n.toExponential(3)}`
}

export function sizeLimit(message: string, hint: string, details: Record<string, unknown>): UsageError {
  return new UsageError('HPD_LAYOUT_SIZE_LIMIT', message, {hint, details})
}
