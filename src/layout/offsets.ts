import type {EngineLayout} from './types.js'

/** Kernel block id holding the request's i-th kernel block, given its logical ids and ratio r. */
export function kernelBlockId(logicalIds: readonly number[], i: number, r: number): number {
  return logicalIds[Math.floor(i / r)] * r + (i % r)
}

/**
 * Absolute byte offset in a shared tensor of `pageOffsetBytes` (an offset within one kernel page
 * `[K | V]`) of kernel block `kernelBlock`. blocks-first: pages follow one another; kv-first: the
 * tensor is all K halves then all V halves, so V offsets depend on the tensor's kernel block count.
 */
export function faByteOffset(engine: EngineLayout, kernelBlock: number, pageOffsetBytes: number, numKernelBlocks: number): number {
  if (engine.kvLayout === 'blocks-first') return kernelBlock * engine.kernelPageBytes + pageOffsetBytes
  const half = engine.kvHalfBytes
  return pageOffsetBytes < half ? kernelBlock * half + pageOffsetBytes : numKernelBlocks * half + kernelBlock * half + (pageOffsetBytes - half)
}

/** Absolute byte offset of an ssm-view page offset in logical block `logicalBlock`. */
export function ssmByteOffset(engine: EngineLayout, logicalBlock: number, pageOffsetBytes: number): number {
  return logicalBlock * engine.pageBytes + pageOffsetBytes
}

/**
 * The byte ranges of one logical block in one shared tensor of `numLogicalBlocks` pages: the whole
 * logical page (blocks-first, every hybrid), or its kernel blocks' K run and V run (kv-first).
 * What an owner grants a reader for a request's blocks (served reads check every piece against it).
 */
export function logicalBlockRanges(engine: EngineLayout, logicalBlock: number, numLogicalBlocks: number): {offsetBytes: number; sizeBytes: number}[] {
  if (engine.kvLayout === 'blocks-first') return [{offsetBytes: logicalBlock * engine.pageBytes, sizeBytes: engine.pageBytes}]
  const r = engine.blocksPerLogical
  const numKernel = numLogicalBlocks * r
  const size = r * engine.kvHalfBytes
  return [
    {offsetBytes: faByteOffset(engine, logicalBlock * r, 0, numKernel), sizeBytes: size},
    {offsetBytes: faByteOffset(engine, logicalBlock * r, engine.kvHalfBytes, numKernel), sizeBytes: size},
  ]
}
