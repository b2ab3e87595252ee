import type {EngineLayout} from '../layout/types.js'
import {tensorSizeBytes} from '../layout/engine-layout.js'

/**
 * The engine's cache memory: for every TP rank, the layout's shared tensors (tensor s holds slot
 * s of every KV-cache group), each `numBlocks` logical pages of `layout.pageBytes`. Geometry
 * comes only from the layout engine (src/layout): kernel pages `[K | V]` HND inside a logical
 * page (blocks-first, hybrids) or `[K of all blocks | V of all blocks]` (kv-first, pure
 * attention); Mamba pages `conv (DS) | SSM | padding`. The memory comes from a CacheAllocator,
 * so the transfer agent can hand out memory a peer can read, and tests can use ArrayBuffers.
 */
export interface CacheAllocation {
  readonly buffer: ArrayBuffer
  /** Gives the memory back (deregisters it); the engine calls it once, from close(). */
  release(): void
}

export interface CacheAllocator {
  /** Zero-filled memory for tensor `tensorIndex` of TP rank `rank`, `sizeBytes` long (a multiple of 4). */
  allocate(request: {readonly rank: number; readonly tensorIndex: number; readonly sizeBytes: number}): CacheAllocation
}

/** Plain process memory (tests, `hpd generate`): nothing to register, nothing to release. */
export const arrayBufferAllocator: CacheAllocator = {
  allocate: ({sizeBytes}) => ({buffer: new ArrayBuffer(sizeBytes), release() {}}),
}

/** Where one attention layer's K/V live for the paged-attention kernel (all in fp32 elements). */
export interface PagedKvGeometry {
  readonly kernelBlockSize: number
  readonly blocksPerLogical: number
  readonly blockStride: number
  readonly kOffset: number
  readonly vOffset: number
  readonly headStride: number
}

/** Element offsets of a Mamba page's parts (page stride, conv [channels, K-1], SSM [H, P, N]). */
export interface MambaPageGeometry {
  readonly pageStride: number
  readonly convOffset: number
  readonly convElems: number
  readonly ssmOffset: number
  readonly ssmElems: number
}

export interface RankCache {
  readonly rank: number
  /** [tensorIndex] fp32 views over the allocated memory. */
  readonly tensors: readonly Float32Array[]
  readonly allocations: readonly CacheAllocation[]
}

export function allocateRankCaches(layout: EngineLayout, numBlocks: number, allocator: CacheAllocator): RankCache[] {
  const sizeBytes = tensorSizeBytes(layout, numBlocks)
  return layout.ranks.map((_r, rank) => {
    const allocations = Array.from({length: layout.numTensors}, (_t, tensorIndex) => allocator.allocate({rank, tensorIndex, sizeBytes}))
    return {rank, allocations, tensors: allocations.map((a) => new Float32Array(a.buffer, 0, sizeBytes / 4))}
  })
}

export function pagedKvGeometry(layout: EngineLayout, rank: number, numBlocks: number): PagedKvGeometry {
  const attn = layout.ranks[rank].attention
  const halfElems = layout.kvHalfBytes / 4
  const blocksFirst = layout.kvLayout === 'blocks-first'
  return {
    kernelBlockSize: layout.kernelBlockSize,
    blocksPerLogical: layout.blocksPerLogical,
    blockStride: blocksFirst ? layout.kernelPageBytes / 4 : halfElems,
    kOffset: 0,
    vOffset: blocksFirst ? halfElems : numBlocks * layout.blocksPerLogical * halfElems,
    headStride: layout.kernelBlockSize * attn.headDim,
  }
}

export function mambaPageGeometry(layout: EngineLayout, rank: number): MambaPageGeometry {
  const m = layout.ranks[rank].mamba!
  return {
    pageStride: layout.pageBytes / 4,
    convOffset: 0,
    convElems: m.conv.bytes / 4,
    ssmOffset: m.ssm.offsetBytes / 4,
    ssmElems: m.ssm.bytes / 4,
  }
}

/** Kernel block ids of logical blocks (vLLM BlockTable.map_to_kernel_blocks: L → L·r … L·r + r−1). */
export function kernelBlockTable(logicalBlocks: readonly number[], blocksPerLogical: number): Int32Array {
  const out = new Int32Array(logicalBlocks.length * blocksPerLogical)
  logicalBlocks.forEach((l, j) => {
    for (let i = 0; i < blocksPerLogical; i++) out[j * blocksPerLogical + i] = l * blocksPerLogical + i
  })
  return out
}
