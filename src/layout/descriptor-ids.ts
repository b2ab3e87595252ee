import {UsageError} from '../errors.js'
import type {GroupBlockIds} from './block-ids.js'
import {cdiv} from './kernel-blocks.js'
import {faByteOffset} from './offsets.js'
import type {CachePart, EngineLayout, PageRead, RankPair} from './types.js'

/**
 * vLLM's dual descriptor views (§3.2–3.4) over the shared tensors, and its block-id → descriptor-id
 * formulas (§3.3). A view is one prepared list: the FA section (2T regions: K_i, V_i, each N_k
 * kernel-block entries) followed by the SSM section (per tensor x, B, C, SSM regions of N_l
 * logical-block entries; Mamba1 has x and SSM only). Ids select entries by index, so the transport
 * prepares the lists once and builds each request's transfer from id arrays.
 */
export interface DescriptorView {
  readonly count: number
  /** Boundary between the FA and the SSM section (vLLM num_descs = 2T·N_k). */
  readonly numFaDescs: number
  readonly numKernelBlocks: number
  readonly numLogicalBlocks: number
  readonly tensorIndex: Int32Array
  /** Byte offset inside the shared tensor. */
  readonly offsetBytes: Float64Array
  /** 0 where this view reads nothing (an FA-skipped prefill rank, or B/C taken from another rank). */
  readonly lengthBytes: Float64Array
}

const SSM_PARTS_MAMBA2: readonly CachePart[] = ['x', 'B', 'C', 'ssm']
const SSM_PARTS_MAMBA1: readonly CachePart[] = ['x', 'ssm']

/** SSM regions per tensor: 4 (x, B, C, SSM; vLLM registers all four even for homogeneous TP), 2 for Mamba1, 0 without state. */
export function ssmRegionsPerTensor(engine: EngineLayout): number {
  return ssmParts(engine).length
}

function ssmParts(engine: EngineLayout): readonly CachePart[] {
  const mamba = engine.ranks[0].mamba
  if (!mamba) return []
  return mamba.kind === 'mamba1' ? SSM_PARTS_MAMBA1 : SSM_PARTS_MAMBA2
}

/** FA region `region` (2i = K of tensor i, 2i+1 = V), kernel block b: region·N_k + b. */
export function faDescriptorId(region: number, kernelBlock: number, numKernelBlocks: number): number {
  return region * numKernelBlocks + kernelBlock
}

/** SSM region m (= 4i + {0:x, 1:B, 2:C, 3:SSM}), logical block L: m·N_l + L + numFaDescs. */
export function ssmDescriptorId(region: number, logicalBlock: number, numLogicalBlocks: number, numFaDescs: number): number {
  return region * numLogicalBlocks + logicalBlock + numFaDescs
}

/**
 * vLLM `_get_block_descs_ids`: per group (FA groups given as kernel block ids, state groups as
 * logical ids), every region of every tensor, concatenated in group order.
 */
export function blockDescriptorIds(engine: EngineLayout, groupBlockIds: GroupBlockIds, numLogicalBlocks: number): Int32Array {
  const T = engine.numTensors
  const Nk = numLogicalBlocks * engine.blocksPerLogical
  const numFa = 2 * T * Nk
  const regions = ssmRegionsPerTensor(engine) * T
  const out: number[] = []
  engine.groups.forEach((g, gi) => {
    const ids = groupBlockIds[gi] ?? []
    if (g.kind === 'attention') for (let region = 0; region < 2 * T; region++) for (const b of ids) out.push(faDescriptorId(region, b, Nk))
    else for (let m = 0; m < regions; m++) for (const L of ids) out.push(ssmDescriptorId(m, L, numLogicalBlocks, numFa))
  })
  return Int32Array.from(out)
}

/** Logical ids → all r kernel ids each (vLLM BlockTable.map_to_kernel_blocks). */
export function expandToKernelBlocks(logicalIds: readonly number[], r: number): number[] {
  const out: number[] = []
  for (const L of logicalIds) for (let j = 0; j < r; j++) out.push(L * r + j)
  return out
}

/**
 * vLLM's id pairs for one (decode, prefill) rank pair and request: FA groups expanded to all r kernel
 * blocks per logical block (each side with its own r, trimmed to the shorter as after #42097; empty
 * when the prefill rank only holds duplicate heads), state groups one logical block each.
 */
export function faDescriptorIdsFor(
  pair: RankPair,
  prefill: EngineLayout,
  decode: EngineLayout,
  pIds: GroupBlockIds,
  dIds: GroupBlockIds,
  pNum: number,
  dNum: number,
  tokens: number,
  /** Kernel blocks the decode side holds already (prefix-cache hit): left out of both lists. */
  skipKernelBlocks = 0,
): {local: Int32Array; remote: Int32Array} {
  checkKernelBlocksAgree(prefill, decode)
  const local: (readonly number[])[] = []
  const remote: (readonly number[])[] = []
  for (const g of decode.groups) {
    if (g.kind === 'attention') {
      if (!pair.readsFa) {
        local.push([])
        remote.push([])
        continue
      }
      const d = expandToKernelBlocks(dIds[g.index].slice(0, cdiv(tokens, decode.logicalBlockSize)), decode.blocksPerLogical)
      const p = expandToKernelBlocks(pIds[g.index].slice(0, cdiv(tokens, prefill.logicalBlockSize)), prefill.blocksPerLogical)
      const n = Math.min(d.length, p.length)
      local.push(d.slice(skipKernelBlocks, n))
      remote.push(p.slice(skipKernelBlocks, n))
    } else {
      local.push(dIds[g.index].slice(0, 1))
      remote.push(pIds[g.index].slice(0, 1))
    }
  }
  return {local: blockDescriptorIds(decode, local, dNum), remote: blockDescriptorIds(prefill, remote, pNum)}
}

