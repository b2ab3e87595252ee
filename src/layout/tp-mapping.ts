import {BugError, UsageError} from '../errors.js'
import type {AttentionRunShape, EngineLayout, PageRead, PartGeometry, RankPair, TpMapping} from './types.js'

/**
 * Which bytes of which prefill rank every decode rank reads, as page-level templates: offsets within
 * one kernel page (fa view) or one logical page (ssm view), the same for every block.
 *
 * Generic over parts: each part is a run of units (kv heads, channels, SSM heads) that TP shards;
 * a decode rank needs its units and takes each from the first of vLLM's handshake targets that holds
 * it (D ≥ P: rank d // ratio; P > D: ranks d·a … d·a+a−1), so replicated KV heads are read once
 * (vLLM's FA-skipped ranks) and replicated B/C (n_groups = 1) are read whole from one rank, which
 * is where vLLM v0.20 misreads C as B (#55208).
 *
 * Attention pages may differ in kernel block size (`attentionRunShape`): then each fa template read
 * is one head over gcd(kernel blocks) tokens instead of a head range over one kernel block. The
 * caller (`planLayout`) has checked that the pair is mappable at all (`checkPairMappable`).
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
  const attention = attentionRunShape(prefill, decode)
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
          emit(byRank, d, p, local, remote, lo, hi, attention)
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
  return {tpRatio, attention, statePagesPerGroup: 1, pairs, notificationsPerPrefillRank: notifications}
}

/** How fa reads are cut between these two engines (see AttentionRunShape). */
export function attentionRunShape(prefill: EngineLayout, decode: EngineLayout): AttentionRunShape {
  const kP = prefill.kernelBlockSize
  const kD = decode.kernelBlockSize
  return {
    prefillKernelBlockSize: kP,
    decodeKernelBlockSize: kD,
    tokensPerRead: kP === kD ? kP : gcd(kP, kD),
    readUnit: kP === kD ? 'head-range' : 'head',
    headTokenBytes: decode.ranks[0].attention.headTokenBytes,
  }
}

export function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

function emit(byRank: Map<number, PageRead[]>, d: number, p: number, local: PartGeometry, remote: PartGeometry, u0: number, u1: number, attention: AttentionRunShape): void {
  const list = byRank.get(p) ?? []
  byRank.set(p, list)
  if (local.view === 'fa' && attention.readUnit === 'head') {
    // Kernel blocks differ: a head's K (or V) is kernelBlock tokens long on each side, so heads
    // are never adjacent on both sides at once; one read per head, tokensPerRead tokens long.
    for (let u = u0; u < u1; u++) {
      list.push({
        decodeRank: d,
        prefillRank: p,
        view: 'fa',
        part: local.part,
        remoteOffsetBytes: remote.offsetBytes + (u - remote.globalUnitStart) * remote.unitBytes,
        localOffsetBytes: local.offsetBytes + (u - local.globalUnitStart) * local.unitBytes,
        lengthBytes: attention.tokensPerRead * attention.headTokenBytes,
      })
    }
    return
  }
  if (local.unitBytes !== remote.unitBytes || local.rows !== remote.rows) {
    throw new UsageError('HPD_LAYOUT_PART_MISMATCH', `part ${local.part}: prefill holds ${remote.unitBytes} B per ${remote.unit}, decode ${local.unitBytes} B`, {
      hint: 'Prefill and decode must use the same dtypes and conv layout (checkPairMappable should have said so: please report this).',
      details: {part: local.part},
    })
  }
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
}
