import {BugError, UsageError} from '../errors.js'
import type {EngineLayout, PageRead, PartGeometry, RankPair, TpMapping} from './types.js'

/**
 * Which bytes of which prefill rank every decode rank reads, as page-level templates: offsets within
 * one kernel page (fa view) or one logical page (ssm view), the same for every block.
 *
 * Generic over parts: each part is a run of units (kv heads, channels, SSM heads) that TP shards;
 * a decode rank needs its units and takes each from the first of vLLM's handshake targets that holds
 * it (D ≥ P: rank d // ratio; P > D: ranks d·a … d·a+a−1), so replicated KV heads are read once
 * (vLLM's FA-skipped ranks) and replicated B/C (n_groups = 1) are read whole from one rank, which
 * is where vLLM v0.20 misreads C as B (#55208).
 */
export function planTpMapping(prefill: EngineLayout, decode: EngineLayout): TpMapping {
  const P = prefill.tp
  const D = decode.tp
  if (P % D !== 0 && D % P !== 0) {
    throw new UsageError('HPD_LAYOUT_TP_NOT_DIVISIBLE', `prefill TP ${P} and decode TP ${D} do not divide one another`, {
      hint: 'Use TP sizes where one is a multiple of the other (1→2, 4→2, 8→2, ...).',
      details: {prefillTp: P, decodeTp: D},
    })
  }
  if (prefill.kernelBlockSize !== decode.kernelBlockSize) {
    throw new UsageError(
      'HPD_LAYOUT_KERNEL_BLOCK_MISMATCH',
      `prefill kernel block ${prefill.kernelBlockSize} tokens ≠ decode kernel block ${decode.kernelBlockSize} tokens: K/V of one token sit at different places, no read plan can map them`,
      {
        hint: 'Pass a --block-size that gives both sides the same kernel block (e.g. a multiple of 64), or equal TP sizes.',
        details: {prefillKernelBlockSize: prefill.kernelBlockSize, decodeKernelBlockSize: decode.kernelBlockSize},
      },
    )
  }
  const tpRatio = D >= P ? D / P : -(P / D)
  const pairs: RankPair[] = []
  const notifications = Array.from({length: P}, () => 0)
  for (let d = 0; d < D; d++) {
    const targets = tpRatio > 0 ? [Math.floor(d / tpRatio)] : Array.from({length: -tpRatio}, (_, i) => d * -tpRatio + i)
    const others = Array.from({length: P}, (_, p) => p).filter((p) => !targets.includes(p))
    const byRank = new Map<number, PageRead[]>()
    for (const local of decode.ranks[d].parts) {
      let remaining: [number, number][] = [[local.globalUnitStart, local.globalUnitStart + local.unitsLocal]]
      for (const p of [...targets, ...others]) {
        if (remaining.length === 0) break
        const remote = prefill.ranks[p].parts.find((q) => q.part === local.part)
        if (!remote) continue
        const next: [number, number][] = []
        for (const [u0, u1] of remaining) {
          const lo = Math.max(u0, remote.globalUnitStart)
          const hi = Math.min(u1, remote.globalUnitStart + remote.unitsLocal)
          if (lo >= hi) {
            next.push([u0, u1])
            continue
          }
          emit(byRank, d, p, local, remote, lo, hi)
          if (u0 < lo) next.push([u0, lo])
          if (hi < u1) next.push([hi, u1])
        }
        remaining = next
      }
      if (remaining.length > 0) {
        throw new BugError('HPD_BUG_UNCOVERED_UNITS', `decode rank ${d} part ${local.part}: units ${JSON.stringify(remaining)} are held by no prefill rank`)
      }
    }
    for (const p of [...byRank.keys()].sort((a, b) => a - b)) {
      const pageReads = byRank.get(p)!
      pairs.push({decodeRank: d, prefillRank: p, pageReads, readsFa: pageReads.some((r) => r.view === 'fa'), readsSsm: pageReads.some((r) => r.view === 'ssm')})
      notifications[p]++
    }
  }
  return {tpRatio, pairs, notificationsPerPrefillRank: notifications}
}

function emit(byRank: Map<number, PageRead[]>, d: number, p: number, local: PartGeometry, remote: PartGeometry, u0: number, u1: number): void {
  if (local.unitBytes !== remote.unitBytes || local.rows !== remote.rows) {
    throw new UsageError('HPD_LAYOUT_PART_MISMATCH', `part ${local.part}: prefill holds ${remote.unitBytes} B per ${remote.unit}, decode ${local.unitBytes} B`, {
      hint: 'Prefill and decode must use the same dtypes, conv layout and kernel block size.',
      details: {part: local.part},
    })
  }
  const list = byRank.get(p) ?? []
  for (let row = 0; row < local.rows; row++) {
    list.push({
      decodeRank: d,
      prefillRank: p,
      view: local.view,
      part: local.part,
      remoteOffsetBytes: remote.offsetBytes + row * remote.rowStrideBytes + (u0 - remote.globalUnitStart) * remote.unitBytes,
      localOffsetBytes: local.offsetBytes + row * local.rowStrideBytes + (u0 - local.globalUnitStart) * local.unitBytes,
      lengthBytes: (u1 - u0) * local.unitBytes,
    })
  }
  byRank.set(p, list)
}