/** An engine rank's own list (§3.2): full K/V halves and full x, B, C, SSM of every block. */
export function localDescriptorView(engine: EngineLayout, rank: number, numLogicalBlocks: number): DescriptorView {
  const parts = engine.ranks[rank].parts
  const segments = (view: 'fa' | 'ssm'): Map<CachePart, {offsetBytes: number; lengthBytes: number}> =>
    new Map(parts.filter((p) => p.view === view).map((p) => [p.part, {offsetBytes: p.offsetBytes, lengthBytes: p.lengthBytes}]))
  return buildView(engine, numLogicalBlocks, segments('fa'), segments('ssm'))
}

/**
 * The two lists one rank pair reads through (vLLM §3.4 on D, with hpd's offsets): `remote` over the
 * prefill rank's tensors and `local` over the decode rank's, entry i of one matching entry i of the
 * other, so the ids of `planRequestReads(..., {descriptorIds: true})` select matching pairs.
 */
export function pairDescriptorViews(
  pair: RankPair,
  prefill: EngineLayout,
  decode: EngineLayout,
  prefillNumLogicalBlocks: number,
  decodeNumLogicalBlocks: number,
): {local: DescriptorView; remote: DescriptorView} {
  checkKernelBlocksAgree(prefill, decode)
  const byPart = (view: 'fa' | 'ssm', side: 'local' | 'remote'): Map<CachePart, {offsetBytes: number; lengthBytes: number}> => {
    const map = new Map<CachePart, {offsetBytes: number; lengthBytes: number}>()
    for (const r of pair.pageReads.filter((x: PageRead) => x.view === view)) {
      if (map.has(r.part)) {
        throw new UsageError('HPD_LAYOUT_DESCRIPTORS_NEED_DS', `part ${r.part} needs ${pair.pageReads.filter((x) => x.part === r.part).length} reads per page; vLLM-style descriptor views need one`, {
          hint: 'Use the DS conv layout (--conv-layout DS) for descriptor views.',
        })
      }
      map.set(r.part, {offsetBytes: side === 'local' ? r.localOffsetBytes : r.remoteOffsetBytes, lengthBytes: r.lengthBytes})
    }
    return map
  }
  return {
    local: buildView(decode, decodeNumLogicalBlocks, byPart('fa', 'local'), byPart('ssm', 'local')),
    remote: buildView(prefill, prefillNumLogicalBlocks, byPart('fa', 'remote'), byPart('ssm', 'remote')),
  }
}

/**
 * vLLM's views pair whole kernel blocks entry for entry; with different kernel blocks no entry of one
 * list matches an entry of the other (vLLM refuses such a pair). hpd's own reads map it.
 */
function checkKernelBlocksAgree(prefill: EngineLayout, decode: EngineLayout): void {
  if (prefill.kernelBlockSize === decode.kernelBlockSize) return
  throw new UsageError(
    'HPD_LAYOUT_DESCRIPTORS_KERNEL_BLOCK_MISMATCH',
    `vLLM-style descriptor views pair whole kernel blocks, and prefill's (${prefill.kernelBlockSize} tokens) ≠ decode's (${decode.kernelBlockSize} tokens); vLLM refuses this pair`,
    {
      hint: "Drop --descriptors: hpd's own read plan (transfer.pageReads) maps this pair.",
      details: {prefillKernelBlockSize: prefill.kernelBlockSize, decodeKernelBlockSize: decode.kernelBlockSize},
    },
  )
}

function buildView(
  engine: EngineLayout,
  numLogicalBlocks: number,
  fa: Map<CachePart, {offsetBytes: number; lengthBytes: number}>,
  ssm: Map<CachePart, {offsetBytes: number; lengthBytes: number}>,
): DescriptorView {
  const T = engine.numTensors
  const Nl = numLogicalBlocks
  const Nk = Nl * engine.blocksPerLogical
  const sParts = ssmParts(engine)
  const numFa = 2 * T * Nk
  const count = numFa + sParts.length * T * Nl
  const tensorIndex = new Int32Array(count)
  const offsetBytes = new Float64Array(count)
  const lengthBytes = new Float64Array(count)
  let k = 0
  for (let i = 0; i < T; i++) {
    for (const part of ['K', 'V'] as const) {
      const seg = fa.get(part)
      const base = part === 'K' ? 0 : engine.kvHalfBytes
      for (let b = 0; b < Nk; b++, k++) {
        tensorIndex[k] = i
        offsetBytes[k] = faByteOffset(engine, b, seg ? seg.offsetBytes : base, Nk)
        lengthBytes[k] = seg ? seg.lengthBytes : 0
      }
    }
  }
  for (let i = 0; i < T; i++) {
    for (const part of sParts) {
      const seg = ssm.get(part)
      for (let L = 0; L < Nl; L++, k++) {
        tensorIndex[k] = i
        offsetBytes[k] = L * engine.pageBytes + (seg ? seg.offsetBytes : 0)
        lengthBytes[k] = seg ? seg.lengthBytes : 0
      }
    }
  }
  return {count, numFaDescs: numFa, numKernelBlocks: Nk, numLogicalBlocks: Nl, tensorIndex, offsetBytes, lengthBytes}
}
