import {UsageError} from '../../errors.js'
import {CACHE_PARTS, type EngineLayout, type LayoutPlan, type PairReadPlan, type RequestReadPlan} from '../../layout/index.js'
import type {PatternKey, PatternRange} from '../../transport/index.js'

/**
 * Where the bench's pattern lives, derived ONLY from the layout engine's plans (never its own
 * geometry): the prefill side fills every FA kernel block (K, V) and every SSM sub-region
 * (x, B, C, ssm) of a request's blocks; the decode side checks each planned read against the
 * prefill part it must have come from. Pure.
 */

/** Engine ids in pattern keys. */
export const PREFILL_ENGINE = 1

/** One pattern part in a prefill tensor, with a readable name for error messages. */
export interface PartRange extends PatternRange {
  readonly tensorIndex: number
}

/** Where a prefill-tensor byte offset falls: block (kernel block for fa, logical for ssm), part, offset in the part. */
export interface PartLocation {
  readonly block: number
  readonly partIndex: number
  readonly partOffsetBytes: number
}

function partGeometry(engine: EngineLayout, rank: number, partIndex: number) {
  const part = CACHE_PARTS[partIndex]
  const g = engine.ranks[rank].parts.find((p) => p.part === part)
  if (!g) throw new UsageError('HPD_BENCH_NO_SUCH_PART', `rank ${rank} has no ${part} part in this layout`)
  if (g.rows !== 1) {
    throw new UsageError('HPD_BENCH_STRIDED_PART', `part ${part} is strided (${g.rows} rows); hpd bench transfer supports the DS conv layout only`, {
      hint: 'Use --conv-layout DS (the default).',
    })
  }
  return g
}

/**
 * Every pattern part of one request in one prefill rank's tensors (fill order: tensor, group,
 * block, part). All r kernel blocks of each logical FA block are filled, so reads that select
 * only the kernel blocks holding tokens still land in filled memory.
 */
export function prefillParts(plan: LayoutPlan, req: RequestReadPlan, rank: number, request: number): PartRange[] {
  const engine = plan.prefill
  const r = engine.blocksPerLogical
  const numKernelBlocks = req.prefillNumLogicalBlocks * r
  const out: PartRange[] = []
  const faParts = engine.ranks[rank].parts.filter((p) => p.view === 'fa' && p.lengthBytes > 0)
  const ssmParts = engine.ranks[rank].parts.filter((p) => p.view === 'ssm' && p.lengthBytes > 0)
  for (const g of [...faParts, ...ssmParts]) partGeometry(engine, rank, CACHE_PARTS.indexOf(g.part))
  for (let s = 0; s < engine.numTensors; s++) {
    for (const group of engine.groups) {
      if (group.layers[s] === null) continue
      const ids = req.prefillBlockIds[group.index]
      if (group.kind === 'attention') {
        for (const logical of ids) {
          for (let j = 0; j < r; j++) {
            const kernelBlock = logical * r + j
            for (const g of faParts) {
              const offsetBytes = faOffset(engine, kernelBlock, g.offsetBytes, numKernelBlocks)
              out.push({tensorIndex: s, offsetBytes, sizeBytes: g.lengthBytes, partOffsetBytes: 0, key: key(request, rank, s, kernelBlock, CACHE_PARTS.indexOf(g.part))})
            }
          }
        }
      } else {
        const logical = ids[0]
        for (const g of ssmParts) {
          out.push({tensorIndex: s, offsetBytes: logical * engine.pageBytes + g.offsetBytes, sizeBytes: g.lengthBytes, partOffsetBytes: 0, key: key(request, rank, s, logical, CACHE_PARTS.indexOf(g.part))})
        }
      }
    }
  }
  return out
}

function key(request: number, rank: number, tensor: number, block: number, part: number): PatternKey {
  return {engine: PREFILL_ENGINE, request, rank, tensor, block, part}
}

function faOffset(engine: EngineLayout, kernelBlock: number, pageOffsetBytes: number, numKernelBlocks: number): number {
  if (engine.kvLayout === 'blocks-first') return kernelBlock * engine.kernelPageBytes + pageOffsetBytes
  const half = engine.kvHalfBytes
  return pageOffsetBytes < half ? kernelBlock * half + pageOffsetBytes : numKernelBlocks * half + kernelBlock * half + (pageOffsetBytes - half)
}

/** Inverse of the fill: which prefill part a remote (prefill-tensor) offset belongs to. */
export function locatePrefillByte(plan: LayoutPlan, req: RequestReadPlan, rank: number, partIndex: number, remoteOffsetBytes: number): PartLocation {
  const engine = plan.prefill
  const g = partGeometry(engine, rank, partIndex)
  if (g.view === 'ssm') {
    const block = Math.floor(remoteOffsetBytes / engine.pageBytes)
    return {block, partIndex, partOffsetBytes: remoteOffsetBytes - block * engine.pageBytes - g.offsetBytes}
  }
  if (engine.kvLayout === 'blocks-first') {
    const block = Math.floor(remoteOffsetBytes / engine.kernelPageBytes)
    return {block, partIndex, partOffsetBytes: remoteOffsetBytes - block * engine.kernelPageBytes - g.offsetBytes}
  }
  const half = engine.kvHalfBytes
  const numKernelBlocks = req.prefillNumLogicalBlocks * engine.blocksPerLogical
  const inHalf = CACHE_PARTS[partIndex] === 'K' ? remoteOffsetBytes : remoteOffsetBytes - numKernelBlocks * half
  const block = Math.floor(inHalf / half)
  return {block, partIndex, partOffsetBytes: inHalf - block * half}
}

/** The expected pattern of every planned read of one pair, in read order (for full verification). */
export function expectedRanges(plan: LayoutPlan, req: RequestReadPlan, pair: PairReadPlan, request: number): PartRange[] {
  const reads = pair.reads
  const out: PartRange[] = new Array(reads.count)
  for (let i = 0; i < reads.count; i++) {
    const loc = locatePrefillByte(plan, req, pair.prefillRank, reads.partIndex[i], reads.remoteOffsetBytes[i])
    out[i] = {
      tensorIndex: reads.tensorIndex[i],
      offsetBytes: reads.localOffsetBytes[i],
      sizeBytes: reads.lengthBytes[i],
      partOffsetBytes: loc.partOffsetBytes,
      key: key(request, pair.prefillRank, reads.tensorIndex[i], loc.block, loc.partIndex),
    }
  }
  return out
}

/** Bytes of a request split by view, over all pairs. */
export function bytesByView(req: RequestReadPlan): {faBytes: number; ssmBytes: number} {
  let faBytes = 0
  let ssmBytes = 0
  for (const pair of req.pairs) {
    for (let i = 0; i < pair.reads.count; i++) {
      const part = CACHE_PARTS[pair.reads.partIndex[i]]
      if (part === 'K' || part === 'V') faBytes += pair.reads.lengthBytes[i]
      else ssmBytes += pair.reads.lengthBytes[i]
    }
  }
  return {faBytes, ssmBytes}
}

/** Groups ranges by tensor index (the pattern kernels work on one tensor buffer at a time). */
export function byTensor<T extends {tensorIndex: number}>(ranges: readonly T[], numTensors: number): T[][] {
  const out: T[][] = Array.from({length: numTensors}, () => [])
  for (const r of ranges) out[r.tensorIndex].push(r)
  return out
}
